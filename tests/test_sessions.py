"""A socket lives only as long as its session: logout, a new password, expiry, deactivation.

alice chats in two browsers (two sessions), bob is someone else online, iago is a superuser.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.actions import user_ban
from accounts.models import UserSession
from groups.models import ChatGroup
from messaging.models import Message
from messaging.protocol import CLOSE_POLICY, CLOSE_SESSION_ENDED
from tests.conftest import eventually, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def browser(user) -> Client:
    """A logged-in browser: its session is the one its sockets are opened with."""
    client = Client()
    client.force_login(user)
    return client


def key_of(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


async def closed_with(sock, timeout: float = 5) -> int:
    """The close code the socket gets, skipping whatever frames arrive before it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        output = await sock.comm.receive_output(timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
        if output["type"] == "websocket.close":
            return output.get("code")


async def still_open(sock) -> None:
    """A round trip proves the socket works (and that nothing closed it before)."""
    await sock.send({"Type": "Connect"})
    frames = [await sock.recv()]
    while frames[-1]["Type"] != "State":
        frames.append(await sock.recv())


async def test_logging_out_closes_the_sockets_of_that_session_and_no_other(connect, alice, bob):
    first, second = await database_sync_to_async(browser)(alice), await database_sync_to_async(browser)(alice)
    a1 = await connect(alice, session=key_of(first))
    a2 = await connect(alice, session=key_of(second))
    b = await connect(bob)
    response = await database_sync_to_async(first.post)("/accounts/logout/")
    assert response.status_code == 302
    assert await closed_with(a1) == CLOSE_SESSION_ENDED
    await still_open(a2)
    await still_open(b)
    assert not await database_sync_to_async(UserSession.objects.filter(session_key=key_of(first)).exists)()


async def test_a_new_password_closes_every_socket_of_the_user_and_ends_their_sessions(connect, alice, bob, iago):
    first, second = await database_sync_to_async(browser)(alice), await database_sync_to_async(browser)(alice)
    a1 = await connect(alice, session=key_of(first))
    a2 = await connect(alice, session=key_of(second))
    b = await connect(bob)
    admin = await database_sync_to_async(browser)(iago)
    page = await database_sync_to_async(admin.post)(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "a-brand-new-secret-9", "password2": "a-brand-new-secret-9", "usable_password": "true"},
    )
    assert page.status_code == 302, page.content[:500]
    assert await closed_with(a1) == CLOSE_SESSION_ENDED
    assert await closed_with(a2) == CLOSE_SESSION_ENDED
    await still_open(b)
    alices = await database_sync_to_async(Session.objects.filter(pk__in=[key_of(first), key_of(second)]).count)()
    assert alices == 0, "her old sessions are gone from the store"
    assert (await connect(alice, session=key_of(first), expect_ok=False))[0] is False


async def test_saving_an_account_inactive_by_any_path_closes_its_sockets(connect, alice, bob):
    a, b = await connect(alice), await connect(bob)
    alice.is_active = False
    await database_sync_to_async(alice.save)()
    assert await closed_with(a) == CLOSE_POLICY
    await still_open(b)


async def test_a_deactivation_behind_saves_back_is_caught_by_the_next_command(connect, alice, bob):
    await database_sync_to_async(ChatGroup.objects.create)(name="Team", owner=bob)
    a = await connect(alice)
    await database_sync_to_async(get_user_model().objects.filter(pk=alice.pk).update)(is_active=False)
    await a.send({"Type": "Join", "Chat": "Group", "To": "Team"})
    assert await closed_with(a) == CLOSE_POLICY
    group = await database_sync_to_async(ChatGroup.objects.get)(name="Team")
    assert not await database_sync_to_async(group.members.filter(pk=alice.pk).exists)()


COMMANDS = [
    {"Type": "Connect"},
    {"Type": "Join", "Chat": "Group", "To": "Team"},
    {"Type": "Join", "Chat": "Private", "To": "bob"},
    {"Type": "Create", "Name": "Spam", "List": ["bob"]},
    {"Type": "Delete", "Name": "Mine"},
    {"Type": "Leave", "Name": "Team"},
    {"Type": "Read", "Chat": "Private", "To": "bob", "Id": 1},
    {"Type": "Report", "Id": 1, "Reason": "x"},
]


