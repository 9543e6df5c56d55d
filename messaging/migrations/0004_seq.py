import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F, Max


def number_the_past(apps, schema_editor):
    """Existing messages get their id as `seq` (ids were taken in insertion order), and the
    counter starts after them."""
    Message = apps.get_model("messaging", "Message")
    SeqCounter = apps.get_model("messaging", "SeqCounter")
    Message.objects.update(seq=F("id"))
    last = Message.objects.aggregate(last=Max("id"))["last"] or 0
    SeqCounter.objects.update_or_create(pk=1, defaults={"value": last})


class Migration(migrations.Migration):
    dependencies = [
        ("groups", "0004_membership"),
        ("messaging", "0003_report"),
    ]

    operations = [
        migrations.CreateModel(
            name="SeqCounter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name="message",
            name="seq",
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunPython(number_the_past, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="message",
            name="seq",
            field=models.BigIntegerField(db_index=True),
        ),
        migrations.CreateModel(
            name="Tombstone",
            fields=[
                ("message_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("seq", models.BigIntegerField(db_index=True)),
                ("sender_id", models.IntegerField(null=True)),
                ("recipient_id", models.IntegerField(null=True)),
                ("removed_by", models.CharField(blank=True, max_length=150)),
                ("removed", models.DateTimeField(auto_now_add=True)),
                (
                    "group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="groups.chatgroup",
                    ),
                ),
            ],
        ),
    ]
