"""Reads about groups. Access checks live here so every caller gets the same answer."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from chatsite.errors import ChatError
from groups.models import ChatGroup


def group_get(*, name: str) -> ChatGroup:
    try:
        return ChatGroup.objects.select_related("owner").get(name=name)
    except ChatGroup.DoesNotExist:
        raise ChatError("not_found", f"No group named '{name}'.") from None


def group_require_member(*, user: AbstractBaseUser, name: str) -> ChatGroup:
    """The group, if `user` is a member (one query: this runs on every group `Send`)."""
    membership = ChatGroup.members.through.objects.filter(chatgroup=OuterRef("pk"), user=user.pk)
    try:
        group = ChatGroup.objects.select_related("owner").annotate(is_member=Exists(membership)).get(name=name)
    except ChatGroup.DoesNotExist:
        raise ChatError("not_found", f"No group named '{name}'.") from None
    if not group.is_member:
        raise ChatError("forbidden", f"You are not a member of '{name}'.")
    return group


def groups_with_members() -> QuerySet[ChatGroup]:
    users = get_user_model().objects.only("username").order_by("username")
    return ChatGroup.objects.select_related("owner").prefetch_related(Prefetch("members", queryset=users))


def group_summary(group: ChatGroup) -> dict:
    """`Name`, `Owner`, `Members` as in the protocol; uses prefetched members when present."""
    return {
        "Name": group.name,
        "Owner": group.owner.username,
        "Members": sorted(member.username for member in group.members.all()),
    }


def group_owned_get(*, user: AbstractBaseUser, group_id: int) -> ChatGroup:
    """The group, if `user` owns it; `not_found` for anyone else (no hint that it exists)."""
    try:
        return ChatGroup.objects.select_related("owner").get(pk=group_id, owner=user.pk)
    except ChatGroup.DoesNotExist:
        raise ChatError("not_found", "No such group of yours.") from None
