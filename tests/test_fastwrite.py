"""The Daphne fast paths: one frame built per event, written only when autobahn would write it so."""

from __future__ import annotations

import functools

import pytest
from autobahn.websocket.protocol import PreparedMessage
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from chatsite.fastwrite import DirectWriter, Frame, direct_writer, text_frame


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
    protocol = WebSocketProtocol()
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
