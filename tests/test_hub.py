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
from tests.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)


class FakeSocket:
    def __init__(self, name: str, hub: Hub, *, fail: bool = False, leave_on_delivery: bool = False) -> None:
        self.socket_id = name
        self.hub = hub
        self.fail = fail
        self.leave_on_delivery = leave_on_delivery
        self.received: list[str] = []
        self.closed = False

    def deliver_now(self, frame) -> bool:
        return False  # no direct writer: every frame goes through deliver()

    async def deliver(self, text: str) -> None:
        if self.leave_on_delivery:
            await self.hub.leave_all(self)  # the socket closes while the event is being fanned out
        if self.fail:
            raise ConnectionError("gone")
        self.received.append(text)

    async def close_for(self, code: int) -> None:
        self.closed = code


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
    sender = asyncio.create_task(_send_many(a, "Team", 40))
    await asyncio.sleep(0.02)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Team"})
    await sender
    echoed = await _messages_until(a, lambda ids: len(ids) == 40)  # all stored, and sent on
    seen = await _messages_until(b, lambda ids: echoed <= ids, history=True)
    assert echoed <= seen, f"missed {sorted(echoed - seen)}"


@pytest.mark.usefixtures("layer")
async def test_a_leave_racing_with_sends_stops_delivery_once_it_is_through(connect, alice, bob):
    await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=["bob"])
    a, b = await connect(alice), await connect(bob)
    sender = asyncio.create_task(_send_many(a, "Team", 20))
    await b.send({"Type": "Leave", "Name": "Team"})
    await sender
    await _messages_until(a, lambda ids: len(ids) == 20)
    await _until_frame(b, lambda f: f["Type"] == "Group" and f["Event"] == "Left")
    await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "after"})
    await _until_frame(a, lambda f: f.get("Content") == "after")
    # A round trip on bob's socket: whatever was sent to it before is in by its answer.
    await b.send({"Type": "Connect"})
    before_state = await _until_frame(b, lambda f: f["Type"] == "State")
    assert not [f for f in before_state if f.get("Content") == "after"]


async def _send_many(sock, group: str, count: int) -> None:
    for i in range(count):
        await sock.send({"Type": "Send", "Chat": "Group", "To": group, "Content": f"x{i}"})
        await asyncio.sleep(0.002)


async def _messages_until(sock, done, *, history: bool = False) -> set[int]:
    """The ids of the `Message` frames (and `History` pages) a socket gets, until `done(ids)`."""
    ids: set[int] = set()
    async with asyncio.timeout(10):
        while not done(ids):
            frame = await sock.recv(timeout=10)
            if frame["Type"] == "Message":
                ids.add(frame["Id"])
            elif history and frame["Type"] == "History":
                ids |= {m["Id"] for m in frame["Messages"]}
    return ids


async def _until_frame(sock, condition) -> list[dict]:
    """Every frame up to and including the first for which `condition` holds."""
    frames = []
    async with asyncio.timeout(10):
        while not frames or not condition(frames[-1]):
            frames.append(await sock.recv(timeout=10))
    return frames


async def test_the_writer_stores_concurrent_sends_together_and_one_refusal_loses_nothing_else(alice, bob, monkeypatch):
    from chatsite.errors import ChatError
    from messaging import writer as writer_module

    batches: list[int] = []
    real_store = writer_module._store

    def counting_store(*, batch):
        batches.append(len(batch))
        return real_store(batch=batch)

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


async def test_a_closed_socket_is_not_put_back_by_a_late_instruction(hub):
    sock = FakeSocket("s", hub)
    await hub.join(sock, "chat.user.1")
    targets_snapshot = list(hub.members["chat.user.1"])
    await hub.leave_all(sock)
    for target in targets_snapshot:  # what a dispatch already under way would do next
        await hub.join(target, "chat.group.9")
    assert "chat.group.9" not in hub.members and sock not in hub.groups_of


