"""Daphne-specific fast paths for fan-out: frames written to idle sockets at once, and framed
once per event instead of once per socket.

1. `install()`: Twisted's transports never write in `write()`: they queue the bytes and
   register the socket for writability, then write on the next loop turn and unregister
   again. Under Daphne's asyncio reactor that is two `epoll_ctl` calls and a loop turn for
   every WebSocket frame, which profiling showed to be the largest single cost of fan-out (a
   fifth of the server's CPU). Here a write to an idle, plain-TCP connection goes straight to
   `send()`; whatever the kernel does not take at once, and every write behind queued data,
   takes Twisted's own path, so ordering, back-pressure and error handling stay Twisted's.

2. `Frame` and `direct_writer()`: ASGI has no way to send the same message to many sockets,
   so through `send()` every socket pays for Daphne's reply coroutine, autobahn's UTF-8
   encoding and framing, and its logging. A server-to-client WebSocket frame is the same
   bytes for every socket (unmasked, no extension), so the hub builds it once per event
   (`Frame.wire`), and each consumer asks `direct_writer()` for a `DirectWriter` over the
   Daphne connection behind its ASGI `send` (no middleware in chatsite.asgi wraps `send`),
   which hands those bytes to the connection's transport. It writes only when autobahn
   itself would write a plain frame at once (socket open, no compression, nothing queued);
   otherwise it says so and the caller goes through ASGI `send()` as before. Under any other
   server (the test communicator, uvicorn) there is no writer and every frame takes `send()`.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from twisted.internet import _newtls

_original_write = _newtls.ConnectionMixin.write


def _write(self, data: bytes) -> None:
    if (
        not getattr(self, "TLS", False)
        and self.connected
        and not self.disconnecting
        and not self._writeDisconnected
        and not getattr(self, "_aborting", False)
        and not self.dataBuffer
        and not self._tempDataLen
        and isinstance(data, bytes)
    ):
        sent = self.writeSomeData(data)
        if isinstance(sent, int):
            if sent == len(data):
                return
            data = data[sent:]
    _original_write(self, data)


def install() -> None:
    if _newtls.ConnectionMixin.write is not _write:
        _newtls.ConnectionMixin.write = _write


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


class Frame:
    """One serialized event on its way to many sockets: its text, and its wire bytes built
    the first time a socket can take them."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.text.encode())
        return self._wire


class DirectWriter:
    """Writes prepared frames to one Daphne WebSocket connection, when that is safe."""

    __slots__ = ("protocol",)

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, frame: Frame) -> bool:
        """Write `frame` now and return True, or return False: then use ASGI `send()`."""
        protocol = self.protocol
        if (
            protocol.state != protocol.STATE_OPEN
            or protocol._perMessageCompress is not None  # a compressed socket needs its own frames
            or protocol.send_queue  # autobahn has writes queued: keep their order
            or protocol.send_state != protocol.SEND_STATE_GROUND
        ):
            return False
        protocol.transport.write(frame.wire)
        return True

    def backlog(self) -> int | None:
        """Bytes written to this connection that the peer has not taken yet (autobahn's queue
        and Twisted's buffers), or None once the connection is gone."""
        protocol = self.protocol
        transport = protocol.transport
        if transport is None or protocol.state == protocol.STATE_CLOSED or getattr(transport, "disconnected", False):
            return None
        queued = sum(len(data) for data, _ in protocol.send_queue)
        buffered = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        return queued + buffered


def direct_writer(send: Any) -> DirectWriter | None:
    """A writer for the Daphne WebSocket connection behind an ASGI `send`, if that is what it
    is: the plain `send` Daphne hands an application (no middleware here wraps it)."""
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if (
        isinstance(send, functools.partial)
        and isinstance(getattr(send.func, "__self__", None), Server)
        and send.func.__name__ == "handle_reply"
        and len(send.args) == 1
        and isinstance(send.args[0], WebSocketProtocol)
    ):
        return DirectWriter(send.args[0])
    return None
