"""Reads for the chat: history, replay, the `State` snapshot. Access is checked here."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Mute
from accounts.selectors import sender_check, user_is_moderator
from chatsite.errors import ChatError
from groups.models import ChatGroup, Membership
from groups.selectors import group_require_member, group_summary, groups_with_members
from messaging.models import Connection, Image, Message, Reaction, ReadMarker, Tombstone
from messaging.protocol import PRIVATE
from messaging.seq import seq_committed


def send_target(
    *, sender: AbstractBaseUser, chat: str, to: str, now: datetime | None = None, client_id: str | None = None
) -> tuple[AbstractBaseUser | None, ChatGroup | None]:
    """The (recipient, group) a `Send` goes to, once the sender may send there: not banned,
    not muted, and a member of the group or writing to an active user. With a `client_id`, a
    message of the sender's with that `ClientId` must not have been removed: a retry of it
    would store it again (`conflict`).

    It is one query, run on every message. It is written in SQL, built once from the
    models' metadata, because Django's query compiler cost more CPU than the query itself
    (`make bench`, bench/README.md). Every refusal is then explained by the ORM selectors, so
    the errors are exactly theirs.
    """
    sql = _send_sql(connection.vendor, chat)
    muted_at = connection.ops.adapt_datetimefield_value(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [muted_at, client_id, to, sender.pk])
        row = cursor.fetchone()
    active, muted, removed, target_id, target_name, extra, allowed = row or (False, None, False, None, None, None, None)
    if removed:
        raise ChatError("conflict", "This message was removed; it is not sent again.")
    if not active or muted:
        sender_check(user=sender, now=now)  # raises, with the mute's reason
    if chat == PRIVATE:
        if target_id is None or not allowed:
            return user_get(username=to), None  # raises not_found
        # Instances as the ORM loads them: any other field is loaded on first use.
        recipient = get_user_model().from_db(connection.alias, ["id", "username"], [target_id, target_name])
        return recipient, None
    if target_id is None or not allowed:
        return None, group_require_member(user=sender, name=to)  # raises not_found / forbidden
    return None, ChatGroup.from_db(connection.alias, ["id", "name", "owner_id"], [target_id, target_name, extra])


@functools.cache
def _send_sql(vendor: str, chat: str) -> str:
    """SQL of `send_target`; parameters: the time a mute must outlast, the `ClientId` (or
    NULL), `To`, the sender's id.

    Columns: sender active, sender muted, a removed message of the sender's had that
    `ClientId`, target id, target name, group owner (NULL for a user), allowed (group: the
    sender is a member; user: the recipient is active).
    """
    qn = connection.ops.quote_name
    user = get_user_model()._meta
    user_id, active = qn(user.pk.column), qn(user.get_field("is_active").column)
    username = qn(user.get_field("username").column)  # `To` is a username, as in user_get
    mute = Mute._meta
    stone = Tombstone._meta
    removed = (
        f"EXISTS (SELECT 1 FROM {qn(stone.db_table)} s WHERE s.{qn(stone.get_field('sender_id').column)} = u.{user_id}"
        f" AND s.{qn(stone.get_field('client_id').column)} = %s)"
    )
    sender = (
        f"u.{active}, m.{qn(mute.get_field('until').column)} > %s, {removed}",
        f"{qn(user.db_table)} u LEFT JOIN {qn(mute.db_table)} m ON m.{qn(mute.get_field('user').column)} = u.{user_id}",
    )
    if chat == PRIVATE:
        target = f"r.{user_id}, r.{username}, NULL, r.{active}"
        join = f"{qn(user.db_table)} r ON r.{username} = %s"
    else:
        group, through = ChatGroup._meta, ChatGroup.members.through._meta
        group_id, name = qn(group.pk.column), qn(group.get_field("name").column)
        member = (
            f"SELECT 1 FROM {qn(through.db_table)} t WHERE t.{qn(through.get_field('chatgroup').column)} = g.{group_id}"
            f" AND t.{qn(through.get_field('user').column)} = u.{user_id}"
        )
        target = f"g.{group_id}, g.{name}, g.{qn(group.get_field('owner').column)}, EXISTS ({member})"
        join = f"{qn(group.db_table)} g ON g.{name} = %s"
    return f"SELECT {sender[0]}, {target} FROM {sender[1]} LEFT JOIN {join} WHERE u.{user_id} = %s"


def user_get(*, username: str) -> AbstractBaseUser:
    try:
        return get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist:
        raise ChatError("not_found", f"No user named '{username}'.") from None


def image_get(*, user: AbstractBaseUser, message_id: int, thumbnail: bool) -> tuple[bytes, str] | None:
    """The bytes and type of an image the user may see: one of its conversation, or a moderator.
    Being staff is not enough: ids are sequential, so any staff could read every image."""
    moderator = user_is_moderator(user)
    messages = Message.objects.all() if moderator else message_list_readable(user=user)
    if not messages.filter(pk=message_id, is_image=True).exists():
        return None
    fields = ("thumbnail", "thumbnail_type") if thumbnail else ("data", "content_type")
    row = Image.objects.filter(pk=message_id).values_list(*fields).first()
    return (bytes(row[0]), row[1]) if row else None


def _with_names(queryset: QuerySet[Message]) -> QuerySet[Message]:
    """What a `Message` frame needs, in the one query (reactions come next: with_reactions)."""
    return queryset.select_related("sender", "recipient", "group", "reply_to__sender").only(
        "id",
        "text",
        "html",
        "is_image",
        "client_id",
        "created",
        "edited",
        "seq",
        "group_id",
        "recipient_id",
        "sender__username",
        "recipient__username",
        "group__name",
        "reply_to__text",
        "reply_to__is_image",
        "reply_to__sender__username",
    )


def with_reactions(messages: list[Message]) -> list[Message]:
    """Give each message its `reaction_list` (messaging.protocol.message_to_frame): (emoji, the
    usernames in the order they reacted) in the order each emoji was first given. One query."""
    by_id = {message.pk: message for message in messages}
    for message in messages:
        message.reaction_list = []
    if not by_id:
        return messages
    summary: dict[int, dict[str, list[str]]] = {}
    rows = Reaction.objects.filter(message_id__in=by_id).order_by("id")
    for message_id, emoji, username in rows.values_list("message_id", "emoji", "user__username"):
        summary.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    for message_id, emojis in summary.items():
        by_id[message_id].reaction_list = list(emojis.items())
    return messages


def _framed(queryset: QuerySet[Message]) -> list[Message]:
    return with_reactions(list(_with_names(queryset)))


def message_get_readable(*, user: AbstractBaseUser, message_id: int, moderator: bool = False) -> Message:
    """One message the user may read (any message, for a moderator acting as one), loaded for its
    frame; `not_found` otherwise, the same for a message that does not exist."""
    messages = Message.objects.all() if moderator and user_is_moderator(user) else message_list_readable(user=user)
    found = _framed(messages.filter(pk=message_id))
    if not found:
        raise ChatError("not_found", f"No message {message_id} that you can see.")
    return found[0]


def reply_original(*, sender: AbstractBaseUser, recipient, group, message_id: int) -> Message:
    """The message a new one in this conversation (a group, or the private one with
    `recipient`) answers; `not_found` if it is not one of that conversation's."""
    if group is not None:
        messages = Message.objects.filter(group=group)
    else:
        messages = private_messages(user=sender, peer=recipient)
    original = (
        messages.filter(pk=message_id).select_related("sender").only("id", "text", "is_image", "sender__username")
    )
    found = original.first()
    if found is None:
        raise ChatError("not_found", f"No message {message_id} in this conversation to reply to.")
    return found