async def test_a_failed_group_add_leaves_no_trace(hub, monkeypatch):
    sock = FakeSocket("s", hub)
    real_add = hub.layer.group_add

    async def failing_add(group, channel):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(hub.layer, "group_add", failing_add)
    with pytest.raises(ConnectionError):
        await hub.join(sock, "chat.group.1")
    monkeypatch.setattr(hub.layer, "group_add", real_add)
    await hub.join(sock, "chat.group.1")
    assert hub.layer.groups["chat.group.1"].keys() == {hub.channel}


async def test_instructions_that_arrive_while_a_socket_opens_win_over_its_database_read(hub):
    sock = FakeSocket("s", hub)
    await hub.open(sock, ["chat.user.1"])
    # the database said "member of 9 and 10", but a Leave of 9 and a Join of 11 came meanwhile
    await hub.dispatch({"group": "chat.user.1", "unsubscribe": "chat.group.9"})
    await hub.dispatch({"group": "chat.user.1", "subscribe": "chat.group.11"})
    await hub.finish_open(sock, ["chat.user.1", "chat.group.9", "chat.group.10"])
    assert hub.groups_of[sock] == {"chat.user.1", "chat.group.10", "chat.group.11"}


@pytest.mark.usefixtures("layer")
async def test_a_ban_while_the_socket_opens_refuses_the_handshake(connect, alice, monkeypatch):
    from django.contrib.auth import get_user_model

    from accounts.actions import user_ban

    iago = await database_sync_to_async(get_user_model().objects.create_superuser)("iago", "i@x.org", "pw")
    real_finish = Hub.finish_open

    async def ban_then_finish(self, sock, groups):
        # the ban commits and its `close` reaches the hub after the socket's groups were read
        await database_sync_to_async(user_ban)(actor=iago, user=alice, reason="spam")
        for _ in range(300):  # until the hub has applied it (Redis pub/sub: a few ms, 100 ms at first)
            if sock.refuse_with is not None:
                break
            await asyncio.sleep(0.01)
        await real_finish(self, sock, groups)

    monkeypatch.setattr(Hub, "finish_open", ban_then_finish)
    connected, code = await connect(alice, expect_ok=False)
    assert not connected and code == 4003


