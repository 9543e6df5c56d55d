"""Every change to messages, read pointers and presence goes through these functions.

Each authorizes, writes in a transaction and publishes its events on commit
(messaging.events), so the consumer, the HTTP views and the admin send the same events.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.actions import audit_record
from accounts.selectors import active_check, moderator_require, sender_check, user_is_moderator
from accounts.sessions import session_group, session_register
from chatsite.errors import ChatError
from chatsite.names import has_visible
from groups.models import ChatGroup, layer_group_for
from messaging import events
from messaging.images import ProcessedImage, decode_data_url, process_image
from messaging.models import Connection, Image, Message, MessageEdit, Reaction, ReadMarker, Report, Tombstone
from messaging.protocol import GROUP, PRIVATE, message_to_frame, presence_frame, read_frame, removed_frame
from messaging.render import render_text
from messaging.selectors import (
    conversation_get,
    message_get_readable,
    message_list_by_id,
    message_list_readable,
    reply_original,
    send_target,
)
from messaging.seq import seq_take

MAX_REACTION_EMOJI = 20  # different emoji on one message


def _validate_text(content: str) -> str:
    if not has_visible(content):  # white space and invisible characters (U+200B, ...) only
        raise ChatError("bad_request", "A message cannot be empty.")
    if len(content) > settings.CHAT_MAX_TEXT_LENGTH:
        raise ChatError("too_large", f"A message has at most {settings.CHAT_MAX_TEXT_LENGTH} characters.")
    return content


def message_send(
    *,
    sender: AbstractBaseUser,
    chat: str,
    to: str,
    content: str,
    is_image: bool = False,
    client_id: str | None = None,
    reply_to: int | None = None,
    seq: int | None = None,
) -> tuple[Message, bool]:
    """Store a message and fan it out on commit. Returns (message, created).

    Its `seq` is taken in its transaction, unless the caller took it already in the one this
    runs in (messaging.writer: one range for a whole batch).

    With a `client_id` this user already used, nothing is stored or published: the
    stored message is returned with created=False, so the caller re-sends its echo. For
    text the database's unique constraint finds the repeat (no lookup on the hot path); an
    image is looked up first, so a repeat is not decoded again.

    A reply (`reply_to`) answers a message of the same conversation (`not_found` otherwise).
    A text is rendered (messaging.render) here, once: every delivery sends that `html`.
    """
    if client_id and is_image:
        existing = _find_by_client_id(sender, client_id)
        if existing is not None:
            return existing, False
    if is_image:  # access first: an image is not decoded for nothing (checked again below)
        send_target(sender=sender, chat=chat, to=to, client_id=client_id)
    picture = process_image(decode_data_url(content)) if is_image else None
    try:
        with transaction.atomic():  # the check and the write in one transaction
            recipient, group = send_target(sender=sender, chat=chat, to=to, client_id=client_id)
            text = "" if is_image else _validate_text(content)
            original = None
            if reply_to is not None:
                original = reply_original(sender=sender, recipient=recipient, group=group, message_id=reply_to)
            message = Message.objects.create(
                sender=sender,
                recipient=recipient,
                group=group,
                text=text,
                html=render_text(text) if text else "",
                is_image=is_image,
                client_id=client_id or None,
                reply_to=original,
                seq=seq if seq is not None else seq_take(),
            )
            if picture is not None:
                image_store(message=message, picture=picture)
            _publish_message(message)
    except IntegrityError:
        # This ClientId is stored already (a retry, or the same message from another tab).
        existing = _find_by_client_id(sender, client_id) if client_id else None
        if existing is not None:
            return existing, False
        # Or the group went away under the commit (PostgreSQL checks its foreign keys then):
        # refused as if it had gone first.
        send_target(sender=sender, chat=chat, to=to)
        raise
    return message, True


def image_store(*, message: Message, picture: ProcessedImage) -> Image:
    return Image.objects.create(
        message=message,
        data=picture.data,
        content_type=picture.content_type,
        width=picture.width,
        height=picture.height,
        thumbnail=picture.thumbnail,
        thumbnail_type=picture.thumbnail_type,
    )


def _find_by_client_id(sender: AbstractBaseUser, client_id: str) -> Message | None:
    found = Message.objects.filter(sender=sender, client_id=client_id).values_list("pk", flat=True).first()
    return message_list_by_id(ids=[found])[0] if found is not None else None


def _publish_message(message: Message, *, change: str | None = None) -> None:
    frame = message_to_frame(message, change=change)
    if message.group_id is not None:
        events.publish(message.group.layer_group, frame, seq=message.seq)
        return
    targets = [events.user_group(message.sender_id), events.user_group(message.recipient_id)]
    events.publish(targets, frame, seq=message.seq)


def _conversation_of(message: Message) -> tuple[str, str]:
    """The (`Chat`, `To`) a `Send` to this message's conversation from its sender names."""
    if message.group_id is not None:
        return GROUP, message.group.name
    return PRIVATE, message.recipient.username


