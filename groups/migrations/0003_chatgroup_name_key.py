"""ChatGroup.name_key: look-alike group names (chatsite.names) share a key, unique per group."""

from django.db import migrations, models

from chatsite.names import name_key


def backfill_name_keys(apps, schema_editor):
    """Key every group, oldest first. A group that already looks like an older one keeps a
    null key (the older one holds it, so new look-alikes of both are still refused)."""
    ChatGroup = apps.get_model("groups", "ChatGroup")
    taken = set()
    keyed = []
    for group in ChatGroup.objects.order_by("pk").only("pk", "name").iterator():
        key = name_key(group.name)
        if key not in taken:
            taken.add(key)
            group.name_key = key
            keyed.append(group)
    ChatGroup.objects.bulk_update(keyed, ["name_key"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("groups", "0002_verbose_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="chatgroup",
            name="name_key",
            field=models.CharField(editable=False, max_length=255, null=True, unique=True),
        ),
        migrations.RunPython(backfill_name_keys, migrations.RunPython.noop),
    ]
