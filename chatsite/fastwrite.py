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

Both reach past public APIs (pinned in requirements.txt). `enabled()` checks once that what they
use is there; if not, or with CHAT_FAST_WRITE=false, both stay off (one warning says why) and
every frame takes plain ASGI `send()`: slower, never wrong.
"""

from __future__ import annotations

import functools
import importlib
import logging
import struct
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# What the fast paths reach into, beyond any public API (requirements.txt pins these packages
# to the ranges tested). Checked once, at start-up: if any is missing, both paths stay off and
# every frame goes through ASGI send(), with one warning.
NEEDED = {
    "twisted.internet._newtls.ConnectionMixin": ("write",),
    "twisted.internet.tcp.Connection": (
        "writeSomeData",
        "dataBuffer",
        "offset",
        "_writeDisconnected",
        "connected",
        "disconnecting",
    ),
    "daphne.server.Server": ("handle_reply",),
    "daphne.ws_protocol.WebSocketProtocol": ("STATE_OPEN", "SEND_STATE_GROUND", "transport"),
}
# Set on each instance rather than the class: checked on the first connection (autobahn's
# protocol) and on a bare Twisted descriptor (its write buffer).
NEEDED_ON_PROTOCOL = ("state", "send_state", "send_queue", "_perMessageCompress")
NEEDED_ON_DESCRIPTOR = ("_tempDataLen",)

_off_because: str | None = None  # None: not checked yet; "": on; else why it is off
_original_write: Any = None


def _missing() -> list[str]:
    missing = []
    for path, names in NEEDED.items():
        module_name, class_name = path.rsplit(".", 1)
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            missing.append(path)
            continue
        missing += [f"{path}.{name}" for name in names if not hasattr(cls, name)]
    try:
        from twisted.internet.abstract import FileDescriptor

        descriptor = FileDescriptor(reactor=True)  # any true value: no global reactor is touched
        missing += [f"FileDescriptor().{name}" for name in NEEDED_ON_DESCRIPTOR if not hasattr(descriptor, name)]
    except Exception as error:  # a changed constructor is one more missing piece
        missing.append(f"FileDescriptor() ({error!r})")
    return missing


def _turn_off(reason: str) -> None:
    global _off_because
    if not _off_because:
        logger.warning("Daphne fast write paths off, every frame goes through ASGI send(): %s", reason)
    _off_because = reason


def enabled() -> bool:
    """Whether the fast paths may run: CHAT_FAST_WRITE is on and all they need is there."""
    global _off_because
    if _off_because is None:
        if not settings.CHAT_FAST_WRITE:
            _off_because = "CHAT_FAST_WRITE is off"
            logger.info("Daphne fast write paths off: CHAT_FAST_WRITE is off")
        elif missing := _missing():
            _turn_off("missing " + ", ".join(missing))
        else:
            _off_because = ""
    return not _off_because


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
    """Make Twisted write to idle sockets at once (1. above), unless the fast paths are off."""
    global _original_write
    if not enabled():
        return
    from twisted.internet import _newtls

    if _newtls.ConnectionMixin.write is not _write:
        _original_write = _newtls.ConnectionMixin.write
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
    if not enabled():
        return None
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if (
        isinstance(send, functools.partial)
        and isinstance(getattr(send.func, "__self__", None), Server)
        and send.func.__name__ == "handle_reply"
        and len(send.args) == 1
        and isinstance(send.args[0], WebSocketProtocol)
    ):
        protocol = send.args[0]
        missing = [name for name in NEEDED_ON_PROTOCOL if not hasattr(protocol, name)]
        if missing:
            _turn_off("missing WebSocketProtocol()." + ", ".join(missing))
            return None
        return DirectWriter(protocol)
    return None
