"""`Seq`, the change cursor: one number for the whole server that grows in commit order.

Every durable change a client must learn of takes one inside its own transaction: a message
stored or removed, a group created, joined, left or deleted, a read pointer moved. It comes
from one counter row, bumped with ``UPDATE ... RETURNING``: the row stays locked until the
transaction ends, so a transaction that takes a later number commits later, and a rollback
hands its number back. (A bare autoincrement id does not do that on PostgreSQL: id 1000 can
commit after 1001, and a reader that moved past 1000 never sees it.) So whoever reads the
counter knows every change up to it is committed: `seq_committed`.
"""

from __future__ import annotations

import functools

from django.db import connection

from messaging.models import SeqCounter


@functools.cache
def _sql() -> tuple[str, str]:
    table = connection.ops.quote_name(SeqCounter._meta.db_table)
    return (
        f"UPDATE {table} SET value = value + %s WHERE id = 1 RETURNING value",
        f"SELECT value FROM {table} WHERE id = 1",
    )


def seq_take(n: int = 1) -> int:
    """Take `n` numbers for the current transaction; returns the last (the first is that - n + 1).

    Only inside a transaction (`transaction.atomic`): outside one the counter would commit
    before the change it numbers, and a reader could see the number without the change.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("seq_take() needs a transaction: the number must commit with the change")
    take, _ = _sql()
    with connection.cursor() as cursor:
        cursor.execute(take, [n])
        row = cursor.fetchone()
        if row is None:  # a database flushed since migrating (tests): start again
            SeqCounter.objects.get_or_create(pk=1)
            cursor.execute(take, [n])
            row = cursor.fetchone()
    return row[0]


def seq_committed() -> int:
    """The last committed `Seq`: every change numbered up to it is committed and readable."""
    _, read = _sql()
    with connection.cursor() as cursor:
        cursor.execute(read)
        row = cursor.fetchone()
    return row[0] if row else 0