def private_messages(*, user: AbstractBaseUser, peer: AbstractBaseUser) -> QuerySet[Message]:
    return Message.objects.filter(Q(sender=user, recipient=peer) | Q(sender=peer, recipient=user), group__isnull=True)


def conversation_get(*, user: AbstractBaseUser, chat: str, to: str) -> tuple[QuerySet[Message], object]:
    """The messages of one conversation the user may read, and its target (peer or group)."""
    if chat == PRIVATE:
        peer = user_get(username=to)
        return private_messages(user=user, peer=peer), peer
    group = group_require_member(user=user, name=to)
    return Message.objects.filter(group=group), group


class HistoryPage(NamedTuple):
    messages: list[Message]  # oldest first
    has_more: bool  # older messages remain
    has_newer: bool  # newer messages remain (only an `around` or `after` page can say so)


def history_page(
    *,
    user: AbstractBaseUser,
    chat: str,
    to: str,
    before: int | None = None,
    around: int | None = None,
    after: int | None = None,
) -> HistoryPage:
    """A page of a conversation, oldest first: the newest (older than `before` when given);
    the page around the id `around` (half older than it, half from it on: where a search
    result sits, removed or not); or the page just newer than `after`."""
    messages, _target = conversation_get(user=user, chat=chat, to=to)
    size = settings.CHAT_HISTORY_PAGE
    if around is not None:
        older = _framed(messages.filter(id__lt=around).order_by("-id")[: size // 2 + 1])
        newer = _framed(messages.filter(id__gte=around).order_by("id")[: size - size // 2 + 1])
        page = older[: size // 2][::-1] + newer[: size - size // 2]
        return HistoryPage(page, len(older) > size // 2, len(newer) > size - size // 2)
    if after is not None:
        newer = _framed(messages.filter(id__gt=after).order_by("id")[: size + 1])
        return HistoryPage(newer[:size], messages.filter(id__lte=after).exists(), len(newer) > size)
    if before is not None:
        messages = messages.filter(id__lt=before)
    page = _framed(messages.order_by("-id")[: size + 1])
    return HistoryPage(page[:size][::-1], len(page) > size, False)


def message_list_readable(*, user: AbstractBaseUser) -> QuerySet[Message]:
    return Message.objects.filter(
        Q(sender=user, group__isnull=True)
        | Q(recipient=user)
        | Q(group__in=ChatGroup.objects.filter(members=user).values("id"))
    )


def message_list_after(*, user: AbstractBaseUser, after: int, limit: int = 500) -> list[Message]:
    """Up to `limit` messages the user may read with an id above `after`, oldest first."""
    return _framed(message_list_readable(user=user).filter(id__gt=after).order_by("id")[:limit])


def _unread_private(user: AbstractBaseUser) -> dict[int, int]:
    marker = ReadMarker.objects.filter(user=user, peer=OuterRef("sender")).values("last_read_id")[:1]
    rows = (
        Message.objects.filter(recipient=user, group__isnull=True)
        .exclude(sender=user)
        .annotate(mark=Coalesce(Subquery(marker), Value(0)))
        .filter(id__gt=F("mark"))
        .values("sender")
        .annotate(n=Count("id"))
    )
    return {row["sender"]: row["n"] for row in rows}


def _unread_groups(user: AbstractBaseUser) -> dict[int, int]:
    marker = ReadMarker.objects.filter(user=user, group=OuterRef("group")).values("last_read_id")[:1]
    rows = (
        Message.objects.filter(group__in=ChatGroup.objects.filter(members=user).values("id"))
        .exclude(sender=user)
        .annotate(mark=Coalesce(Subquery(marker), Value(0)))
        .filter(id__gt=F("mark"))
        .values("group")
        .annotate(n=Count("id"))
    )
    return {row["group"]: row["n"] for row in rows}


def users_with_presence() -> QuerySet:
    online = Exists(Connection.objects.filter(user=OuterRef("pk")))
    return get_user_model().objects.filter(is_active=True).annotate(online=online).order_by("username")


def user_list() -> list[dict]:
    return [{"Username": u.username, "Online": u.online} for u in users_with_presence().only("username")]


def group_list() -> list[dict]:
    return [group_summary(group) for group in groups_with_members()]


def state_for(*, user: AbstractBaseUser, resume_after: int | None = None) -> dict:
    """What `State` tells: every user with presence, every group, this user's unread counts,
    `last_id`, the newest message they may read, which those counts already include, and
    `seq`, read first: the state holds every change up to it (and maybe some after).

    With `resume_after`, `reset` says whether more than CHAT_REPLAY_MAX changes came since."""
    seq = seq_committed()
    reset = False
    if resume_after is not None:
        reset = change_count(user=user, after=resume_after, upto=seq, cap=settings.CHAT_REPLAY_MAX) > (
            settings.CHAT_REPLAY_MAX
        )
    last_id = message_list_readable(user=user).aggregate(last=Max("id"))["last"] or 0
    unread_private = _unread_private(user)
    unread_groups = _unread_groups(user)
    users = [
        {"Username": u.username, "Online": u.online, "Unread": unread_private.get(u.pk, 0)}
        for u in users_with_presence().only("username")
    ]
    groups = [{**group_summary(group), "Unread": unread_groups.get(group.pk, 0)} for group in groups_with_members()]
    return {"user": user.username, "users": users, "groups": groups, "last_id": last_id, "seq": seq, "reset": reset}


# ---- changes by `Seq` (messaging.seq): resume and the hubs' sweep ---------------------------


def tombstone_list_readable(*, user: AbstractBaseUser) -> QuerySet[Tombstone]:
    """Tombstones of messages the user could read if they still existed."""
    return Tombstone.objects.filter(
        Q(group__isnull=True, sender_id=user.pk)
        | Q(recipient_id=user.pk)
        | Q(group__in=ChatGroup.objects.filter(members=user).values("id"))
    )


def _in_range(queryset: QuerySet, *, after: int | tuple[int, int], upto: int) -> QuerySet:
    if isinstance(after, int):
        return queryset.filter(seq__gt=after, seq__lte=upto)
    seq, pk = after
    return queryset.filter(Q(seq__gt=seq) | Q(seq=seq, pk__gt=pk), seq__lte=upto)


def change_count(*, user: AbstractBaseUser, after: int, upto: int, cap: int) -> int:
    """How many changes the user may see have `after < seq <= upto`, counted up to `cap + 1`."""
    window = {"seq__gt": after, "seq__lte": upto}
    messages = message_list_readable(user=user).filter(**window).values("pk")[: cap + 1].count()
    return messages + tombstone_list_readable(user=user).filter(**window).values("pk")[: cap + 1].count()


def change_list(
    *,
    user: AbstractBaseUser,
    after: int | tuple[int, int],
    upto: int,
    group_id: int | None = None,
    limit: int = 500,
) -> list[Message | Tombstone]:
    """Up to `limit` changes the user may see now (of one group, with `group_id`), ordered by
    (`seq`, id), with a `seq` above `after` (or, to page on, a (`seq`, id) pair above that
    pair) and up to `upto`: messages as they are now, and the tombstones of removed ones (one
    removal numbers all its tombstones alike)."""
    messages = message_list_readable(user=user)
    tombstones = tombstone_list_readable(user=user)
    if group_id is not None:
        messages, tombstones = messages.filter(group_id=group_id), tombstones.filter(group_id=group_id)
    found = [
        *_framed(_in_range(messages, after=after, upto=upto).order_by("seq", "id")[:limit]),
        *_in_range(tombstones, after=after, upto=upto).order_by("seq", "pk")[:limit],
    ]
    found.sort(key=lambda change: (change.seq, change.pk))
    return found[:limit]


def sweep_read(*, user_ids: list[int], after: int, upto: int) -> tuple[dict[int, set[int]], list[tuple]]:
    """For a hub's sweep (messaging.hub): the groups each of these users is in now, and every
    change with `after < seq <= upto` one of them may see, as (seq, id, group id, sender id,
    recipient id, removed)."""
    groups: dict[int, set[int]] = {user_id: set() for user_id in user_ids}
    for user_id, group_id in Membership.objects.filter(user_id__in=user_ids).values_list("user_id", "chatgroup_id"):
        groups[user_id].add(group_id)
    group_ids = set().union(*groups.values())
    audience = Q(group_id__in=group_ids) | Q(group__isnull=True, sender_id__in=user_ids) | Q(recipient_id__in=user_ids)
    fields = ("seq", "pk", "group_id", "sender_id", "recipient_id")
    window = {"seq__gt": after, "seq__lte": upto}
    rows = [(*row, False) for row in Message.objects.filter(audience, **window).values_list(*fields)]
    rows += [(*row, True) for row in Tombstone.objects.filter(audience, **window).values_list(*fields)]
    return groups, rows


def message_list_by_id(*, ids: list[int]) -> list[Message]:
    """Messages by id, as `Message` frames need them (no access check: the hub's sweep has
    checked who gets each one)."""
    return _framed(Message.objects.filter(pk__in=ids))


def tombstone_list_by_id(*, ids: list[int]) -> list[Tombstone]:
    return list(Tombstone.objects.filter(pk__in=ids))
