"""Deleting an account is an action: its groups, memberships, messages and sockets all follow.

alice is deleted by iago (a superuser); bob owns nothing but is in alice's group; carol is in
bob's group with alice and chats with her privately.
"""

from __future__ import annotations

import logging

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.actions import user_delete
from accounts.models import AuditEntry
from chatsite.errors import ChatError
from groups import actions as group_actions
from groups.models import ChatGroup
from messaging.actions import message_send
from messaging.models import Message
from messaging.protocol import CLOSE_SESSION_ENDED
from tests.conftest import make_user
from tests.test_sessions import closed_with

pytestmark = pytest.mark.django_db(transaction=True)


def chats(alice, bob, carol) -> tuple[int, int]:
    group_actions.group_create(owner=alice, name="Mine", member_usernames=["bob"])
    group_actions.group_create(owner=bob, name="Team", member_usernames=["alice", "carol"])
    private, _ = message_send(sender=alice, chat="Private", to="carol", content="hi carol")
    team, _ = message_send(sender=alice, chat="Group", to="Team", content="hi team")
    message_send(sender=bob, chat="Group", to="Team", content="bob stays")
    return private.pk, team.pk


def delete_in_admin(actor, user) -> int:
    client = Client()
    client.force_login(actor)
    return client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"}).status_code


async def test_deleting_a_user_in_the_admin_tells_everyone_and_closes_their_sockets(
    connect, iago, alice, bob, carol, caplog
):
    private, team = await database_sync_to_async(chats)(alice, bob, carol)
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    caplog.set_level(logging.WARNING)
    assert await database_sync_to_async(delete_in_admin)(iago, alice) == 302
    assert await closed_with(a) == CLOSE_SESSION_ENDED
    frames = {sock: await sock.sync() for sock in (b, c)}  # all the deletion published
    removed = {sock: [f["Ids"] for f in frames[sock] if f["Type"] == "Removed"] for sock in (b, c)}
    assert sorted(removed[c]) == [[private], [team]]
    assert removed[b] == [[team]], "not alice's private message to carol"
    for sock in (b, c):
        events = [(f["Event"], f["Name"]) for f in frames[sock] if f["Type"] == "Group"]
        assert ("Deleted", "Mine") in events and ("Left", "Team") in events
    assert await database_sync_to_async(lambda: list(Message.objects.values_list("text", flat=True)))() == ["bob stays"]
    assert await database_sync_to_async(lambda: list(ChatGroup.objects.values_list("name", flat=True)))() == ["Team"]
    [entry] = await database_sync_to_async(lambda: list(AuditEntry.objects.filter(action="delete user")))()
    assert entry.target == "user alice" and entry.actor_id == iago.pk
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_only_a_superuser_deletes_a_superuser_and_nobody_themselves(iago):
    staff = make_user("stan", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="delete_user"))
    staff = get_user_model().objects.get(pk=staff.pk)
    with pytest.raises(ChatError):
        user_delete(actor=staff, user=iago)
    with pytest.raises(ChatError):
        user_delete(actor=iago, user=iago)
    assert delete_in_admin(staff, iago) == 403
    assert get_user_model().objects.filter(pk=iago.pk).exists()


def test_deleting_needs_the_delete_permission(alice, bob):
    with pytest.raises(ChatError):
        user_delete(actor=alice, user=bob)
    assert get_user_model().objects.filter(pk=bob.pk).exists()


def test_deleting_a_user_in_many_groups_is_not_held_up_by_the_join_leave_limit(iago, alice, bob, settings):
    settings.CHAT_GROUP_MOVES_PER_HOUR = 2
    for i in range(4):
        group = ChatGroup.objects.create(name=f"g{i}", owner=bob)
        group.members.add(bob, alice)
    user_delete(actor=iago, user=alice)
    assert not get_user_model().objects.filter(username="alice").exists()
    assert all(list(g.members.values_list("username", flat=True)) == ["bob"] for g in ChatGroup.objects.all())
