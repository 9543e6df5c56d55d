"""Every change to groups goes through these functions (consumer, views and admin alike).

Each one authorizes, writes in a transaction and publishes its events on commit.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from accounts.actions import audit_record
from accounts.selectors import sender_check, user_is_moderator
from chatsite.errors import ChatError
from chatsite.names import name_key
from chatsite.ratelimit import limit_take
from groups.models import ChatGroup
from groups.names import clean_group_name
from groups.selectors import group_get, group_summary, groups_with_members
from messaging import events
from messaging.protocol import group_frame
from messaging.seq import seq_take


def _announce(group: ChatGroup, *, event: str, user: AbstractBaseUser, seq: int, **instructions) -> None:
    group = groups_with_members().get(pk=group.pk) if event != "Deleted" else group
    summary = group_summary(group)
    frame = group_frame(
        event=event,
        name=summary["Name"],
        owner=summary["Owner"],
        members=summary["Members"],
        user=user.username,
        seq=seq,
    )
    events.publish(events.EVERYONE, frame, **instructions)


def _mark_read_to_latest(group: ChatGroup, users) -> None:
    from messaging.actions import read_marker_set_latest

    for member in users:
        read_marker_set_latest(user=member, group=group)


def group_create(*, owner: AbstractBaseUser, name: str, member_usernames: list[str] | tuple[str, ...]) -> ChatGroup:
    """Create a group owned by `owner`, with `owner` and every listed (existing) user as members."""
    group_create_check(user=owner)
    name = clean_group_name(name)
    _refuse_look_alike(name)
    usernames = set(member_usernames) - {owner.username}
    members = list(get_user_model().objects.filter(username__in=usernames, is_active=True))
    missing = usernames - {member.username for member in members}
    if missing:
        raise ChatError("not_found", "No such user: " + ", ".join(sorted(missing)) + ".")
    try:
        with transaction.atomic():
            seq = seq_take()
            group = ChatGroup.objects.create(name=name, owner=owner)
            group.members.add(owner, *members, through_defaults={"seq": seq})
            events.publish([events.user_group(m.pk) for m in (owner, *members)], subscribe=group.layer_group)
            _announce(group, event="Created", user=owner, seq=seq)
    except IntegrityError:  # created by someone else since the check
        _refuse_look_alike(name)
        raise ChatError("conflict", f"A group named '{name}' already exists.") from None
    return group


def group_check(group: ChatGroup | str) -> ChatGroup:
    """The group itself, or the one of that name (`not_found` if none): the consumer names
    groups as the protocol does, the admin hands them over."""
    return group if isinstance(group, ChatGroup) else group_get(name=group)


def _refuse_look_alike(name: str) -> None:
    """`conflict` if a group has this name, or one that looks the same (chatsite.names)."""
    twin = ChatGroup.objects.filter(name_key=name_key(name)).only("name").first()
    if twin is None:
        return
    if twin.name == name:
        raise ChatError("conflict", f"A group named '{name}' already exists.")
    raise ChatError("conflict", f"'{name}' looks too much like the existing group '{twin.name}'; pick another name.")


def group_join(*, user: AbstractBaseUser, group: ChatGroup | str) -> bool:
    """Make `user` a member (groups are open). Returns False when they already were one."""
    group = group_check(group)
    with transaction.atomic():
        if group.members.filter(pk=user.pk).exists():
            return False  # opening a group one is in: free, and allowed while muted
        group_move_check(user=user, joining=True)
        seq = seq_take()
        group.members.add(user, through_defaults={"seq": seq})
        _mark_read_to_latest(group, [user])
        events.publish(events.user_group(user.pk), subscribe=group.layer_group)
        _announce(group, event="Joined", user=user, seq=seq)
    return True


def group_leave(*, user: AbstractBaseUser, group: ChatGroup | str) -> None:
    group = group_check(group)
    group_move_check(user=user, joining=False)
    if group.owner_id == user.pk:
        raise ChatError("forbidden", "The owner cannot leave a group; delete it instead.")
    group_member_remove(user=user, group=group)


def group_member_remove(*, user: AbstractBaseUser, group: ChatGroup) -> None:
    """Take `user` out of `group` and say so (`Left`): the end of `group_leave`, and what
    deleting an account does to each group it was in (no rate limit there)."""
    with transaction.atomic():
        if not group.members.filter(pk=user.pk).exists():
            raise ChatError("not_found", f"You are not a member of '{group.name}'.")
        seq = seq_take()
        group.members.remove(user)
        events.publish(events.user_group(user.pk), unsubscribe=group.layer_group)
        _announce(group, event="Left", user=user, seq=seq)


def group_delete(*, user: AbstractBaseUser, group: ChatGroup | str, reason: str = "") -> None:
    """Delete a group with its messages and images. Only its owner, or a moderator, may.

    A deletion by anyone but the owner is moderation, and goes to the audit log.
    """
    group = group_check(group)
    moderated = group.owner_id != user.pk
    if moderated and not user_is_moderator(user):
        raise ChatError("forbidden", f"Only the owner of '{group.name}' can delete it.")
    with transaction.atomic():
        if moderated or reason:
            audit_record(actor=user, action="delete group", target=f"group {group.name}", reason=reason)
        # The frame is built (members included) before the rows go.
        members = groups_with_members().get(pk=group.pk)
        _announce(members, event="Deleted", user=user, seq=seq_take(), unsubscribe=group.layer_group)
        group.delete()


def group_create_check(*, user: AbstractBaseUser) -> None:
    """Refuse a `Create` that would be announced to everyone: by a muted or banned user
    (`forbidden`), or beyond CHAT_GROUP_CREATES_PER_HOUR (`rate_limited`; moderators are exempt)."""
    sender_check(user=user)
    _rate_check(user=user, name="group create", per_hour=settings.CHAT_GROUP_CREATES_PER_HOUR, what="groups created")


def group_move_check(*, user: AbstractBaseUser, joining: bool) -> None:
    """Joins and leaves are announced to everyone: together they get CHAT_GROUP_MOVES_PER_HOUR.
    A muted user may still leave, but not join."""
    if joining:
        sender_check(user=user)
    _rate_check(user=user, name="group move", per_hour=settings.CHAT_GROUP_MOVES_PER_HOUR, what="joins and leaves")


def _rate_check(*, user: AbstractBaseUser, name: str, per_hour: int, what: str) -> None:
    if user_is_moderator(user):
        return
    if not limit_take(name, user.pk, per_hour=per_hour):
        raise ChatError("rate_limited", f"Too many {what}: at most {per_hour} an hour. Try again later.")
