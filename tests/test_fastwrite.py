"""The Daphne fast paths: one frame built per event, written only when autobahn would write it so."""

from __future__ import annotations

import functools
import logging

import pytest
from autobahn.websocket.protocol import PreparedMessage
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from chatsite import fastwrite
from chatsite.fastwrite import DirectWriter, Frame, direct_writer, text_frame


@pytest.fixture(autouse=True)
def fresh_check(monkeypatch):
    """Each test checks afresh what the fast paths need (the process checks once)."""
    monkeypatch.setattr(fastwrite, "_off_because", None)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_frame_is_what_autobahn_itself_would_send(size):
    payload = ("é" * size).encode()[:size]
    assert text_frame(payload) == PreparedMessage(payload, False, False, True).payloadHybi


def test_a_frame_is_encoded_once_and_keeps_its_text():
    frame = Frame('{"Type":"Message","Content":"héllo 👋"}')
    assert frame.wire is frame.wire
    assert frame.wire.endswith('"héllo 👋"}'.encode())


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def open_protocol() -> WebSocketProtocol:
    protocol = WebSocketProtocol()
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.send_state = WebSocketProtocol.SEND_STATE_GROUND
    protocol._perMessageCompress = None
    protocol.send_queue = []
    protocol.transport = FakeTransport()
    return protocol


def test_an_open_plain_socket_gets_the_prepared_bytes():
    protocol = open_protocol()
    frame = Frame("hi")
    assert DirectWriter(protocol).write(frame) is True
    assert protocol.transport.written == [frame.wire]


@pytest.mark.parametrize(
    "change",
    [
        {"state": WebSocketProtocol.STATE_CLOSING},
        {"state": WebSocketProtocol.STATE_CLOSED},
        {"_perMessageCompress": object()},
        {"send_queue": [(b"x", False)]},
        {"send_state": WebSocketProtocol.SEND_STATE_INSIDE_MESSAGE},
    ],
)
def test_otherwise_the_caller_is_told_to_use_asgi_send(change):
    protocol = open_protocol()
    for name, value in change.items():
        setattr(protocol, name, value)
    assert DirectWriter(protocol).write(Frame("hi")) is False
    assert protocol.transport.written == []


def test_a_writer_is_offered_only_for_daphne_s_own_send():
    protocol = open_protocol()
    server = Server.__new__(Server)
    writer = direct_writer(functools.partial(server.handle_reply, protocol))
    assert isinstance(writer, DirectWriter) and writer.protocol is protocol

    async def wrapped(message):  # a middleware's send: its work would be skipped, so no writer
        await server.handle_reply(protocol, message)

    assert direct_writer(wrapped) is None
    assert direct_writer(functools.partial(print, protocol)) is None


def test_the_backlog_counts_what_the_peer_has_not_taken_yet():
    protocol = open_protocol()
    transport = protocol.transport
    transport.dataBuffer, transport.offset, transport._tempDataLen = b"x" * 100, 40, 7
    protocol.send_queue = [(b"y" * 5, False)]
    assert DirectWriter(protocol).backlog() == 60 + 7 + 5
    transport.disconnected = True
    assert DirectWriter(protocol).backlog() is None


# ---- what the fast paths need, checked at start-up --------------------------------------


def daphne_send(protocol) -> functools.partial:
    return functools.partial(Server.__new__(Server).handle_reply, protocol)


def fallback_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chatsite.fastwrite" and r.levelno == logging.WARNING]


def test_with_everything_there_both_fast_paths_are_on(monkeypatch, caplog):
    from twisted.internet import _newtls

    monkeypatch.setattr(_newtls.ConnectionMixin, "write", _newtls.ConnectionMixin.write)
    fastwrite.install()
    assert _newtls.ConnectionMixin.write is fastwrite._write
    assert isinstance(direct_writer(daphne_send(open_protocol())), DirectWriter)
    assert fallback_warnings(caplog) == []


def test_a_missing_twisted_attribute_turns_both_off_with_one_warning(monkeypatch, caplog):
    from twisted.internet import _newtls, tcp

    unpatched = fastwrite._original_write or _newtls.ConnectionMixin.write
    monkeypatch.setattr(_newtls.ConnectionMixin, "write", unpatched)
    for cls in tcp.Connection.__mro__:  # gone from the class and every base: as a new Twisted might
        if "writeSomeData" in vars(cls):
            monkeypatch.delattr(cls, "writeSomeData")
    fastwrite.install()
    assert _newtls.ConnectionMixin.write is unpatched, "Twisted's own write is left alone"
    for _ in range(3):
        assert direct_writer(daphne_send(open_protocol())) is None, "so the consumer uses ASGI send()"
    [warning] = fallback_warnings(caplog)
    assert "twisted.internet.tcp.Connection.writeSomeData" in warning


def test_a_missing_daphne_method_turns_the_direct_writer_off(monkeypatch, caplog):
    monkeypatch.delattr(Server, "handle_reply")
    protocol = open_protocol()
    assert direct_writer(functools.partial(print, protocol)) is None
    assert direct_writer(functools.partial(print, protocol)) is None
    [warning] = fallback_warnings(caplog)
    assert "daphne.server.Server.handle_reply" in warning


def test_a_connection_without_autobahn_s_state_gets_no_writer_and_one_warning(caplog):
    bare = WebSocketProtocol()  # autobahn sets these per connection: a new autobahn might not
    assert direct_writer(daphne_send(bare)) is None
    assert direct_writer(daphne_send(open_protocol())) is None, "off for good, not per socket"
    [warning] = fallback_warnings(caplog)
    assert "send_queue" in warning


def test_the_switch_turns_both_off_without_a_warning(settings, monkeypatch, caplog):
    from twisted.internet import _newtls

    settings.CHAT_FAST_WRITE = False
    unpatched = fastwrite._original_write or _newtls.ConnectionMixin.write
    monkeypatch.setattr(_newtls.ConnectionMixin, "write", unpatched)
    fastwrite.install()
    assert _newtls.ConnectionMixin.write is unpatched
    assert direct_writer(daphne_send(open_protocol())) is None
    assert fallback_warnings(caplog) == []


@pytest.mark.django_db(transaction=True)
async def test_with_the_switch_off_a_real_daphne_still_delivers_through_asgi_send():
    import asyncio
    import json

    from tests.conftest import live_database_url
    from tests.live import Browserish, DaphneServer
    from tests.test_live_daphne import next_of, open_socket

    server = DaphneServer(await asyncio.to_thread(live_database_url), extra_env={"CHAT_FAST_WRITE": "false"})
    await asyncio.to_thread(server.start)
    try:
        alice, bob = Browserish(server.url), Browserish(server.url)
        await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
        await asyncio.to_thread(bob.register, "bob", "b-long-secret-2")
        async with await open_socket(server, alice) as a, await open_socket(server, bob) as b:
            await a.send(json.dumps({"Type": "Connect", "Username": "alice"}))
            await next_of(a, "State")
            await a.send(json.dumps({"Type": "Send", "To": "bob", "Content": "slow path", "Chat": "Private"}))
            assert (await next_of(b, "Message"))["Content"] == "slow path"
    finally:
        await asyncio.to_thread(server.stop)
    assert "fast write paths off: CHAT_FAST_WRITE is off" in server.log.read_text()
