"""The text index that message search (messaging.search) reads, on SQLite and PostgreSQL.

SQLite: an FTS5 table with the trigram tokenizer (any substring of 3 or more characters, case
folded), an external-content table over `messaging_message` (the text is not stored twice),
kept in step by triggers on insert, on a change of `text` and on delete. The triggers run in the
writing statement's own transaction, so an edit (a queryset `update`) or a removal (rows
deleted) changes what search finds when it commits, whatever code path wrote it.

SQLite drops a table's triggers when Django rebuilds the table (a later migration altering a
column of `messaging_message`): `sqlite_ensure` runs after every `migrate` (messaging.apps) and
puts them back, rebuilding the index from the table if any was missing.

PostgreSQL: the `pg_trgm` extension and a GIN index on `text` (`gin_trgm_ops`), which `ILIKE`
uses; the index is maintained by PostgreSQL itself.
"""

from __future__ import annotations

import sqlite3

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction

FTS = "messaging_message_fts"
TABLE = "messaging_message"
PG_INDEX = "msg_text_trgm"
SQLITE_TRIGRAM = (3, 34, 0)  # the first SQLite with FTS5's trigram tokenizer

_TRIGGERS = {
    "msg_fts_insert": f"AFTER INSERT ON {TABLE} BEGIN INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text); END",
    "msg_fts_delete": (
        f"AFTER DELETE ON {TABLE} BEGIN INSERT INTO {FTS}({FTS}, rowid, text) VALUES ('delete', old.id, old.text); END"
    ),
    "msg_fts_update": (
        f"AFTER UPDATE OF text ON {TABLE} BEGIN"
        f" INSERT INTO {FTS}({FTS}, rowid, text) VALUES ('delete', old.id, old.text);"
        f" INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text); END"
    ),
}


class SearchIndexUnavailable(ImproperlyConfigured):
    """The database cannot hold the search index; the message says what to do."""


def sqlite_ensure(cursor) -> bool:
    """Create the FTS table and its triggers where missing; rebuild the index from the messages
    when a trigger was missing (the index may have missed changes). True if anything was made."""
    if sqlite3.sqlite_version_info < SQLITE_TRIGRAM:
        raise SearchIndexUnavailable(
            f"Message search needs SQLite {'.'.join(map(str, SQLITE_TRIGRAM))} or later (FTS5's trigram"
            f" tokenizer); this Python uses SQLite {sqlite3.sqlite_version}."
        )
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
    present = {row[0] for row in cursor.fetchall()}
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [FTS])
    if present >= set(_TRIGGERS) and cursor.fetchone():
        return False
    cursor.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(text, content='{TABLE}', content_rowid='id',"
        " tokenize='trigram')"
    )
    for name, body in _TRIGGERS.items():
        cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
    cursor.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")
    return True


def sqlite_drop(cursor) -> None:
    for name in _TRIGGERS:
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
    cursor.execute(f"DROP TABLE IF EXISTS {FTS}")


def postgres_ensure(connection) -> None:
    """The `pg_trgm` extension (created if this role may: it is a trusted extension, so the
    database's owner may) and the GIN index. Refused with what to do when the extension cannot
    be created: search without the index would read every message on each query."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                with transaction.atomic(using=connection.alias):  # a savepoint: the migration goes on
                    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except DatabaseError as error:
                raise SearchIndexUnavailable(
                    "Message search needs PostgreSQL's pg_trgm extension, and this database role may"
                    f" not create it ({str(error).strip()}). Ask an administrator to run"
                    f' "CREATE EXTENSION pg_trgm;" in database "{connection.settings_dict["NAME"]}"'
                    " (Debian: it comes with the postgresql package), then run migrate again."
                ) from error
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON {TABLE} USING gin (text gin_trgm_ops)")


def postgres_drop(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")


def index_ensure(connection) -> None:
    """The index for this connection's database (other databases: none; search refuses)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            sqlite_ensure(cursor)
    elif connection.vendor == "postgresql":
        postgres_ensure(connection)


def index_drop(connection) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            sqlite_drop(cursor)
    elif connection.vendor == "postgresql":
        postgres_drop(connection)
