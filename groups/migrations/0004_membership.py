import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """`members` gets a through model on the very table Django made for it, then a `seq`."""

    dependencies = [
        ("groups", "0003_chatgroup_name_key"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        ("id", models.AutoField(primary_key=True, serialize=False)),
                        (
                            "chatgroup",
                            models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="groups.chatgroup"),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL
                            ),
                        ),
                    ],
                    options={"db_table": "groups_chatgroup_members", "unique_together": {("chatgroup", "user")}},
                ),
                migrations.AlterField(
                    model_name="chatgroup",
                    name="members",
                    field=models.ManyToManyField(
                        blank=True, related_name="chat_groups", through="groups.Membership", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.AddField(
            model_name="membership",
            name="seq",
            field=models.BigIntegerField(default=0),
        ),
    ]