@pytest.mark.parametrize("frame", COMMANDS, ids=lambda frame: frame["Type"])
async def test_every_command_checks_the_session_first(connect, alice, bob, frame):
    await database_sync_to_async(ChatGroup.objects.create)(name="Team", owner=bob)
    await database_sync_to_async(ChatGroup.objects.create)(name="Mine", owner=alice)
    client = await database_sync_to_async(browser)(alice)
    a, b = await connect(alice, session=key_of(client)), await connect(bob)
    await database_sync_to_async(Session.objects.filter(pk=key_of(client)).delete)()  # ended behind our back
    await a.send(frame)
    assert await closed_with(a) == CLOSE_SESSION_ENDED
    await a.close()  # what the client does next; its handler has ended: whatever it did is published
    assert await b.sync() == [{"Type": "Presence", "Username": "alice", "Online": False}], "nothing else"
    names = await database_sync_to_async(lambda: sorted(ChatGroup.objects.values_list("name", flat=True)))()
    assert names == ["Mine", "Team"]


async def test_a_send_after_the_session_expired_is_refused_and_closes(connect, alice, bob):
    client = await database_sync_to_async(browser)(alice)
    soon = timezone.now() + timedelta(seconds=1)
    await database_sync_to_async(Session.objects.filter(pk=key_of(client)).update)(expire_date=soon)
    a = await connect(alice, session=key_of(client))
    await eventually(lambda: timezone.now() > soon)  # the expiry itself
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": "too late"})
    assert await closed_with(a) == CLOSE_SESSION_ENDED
    assert not await database_sync_to_async(Message.objects.exists)()


async def test_an_idle_socket_whose_session_expired_closes_at_the_periodic_check(connect, alice, settings):
    settings.CHAT_SESSION_CHECK_SECONDS = 0.2
    client = await database_sync_to_async(browser)(alice)
    a = await connect(alice, session=key_of(client))
    past = timezone.now() - timedelta(seconds=1)
    await database_sync_to_async(Session.objects.filter(pk=key_of(client)).update)(expire_date=past)
    assert await closed_with(a) == CLOSE_SESSION_ENDED


async def test_a_user_has_at_most_the_configured_number_of_sockets(connect, alice, bob, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 3
    sockets = [await connect(alice) for _ in range(3)]
    connected, _ = await connect(alice, expect_ok=False)
    assert connected is False
    await connect(bob)  # others are not affected
    await sockets[0].close()
    await connect(alice)  # room again once one closed


async def test_a_users_sockets_share_one_frame_budget(connect, alice, settings):
    settings.CHAT_RATE_BURST, settings.CHAT_USER_RATE_BURST, settings.CHAT_USER_RATE_PER_SECOND = 100, 6, 1
    sockets = [await connect(alice) for _ in range(3)]
    for sock in sockets:
        for _ in range(4):
            await sock.send({"Type": "Nope"})
    codes = [(await sock.recv())["Code"] for sock in sockets for _ in range(4)]
    assert codes.count("rate_limited") >= 5, codes  # 12 frames, 6 (+ a token or so) allowed
    assert codes.count("bad_request") >= 6


def _sessions_ended_by_ban(others: int, iago, victim) -> int:
    for i in range(others):
        browser(make_user(f"someone{victim.pk}x{i}"))
    browser(victim)
    with CaptureQueriesContext(connection) as queries:
        user_ban(actor=iago, user=victim, reason="spam")
    return len(queries)


def test_a_ban_ends_exactly_the_users_sessions_without_reading_the_others(iago):
    few, many = make_user("few"), make_user("many")
    assert _sessions_ended_by_ban(2, iago, few) == _sessions_ended_by_ban(30, iago, many)
    assert not UserSession.objects.filter(user__in=[few, many]).exists()
    assert Session.objects.count() == 32, "everyone else stays logged in"
