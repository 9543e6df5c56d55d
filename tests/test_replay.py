"""A replay (`Connect` with `Since`) is written a batch at a time, each once the last has left."""

from __future__ import annotations

import asyncio
import functools
import json
import types

import pytest
from channels.db import database_sync_to_async

from messaging import consumers, protocol, selectors
from messaging.actions import message_send
from messaging.catchup import CatchUp

pytestmark = pytest.mark.django_db(transaction=True)


class SlowReader:
    """A DirectWriter whose peer has taken nothing until `read()` (or left, with `leave()`)."""

    def __init__(self) -> None:
        self.backlog_bytes: int | None = consumers.REPLAY_BACKLOG + 1
        self.asked = 0  # how often the replay looked at the backlog

    def backlog(self) -> int | None:
        self.asked += 1
        return self.backlog_bytes

    def read(self) -> None:
        self.backlog_bytes = 0

    def leave(self) -> None:
        self.backlog_bytes = None


def replaying_socket(user, reader: SlowReader) -> tuple[consumers.ChatConsumer, list[dict]]:
    sent: list[dict] = []
    sock = consumers.ChatConsumer()
    sock.user, sock.direct, sock.closed = user, reader, False
    sock.hub = types.SimpleNamespace(catchup=CatchUp(hub=None))

    async def send(text_data: str) -> None:
        sent.append(json.loads(text_data))

    sock.send = send
    return sock, sent


async def wait_until(condition, timeout: float = 3) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def five_messages(alice, bob, monkeypatch):
    for i in range(5):
        message_send(sender=bob, chat="Private", to="alice", content=f"m{i}")
    monkeypatch.setattr(selectors, "message_list_after", functools.partial(selectors.message_list_after, limit=2))


@pytest.mark.usefixtures("five_messages")
async def test_a_replay_waits_for_a_slow_reader_between_batches(alice):
    reader = SlowReader()
    sock, sent = replaying_socket(alice, reader)
    replay = asyncio.create_task(sock.on_connect(protocol.Connect(since=0)))
    await wait_until(lambda: len(sent) == 3)  # State and the first batch of two
    asked = reader.asked
    await wait_until(lambda: reader.asked >= asked + 3)  # it looked again, and again, and waited on
    assert not replay.done()
    assert len(sent) == 3, "nothing more while the reader reads nothing"
    reader.read()
    await asyncio.wait_for(replay, 3)
    assert [f.get("Content") for f in sent[1:]] == [f"m{i}" for i in range(5)]


@pytest.mark.usefixtures("five_messages")
async def test_a_replay_stops_when_the_reader_leaves(alice):
    reader = SlowReader()
    sock, sent = replaying_socket(alice, reader)
    replay = asyncio.create_task(sock.on_connect(protocol.Connect(since=0)))
    await wait_until(lambda: len(sent) == 3)
    reader.leave()
    await asyncio.wait_for(replay, 3)
    assert len(sent) == 3


async def test_a_second_connect_waits_for_the_first_replay(connect, alice, bob):
    for i in range(3):
        await database_sync_to_async(message_send)(sender=bob, chat="Private", to="alice", content=f"m{i}")
    a = await connect(alice)
    await a.send({"Type": "Connect", "Since": 0})
    await a.send({"Type": "Connect", "Since": 0})
    kinds = [(await a.recv())["Type"] for _ in range(8)]
    assert kinds == ["State", "Message", "Message", "Message"] * 2, "one replay at a time, never interleaved"


async def seq_replay_started(user, monkeypatch):
    """A `Connect {"Seq": 0}` in batches of two to a reader that takes nothing: once `State` and
    the first batch are written, (reader, socket, frames sent, the replay's task)."""
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 2)
    reader = SlowReader()
    sock, sent = replaying_socket(user, reader)
    replay = asyncio.create_task(sock.on_connect(protocol.Connect(since=None, seq=0)))
    await wait_until(lambda: len(sent) == 3)  # State and the first batch of two
    return reader, sock, sent, replay


@pytest.mark.usefixtures("five_messages")
async def test_a_resume_by_seq_waits_for_a_slow_reader_between_batches_and_ends_with_synced(alice, monkeypatch):
    reader, sock, sent, replay = await seq_replay_started(alice, monkeypatch)
    assert not replay.done() and sock.hub.catchup.marks[sock] == 0, "its mark waits for the replay"
    reader.read()
    await asyncio.wait_for(replay, 3)
    assert [f["Type"] for f in sent] == ["State", *["Message"] * 5, "Synced"]
    assert [f.get("Content") for f in sent[1:6]] == [f"m{i}" for i in range(5)]
    assert sent[-1]["Seq"] == sent[0]["Seq"] == sock.hub.catchup.marks[sock]
    assert sock in sock.hub.catchup.ready


@pytest.mark.usefixtures("five_messages")
async def test_a_resume_by_seq_stops_when_the_reader_leaves(alice, monkeypatch):
    reader, sock, sent, replay = await seq_replay_started(alice, monkeypatch)
    reader.leave()
    await asyncio.wait_for(replay, 3)
    assert len(sent) == 3 and sock not in sock.hub.catchup.ready
