from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _search_index_ensure(sender, using, plan=None, **kwargs) -> None:
    """After every migrate: SQLite drops a table's triggers when a migration rebuilds it, so
    the search index's are put back (messaging.search_index). Only once 0007 has run."""
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from messaging.search_index import index_ensure

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    applied = MigrationRecorder(connection).applied_migrations()
    if ("messaging", "0007_search_index") in applied:
        index_ensure(connection)


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        post_migrate.connect(_search_index_ensure, sender=self)
