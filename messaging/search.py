"""Message search: the one selector, `message_search`, over the text index of
messaging.search_index. Access is checked inside the query, as in messaging.selectors.

Every word of the query must appear in the text as a substring, case aside (accents as typed).
The index finds words of 3 or more characters (trigrams); shorter words are checked on the rows
the index found. A query of short words only has nothing to look up: it reads the user's own
messages (those they may read, or the conversation asked for) newest first and checks each.

A page reads at most CHAT_SEARCH_SCAN candidate rows (rows the index matched, or rows of the
user's for short words only), newest first, so one search costs a bounded amount of work even for
a common word among messages the user may not read. The page then ends early: `before` says
where the next one starts, below the last row read (docs/protocol.md, *Search*).

It is SQL written by hand, per database: the ORM cannot join an FTS5 table, and the plan matters
(the index leads, newest first, so a page of a common word stops after its first 51 rows).
`tests/test_search.py` holds it to `message_list_readable`.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from chatsite.errors import ChatError
from groups.models import Membership
from groups.selectors import group_require_member
from messaging.models import Message
from messaging.protocol import GROUP, MAX_ID, search_words
from messaging.search_index import FTS
from messaging.selectors import _framed, user_get

INDEXED = 3  # the shortest word the trigram index can look up
FETCH = 500


@dataclass(frozen=True)
class SearchPage:
    messages: list[Message]  # newest first
    before: int | None  # the next page's `Before`; None: no more


@dataclass(frozen=True)
class _Query:
    """A search as SQL: `lead` picks the candidate rows (with the index, when `indexed`), `keep`
    says which of them are results."""

    lead: str
    lead_params: list
    keep: str
    keep_params: list
    match: str | None  # SQLite: the FTS5 query, when the index leads


def message_search(
    *,
    user: AbstractBaseUser,
    query: str,
    chat: str | None = None,
    to: str | None = None,
    before: int | None = None,
) -> SearchPage:
    """Messages the user may read now whose text holds every word of `query`, newest first,
    CHAT_SEARCH_PAGE at most, with an `Id` below `before`; of one conversation with `chat` and
    `to` (`not_found` / `forbidden` as for its history). Removed messages are gone from the
    table and so from the index."""
    words = search_words(query)
    if not words:
        raise ChatError("bad_request", "'Query' must hold a word to look for.")
    if connection.vendor not in ("sqlite", "postgresql"):
        raise ChatError("bad_request", "Search is not available on this database.")
    built = _build(words, scope=_scope(user, chat, to), access=_access(user))
    below = before if before is not None else MAX_ID
    ids, next_before = _run(built, below, settings.CHAT_SEARCH_PAGE, settings.CHAT_SEARCH_SCAN)
    messages = _framed(Message.objects.filter(pk__in=ids).order_by("-id"))
    return SearchPage(messages=messages, before=next_before)


def _access(user: AbstractBaseUser) -> tuple[str, list]:
    """`message_list_readable` in SQL: private messages sent or received, messages of groups
    the user is a member of now."""
    member = Membership._meta
    members = (
        f"SELECT {member.get_field('chatgroup').column} FROM {member.db_table}"
        f" WHERE {member.get_field('user').column} = %s"
    )
    sql = f"((m.group_id IS NULL AND (m.sender_id = %s OR m.recipient_id = %s)) OR m.group_id IN ({members}))"
    return sql, [user.pk, user.pk, user.pk]


def _scope(user: AbstractBaseUser, chat: str | None, to: str | None) -> tuple[str, list] | None:
    """One conversation, looked up as `Join` does (so it is one the user may read)."""
    if chat is None:
        return None
    if chat == GROUP:
        return "m.group_id = %s", [group_require_member(user=user, name=to).pk]
    peer = user_get(username=to).pk
    pair = "((m.sender_id = %s AND m.recipient_id = %s) OR (m.sender_id = %s AND m.recipient_id = %s))"
    return f"(m.group_id IS NULL AND {pair})", [user.pk, peer, peer, user.pk]


def case_variants(word: str) -> list[str]:
    """Every spelling of a short word with each character in either case ("ok": ok, oK, Ok,
    OK), for a case-insensitive `instr` (SQLite folds only ASCII in LIKE and lower())."""
    choices = [sorted({char, char.lower(), char.upper()}) for char in word]
    return sorted({"".join(spelling) for spelling in itertools.product(*choices)})


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_sql(words: tuple[str, ...]) -> tuple[str, list]:
    """Every word in the text, on the message row (SQLite: the short ones only)."""
    if connection.vendor == "postgresql":
        return " AND ".join(["m.text ILIKE %s"] * len(words)), [_like(word) for word in words]
    parts, params = [], []
    for word in words:
        variants = case_variants(word)
        parts.append("(" + " OR ".join(["instr(m.text, %s) > 0"] * len(variants)) + ")")
        params += variants
    return " AND ".join(parts), params


def fts_query(words) -> str:
    """An FTS5 query that holds each word as one quoted string: nothing in it is syntax."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _build(words: tuple[str, ...], *, scope: tuple[str, list] | None, access: tuple[str, list]) -> _Query:
    long = [word for word in words if len(word) >= INDEXED]
    short = tuple(word for word in words if len(word) < INDEXED)
    where = scope or access
    if not long:  # the user's rows lead; the words are checked on each
        text, params = _text_sql(short)
        return _Query(lead=where[0], lead_params=where[1], keep=text, keep_params=params, match=None)
    if connection.vendor == "postgresql":
        text, params = _text_sql(words)
        return _Query(lead=text, lead_params=params, keep=where[0], keep_params=where[1], match=None)
    text, params = _text_sql(short) if short else ("1", [])
    return _Query(lead=text, lead_params=params, keep=where[0], keep_params=where[1], match=fts_query(long))


