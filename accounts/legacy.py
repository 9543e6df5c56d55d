"""Importing the original Flask app's SQLite database; docs/legacy-import.md gives the mapping.

Users come with their werkzeug password hashes wrapped in PBKDF2 (accounts.hashers); groups and
messages come too when their tables exist, images validated like new uploads. Everything is
written in one transaction, directly with the ORM and without channel-layer events: this is old
history, not live chat. The slow parts, wrapping the hashes and checking the images, run before
that transaction, so the database is locked only for the inserts. accounts.legacy_reader reads
the file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import IO

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
from accounts.legacy_reader import (
    LegacyError,
    LegacyGroup,
    LegacyMessage,
    LegacyUser,
    Tables,
    legacy_time,
    messages_query,
    open_legacy,
    read_groups,
    read_messages,
    read_users,
)
from accounts.validators import username_keys_store
from chatsite.errors import ChatError
from chatsite.names import name_key
from groups.models import ChatGroup
from groups.names import clean_group_name
from messaging.actions import image_store
from messaging.images import ProcessedImage, decode_data_url, process_image
from messaging.models import Message, ReadMarker

# A django.contrib.auth group holding every imported account: how a later run tells an account it
# imported (even after its owner logged in and the hash became Argon2) from a clash.
IMPORTED_MARK = "imported from the original app"
BATCH = 500
DEFAULT_TABLES = Tables()  # frozen, so safe to share as a default

Progress = Callable[[int, int, str], None]


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
    images_created: int = 0  # of messages_created
    images_refused: list[str] = field(default_factory=list)  # "message 17: image refused: <why>"


def legacy_import(
    *, path: str | os.PathLike, dry_run: bool = False, tables: Tables = DEFAULT_TABLES, progress: Progress | None = None
) -> ImportReport:
    """Import the legacy file in one transaction (rolled back for a dry run) and say what happened.

    Raises LegacyError, with nothing written, when the file cannot be imported.
    """
    if missing := missing_wrapping_hashers():
        raise LegacyError(f"PASSWORD_HASHERS lacks {', '.join(missing)}: imported users could not log in.")
    report = ImportReport(dry_run=dry_run)
    with closing(open_legacy(path)) as conn, tempfile.TemporaryFile() as spill:
        pictures = _Pictures(spill)
        try:
            candidates = _valid_users(read_users(conn, tables), report)
            groups = read_groups(conn, tables)
            messages = messages_query(conn, tables)
            hashes = _hashes(candidates, dry_run=dry_run, progress=progress)
            if messages:
                images = read_messages(conn, messages, images_only=True)
                _check_images(images, messages.images, pictures=pictures, progress=progress)
            with transaction.atomic():
                people = _import_users(candidates, hashes, report)
                chat_groups = _import_groups(groups, people, report)
                if messages:
                    _import_messages(
                        read_messages(conn, messages),
                        messages.count,
                        people=people,
                        groups=chat_groups,
                        pictures=pictures,
                        report=report,
                        progress=progress,
                    )
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
    username_keys_store(created)
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
        group = ChatGroup.objects.filter(name_key=name_key(name)).first()  # or a look-alike
        if group is None:
            group = ChatGroup.objects.create(name=name, owner=owner)
            members = [people[ref] for ref in legacy.members if ref in people]
            report.members_dropped += len(legacy.members) - len(members)
            group.members.add(owner, *members)
            report.groups_created.append(name)
        elif group.name == name and group.owner_id == owner.pk:
            report.groups_already_imported.append(name)
        else:
            report.groups_taken.append(name)
            continue
        imported[legacy.id] = imported[legacy.name] = group
    return imported


def _checked(row: LegacyMessage) -> ProcessedImage | ChatError:
    """The row's picture validated like a new upload: a BLOB is the file itself, text a data URL."""
    try:
        raw = row.content if isinstance(row.content, bytes) else decode_data_url(str(row.content))
        return process_image(raw)
    except ChatError as exc:
        return exc


def _check_images(rows: Iterator[LegacyMessage], total: int, *, pictures: _Pictures, progress: Progress | None) -> None:
    """Check the image rows not imported before, a few at a time on every core (Pillow lets go of
    the GIL while it decodes and encodes), so that few raw images are ever in memory at once."""
    imported = set(Message.objects.filter(client_id__startswith="legacy:").values_list("client_id", flat=True))
    workers = os.cpu_count() or 1
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while chunk := list(islice(rows, 2 * workers)):
            todo = [row for row in chunk if _client_id(row) not in imported]
            for row, outcome in zip(todo, pool.map(_checked, todo)):
                pictures.keep(_client_id(row), outcome)
            done += len(chunk)
            if progress:
                progress(done, total, "images")


