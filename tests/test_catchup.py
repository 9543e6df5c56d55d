"""What the layer loses, the hubs find in the database (messaging.catchup): lost publishes, lost
membership instructions, the join window between two processes, and the cursor a client keeps."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from groups import actions as group_actions
from groups.models import ChatGroup, layer_group_for
from messaging import actions, catchup, events
from messaging.events import collecting, run_action
from messaging.hub import Hub, get_hub
from messaging.seq import seq_committed
from tests.test_resume import resume

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_sweep(monkeypatch):
    monkeypatch.setattr(catchup, "SWEEP_EVERY", 0.05)
    monkeypatch.setattr(catchup, "SWEEP_LAG", 0.1)
    monkeypatch.setattr(catchup, "SYNCED_EVERY", 0.05)


@pytest.fixture
def no_sweep(monkeypatch):
    monkeypatch.setattr(catchup, "SWEEP_EVERY", 3600)


async def online(connect, user):
    """A socket that sent `Connect` and got `State`: the sweep moves its mark."""
    sock = await connect(user)
    await sock.send({"Type": "Connect"})
    await sock.next_of("State")
    return sock


def unpublished(fn, **kwargs):
    """Run an action and throw its events away: a publish lost after the commit."""
    return collecting(fn, **kwargs)[0]


async def swept_past(seq: int) -> None:
    hub = await get_hub()
    async with asyncio.timeout(5):
        while hub.catchup.swept is None or hub.catchup.swept < seq:
            await asyncio.sleep(0.02)


async def test_a_change_whose_publish_was_lost_reaches_exactly_the_sockets_that_should_have_it(
    fast_sweep, connect, alice, bob, carol
):
    a, b, c = [await online(connect, user) for user in (alice, bob, carol)]
    message, _ = await database_sync_to_async(unpublished)(
        actions.message_send, sender=bob, chat="Private", to="alice", content="lost on the way"
    )
    for sock in (a, b):
        frame = await sock.next_of("Message", Content="lost on the way")
        assert frame["Seq"] == message.seq
    await swept_past(message.seq)
    frames = await c.drain()
    assert not [f for f in frames if f["Type"] == "Message"], "nobody else"


async def test_nothing_is_delivered_twice_when_nothing_was_lost(fast_sweep, connect, alice, bob):
    a, b = await online(connect, alice), await online(connect, bob)
    await b.send({"Type": "Send", "Chat": "Private", "To": "alice", "Content": "once"})
    frame = await a.next_of("Message", Content="once")
    await swept_past(frame["Seq"])
    assert (await get_hub()).catchup.delivered == 0
    assert not [f for f in await a.drain() if f["Type"] == "Message"]


async def test_a_lost_removal_is_delivered_too(fast_sweep, connect, alice, bob, iago):
    a = await online(connect, alice)
    message = await database_sync_to_async(
        lambda: actions.message_send(sender=bob, chat="Private", to="alice", content="x")[0]
    )()
    await a.next_of("Message", Id=message.pk)
    await database_sync_to_async(unpublished)(actions.messages_remove, actor=iago, message_ids=[message.pk])
    removed = await a.next_of("Removed")
    assert removed["Ids"] == [message.pk] and removed["By"] == "iago"


async def test_a_lost_subscribe_is_repaired_and_the_group_replayed(fast_sweep, connect, alice, bob):
    a, b = await online(connect, alice), await online(connect, bob)
    await database_sync_to_async(unpublished)(
        group_actions.group_create, owner=bob, name="Team", member_usernames=["alice"]
    )
    await b.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "first in Team"})
    for sock in (a, b):  # neither socket was subscribed: the sweep adds them and replays
        await sock.next_of("Message", Content="first in Team")
    group = await database_sync_to_async(ChatGroup.objects.get)(name="Team")
    assert layer_group_for(group.pk) in (await get_hub()).members


async def test_a_lost_unsubscribe_is_repaired(fast_sweep, connect, alice, bob):
    await database_sync_to_async(group_actions.group_create)(owner=bob, name="Team", member_usernames=["alice"])
    a, b = await online(connect, alice), await online(connect, bob)
    hub = await get_hub()
    group = await database_sync_to_async(ChatGroup.objects.get)(name="Team")
    await database_sync_to_async(unpublished)(group_actions.group_leave, user=alice, group=group)
    async with asyncio.timeout(5):  # the sweep takes alice's socket out of the group
        while any(getattr(s, "user", None) == alice for s in hub.members.get(group.layer_group, ())):
            await asyncio.sleep(0.02)
    await b.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "alice left"})
    frame = await b.next_of("Message", Content="alice left")
    await swept_past(frame["Seq"])
    assert not [f for f in await a.drain() if f["Type"] == "Message"]


class RemoteSocket:
    """bob's socket on another server process (hub B): what the hub needs of a socket."""

    def __init__(self, user, hub: Hub) -> None:
        self.user, self.hub, self.socket_id, self.closed = user, hub, f"{hub.channel}#1", False
        self.frames: list[str] = []

    def deliver_now(self, frame) -> bool:
        return False

    async def deliver(self, text: str) -> None:
        self.frames.append(text)

    async def close_for(self, code: int) -> None:
        self.closed = True