@pytest.mark.usefixtures("layer")
async def test_a_server_error_is_answered_and_the_socket_stays(connect, alice, bob, monkeypatch):
    from django.db import OperationalError

    from groups import actions as groups_actions

    def broken(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(groups_actions, "group_create", broken)
    a = await connect(alice)
    await a.send({"Type": "Create", "Name": "Team", "List": []})
    await a.expect("Error", Code="server_error", Ref="Create")
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": "still here"})
    await a.expect("Message", Content="still here")


async def test_the_writer_answers_every_sender_even_if_one_went_away(alice, bob):
    from messaging.writer import SendWriter

    writer = SendWriter()
    first = asyncio.ensure_future(writer.send(sender=alice, chat="Private", to="bob", content="gone"))
    second = asyncio.ensure_future(writer.send(sender=alice, chat="Private", to="bob", content="kept"))
    await asyncio.sleep(0)
    first.cancel()
    message, created = await asyncio.wait_for(second, 5)
    assert created and message.text == "kept"


async def test_a_message_whose_commit_fails_does_not_sink_the_rest_of_its_batch(alice, bob, carol, monkeypatch):
    from django.db import OperationalError

    from messaging import actions
    from messaging.writer import SendWriter

    real_send = actions.message_send

    def flaky(**kwargs):
        if kwargs["content"] == "bad":
            raise OperationalError("disk I/O error")
        return real_send(**kwargs)

    monkeypatch.setattr(actions, "message_send", flaky)
    writer = SendWriter()
    results = await asyncio.gather(
        writer.send(sender=alice, chat="Private", to="bob", content="good"),
        writer.send(sender=carol, chat="Private", to="bob", content="bad"),
        return_exceptions=True,
    )
    assert results[0][0].text == "good" and isinstance(results[1], OperationalError)
    assert await database_sync_to_async(lambda: list(Message.objects.values_list("text", flat=True)))() == ["good"]


def test_hub_channels_have_room_for_bursts():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert layer.get_capacity("hub..inmemory!abc") == 100_000
    assert layer.get_capacity("specific..inmemory!abc") == 1000


async def test_when_a_batch_commit_fails_every_sender_hears_its_own_outcome(alice, bob, monkeypatch):
    """The batch's commit fails (a deferred foreign key: the group was deleted under it); each
    message is then stored alone, and each sender gets its own outcome, not its neighbour's."""
    from groups.models import ChatGroup
    from messaging import actions
    from messaging.writer import SendWriter

    def make_room():
        room = ChatGroup.objects.create(name="Room", owner=alice)
        room.members.add(alice)

    await database_sync_to_async(make_room)()
    real_target = actions.send_target
    deleted = []

    def deleted_meanwhile(**kwargs):
        target = real_target(**kwargs)
        if kwargs["chat"] == "Group":  # deleted inside the transaction: its commit fails
            deleted.append(ChatGroup.objects.filter(name="Room").delete())
        return target

    monkeypatch.setattr(actions, "send_target", deleted_meanwhile)
    writer = SendWriter()
    results = await asyncio.gather(
        writer.send(sender=alice, chat="Group", to="Room", content="hi"),
        writer.send(sender=alice, chat="Private", to="bob", content="x"),
        return_exceptions=True,
    )
    assert deleted, "the group was deleted inside the batch"
    stored = await database_sync_to_async(lambda: set(Message.objects.values_list("text", flat=True)))()
    for content, result in zip(["hi", "x"], results):
        if isinstance(result, Exception):
            assert content not in stored, f"{content!r} was refused but stored"
        else:
            assert result[0].text == content and content in stored, f"{content!r} got {result!r}"
    assert results[1][0].text == "x"


# ---- lost events: the heartbeat ----------------------------------------------------------


async def test_a_lost_heartbeat_is_counted_as_a_gap_and_nobody_is_closed(hub):
    sockets = [FakeSocket(f"s{i}", hub) for i in range(3)]
    for sock in sockets:
        await hub.join(sock, "chat.everyone")
    beat = {"type": "chat.event", "group": hub.heartbeat_group}
    await hub.dispatch({**beat, "heartbeat": 1})
    await hub.dispatch({**beat, "heartbeat": 2})
    assert hub.gaps == 0
    await hub.dispatch({**beat, "heartbeat": 4})  # 3 never came: events may have been lost too
    assert hub.gaps == 1, "the sweep delivers what was lost; the sockets stay open"
    assert not any(sock.closed for sock in sockets)


@pytest.fixture
async def beating_hub(monkeypatch):
    """A started hub whose heartbeat runs fast (every 20 ms)."""
    from messaging import hub as hub_module

    monkeypatch.setattr(hub_module, "HEARTBEAT_EVERY", 0.02)
    monkeypatch.setattr(hub_module, "REJOIN_BACKOFF_MIN", 0.05)
    hub = Hub(InMemoryChannelLayer())
    await hub.start()
    yield hub
    await hub.stop()


async def test_heartbeats_go_round_through_the_layer_and_an_outage_shows_as_a_gap(beating_hub, monkeypatch):
    hub = beating_hub
    sock = FakeSocket("s", hub)
    await hub.join(sock, "chat.everyone")
    await eventually(lambda: hub._beat_seen >= 3)
    assert hub.gaps == 0, "beats arrive, in order"
    real_send = hub.layer.group_send

    async def down(group, message):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(hub.layer, "group_send", down)
    sent = hub._beats_sent
    await eventually(lambda: hub._beats_sent >= sent + 2)  # beats that cannot be sent
    monkeypatch.setattr(hub.layer, "group_send", real_send)
    await eventually(lambda: hub.gaps == 1)
    assert not sock.closed


def test_daphne_can_send_the_resync_close_code():
    """autobahn refuses close codes outside 1000 and 3000-4999 (1012 raised, and the socket
    stayed open but deaf)."""
    from autobahn.websocket.protocol import WebSocketProtocol

    from messaging.protocol import CLOSE_POLICY, CLOSE_RESYNC, CLOSE_SESSION_ENDED

    sent = []
    protocol = WebSocketProtocol()
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.sendCloseFrame = lambda code=None, reasonUtf8=None, isReply=False: sent.append(code)
    for code in (CLOSE_RESYNC, CLOSE_POLICY, CLOSE_SESSION_ENDED):
        protocol.state = WebSocketProtocol.STATE_OPEN
        protocol.sendClose(code=code)
    assert sent == [CLOSE_RESYNC, CLOSE_POLICY, CLOSE_SESSION_ENDED]


async def test_duplicate_or_stale_heartbeats_are_no_gap(hub):
    sock = FakeSocket("s", hub)
    await hub.join(sock, "chat.everyone")
    beat = {"type": "chat.event", "group": hub.heartbeat_group}
    for number in (1, 2, 2, 1, 3):
        await hub.dispatch({**beat, "heartbeat": number})
    assert hub.gaps == 0 and not sock.closed


async def test_a_hub_whose_first_start_failed_starts_on_the_next_try(monkeypatch):
    layer = InMemoryChannelLayer()
    hub = Hub(layer)
    real_add = layer.group_add
    failures = [ConnectionError("Redis is not up yet")]

    async def flaky_add(group, channel):
        if failures:
            raise failures.pop()
        await real_add(group, channel)

    monkeypatch.setattr(layer, "group_add", flaky_add)
    with pytest.raises(ConnectionError):
        await hub.start()
    await hub.start()
    try:
        assert hub.channel and len(hub._tasks) == 5 and not any(task.done() for task in hub._tasks)
    finally:
        await hub.stop()


async def test_when_beats_stop_coming_back_the_hub_rejoins_every_group_until_they_do(beating_hub, monkeypatch):
    """A restarted Redis, or a layer's expiry, drops the process from all its groups: no beat
    comes back, so the watchdog joins them all again, and keeps trying while that fails."""
    hub = beating_hub
    sock = FakeSocket("s", hub)
    await hub.join(sock, "chat.group.1")
    await eventually(lambda: hub._beat_seen >= 2)
    real_add = hub.layer.group_add
    failing = True

    async def flaky_add(group, channel):
        if failing:
            raise ConnectionError("Redis is restarting")
        await real_add(group, channel)

    monkeypatch.setattr(hub.layer, "group_add", flaky_add)
    for group in (hub.heartbeat_group, "chat.group.1"):  # what a Redis restart does
        await hub.layer.group_discard(group, hub.channel)
    await eventually(lambda: hub.deaf and hub.rejoins >= 2)  # a failed rejoin does not stop it
    failing = False
    await eventually(lambda: not hub.deaf)
    assert hub.channel in hub.layer.groups["chat.group.1"], "back in its groups"
    await hub.layer.group_send("chat.group.1", {"type": "chat.event", "group": "chat.group.1", "text": "hi"})
    await eventually(lambda: sock.received == ["hi"])


async def test_a_failing_layer_is_retried_with_back_off_and_reported_once(caplog):
    layer = InMemoryChannelLayer()
    calls = 0

    async def broken_receive(channel):
        nonlocal calls
        calls += 1
        raise ConnectionError("Redis is down")

    hub = Hub(layer)
    await hub.start()
    try:
        hub_receive, layer.receive = layer.receive, broken_receive
        hub._tasks[0].cancel()  # the receive loop already waits on the working receive: restart it
        hub._tasks[0] = asyncio.create_task(hub._receive_loop())
        await asyncio.sleep(0.5)
        assert 2 <= calls <= 6, f"{calls} attempts in 0.5 s: 50 ms, doubling"
        assert hub.layer_ok is False
        warnings = [r for r in caplog.records if "channel layer fails" in r.getMessage()]
        assert len(warnings) == 1
        layer.receive = hub_receive
        await hub.layer.group_send(hub.heartbeat_group, {"type": "chat.event", "group": "x", "text": None})
        async with asyncio.timeout(8):
            while not hub.layer_ok:
                await asyncio.sleep(0.05)
    finally:
        await hub.stop()