def message_edit(*, user: AbstractBaseUser, message_id: int, content: str) -> tuple[Message, bool]:
    """Change the text of one's own text message, within CHAT_EDIT_WINDOW seconds of sending
    (0: no limit), with the checks of a text `Send`. The earlier text is kept for moderators
    (MessageEdit); everyone who can read the message gets its new state (`Change: edit`, a new
    `Seq`). Returns (message, changed): the same text again changes nothing."""
    message = message_get_readable(user=user, message_id=message_id)
    if message.sender_id != user.pk:
        raise ChatError("forbidden", "You can only edit your own messages.")
    if message.is_image:
        raise ChatError("forbidden", "An image cannot be edited; remove it and send another.")
    window = settings.CHAT_EDIT_WINDOW
    if window and (timezone.now() - message.created).total_seconds() > window:
        raise ChatError("forbidden", f"Messages can only be edited within {window} seconds of sending.")
    chat, to = _conversation_of(message)
    text = _validate_text(content)
    if text == message.text:
        return message, False
    html = render_text(text)
    with transaction.atomic():
        seq = seq_take()
        send_target(sender=user, chat=chat, to=to)  # muted, banned, no longer a member: refused
        stored = Message.objects.select_for_update().filter(pk=message_id).values_list("text", "edited").first()
        if stored is None:
            raise ChatError("not_found", f"No message {message_id} that you can see.")
        MessageEdit.objects.create(message_id=message_id, text=stored[0], written=stored[1] or message.created)
        Message.objects.filter(pk=message_id).update(text=text, html=html, edited=timezone.now(), seq=seq)
        message = message_list_by_id(ids=[message_id])[0]
        _publish_message(message, change="edit")
    return message, True


def message_remove(*, actor: AbstractBaseUser, message_id: int) -> None:
    """Remove one message: one's own, any of a group one owns, any at all for a moderator. As
    `messages_remove`: its text and image go at once, its tombstone stays. Removing someone
    else's is recorded in the audit log."""
    moderator = user_is_moderator(actor)
    message = message_get_readable(user=actor, message_id=message_id, moderator=moderator)
    owner = message.group_id is not None and message.group.owner_id == actor.pk
    if not (moderator or owner or message.sender_id == actor.pk):
        raise ChatError("forbidden", "You can only remove your own messages, or those of a group you own.")
    if message.sender_id == actor.pk:
        active_check(user=actor)  # a socket that outlived a ban; a muted user may take theirs back
    else:
        sender_check(user=actor)  # removing others' is moderating: not while muted
    with transaction.atomic():
        seq = seq_take()
        message = Message.objects.select_for_update().filter(pk=message_id).select_related("sender").first()
        if message is None:  # removed meanwhile
            raise ChatError("not_found", f"No message {message_id} that you can see.")
        if message.sender_id != actor.pk:
            _audit_removal(actor=actor, message=message, reason="")
        messages_tombstone([message], by=actor.username, seq=seq)
        message.delete()


def _audit_removal(*, actor: AbstractBaseUser, message: Message, reason: str) -> None:
    audit_record(
        actor=actor,
        action="remove message",
        reason=reason,
        target=f"message {message.pk} by {message.sender.username}: {message.text[:200]}",
    )


