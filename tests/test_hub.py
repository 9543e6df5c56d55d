"""What the per-process hub adds: one layer member per process, exact local fan-out,
membership changes applied at once, and sockets that vanish mid-fan-out."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer

from groups import actions as group_actions
from messaging.hub import Hub
from messaging.models import Message
from tests.conftest import settle

pytestmark = pytest.mark.django_db(transaction=True)


class FakeSocket:
    def __init__(self, name: str, hub: Hub, *, fail: bool = False, leave_on_delivery: bool = False) -> None:
        self.socket_id = name
        self.hub = hub
        self.fail = fail
        self.leave_on_delivery = leave_on_delivery
        self.received: list[str] = []
        self.closed = False

    async def deliver(self, text: str) -> None:
        if self.leave_on_delivery:
            await self.hub.leave_all(self)  # the socket closes while the event is being fanned out
        if self.fail:
            raise ConnectionError("gone")
        self.received.append(text)

    async def close_for_policy(self) -> None:
        self.closed = True


@pytest.fixture
async def hub():
    hub = Hub(InMemoryChannelLayer())
    await hub.start()
    yield hub
    await hub.stop()


async def test_a_process_is_one_member_of_each_layer_group(hub):
    sockets = [FakeSocket(f"s{i}", hub) for i in range(50)]
    for sock in sockets:
        await hub.join(sock, "chat.group.1")
    assert hub.layer.groups["chat.group.1"].keys() == {hub.channel}
    await hub.layer.group_send("chat.group.1", {"type": "chat.event", "group": "chat.group.1", "text": "hi"})
    await asyncio.sleep(0.05)
    assert all(sock.received == ["hi"] for sock in sockets)
    for sock in sockets:
        await hub.leave_all(sock)
    assert "chat.group.1" not in hub.layer.groups, "the last local socket gone, the process leaves"


async def test_a_socket_closing_or_failing_mid_fan_out_does_not_stop_the_others(hub):
    before = [FakeSocket(f"a{i}", hub) for i in range(3)]
    leaving = FakeSocket("leaving", hub, leave_on_delivery=True)
    broken = FakeSocket("broken", hub, fail=True)
    after = [FakeSocket(f"b{i}", hub) for i in range(3)]
    for sock in [*before, leaving, broken, *after]:
        await hub.join(sock, "chat.everyone")
    # a failing socket is the consumer's business (it marks itself closed); the hub must carry on
    broken.deliver = _swallowing(broken.deliver)
    await hub.dispatch({"group": "chat.everyone", "text": "news"})
    assert all(sock.received == ["news"] for sock in [*before, *after])
    await hub.dispatch({"group": "chat.everyone", "text": "more"})
    assert leaving.received == ["news"], "gone after it closed"
    assert all(sock.received == ["news", "more"] for sock in after)


def _swallowing(deliver):
    async def wrapper(text):
        try:
            await deliver(text)
        except ConnectionError:
            pass

    return wrapper


async def test_membership_instructions_apply_to_exactly_the_sockets_of_the_group(hub):
    alice_tabs = [FakeSocket("alice1", hub), FakeSocket("alice2", hub)]
    bob = FakeSocket("bob", hub)
    for sock in alice_tabs:
        await hub.join(sock, "chat.user.1")
    await hub.join(bob, "chat.user.2")
    await hub.dispatch({"group": "chat.user.1", "subscribe": "chat.group.9", "text": None})
    await hub.dispatch({"group": "chat.group.9", "text": "team"})
    assert [s.received for s in alice_tabs] == [["team"], ["team"]] and bob.received == []
    await hub.dispatch({"group": "chat.user.1", "text": "read", "skip": "alice1"})
    assert alice_tabs[0].received == ["team"] and alice_tabs[1].received == ["team", "read"]
    await hub.dispatch({"group": "chat.user.1", "unsubscribe": "chat.group.9", "text": None})
    await hub.dispatch({"group": "chat.group.9", "text": "late"})
    assert "late" not in alice_tabs[0].received
    await hub.dispatch({"group": "chat.user.1", "close": True})
    assert all(s.closed for s in alice_tabs) and not bob.closed


@pytest.mark.usefixtures("layer")
async def test_a_join_racing_with_a_stream_of_sends_misses_nothing(connect, alice, bob):
    await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=[])
    a, b = await connect(alice), await connect(bob)
    await settle(a, b)

    async def stream():
        for i in range(40):
            await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": f"m{i}"})
            await asyncio.sleep(0.002)

    sender = asyncio.create_task(stream())
    await asyncio.sleep(0.02)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Team"})
    await sender
    seen: set[int] = set()
    while not await b.nothing(0.3):
        frame = await b.recv()
        if frame["Type"] == "History":
            seen |= {m["Id"] for m in frame["Messages"]}
        elif frame["Type"] == "Message":
            seen.add(frame["Id"])
    stored = set(await database_sync_to_async(lambda: list(Message.objects.values_list("id", flat=True)))())
    assert len(stored) == 40
    assert stored <= seen, f"missed {sorted(stored - seen)}"


@pytest.mark.usefixtures("layer")
async def test_a_leave_racing_with_sends_stops_delivery_once_it_is_through(connect, alice, bob):
    await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=["bob"])
    a, b = await connect(alice), await connect(bob)
    await settle(a, b)
    sender = asyncio.create_task(_send_many(a, "Team", 20))
    await b.send({"Type": "Leave", "Name": "Team"})
    await sender
    await settle(a, b)
    await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "after"})
    await a.expect("Message", Content="after")
    assert await b.nothing()


async def _send_many(sock, group: str, count: int) -> None:
    for i in range(count):
        await sock.send({"Type": "Send", "Chat": "Group", "To": group, "Content": f"x{i}"})
        await asyncio.sleep(0.001)


async def test_the_writer_stores_concurrent_sends_together_and_one_refusal_loses_nothing_else(alice, bob, monkeypatch):
    from chatsite.errors import ChatError
    from messaging import writer as writer_module

    batches: list[int] = []
    real_store = writer_module._store

    async def counting_store(batch):
        batches.append(len(batch))
        return await real_store(batch)

    monkeypatch.setattr(writer_module, "_store", counting_store)
    writer = writer_module.SendWriter()
    sends = [writer.send(sender=alice, chat="Private", to="bob", content=f"m{i}") for i in range(6)]
    sends.insert(3, writer.send(sender=alice, chat="Private", to="nobody", content="lost?"))
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(results[3], ChatError) and results[3].code == "not_found"
    assert [message.text for message, created in results[:3] + results[4:]] == [f"m{i}" for i in range(6)]
    assert sum(batches) == 7 and len(batches) < 7, f"batches: {batches}"
    assert await database_sync_to_async(Message.objects.count)() == 6


@pytest.mark.usefixtures("layer")
async def test_events_during_the_handshake_are_kept_until_the_socket_is_accepted(connect, alice, monkeypatch):
    """A WebSocket cannot send before it is accepted; the hub may deliver to it already."""
    from messaging import events
    from messaging.consumers import ChatConsumer

    real_accept = ChatConsumer.accept

    async def slow_accept(self, *args, **kwargs):
        group = events.user_group(self.user.pk)
        await self.hub.layer.group_send(group, {"type": "chat.event", "group": group, "text": '{"Type": "Early"}'})
        await asyncio.sleep(0.05)  # the hub delivers it now, before the handshake completes
        await real_accept(self, *args, **kwargs)

    monkeypatch.setattr(ChatConsumer, "accept", slow_accept)
    a = await connect(alice, drain=False)
    frames = [await a.recv(), await a.recv()]
    assert {"Type": "Early"} in frames