def _sql(built: _Query) -> tuple[str, list]:
    """Candidates newest first, each with whether it is a result. SQLite steps rows as they are
    read; PostgreSQL's are read through a server-side cursor, which also plans for the first rows."""
    table = Message._meta.db_table
    if built.match is not None:
        sql = (
            f"SELECT m.id, {built.keep} FROM {FTS} CROSS JOIN {table} m ON m.id = {FTS}.rowid"
            f" WHERE {FTS} MATCH %s AND {FTS}.rowid < %s AND {built.lead} ORDER BY {FTS}.rowid DESC"
        )
        return sql, [*built.keep_params, built.match, "BELOW", *built.lead_params]
    sql = f"SELECT m.id, ({built.keep}) FROM {table} m WHERE {built.lead} AND m.id < %s ORDER BY m.id DESC"
    if connection.vendor == "postgresql":
        sql += " LIMIT %s"  # what the planner must plan for: at most the bound, probably far fewer
        return sql, [*built.keep_params, *built.lead_params, "BELOW", "SCAN"]
    return sql, [*built.keep_params, *built.lead_params, "BELOW"]


def _run(built: _Query, below: int, page: int, scan: int) -> tuple[list[int], int | None]:
    """Read candidates until a page and one more are kept, or `scan` were read."""
    sql, params = _sql(built)
    params = [below if p == "BELOW" else scan + 1 if p == "SCAN" else p for p in params]
    kept: list[int] = []
    read = 0
    last = None
    # In a transaction, a PostgreSQL server-side cursor is not WITH HOLD (which would read
    # every row at once, when its transaction commits). Not on SQLite: there a transaction
    # begins IMMEDIATE, taking the write lock.
    postgres = connection.vendor == "postgresql"
    with transaction.atomic() if postgres else nullcontext(), connection.chunked_cursor() as cursor:
        if postgres:  # plan for the LIMIT (the bound), not for the first tenth of it: a rare word
            with connection.cursor() as setting:  # then takes the trigram index, not the id order
                setting.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        cursor.execute(sql, params)
        while len(kept) <= page and read < scan:
            rows = cursor.fetchmany(min(FETCH, scan - read))
            if not rows:
                return kept, None
            for message_id, keep in rows:
                read += 1
                last = message_id
                if keep:
                    kept.append(message_id)
                    if len(kept) > page:
                        break
        if len(kept) > page:
            return kept[:page], kept[page - 1]
        return kept, last if cursor.fetchone() is not None else None