async def test_a_join_on_one_process_misses_nothing_on_another_that_subscribes_late(no_sweep, connect, alice, bob):
    """bob's socket is on process B. He joins a group; B reads the `subscribe` late, and alice
    (on process A) sends meanwhile: B was not in the group's layer group then, so those never
    reached it. B replays the group to bob's socket from its mark when it subscribes."""
    await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=[])
    a = await online(connect, alice)
    hub_b = Hub(get_channel_layer())
    await hub_b.start()
    try:
        bob_there = RemoteSocket(bob, hub_b)
        await hub_b.open(bob_there, [events.EVERYONE, events.user_group(bob.pk)])
        await hub_b.finish_open(bob_there, [])
        hub_b.catchup.hold(bob_there, await database_sync_to_async(seq_committed)(), ready=True)
        held, release = [], asyncio.Event()
        real_dispatch = hub_b.dispatch

        async def late(event):  # B is busy: it reads the instruction only once released
            if event.get("subscribe"):
                held.append(event)
                await release.wait()
            await real_dispatch(event)

        hub_b.dispatch = late
        await run_action(group_actions.group_join, user=bob, group="Team")
        async with asyncio.timeout(5):
            while not held:
                await asyncio.sleep(0.01)
        for i in range(3):
            await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": f"while B was busy {i}"})
            await a.next_of("Message", Content=f"while B was busy {i}")
        release.set()
        await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "after"})
        await a.next_of("Message", Content="after")
        wanted = {f"while B was busy {i}" for i in range(3)} | {"after"}
        async with asyncio.timeout(5):
            while not wanted <= {_content(text) for text in bob_there.frames}:
                await asyncio.sleep(0.02)
    finally:
        await hub_b.stop()


def _content(text: str) -> str | None:
    return json.loads(text).get("Content")


async def test_the_cursor_to_resume_from_is_the_last_synced_not_the_highest_seq_seen(
    fast_sweep, monkeypatch, connect, alice, bob
):
    """Frames can arrive out of order: here 11 arrives and 10 (its publish lost) has not yet
    been swept when the socket drops. Resuming from the highest Seq seen would skip 10; from
    the last `Synced` it comes."""
    a = await online(connect, alice)
    await run_action(actions.message_send, sender=bob, chat="Private", to="alice", content="nine")
    nine = await a.next_of("Message", Content="nine")
    synced = await a.next_of("Synced")
    assert synced["Seq"] >= nine["Seq"]
    monkeypatch.setattr(catchup, "SWEEP_LAG", 3600)  # the sweep stays behind from here
    ten, _ = await database_sync_to_async(unpublished)(
        actions.message_send, sender=bob, chat="Private", to="alice", content="ten"
    )
    await run_action(actions.message_send, sender=bob, chat="Private", to="alice", content="eleven")
    eleven = await a.next_of("Message", Content="eleven")
    assert eleven["Seq"] > ten.seq
    await a.close()
    again = await connect(alice)
    _, from_highest, _ = await resume(again, eleven["Seq"])
    assert from_highest == [], "what a client resuming from the highest Seq it saw would get"
    _, from_synced, _ = await resume(again, synced["Seq"])
    assert [f["Content"] for f in from_synced] == ["ten", "eleven"]


async def test_sockets_are_told_their_mark_as_things_change(fast_sweep, connect, alice, bob):
    a = await online(connect, alice)
    await database_sync_to_async(lambda: actions.message_send(sender=bob, chat="Private", to="bob", content="x"))()
    synced = await a.next_of("Synced")
    assert synced["Seq"] >= 1


async def test_a_publish_that_fails_after_commit_is_delivered_by_the_sweep_and_logged_once(
    fast_sweep, monkeypatch, caplog, connect, alice, bob
):
    monkeypatch.setattr(events, "_failing", False)
    a = await online(connect, alice)
    layer = get_channel_layer()
    real_send = layer.group_send

    async def flaky(group, message):  # the layer refuses these sends (Redis down for them)
        if group.startswith("chat.user.") and message.get("text"):
            raise ConnectionError("Redis is down")
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", flaky)
    for i in range(3):
        await run_action(actions.message_send, sender=bob, chat="Private", to="alice", content=f"p{i}")
    for i in range(3):
        await a.next_of("Message", Content=f"p{i}")
    assert caplog.text.count("publishing to") == 1, "one line for the outage, not one per event"
