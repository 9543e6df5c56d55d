"""The text index of message search (messaging.search_index): SQLite FTS5 with the trigram
tokenizer and its triggers, or PostgreSQL's pg_trgm with a GIN index."""

from django.db import migrations


def create(apps, schema_editor):
    from messaging.search_index import index_ensure

    index_ensure(schema_editor.connection)


def drop(apps, schema_editor):
    from messaging.search_index import index_drop

    index_drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0006_render_existing")]

    operations = [migrations.RunPython(create, drop)]
