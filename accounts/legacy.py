"""Importing the original Flask app's SQLite database; docs/legacy-import.md gives the mapping.

Users come with their werkzeug password hashes wrapped in PBKDF2 (accounts.hashers); groups and
messages come too when their tables exist. Everything is written in one transaction, directly with
the ORM and without channel-layer events: this is old history, not live chat. Wrapping the hashes,
the slow part, runs before that transaction, so the database is locked only for the inserts.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.hashers import (
    WerkzeugHash,
    missing_wrapping_hashers,
    parse_werkzeug_hash,
    wrap_werkzeug_hash,
    wrap_werkzeug_hashes,
)
from chatsite.errors import ChatError
from groups.models import ChatGroup
from groups.names import clean_group_name
from messaging.models import Message, ReadMarker

# A django.contrib.auth group holding every imported account: how a later run tells an account it
# imported (even after its owner logged in and the hash became Argon2) from a clash.
IMPORTED_MARK = "imported from the original app"
IMAGES_SKIPPED = "images not supported by this importer yet"
BATCH = 500

Progress = Callable[[int, int, str], None]

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


@dataclass
class ImportReport:
    dry_run: bool = False
    users_created: list[str] = field(default_factory=list)
    users_already_imported: list[str] = field(default_factory=list)
    users_taken: list[str] = field(default_factory=list)
    users_rejected: list[tuple[str, str]] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    groups_already_imported: list[str] = field(default_factory=list)
    groups_taken: list[str] = field(default_factory=list)
    groups_rejected: list[tuple[str, str]] = field(default_factory=list)
    members_dropped: int = 0
    messages_created: int = 0
    messages_already_imported: int = 0
    messages_skipped: Counter[str] = field(default_factory=Counter)


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


# One message row: its id, then MESSAGE_COLUMNS in order (None where the table lacks the column).
LegacyMessage = namedtuple("LegacyMessage", ["id", *MESSAGE_COLUMNS])


# Reading the file -------------------------------------------------------------------------


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


def messages_query(conn: sqlite3.Connection, tables: Tables) -> tuple[str, int] | None:
    """The SELECT giving LegacyMessage rows, oldest first, and their count; None without a table."""
    table = _find_table(conn, tables.messages, MESSAGE_TABLES)
    if table is None:
        return None
    columns = _columns(conn, table)
    required = {"sender", "content"}
    picked = {key: _pick(columns, names, table, required=key in required) for key, names in MESSAGE_COLUMNS.items()}
    if not picked["recipient"] and not picked["group"]:
        raise LegacyError(f"Table {table!r} has neither a recipient nor a group column.")
    select = ", ".join(_quote(name) if name else "NULL" for name in picked.values())
    ident = _id_column(columns)
    order = f"{_quote(picked['time'])}, {ident}" if picked["time"] else ident
    count = conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]
    return f"SELECT {ident}, {select} FROM {_quote(table)} ORDER BY {order}", count


# Writing ----------------------------------------------------------------------------------


def legacy_import(
    *, path: str | os.PathLike, dry_run: bool = False, tables: Tables = Tables(), progress: Progress | None = None
) -> ImportReport:
    """Import the legacy file in one transaction (rolled back for a dry run) and say what happened.

    Raises LegacyError, with nothing written, when the file cannot be imported.
    """
    if missing := missing_wrapping_hashers():
        raise LegacyError(f"PASSWORD_HASHERS lacks {', '.join(missing)}: imported users could not log in.")
    report = ImportReport(dry_run=dry_run)
    with closing(open_legacy(path)) as conn:
        try:
            candidates = _valid_users(read_users(conn, tables), report)
            groups = read_groups(conn, tables)
            messages = messages_query(conn, tables)
            hashes = _hashes(candidates, dry_run=dry_run, progress=progress)
            with transaction.atomic():
                people = _import_users(candidates, hashes, report)
                chat_groups = _import_groups(groups, people, report)
                if messages:
                    rows, total = conn.execute(messages[0]), messages[1]
                    _import_messages(rows, total, people=people, groups=chat_groups, report=report, progress=progress)
                if dry_run:
                    transaction.set_rollback(True)
        except sqlite3.DatabaseError as exc:
            raise LegacyError(f"Reading {path} failed ({exc}); nothing was imported.") from None
    return report


def _valid_users(users: list[LegacyUser], report: ImportReport) -> dict[str, tuple[LegacyUser, WerkzeugHash]]:
    """The rows worth importing, by username; the others go to the report with the reason."""
    username_field = get_user_model()._meta.get_field("username")
    valid: dict[str, tuple[LegacyUser, WerkzeugHash]] = {}
    seen: set[str] = set()
    for user in users:
        name = user.username.strip() if isinstance(user.username, str) else ""
        if not name:
            report.users_rejected.append((f"row {user.id}", "no username"))
            continue
        try:
            username_field.run_validators(name)
            parsed = parse_werkzeug_hash(user.password)
        except ValidationError:
            report.users_rejected.append((name, "not a valid username here"))
        except ValueError as exc:
            report.users_rejected.append((name, f"password: {exc}"))
        else:
            if name.lower() in seen:
                report.users_rejected.append((name, "appears twice in the file"))
            else:
                valid[name] = (user, parsed)
            seen.add(name.lower())
    return valid


def _taken_usernames() -> dict[str, object]:
    """Existing accounts by lower-cased username: registration refuses names that differ only in case."""
    return {user.username.lower(): user for user in get_user_model().objects.only("username")}


def _hashes(candidates: dict, *, dry_run: bool, progress: Progress | None) -> dict[str, str]:
    """The password to store for every user still to create (a dry run stores none)."""
    taken = _taken_usernames()
    names = [name for name in candidates if name.lower() not in taken]
    if dry_run:
        return {name: make_password(None) for name in names}
    hashes = {}
    wrapped = wrap_werkzeug_hashes(candidates[name][1] for name in names)
    for done, (name, encoded) in enumerate(zip(names, wrapped), 1):
        hashes[name] = encoded
        if progress:
            progress(done, len(names), "passwords")
    return hashes


def _import_users(candidates: dict, hashes: dict[str, str], report: ImportReport) -> dict[object, object]:
    """Create the new accounts; return every imported one (now or before) by legacy id and username."""
    mark, _ = Group.objects.get_or_create(name=IMPORTED_MARK)
    marked = set(mark.user_set.values_list("pk", flat=True))
    taken = _taken_usernames()
    people, new = {}, []
    for name, (legacy, parsed) in candidates.items():
        existing = taken.get(name.lower())
        if existing is None:
            # A name missing from `hashes` was taken when they were made, and freed since.
            password = hashes.get(name) or wrap_werkzeug_hash(parsed)
            new.append((legacy, get_user_model()(username=name, password=password)))
        elif existing.username == name and existing.pk in marked:
            people.update(dict.fromkeys((legacy.id, legacy.username, name), existing))
            report.users_already_imported.append(name)
        else:
            report.users_taken.append(name)
    created = get_user_model().objects.bulk_create([user for _, user in new], batch_size=BATCH)
    mark.user_set.add(*created)
    for (legacy, _), user in zip(new, created):
        people.update(dict.fromkeys((legacy.id, legacy.username, user.username), user))
        report.users_created.append(user.username)
    return people


def _import_groups(groups: list[LegacyGroup], people: dict, report: ImportReport) -> dict[object, ChatGroup]:
    """Create the groups whose owner was imported; return the imported ones by legacy id and name."""
    imported = {}
    for legacy in groups:
        try:
            name = clean_group_name(legacy.name)
        except ChatError as exc:
            report.groups_rejected.append((str(legacy.name), exc.detail))
            continue
        owner = people.get(legacy.owner)
        if owner is None:
            report.groups_rejected.append((name, "its owner was not imported"))
            continue
        group = ChatGroup.objects.filter(name=name).first()
        if group is None:
            group = ChatGroup.objects.create(name=name, owner=owner)
            members = [people[ref] for ref in legacy.members if ref in people]
            report.members_dropped += len(legacy.members) - len(members)
            group.members.add(owner, *members)
            report.groups_created.append(name)
        elif group.owner_id == owner.pk:
            report.groups_already_imported.append(name)
        else:
            report.groups_taken.append(name)
            continue
        imported[legacy.id] = imported[legacy.name] = group
    return imported


def _import_messages(
    rows: Iterable[tuple], total: int, *, people: dict, groups: dict, report: ImportReport, progress: Progress | None
) -> None:
    """Messages are keyed `legacy:<row id>` in `client_id` (unique per sender), so none comes twice."""
    seen = set(Message.objects.filter(client_id__startswith="legacy:").values_list("sender_id", "client_id"))
    newest = _Newest()
    batch: list[Message] = []
    for done, row in enumerate(rows, 1):
        message = _to_message(LegacyMessage(*row), people, groups, report)
        if message is not None and (message.sender_id, message.client_id) in seen:
            report.messages_already_imported += 1
        elif message is not None:
            batch.append(message)
        if len(batch) >= BATCH:
            report.messages_created += _save(batch, newest)
            batch = []
        if progress and (done % BATCH == 0 or done == total):
            progress(done, total, "messages")
    report.messages_created += _save(batch, newest)
    newest.mark_read()


def _to_message(row: LegacyMessage, people: dict, groups: dict, report: ImportReport) -> Message | None:
    is_group = str(row.chat).strip().lower() == "group" if row.chat is not None else row.group is not None
    sender = people.get(row.sender)
    group = groups.get(row.recipient if row.group is None else row.group) if is_group else None
    recipient = None if is_group else people.get(row.recipient)
    reason = _skip_reason(row, sender=sender, target=group or recipient, is_group=is_group)
    if reason:
        report.messages_skipped[reason] += 1
        return None
    return Message(
        sender=sender,
        recipient=recipient,
        group=group,
        text=row.content,
        client_id=f"legacy:{row.id}",
        created=_parse_time(row.time) or timezone.now(),
    )


def _skip_reason(row: LegacyMessage, *, sender, target, is_group: bool) -> str | None:
    """Why a row is not imported; the text rules are those of a message sent live."""
    if _truthy(row.is_image) or isinstance(row.content, bytes):
        return IMAGES_SKIPPED
    if sender is None:
        return "sender not imported"
    if target is None:
        return "group not imported" if is_group else "recipient not imported"
    if not isinstance(row.content, str) or not row.content.strip():
        return "empty"
    if len(row.content) > settings.CHAT_MAX_TEXT_LENGTH:
        return f"longer than {settings.CHAT_MAX_TEXT_LENGTH} characters"
    return None


def _truthy(value: object) -> bool:
    return value is not None and str(value).strip().lower() in {"1", "true", "yes"}


def _parse_time(value: object) -> datetime | None:
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


def _save(batch: list[Message], newest: _Newest) -> int:
    with _keeping_times():
        Message.objects.bulk_create(batch)
    for message in batch:
        newest.note(message)
    return len(batch)


@contextmanager
def _keeping_times() -> Iterator[None]:
    """Let inserts keep the legacy times, which `auto_now_add` would overwrite with now.

    Setting them back with bulk_update afterwards tripled the import time (and so how long the
    database stays locked). The switch is process-wide, so it is held only around the inserts
    of a management command, a process of its own.
    """
    created = Message._meta.get_field("created")
    created.auto_now_add = False
    try:
        yield
    finally:
        created.auto_now_add = True


@dataclass
class _Newest:
    """The newest imported message of each conversation. Imported history is old news: afterwards
    each imported reader's read marker moves past it, so that no unread badge counts it."""

    groups: dict[int, int] = field(default_factory=dict)
    readers: dict[tuple[int, int | None, int | None], int] = field(default_factory=dict)  # (user, group, peer)

    def note(self, message: Message) -> None:
        if message.group_id:
            self.groups[message.group_id] = max(self.groups.get(message.group_id, 0), message.pk)
        elif message.recipient_id != message.sender_id:
            self._read((message.recipient_id, None, message.sender_id), message.pk)

    def _read(self, key: tuple[int, int | None, int | None], last: int) -> None:
        self.readers[key] = max(self.readers.get(key, 0), last)

    def mark_read(self) -> None:
        imported = {"user__groups__name": IMPORTED_MARK}
        members = ChatGroup.members.through.objects.filter(chatgroup_id__in=self.groups, **imported)
        for group_id, user_id in members.values_list("chatgroup_id", "user_id"):
            self._read((user_id, group_id, None), self.groups[group_id])
        markers = {(m.user_id, m.group_id, m.peer_id): m for m in ReadMarker.objects.filter(**imported)}
        new, moved = [], []
        for (user_id, group_id, peer_id), last in self.readers.items():
            marker = markers.get((user_id, group_id, peer_id))
            if marker is None:
                new.append(ReadMarker(user_id=user_id, group_id=group_id, peer_id=peer_id, last_read_id=last))
            elif marker.last_read_id < last:
                marker.last_read_id = last
                moved.append(marker)
        ReadMarker.objects.bulk_create(new, batch_size=BATCH)
        ReadMarker.objects.bulk_update(moved, ["last_read_id"], batch_size=100)
