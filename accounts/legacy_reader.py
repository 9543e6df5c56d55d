"""Reading the original Flask app's SQLite file: checking it, finding its tables and columns, and
giving their rows as plain values. No ORM; accounts.legacy decides what becomes of each row.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Table names tried when no option names one, and the column names accepted for each field.
GROUP_TABLES = ("groups", "group")
MEMBER_TABLES = ("group_members", "members", "membership")
MESSAGE_TABLES = ("messages", "message")
GROUP_COLUMNS = {
    "name": ("name", "group_name", "title"),
    "owner": ("owner", "owner_id", "creator", "admin"),
    "members": ("members", "member_list", "users"),
}
MEMBER_COLUMNS = {"group": ("group", "group_id", "group_name"), "user": ("user", "user_id", "username", "member")}
MESSAGE_COLUMNS = {
    "sender": ("sender", "sender_id", "from", "from_user"),
    "recipient": ("recipient", "recipient_id", "to", "to_user", "receiver"),
    "group": ("group", "group_id", "group_name"),
    "chat": ("chat", "chat_type", "type", "kind"),
    "content": ("content", "text", "body", "message"),
    "is_image": ("is_image", "image"),
    "time": ("time", "timestamp", "created", "created_at", "sent_at"),
}


class LegacyError(Exception):
    """The file cannot be imported; the message says why. Nothing has been written."""


@dataclass(frozen=True)
class Tables:
    """Where the data is. None: try the usual names (and skip if none exists); "": skip."""

    users: str = "user"
    username: str = "username"
    password: str = "password"
    groups: str | None = None
    members: str | None = None
    messages: str | None = None


@dataclass(frozen=True)
class LegacyUser:
    id: int
    username: object
    password: object


@dataclass
class LegacyGroup:
    id: int
    name: object
    owner: object
    members: list[object]


# One message row: its id, then MESSAGE_COLUMNS in order (None where the table lacks the column),
# except is_image, which is 1 or 0 (see messages_query).
LegacyMessage = namedtuple("LegacyMessage", ["id", *MESSAGE_COLUMNS])


@dataclass(frozen=True)
class MessageQuery:
    """How read_messages reads the messages table: `is_image` is the SQL telling image rows apart."""

    sql: str
    order: str
    is_image: str
    count: int
    images: int


def open_legacy(path: str | os.PathLike) -> sqlite3.Connection:
    """Open read-only (a URI, so any file name works) and check that it is a sound SQLite file."""
    file = Path(path)
    if not file.is_file():
        raise LegacyError(f"{path}: no such file.")
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LegacyError(f"{path} is not a readable SQLite database ({exc}).") from None
    if problems != ["ok"]:
        conn.close()
        raise LegacyError(f"{path} is a damaged SQLite database: {'; '.join(problems[:3])}.")
    return conn


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """The table's column names by their lower-case form; empty when there is no such table."""
    return {row[1].lower(): row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")}


def _id_column(columns: dict[str, str]) -> str:
    return _quote(columns["id"]) if "id" in columns else "rowid"


def _find_table(conn: sqlite3.Connection, given: str | None, usual: tuple[str, ...]) -> str | None:
    if given == "":
        return None
    for name in (given,) if given else usual:
        if _columns(conn, name):
            return name
    if given:
        raise LegacyError(f"The file has no table {given!r}.")
    return None


def _pick(columns: dict[str, str], names: tuple[str, ...], table: str, *, required: bool = True) -> str | None:
    for name in names:
        if name in columns:
            return columns[name]
    if required:
        raise LegacyError(f"Table {table!r} has no {names[0]} column (looked for: {', '.join(names)}).")
    return None


def read_users(conn: sqlite3.Connection, tables: Tables) -> list[LegacyUser]:
    columns = _columns(conn, tables.users)
    if not columns:
        raise LegacyError(f"The file has no table {tables.users!r} of users (see --users-table).")
    for name in (tables.username, tables.password):
        if name.lower() not in columns:
            raise LegacyError(f"Table {tables.users!r} has no column {name!r}.")
    username, password = _quote(tables.username), _quote(tables.password)
    ident = _id_column(columns)
    sql = f"SELECT {ident}, {username}, {password} FROM {_quote(tables.users)} ORDER BY {ident}"
    return [LegacyUser(*row) for row in conn.execute(sql)]


def _split_members(value: object) -> list[object]:
    """A members cell: a JSON list or comma-separated text, of usernames or user ids."""
    if isinstance(value, int):
        return [value]
    if not isinstance(value, str):
        return []
    try:
        items = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
    except ValueError:
        items = value.split(",")
    members = [item.strip() if isinstance(item, str) else item for item in items if type(item) in (str, int)]
    return [member for member in members if member != ""]


def read_groups(conn: sqlite3.Connection, tables: Tables) -> list[LegacyGroup]:
    table = _find_table(conn, tables.groups, GROUP_TABLES)
    if table is None:
        return []
    columns = _columns(conn, table)
    picked = [_pick(columns, names, table, required=key != "members") for key, names in GROUP_COLUMNS.items()]
    select = ", ".join(_quote(name) if name else "NULL" for name in picked)
    ident = _id_column(columns)
    rows = conn.execute(f"SELECT {ident}, {select} FROM {_quote(table)} ORDER BY {ident}")
    groups = [LegacyGroup(row_id, name, owner, _split_members(members)) for row_id, name, owner, members in rows]
    _add_joined_members(conn, tables, groups)
    return groups


def _add_joined_members(conn: sqlite3.Connection, tables: Tables, groups: list[LegacyGroup]) -> None:
    table = _find_table(conn, tables.members, MEMBER_TABLES)
    if table is None:
        return
    columns = _columns(conn, table)
    group_column, user_column = (_quote(_pick(columns, names, table)) for names in MEMBER_COLUMNS.values())
    by_ref = {ref: group for group in groups for ref in (group.id, group.name)}
    for group_ref, user_ref in conn.execute(f"SELECT {group_column}, {user_column} FROM {_quote(table)}"):
        if group_ref is not None and group_ref in by_ref:
            by_ref[group_ref].members.append(user_ref)


def _is_image_sql(content: str, is_image: str) -> str:
    """1 for an image row: its content is a BLOB, or its is_image cell (NULL without one) says 1, true or yes."""
    marked = f"lower(trim({is_image})) IN ('1', 'true', 'yes')"
    return f"(CASE WHEN typeof({content}) = 'blob' OR {marked} THEN 1 ELSE 0 END)"


def messages_query(conn: sqlite3.Connection, tables: Tables) -> MessageQuery | None:
    """How to read the messages, and how many there are (images among them); None without a table.

    Which rows are images is decided here, once, in SQL, so that the importer's pass over the
    images alone and its pass over all messages cannot disagree about it.
    """
    table = _find_table(conn, tables.messages, MESSAGE_TABLES)
    if table is None:
        return None
    columns = _columns(conn, table)
    required = {"sender", "content"}
    picked = {key: _pick(columns, names, table, required=key in required) for key, names in MESSAGE_COLUMNS.items()}
    if not picked["recipient"] and not picked["group"]:
        raise LegacyError(f"Table {table!r} has neither a recipient nor a group column.")
    cells = {key: _quote(name) if name else "NULL" for key, name in picked.items()}
    cells["is_image"] = image = _is_image_sql(cells["content"], cells["is_image"])
    ident, source = _id_column(columns), _quote(table)
    order = f"{cells['time']}, {ident}" if picked["time"] else ident
    count, images = conn.execute(f"SELECT count(*), coalesce(sum({image}), 0) FROM {source}").fetchone()
    return MessageQuery(f"SELECT {ident}, {', '.join(cells.values())} FROM {source}", order, image, count, images)


def read_messages(
    conn: sqlite3.Connection, query: MessageQuery, *, images_only: bool = False
) -> Iterator[LegacyMessage]:
    """The rows oldest first (by time, then id), one at a time: the table may be large."""
    where = f" WHERE {query.is_image} = 1" if images_only else ""
    for row in conn.execute(f"{query.sql}{where} ORDER BY {query.order}"):
        yield LegacyMessage(*row)


def legacy_time(value: object) -> datetime | None:
    """Epoch seconds (or milliseconds), or ISO 8601 text; a time without a zone is UTC."""
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None
