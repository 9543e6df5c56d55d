"""Moderation of users: ban, unban, mute, unmute, and the audit log every moderation action writes.

Called by the admin (and usable from a shell or a command); each takes effect live for
connected users through the channel layer, after commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuditEntry, Mute
from accounts.sessions import sessions_end
from chatsite.errors import ChatError

MODERATE_PERMISSION = "accounts.moderate"


def moderator_require(actor: AbstractBaseUser) -> None:
    if not actor.has_perm(MODERATE_PERMISSION):
        raise ChatError("forbidden", "You do not have the moderation permission.")


def audit_record(*, actor: AbstractBaseUser | None, action: str, target: str, reason: str = "") -> AuditEntry:
    return AuditEntry.objects.create(actor=actor, action=action, target=target[:300], reason=reason)


def user_ban(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    """Deactivate a user: their open sockets close at once, and they cannot log in or reconnect.

    Saving `is_active=False` ends their sessions and closes their sockets in every process
    (accounts.sessions, whichever path saves it).
    """
    moderator_require(actor)
    if user.pk == actor.pk:
        raise ChatError("forbidden", "You cannot ban yourself.")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action="ban", target=f"user {user.username}", reason=reason)


def user_unban(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    moderator_require(actor)
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action="unban", target=f"user {user.username}", reason=reason)


def user_mute(*, actor: AbstractBaseUser, user: AbstractBaseUser, duration: timedelta, reason: str = "") -> Mute:
    """Refuse the user's messages (`forbidden`, with the reason) until the time is up."""
    moderator_require(actor)
    until = timezone.now() + duration
    with transaction.atomic():
        mute, _ = Mute.objects.update_or_create(user=user, defaults={"until": until, "reason": reason})
        audit_record(
            actor=actor, action="mute", target=f"user {user.username} until {until:%Y-%m-%d %H:%M} UTC", reason=reason
        )
    return mute


def user_unmute(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    moderator_require(actor)
    with transaction.atomic():
        Mute.objects.filter(user=user).delete()
        audit_record(actor=actor, action="unmute", target=f"user {user.username}", reason=reason)


def sender_check(*, user: AbstractBaseUser, now: datetime | None = None) -> None:
    """Raise `forbidden` unless the user may send now: not banned (even if a socket of theirs
    outlived the ban), not muted. One query, on every send."""
    row = get_user_model().objects.filter(pk=user.pk).values_list("is_active", "mute__until", "mute__reason").first()
    if row is None or not row[0]:
        raise ChatError("forbidden", "This account is deactivated.")
    _, until, reason = row
    if until is not None and until > (now or timezone.now()):
        because = f": {reason}" if reason else "."
        raise ChatError("forbidden", f"You are muted until {until:%Y-%m-%d %H:%M} UTC{because}")


def user_delete(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    """Delete an account and everything that goes with it, and tell everyone who can see it.

    Deleting is not moderation (moderators ban): it takes the `auth.delete_user` permission, and
    only a superuser deletes a superuser. In one transaction: the groups the user owns are
    deleted (`Group`/`Deleted` to everyone), the groups they are in are left (`Left`), their
    messages are removed (`Removed` to the people who saw them), every session ends (their
    sockets close with 4001 in every process), the audit log says who did it, and the row goes.
    """
    from groups import actions as group_actions
    from groups.models import ChatGroup
    from messaging.actions import messages_announce_removed
    from messaging.models import Message

    if not actor.has_perm("auth.delete_user") or (user.is_superuser and not actor.is_superuser):
        raise ChatError("forbidden", f"You may not delete the account {user.username}.")
    if user.pk == actor.pk:
        raise ChatError("forbidden", "You cannot delete your own account here.")
    with transaction.atomic():
        for group in ChatGroup.objects.filter(owner=user):
            group_actions.group_delete(user=user, group=group)
        for group in ChatGroup.objects.filter(members=user).exclude(owner=user):
            group_actions.group_leave(user=user, group=group)
        mine = Message.objects.filter(Q(sender=user) | Q(recipient=user))
        messages_announce_removed(mine.only("id", "group_id", "sender_id", "recipient_id").iterator())
        sessions_end(user=user)
        audit_record(actor=actor, action="delete user", target=f"user {user.username}", reason=reason)
        user.delete()
