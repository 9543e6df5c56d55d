"""Moderation of users: ban, unban, mute, unmute, and the audit log every moderation action writes.
Also every other admin change of a user (fields, privileges, password), each audited too, and
who may join: sign-up, invite links, and a user's own password and email address.

Called by the admin (and usable from a shell or a command); each takes effect live for
connected users through the channel layer, after commit.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuditEntry, Invite, InviteUse, Mute, Registration
from accounts.selectors import invite_check, moderator_require, sender_check
from accounts.sessions import sessions_end
from chatsite.errors import ChatError
from chatsite.ratelimit import limit_take
from groups.models import ChatGroup


def audit_record(*, actor: AbstractBaseUser | None, action: str, target: str, reason: str = "") -> AuditEntry:
    return AuditEntry.objects.create(actor=actor, action=action, target=target[:300], reason=reason)


def user_ban(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    """Deactivate a user: their open sockets close at once, and they cannot log in or reconnect.

    Saving `is_active=False` ends their sessions and closes their sockets in every process
    (accounts.sessions, whichever path saves it).
    """
    moderator_require(actor)
    moderation_target_check(actor=actor, user=user)
    if user.pk == actor.pk:
        raise ChatError("forbidden", "You cannot ban yourself.")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action="ban", target=f"user {user.username}", reason=reason)


def user_unban(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    moderator_require(actor)
    moderation_target_check(actor=actor, user=user)
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(actor=actor, action="unban", target=f"user {user.username}", reason=reason)


def user_mute(*, actor: AbstractBaseUser, user: AbstractBaseUser, duration: timedelta, reason: str = "") -> Mute:
    """Refuse the user's messages (`forbidden`, with the reason) until the time is up."""
    moderator_require(actor)
    moderation_target_check(actor=actor, user=user)
    until = timezone.now() + duration
    with transaction.atomic():
        mute, _ = Mute.objects.update_or_create(user=user, defaults={"until": until, "reason": reason})
        audit_record(
            actor=actor, action="mute", target=f"user {user.username} until {until:%Y-%m-%d %H:%M} UTC", reason=reason
        )
    return mute


