"""Muted users and floods cannot broadcast through groups: `Create`, `Join` and `Leave` are
announced to everyone, so they are refused while muted (`Leave` excepted) and rate-limited.

alice, bob and carol chat; iago is the superuser moderator. A refusal goes to its sender only:
each test proves that nobody else heard anything by a later, allowed event arriving next.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from accounts.actions import user_mute
from chatsite import ratelimit
from chatsite.errors import ChatError
from groups import actions as group_actions
from groups.models import ChatGroup
from tests.test_ws_protocol import make_group

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def group_names() -> list[str]:
    return sorted(ChatGroup.objects.values_list("name", flat=True))


async def mute(iago, user) -> None:
    await database_sync_to_async(user_mute)(actor=iago, user=user, duration=timedelta(hours=1), reason="spamming")


# ---- muted users ------------------------------------------------------------------------


async def test_a_muted_user_cannot_create_a_group_and_nobody_hears_of_it(connect, iago, alice, bob, carol):
    await mute(iago, alice)
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    await a.send({"Type": "Create", "Name": "BUY CHEAP PILLS", "List": ["bob", "carol"]})
    error = await a.expect("Error", Code="forbidden", Ref="Create")
    assert "muted until" in error["Detail"] and "spamming" in error["Detail"]
    await c.send({"Type": "Create", "Name": "Book club", "List": []})
    for sock in (a, b, c):
        await sock.expect("Group", Event="Created", Name="Book club")
    assert await group_names() == ["Book club"]


async def test_a_muted_user_cannot_join_but_can_open_their_groups_and_leave(connect, iago, alice, bob, carol):
    await make_group("Team", bob, alice)
    await make_group("Other", bob)
    await mute(iago, alice)
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await a.send({"Type": "Join", "Chat": "Group", "To": "Other"})
    error = await a.expect("Error", Code="forbidden", Ref="Join")
    assert "muted" in error["Detail"]
    await a.send({"Type": "Join", "Chat": "Group", "To": "Team"})  # a member opening it: history only
    await a.expect("History", To="Team")
    await a.send({"Type": "Leave", "Name": "Team"})
    for sock in (a, b):
        await sock.expect("Group", Event="Left", Name="Team", User="alice", Members=["bob"])
    other = await database_sync_to_async(
        lambda: sorted(ChatGroup.objects.get(name="Other").members.values_list("username", flat=True))
    )()
    assert other == ["bob"]


# ---- rate limits --------------------------------------------------------------------------


async def test_group_creation_is_rate_limited_per_user(connect, alice, bob, carol, settings):
    settings.CHAT_GROUP_CREATES_PER_HOUR = 2
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    for name in ("One", "Two"):
        await a.send({"Type": "Create", "Name": name, "List": []})
        for sock in (a, b, c):
            await sock.expect("Group", Event="Created", Name=name)
    await a.send({"Type": "Create", "Name": "Three", "List": ["bob"], "ClientId": "c-3"})
    error = await a.expect("Error", Code="rate_limited", Ref="Create")
    assert "at most 2 an hour" in error["Detail"]
    await c.send({"Type": "Create", "Name": "Carol's", "List": []})  # her own allowance
    for sock in (a, b, c):
        await sock.expect("Group", Event="Created", Name="Carol's")
    assert await group_names() == ["Carol's", "One", "Two"]


async def test_join_and_leave_storms_are_rate_limited_together(connect, alice, bob, carol, settings):
    settings.CHAT_GROUP_MOVES_PER_HOUR = 3
    await make_group("Team", alice, bob)
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    join, leave = {"Type": "Join", "Chat": "Group", "To": "Team"}, {"Type": "Leave", "Name": "Team"}
    for frame, event, replies in [(join, "Joined", 2), (leave, "Left", 1), (join, "Joined", 2)]:
        await c.send(frame)
        await b.expect("Group", Event=event, User="carol")
        assert {(await c.recv())["Type"] for _ in range(replies)} <= {"Group", "History"}
    await c.send(leave)
    error = await c.expect("Error", Code="rate_limited", Ref="Leave")
    assert "at most 3 an hour" in error["Detail"]
    await a.send({"Type": "Create", "Name": "Next", "List": []})
    for sock in (b, c):
        await sock.expect("Group", Event="Created", Name="Next")
    members = await database_sync_to_async(lambda: list(ChatGroup.objects.get(name="Team").members.all()))()
    assert carol in members


def test_moderators_are_not_rate_limited(iago, alice, settings):
    settings.CHAT_GROUP_CREATES_PER_HOUR = 1
    settings.CHAT_GROUP_MOVES_PER_HOUR = 1
    for name in ("One", "Two", "Three"):
        group_actions.group_create(owner=iago, name=name, member_usernames=[])
    group_actions.group_create(owner=alice, name="Hers", member_usernames=[])
    with pytest.raises(ChatError) as refused:
        group_actions.group_create(owner=alice, name="Again", member_usernames=[])
    assert refused.value.code == "rate_limited"
    hers = ChatGroup.objects.get(name="Hers")
    for _ in range(3):
        group_actions.group_join(user=iago, group=hers)
        group_actions.group_leave(user=iago, group=hers)
    assert ChatGroup.objects.count() == 4


# ---- the buckets ----------------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate_up_to_its_burst(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    bucket = ratelimit.TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 3600
    assert sum(bucket.take() for _ in range(10)) == 3


def test_keys_have_their_own_buckets_and_threads_cannot_overdraw_one():
    limiter = ratelimit.RateLimiter(per_hour=50)
    results: list[bool] = []
    lock = threading.Lock()

    def hammer():
        taken = [limiter.take("alice") for _ in range(20)]
        with lock:
            results.extend(taken)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 50
    assert limiter.take("bob")


def test_a_flood_of_keys_does_not_grow_memory_without_bound(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    limiter = ratelimit.RateLimiter(per_hour=3600, max_keys=100)
    for key in range(100):
        limiter.take(key)
    now[0] += 2  # every bucket is full again: the same as having none
    for key in range(100, 10_000):
        limiter.take(key)
        now[0] += 2
    assert len(limiter._buckets) <= 100
    assert limiter.take("fresh")
