"""Render every stored text once (messaging.render), as new messages are when stored."""

from django.db import migrations

BATCH = 1000


def render_all(apps, schema_editor):
    from messaging.render import render_text

    Message = apps.get_model("messaging", "Message")
    last = 0
    while True:
        batch = list(Message.objects.filter(pk__gt=last, is_image=False).order_by("pk").only("pk", "text")[:BATCH])
        if not batch:
            return
        for message in batch:
            message.html = render_text(message.text)
        Message.objects.bulk_update(batch, ["html"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("messaging", "0005_edits_replies_reactions")]

    operations = [migrations.RunPython(render_all, migrations.RunPython.noop)]