def reaction_set(*, user: AbstractBaseUser, message_id: int, emoji: str, on: bool) -> bool:
    """Give (`on`) or take back one's `emoji` on a message one can read; at most
    MAX_REACTION_EMOJI different emoji on a message. Everyone who can read it gets its new
    state (`Change: reaction`). Returns whether anything changed (a repeat changes nothing)."""
    sender_check(user=user)  # a muted user does not post reactions either
    message_get_readable(user=user, message_id=message_id)
    mine = Reaction.objects.filter(message_id=message_id, user=user, emoji=emoji)
    with transaction.atomic():
        seq = seq_take()
        readable = message_list_readable(user=user).filter(pk=message_id).select_for_update()
        if not readable.values_list("pk", flat=True):  # removed meanwhile, or no longer a member
            raise ChatError("not_found", f"No message {message_id} that you can see.")
        if on == mine.exists():
            return False
        if on:
            given = set(Reaction.objects.filter(message_id=message_id).values_list("emoji", flat=True))
            if emoji not in given and len(given) >= MAX_REACTION_EMOJI:
                raise ChatError("too_large", f"A message has at most {MAX_REACTION_EMOJI} different reactions.")
            Reaction.objects.create(message_id=message_id, user=user, emoji=emoji)
        else:
            mine.delete()
        Message.objects.filter(pk=message_id).update(seq=seq)
        _publish_message(message_list_by_id(ids=[message_id])[0], change="reaction")
    return True


def reactions_withdraw(*, user: AbstractBaseUser) -> None:
    """Take back every reaction of a user whose account goes (accounts.actions.user_delete): each
    message they reacted to gets its own new `Seq` and goes out as it is now (`Change: reaction`).
    In the caller's transaction."""
    theirs = Reaction.objects.filter(user=user)
    # Not on their own messages (sent or received): those are removed with the account.
    others = theirs.exclude(message__sender=user).exclude(message__recipient=user)
    ids = sorted(set(others.values_list("message_id", flat=True)))
    theirs.delete()
    if not ids:
        return
    last = seq_take(len(ids))
    for seq, message_id in enumerate(ids, start=last - len(ids) + 1):
        Message.objects.filter(pk=message_id).update(seq=seq)
    for message in message_list_by_id(ids=ids):
        _publish_message(message, change="reaction")


def conversation_read(*, user: AbstractBaseUser, chat: str, to: str, message_id: int, skip_channel: str = "") -> int:
    """Move the user's last-read pointer of a conversation forward to `message_id`.

    The pointer never moves back. Returns it after the update and echoes it to the
    user's other connections (all but `skip_channel`), which clear the same badge.
    """
    messages, target = conversation_get(user=user, chat=chat, to=to)
    if not messages.filter(pk=message_id).exists():
        raise ChatError("not_found", f"Message {message_id} is not in this conversation.")
    lookup = {"user": user, "group": target} if chat == GROUP else {"user": user, "peer": target}
    with transaction.atomic():
        seq = seq_take()  # first, like every action: one lock order for all (messaging.seq)
        marker, _ = ReadMarker.objects.select_for_update().get_or_create(**lookup)
        if message_id > marker.last_read_id:
            marker.last_read_id = message_id
            marker.save(update_fields=["last_read_id"])
        frame = read_frame(chat=chat, to=to, id=marker.last_read_id, seq=seq)
        events.publish(events.user_group(user.pk), frame, skip=skip_channel)
    return marker.last_read_id


def read_marker_set_latest(*, user: AbstractBaseUser, group: ChatGroup) -> None:
    """A new member has read nothing of the past, but it should not all count as unread."""
    latest = Message.objects.filter(group=group).aggregate(latest=Max("id"))["latest"] or 0
    ReadMarker.objects.update_or_create(user=user, group=group, defaults={"last_read_id": latest})


def connection_open(*, user: AbstractBaseUser, channel_name: str, session_key: str) -> list[str]:
    """Register an open socket; the user's first one makes them online for everyone.

    At most `CHAT_MAX_SOCKETS_PER_USER` sockets per user (`rate_limited` beyond). The socket's
    session is remembered with the user's (accounts.sessions), so ending those finds it.
    Returns the layer groups this socket must join.
    """
    with transaction.atomic():
        # Lock the user's row so two tabs opening at once cannot both be "first" (or the 21st).
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        open_now = Connection.objects.filter(user=user).count()
        if open_now >= settings.CHAT_MAX_SOCKETS_PER_USER:
            raise ChatError("rate_limited", f"At most {settings.CHAT_MAX_SOCKETS_PER_USER} open connections per user.")
        Connection.objects.create(user=user, channel_name=channel_name)
        session_register(user=user, session_key=session_key)
        if open_now == 0:
            events.publish(events.EVERYONE, presence_frame(username=user.username, online=True))
        group_ids = list(user.chat_groups.values_list("id", flat=True))
    groups = [events.EVERYONE, events.user_group(user.pk), session_group(session_key)]
    return [*groups, *(layer_group_for(pk) for pk in group_ids)]