def user_unmute(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    moderator_require(actor)
    moderation_target_check(actor=actor, user=user)
    with transaction.atomic():
        Mute.objects.filter(user=user).delete()
        audit_record(actor=actor, action="unmute", target=f"user {user.username}", reason=reason)


def user_delete(*, actor: AbstractBaseUser, user: AbstractBaseUser, reason: str = "") -> None:
    """Delete an account and everything that goes with it, and tell everyone who can see it.

    Deleting is not moderation (moderators ban): it takes the `auth.delete_user` permission, and
    only a superuser deletes a superuser. In one transaction: the groups the user owns are
    deleted (`Group`/`Deleted` to everyone), the groups they are in are left (`Left`), their
    messages are removed (`Removed` to the people who saw them), their reactions are taken back
    (the messages' new state to those who see them), every session ends (their sockets close
    with 4001 in every process), the audit log says who did it, and the row goes.
    """
    from groups import actions as group_actions
    from groups.models import ChatGroup
    from messaging.actions import messages_tombstone, reactions_withdraw
    from messaging.models import Message

    if not actor.has_perm("auth.delete_user"):
        raise ChatError("forbidden", f"You may not delete the account {user.username}.")
    if user.pk == actor.pk:
        raise ChatError("forbidden", "You cannot delete your own account here.")
    user_act_check(actor=actor, user=user)
    with transaction.atomic():
        for group in ChatGroup.objects.filter(owner=user):
            group_actions.group_delete(user=user, group=group)
        for group in ChatGroup.objects.filter(members=user).exclude(owner=user):
            group_actions.group_member_remove(user=user, group=group)
        mine = Message.objects.filter(Q(sender=user) | Q(recipient=user))
        fields = ("id", "group_id", "sender_id", "recipient_id", "client_id")
        messages_tombstone(mine.only(*fields).iterator(), by=actor.username)
        reactions_withdraw(user=user)
        sessions_end(user=user)
        audit_record(actor=actor, action="delete user", target=f"user {user.username}", reason=reason)
        user.delete()


# ---- who may act on whom, and the admin's other changes of a user ---------------------------

PRIVILEGE_FIELDS = frozenset({"is_staff", "is_superuser", "groups", "user_permissions"})
USER_FIELDS = frozenset({"username", "first_name", "last_name", "email"}) | PRIVILEGE_FIELDS
_MANY = frozenset({"groups", "user_permissions"})


def user_act_check(*, actor: AbstractBaseUser, user: AbstractBaseUser) -> None:
    """Raise `forbidden` unless `actor` may act on `user` at all: a superuser may act on anyone;
    others on ordinary users and themselves, never on a superuser or other staff."""
    if actor.is_superuser:
        return
    if user.is_superuser:
        raise ChatError("forbidden", "Only a superuser can act on a superuser.")
    if user.is_staff and user.pk != actor.pk:
        raise ChatError("forbidden", "Only a superuser can act on other staff.")


def moderation_target_check(*, actor: AbstractBaseUser, user: AbstractBaseUser) -> None:
    """The guard of ban, unban, mute and unmute: nobody moderates their own account (a muted
    moderator would unmute themselves), and only a superuser moderates staff or a superuser."""
    if user.pk == actor.pk:
        raise ChatError("forbidden", "You cannot moderate your own account.")
    stored = get_user_model().objects.only("is_superuser", "is_staff").get(pk=user.pk)
    user_act_check(actor=actor, user=stored)


def user_update(*, actor: AbstractBaseUser, user: AbstractBaseUser, changes: dict[str, Any], reason: str = "") -> None:
    """Change fields of a user (the admin's user page), with an audit entry of old and new values.

    Privileges (staff, superuser, groups, permissions) only by a superuser. `is_active` and the
    password are not fields here: they change through the ban and password actions.
    """
    if not actor.has_perm("auth.change_user"):
        raise ChatError("forbidden", "You do not have the permission to change users.")
    unknown = set(changes) - USER_FIELDS
    if unknown:
        raise ChatError("bad_request", "These cannot be changed here: " + ", ".join(sorted(unknown)) + ".")
    stored = get_user_model().objects.get(pk=user.pk)  # authorize on what is stored, not on the edit
    user_act_check(actor=actor, user=stored)
    if set(changes) & PRIVILEGE_FIELDS and not actor.is_superuser:
        raise ChatError(
            "forbidden", "Only a superuser can change staff status, superuser status, groups or permissions."
        )
    if not changes:
        return
    described = [_describe_change(stored, name, value) for name, value in sorted(changes.items())]
    plain = [name for name in changes if name not in _MANY]
    with transaction.atomic():
        for name in plain:
            setattr(user, name, changes[name])
        if plain:
            user.save(update_fields=plain)
        for name in set(changes) & _MANY:
            getattr(user, name).set(changes[name])
        audit_record(
            actor=actor, action="change user", target=f"user {stored.username}: " + "; ".join(described), reason=reason
        )


def _describe_change(stored: AbstractBaseUser, name: str, value: Any) -> str:
    if name in _MANY:
        return f"{name} = [" + ", ".join(sorted(str(item) for item in value)) + "]"
    return f"{name} {getattr(stored, name)!r} -> {value!r}"


def user_add(*, actor: AbstractBaseUser, user: AbstractBaseUser) -> None:
    """Save a new account made in the admin (superusers only), with an audit entry."""
    if not actor.is_superuser:
        raise ChatError("forbidden", "Only a superuser can add users.")
    with transaction.atomic():
        user.save()
        audit_record(actor=actor, action="add user", target=f"user {user.username}")


def user_password_set(
    *, actor: AbstractBaseUser, user: AbstractBaseUser, password: str | None, reason: str = ""
) -> None:
    """Set a user's password (None: disable password login). Superusers only: whoever sets
    another's password owns that account. Everyone else changes their own with the old one."""
    if not actor.is_superuser:
        raise ChatError("forbidden", "Only a superuser can set a user's password.")
    with transaction.atomic():
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save(update_fields=["password"])
        action = "set password" if password is not None else "disable password"
        audit_record(actor=actor, action=action, target=f"user {user.username}", reason=reason)


# ---- who may join: registration, invite links, passwords --------------------------------------

INVITE_TOKEN_BYTES = 24  # 32 characters of the URL-safe alphabet (accounts.selectors.INVITE_TOKEN)
INVITES_PER_HOUR = 60  # links one group owner may make an hour (per server process); admins: no limit


def invite_create(
    *, actor: AbstractBaseUser, group: ChatGroup | None = None, valid_for: timedelta, max_uses: int
) -> Invite:
    """A new invite link, valid for `valid_for` and `max_uses` uses, into `group` if given.

    Admins (the `accounts.add_invite` permission) make links to any group or none; a group's
    owner makes links to their own group, while they may send (not muted, not banned).
    """
    invite_create_check(actor=actor, group=group, valid_for=valid_for, max_uses=max_uses)
    with transaction.atomic():
        invite = Invite.objects.create(
            token=secrets.token_urlsafe(INVITE_TOKEN_BYTES),
            group=group,
            created_by=actor,
            expires=timezone.now() + valid_for,
            max_uses=max_uses,
        )
        audit_record(actor=actor, action="create invite", target=f"{invite} for {max_uses} uses")
    return invite


def invite_create_check(
    *, actor: AbstractBaseUser, group: ChatGroup | None, valid_for: timedelta, max_uses: int
) -> None:
    if not timedelta(0) < valid_for <= timedelta(days=settings.CHAT_INVITE_MAX_DAYS):
        raise ChatError("bad_request", f"An invite link is valid for 1 to {settings.CHAT_INVITE_MAX_DAYS} days.")
    if not 1 <= max_uses <= settings.CHAT_INVITE_MAX_USES:
        raise ChatError("bad_request", f"An invite link has 1 to {settings.CHAT_INVITE_MAX_USES} uses.")
    owner_id = None
    if group is not None:  # authorized on what is stored: the group may be gone, or given away
        owner_id = ChatGroup.objects.filter(pk=group.pk).values_list("owner_id", flat=True).first()
        if owner_id is None:
            raise ChatError("not_found", "This group no longer exists.")
    if actor.has_perm("accounts.add_invite"):
        return
    if owner_id != actor.pk:
        raise ChatError("forbidden", "Only a group's owner (or an admin) can make invite links.")
    sender_check(user=actor)
    if not limit_take("invite create", actor.pk, per_hour=INVITES_PER_HOUR):
        raise ChatError("rate_limited", f"Too many invite links: at most {INVITES_PER_HOUR} an hour.")


def invite_revoke(*, actor: AbstractBaseUser, invite: Invite) -> bool:
    """Stop a link at once. Admins (`accounts.change_invite`) revoke any, owners their group's.
    Returns False when it was revoked already."""
    if not actor.has_perm("accounts.change_invite"):
        if invite.group_id is None or not ChatGroup.objects.filter(pk=invite.group_id, owner=actor.pk).exists():
            raise ChatError("forbidden", "Only the group's owner (or an admin) can revoke its invite links.")
    with transaction.atomic():
        revoked = Invite.objects.filter(pk=invite.pk, revoked__isnull=True).update(revoked=timezone.now())
        if revoked:
            audit_record(actor=actor, action="revoke invite", target=str(invite))
    return bool(revoked)


def invite_redeem(*, user: AbstractBaseUser, token: str, new_account: bool = False) -> tuple[Invite, bool]:
    """Use an invite link: for a new account (registering with it), or to bring an existing
    user into the link's group. Returns the invite and whether this was a use: an existing user
    who is in the group already, or holds a link without one, uses nothing.

    The invite's row is locked while it is checked and used, so its last use goes once. A group
    is joined through `group_join` (announced to everyone; refused while muted).
    """
    from groups.actions import group_join

    with transaction.atomic():
        invite = invite_check(token=token, lock=True)
        joined = invite.group is not None and group_join(user=user, group=invite.group)
        if not (joined or new_account):
            return invite, False
        InviteUse.objects.create(invite=invite, user=user, username=user.username, new_account=new_account)
    return invite, True


def user_register(*, user: AbstractBaseUser, ip: str, invite_token: str | None = None) -> None:
    """Save a new account from the sign-up form (`user`, unsaved, its password set), as
    CHAT_REGISTRATION allows: `open` to anyone, `invite` with a valid invite link, `closed` to
    nobody (admins add accounts). With a link, it is used in the same transaction: a link that
    expired, was revoked or used up meanwhile makes no account."""
    if settings.CHAT_REGISTRATION == "closed":
        raise ChatError("forbidden", "Registration is closed: an administrator creates accounts here.")
    if settings.CHAT_REGISTRATION == "invite" and not invite_token:
        raise ChatError("forbidden", "You need an invite link to register here.")
    with transaction.atomic():
        user.save()
        Registration.objects.create(ip=ip)
        if invite_token:
            invite_redeem(user=user, token=invite_token, new_account=True)


def user_password_change(*, user: AbstractBaseUser, password: str, how: str) -> None:
    """A user sets their own password (`how`: "change password" on the account page, with the old
    one; "reset password" through a link sent by email). Saving it ends every session of theirs
    and closes all of their sockets (accounts.sessions); the page that changed it keeps its own
    browser logged in afterwards (Django's update_session_auth_hash)."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(actor=user, action=how, target=f"user {user.username}")


def user_email_set(*, user: AbstractBaseUser, email: str) -> None:
    """A user's own email address (where password reset links go); empty: none."""
    email = get_user_model().objects.normalize_email(email)
    with transaction.atomic():
        user.email = email
        user.save(update_fields=["email"])
        audit_record(actor=user, action="change email", target=f"user {user.username}")
