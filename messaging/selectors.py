"""Reads for the chat: history, replay, the `State` snapshot. Access is checked here."""

from __future__ import annotations

import functools
from datetime import datetime

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
from groups.models import ChatGroup
from groups.selectors import group_require_member, group_summary, groups_with_members
from messaging.models import Connection, Image, Message, ReadMarker
from messaging.protocol import PRIVATE


def send_target(
    *, sender: AbstractBaseUser, chat: str, to: str, now: datetime | None = None
) -> tuple[AbstractBaseUser | None, ChatGroup | None]:
    """The (recipient, group) a `Send` goes to, once the sender may send there: not banned,
    not muted, and a member of the group or writing to an active user.

    It is one query, run on every message. It is written in SQL, built once from the
    models' metadata, because Django's query compiler cost more CPU than the query itself
    (`make bench`, bench/README.md). Every refusal is then explained by the ORM selectors, so
    the errors are exactly theirs.
    """
    sql = _send_sql(connection.vendor, chat)
    muted_at = connection.ops.adapt_datetimefield_value(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [muted_at, to, sender.pk])
        row = cursor.fetchone()
    active, muted, target_id, target_name, extra, allowed = row or (False, None, None, None, None, None)
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
    """SQL of `send_target`; parameters: the time a mute must outlast, `To`, the sender's id.

    Columns: sender active, sender muted, target id, target name, group owner (NULL for a
    user), allowed (group: the sender is a member; user: the recipient is active).
    """
    qn = connection.ops.quote_name
    user = get_user_model()._meta
    user_id, active = qn(user.pk.column), qn(user.get_field("is_active").column)
    username = qn(user.get_field("username").column)  # `To` is a username, as in user_get
    mute = Mute._meta
    sender = (
        f"u.{active}, m.{qn(mute.get_field('until').column)} > %s",
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
    return queryset.select_related("sender", "recipient", "group").only(
        "id",
        "text",
        "is_image",
        "client_id",
        "created",
        "group_id",
        "recipient_id",
        "sender__username",
        "recipient__username",
        "group__name",
    )


def private_messages(*, user: AbstractBaseUser, peer: AbstractBaseUser) -> QuerySet[Message]:
    return Message.objects.filter(Q(sender=user, recipient=peer) | Q(sender=peer, recipient=user), group__isnull=True)


def conversation_get(*, user: AbstractBaseUser, chat: str, to: str) -> tuple[QuerySet[Message], object]:
    """The messages of one conversation the user may read, and its target (peer or group)."""
    if chat == PRIVATE:
        peer = user_get(username=to)
        return private_messages(user=user, peer=peer), peer
    group = group_require_member(user=user, name=to)
    return Message.objects.filter(group=group), group


def history_page(
    *, user: AbstractBaseUser, chat: str, to: str, before: int | None = None
) -> tuple[list[Message], bool]:
    """The newest page of a conversation (older than `before` when given), oldest first, and
    whether there is more before it."""
    messages, _target = conversation_get(user=user, chat=chat, to=to)
    if before is not None:
        messages = messages.filter(id__lt=before)
    size = settings.CHAT_HISTORY_PAGE
    page = list(_with_names(messages).order_by("-id")[: size + 1])
    return page[:size][::-1], len(page) > size


def message_list_readable(*, user: AbstractBaseUser) -> QuerySet[Message]:
    return Message.objects.filter(
        Q(sender=user, group__isnull=True)
        | Q(recipient=user)
        | Q(group__in=ChatGroup.objects.filter(members=user).values("id"))
    )


def message_list_after(*, user: AbstractBaseUser, after: int, limit: int = 500) -> list[Message]:
    """Up to `limit` messages the user may read with an id above `after`, oldest first."""
    return list(_with_names(message_list_readable(user=user).filter(id__gt=after)).order_by("id")[:limit])


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


def state_for(*, user: AbstractBaseUser) -> dict:
    """What `State` tells: every user with presence, every group, this user's unread counts, and
    `last_id`, the newest message they may read, which those counts already include."""
    last_id = message_list_readable(user=user).aggregate(last=Max("id"))["last"] or 0
    unread_private = _unread_private(user)
    unread_groups = _unread_groups(user)
    users = [
        {"Username": u.username, "Online": u.online, "Unread": unread_private.get(u.pk, 0)}
        for u in users_with_presence().only("username")
    ]
    groups = [{**group_summary(group), "Unread": unread_groups.get(group.pk, 0)} for group in groups_with_members()]
    return {"user": user.username, "users": users, "groups": groups, "last_id": last_id}