class _Pictures:
    """Checked images by message client_id: the re-encoded picture, or why it was refused.

    The bytes wait in a temporary file, not in memory: an old chat may hold more image data than
    fits in RAM. A row _check_images passed over (its client_id was in use) is checked when asked.
    """

    def __init__(self, spill: IO[bytes]) -> None:
        self._file = spill
        self._kept: dict[str, tuple[ProcessedImage, int, int, int]] = {}  # without bytes; where they are
        self._refused: dict[str, str] = {}

    def keep(self, key: str, outcome: ProcessedImage | ChatError) -> None:
        if isinstance(outcome, ChatError):
            self._refused[key] = outcome.detail
            return
        offset = self._file.seek(0, os.SEEK_END)
        self._file.write(outcome.data)
        self._file.write(outcome.thumbnail)
        bare = replace(outcome, data=b"", thumbnail=b"")
        self._kept[key] = (bare, offset, len(outcome.data), len(outcome.thumbnail))

    def refusal(self, row: LegacyMessage) -> str | None:
        key = _client_id(row)
        if key not in self._kept and key not in self._refused:
            self.keep(key, _checked(row))
        return self._refused.get(key)

    def load(self, key: str) -> ProcessedImage:
        bare, offset, size, thumbnail_size = self._kept[key]
        self._file.seek(offset)
        return replace(bare, data=self._file.read(size), thumbnail=self._file.read(thumbnail_size))


def _import_messages(
    rows: Iterable[LegacyMessage],
    total: int,
    *,
    people: dict,
    groups: dict,
    pictures: _Pictures,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    """Messages are keyed `legacy:<row id>` in `client_id` (unique per sender), so none comes twice."""
    seen = set(Message.objects.filter(client_id__startswith="legacy:").values_list("sender_id", "client_id"))
    newest = _Newest()
    batch: list[Message] = []
    for done, row in enumerate(rows, 1):
        message = _to_message(row, people, groups, report)
        if message is not None and (message.sender_id, message.client_id) in seen:
            report.messages_already_imported += 1
        elif message is not None and _image_accepted(row, pictures, report):
            batch.append(message)
        if len(batch) >= BATCH:
            _save(batch, newest=newest, pictures=pictures, report=report)
            batch = []
        if progress and (done % BATCH == 0 or done == total):
            progress(done, total, "messages")
    _save(batch, newest=newest, pictures=pictures, report=report)
    newest.mark_read()


def _client_id(row: LegacyMessage) -> str:
    return f"legacy:{row.id}"


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
        text="" if row.is_image else row.content,
        is_image=bool(row.is_image),
        client_id=_client_id(row),
        created=legacy_time(row.time) or timezone.now(),
    )


def _skip_reason(row: LegacyMessage, *, sender, target, is_group: bool) -> str | None:
    """Why a row is not imported; the text rules are those of a message sent live."""
    if sender is None:
        return "sender not imported"
    if target is None:
        return "group not imported" if is_group else "recipient not imported"
    if row.is_image:
        return None  # its picture is judged by _image_accepted
    if not isinstance(row.content, str) or not row.content.strip():
        return "empty"
    if len(row.content) > settings.CHAT_MAX_TEXT_LENGTH:
        return f"longer than {settings.CHAT_MAX_TEXT_LENGTH} characters"
    return None


def _image_accepted(row: LegacyMessage, pictures: _Pictures, report: ImportReport) -> bool:
    """True for a text row, and for an image row whose picture passed process_image."""
    refusal = pictures.refusal(row) if row.is_image else None
    if refusal is not None:
        report.images_refused.append(f"message {row.id}: image refused: {refusal}")
    return refusal is None


def _save(batch: list[Message], *, newest: _Newest, pictures: _Pictures, report: ImportReport) -> None:
    with _keeping_times():
        Message.objects.bulk_create(batch)  # each takes its `seq` there
    for message in batch:
        newest.note(message)
        if message.is_image:
            image_store(message=message, picture=pictures.load(message.client_id))
            report.images_created += 1
    report.messages_created += len(batch)


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