def connection_close(*, user: AbstractBaseUser, channel_name: str) -> None:
    """Forget a closed socket; the user's last one makes them offline for everyone."""
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        deleted, _ = Connection.objects.filter(channel_name=channel_name).delete()
        if deleted and not Connection.objects.filter(user=user).exists():
            events.publish(events.EVERYONE, presence_frame(username=user.username, online=False))


def presence_reset() -> int:
    """Drop every connection row; only safe while no server process is running."""
    deleted, _ = Connection.objects.all().delete()
    return deleted


def messages_remove(*, actor: AbstractBaseUser, message_ids: list[int], reason: str = "") -> int:
    """Remove messages: their rows (text, image) go at once, a tombstone each stays, and they
    vanish from every open client (`Removed`) and from every client that resumes later."""
    moderator_require(actor)
    with transaction.atomic():
        seq = seq_take()
        messages = list(Message.objects.filter(pk__in=message_ids).select_related("sender"))
        for message in messages:
            _audit_removal(actor=actor, message=message, reason=reason)
        if messages:
            messages_tombstone(messages, by=actor.username, seq=seq)
            Message.objects.filter(pk__in=[m.pk for m in messages]).delete()
    return len(messages)


REMOVED_PER_FRAME = 1000


def messages_tombstone(messages: Iterable[Message], *, by: str, seq: int | None = None) -> None:
    """Leave a tombstone for each message, all under one `Seq` (the caller's, or a new one),
    and announce `Removed` (on commit) to the sockets of everyone who could read them: one
    frame per conversation's audience, at most REMOVED_PER_FRAME ids each. In the caller's
    transaction; the caller deletes the rows."""
    seq = seq if seq is not None else seq_take()
    audiences: dict[str, list[int]] = {}
    tombstones = []
    for message in messages:
        tombstones.append(
            Tombstone(
                message_id=message.pk,
                seq=seq,
                group_id=message.group_id,
                sender_id=message.sender_id,
                recipient_id=message.recipient_id,
                removed_by=by,
                client_id=message.client_id,
            )
        )
        if message.group_id is not None:
            targets = [layer_group_for(message.group_id)]
        else:
            targets = [events.user_group(message.sender_id), events.user_group(message.recipient_id)]
        for target in targets:
            audiences.setdefault(target, []).append(message.pk)
    Tombstone.objects.bulk_create(tombstones, batch_size=500, ignore_conflicts=True)
    for target, ids in audiences.items():
        ids.sort()
        for start in range(0, len(ids), REMOVED_PER_FRAME):
            frame = removed_frame(ids=ids[start : start + REMOVED_PER_FRAME], seq=seq, by=by)
            events.publish(target, frame, seq=seq)


def report_create(*, reporter: AbstractBaseUser, message_id: int, reason: str = "") -> Report:
    """Report a message the reporter can read; reporting the same one twice changes nothing."""
    message = message_list_readable(user=reporter).filter(pk=message_id).first()
    if message is None:
        raise ChatError("not_found", f"No message {message_id} that you can see.")
    report, _ = Report.objects.get_or_create(
        message=message,
        reporter=reporter,
        defaults={"reason": reason[:500], "message_text": "[image]" if message.is_image else message.text},
    )
    return report


def reports_resolve(*, actor: AbstractBaseUser, report_ids: list[int], reason: str = "") -> int:
    moderator_require(actor)

    with transaction.atomic():
        reports = list(Report.objects.filter(pk__in=report_ids, resolved__isnull=True))
        for report in reports:
            audit_record(
                actor=actor,
                action="resolve report",
                reason=reason,
                target=f"report {report.pk} of message {report.message_id}",
            )
        Report.objects.filter(pk__in=[r.pk for r in reports]).update(resolved=timezone.now(), resolved_by=actor)
    return len(reports)
