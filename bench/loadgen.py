"""The load generator: browser-like chat clients in one asyncio process.

Each user logs in over HTTP the way a browser does (GET the login form for its CSRF token, POST
it back with the token, an Origin and a Referer, keep the session cookie). Each socket then opens
/ws/chat/ with that cookie and an Origin, sends `Connect` and waits for `State`, as
static/chat/js does, and reads every frame it is sent for as long as it lives.

Latency: a sender writes `bench <sender> <seq> <perf_counter_ns>` into `Content`; every receiver
lives in this same process and subtracts its own perf_counter_ns on arrival. One clock, no skew.
A delivery is one `Message` frame arriving on one socket (the sender's echo included).

Sub-commands, run by bench.run (each writes one JSON file with --out):
  login   log users in over HTTP, write {username: sessionid}
  fanout  workloads A and C: one group, N member sockets, S senders, fixed-rate and max-rate phases
  idle    workload B: many idle sockets (RSS per socket, connect time), then two users chatting
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import hashlib
import http.cookiejar
import json
import math
import os
import re
import resource
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

PREFIX = "bench "
NS = 1_000_000_000
# Histogram bins for the plots: 0.01 ms .. ~30 s, 40 bins a decade.
HIST_EDGES_MS = [10 ** (k / 40) for k in range(-80, 180)]


def now_ns() -> int:
    return time.perf_counter_ns()


# ---- process figures read from /proc (the server's pid is given on the command line) ----------


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    after_comm = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_comm[11]) + int(after_comm[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> list[float]:
    """Busy CPU time (any process) of the whole machine, then of each core: who else was running?"""
    busy = []
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        fields = [int(v) for v in line.split()[1:9]]
        busy.append((sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK"))  # minus idle, iowait
    return busy


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU share of the servers and of this process over a window: is the server the bottleneck?"""

    def __init__(self, pids: list[int], redis_pid: int | None = None) -> None:
        self.pids, self.redis_pid = pids, redis_pid
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.own0 = own_cpu_seconds()
        self.busy0 = busy_seconds()
        self.server0 = [cpu_seconds(pid) for pid in self.pids]
        self.redis0 = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0

    def stop(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        servers = [round(100 * (cpu_seconds(pid) - c0) / elapsed, 1) for pid, c0 in zip(self.pids, self.server0)]
        own = round(100 * (own_cpu_seconds() - self.own0) / elapsed, 1)
        busy = [100 * (b1 - b0) / elapsed for b0, b1 in zip(self.busy0, busy_seconds())]
        figures = {"server_cpu_pct": servers, "loadgen_cpu_pct": own, "core_busy_pct": [round(b, 1) for b in busy[1:]]}
        if self.redis_pid:
            figures["redis_cpu_pct"] = round(100 * (cpu_seconds(self.redis_pid) - self.redis0) / elapsed, 1)
        # Everything else that ran meanwhile (the kernel, other people's jobs), in % of one core.
        figures["other_cpu_pct"] = round(max(0.0, busy[0] - sum(servers) - own - figures.get("redis_cpu_pct", 0)), 1)
        return figures


# ---- statistics ---------------------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def latency_summary(latencies_ns: list[int]) -> dict[str, Any]:
    """p50/p95/p99/max in ms, plus a log-binned histogram for the plot."""
    ordered = sorted(ns / 1e6 for ns in latencies_ns)
    counts = [0] * (len(HIST_EDGES_MS) - 1)
    for value in ordered:
        index = bisect.bisect_right(HIST_EDGES_MS, value) - 1
        counts[min(max(index, 0), len(counts) - 1)] += 1
    rounded = lambda v: None if v is None else round(v, 3)  # noqa: E731
    return {
        "samples": len(ordered),
        "p50_ms": rounded(percentile(ordered, 50)),
        "p95_ms": rounded(percentile(ordered, 95)),
        "p99_ms": rounded(percentile(ordered, 99)),
        "max_ms": rounded(ordered[-1] if ordered else None),
        "hist": {"edges_ms": [round(e, 5) for e in HIST_EDGES_MS], "counts": counts},
    }


@dataclass
class Recorder:
    """Counts every delivery; keeps latencies only of messages sent inside the measured window."""

    received: int = 0
    presence: int = 0
    frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    window_sent: int = 0
    window_delivered: int = 0
    latencies: list[int] = field(default_factory=list)

    def open_window(self, start_ns: int, end_ns: int) -> None:
        self.window, self.window_sent, self.window_delivered, self.latencies = (start_ns, end_ns), 0, 0, []
        self.errors = {}

    def in_window(self, sent_ns: int) -> bool:
        return self.window is not None and self.window[0] <= sent_ns < self.window[1]

    def delivery(self, sent_ns: int, arrived_ns: int) -> None:
        self.received += 1
        if self.in_window(sent_ns):
            self.window_delivered += 1
            self.latencies.append(arrived_ns - sent_ns)

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


REC = Recorder()


# ---- HTTP login, like a browser --------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep the 302 of a successful login visible instead of fetching the chat page."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def login_over_http(base_url: str, username: str, password: str) -> str:
    """GET the form (CSRF cookie + token), POST it back; return the new session id."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar), _NoRedirect()
    )
    form_url = base_url + "/accounts/login/"
    with opener.open(form_url, timeout=60) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("no CSRF token in the login form")
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1), "next": ""}
    ).encode()
    request = urllib.request.Request(form_url, data=data, headers={"Origin": base_url, "Referer": form_url})
    try:
        with opener.open(request, timeout=60) as response:
            raise RuntimeError(f"login of {username} answered {response.status}, not a redirect")
    except urllib.error.HTTPError as answer:
        if answer.code != 302:
            raise RuntimeError(f"login of {username} answered {answer.code}") from None
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if not session:
        raise RuntimeError(f"login of {username} set no session cookie")
    return session


async def login_all(urls: list[str], usernames: list[str], password: str, concurrency: int) -> dict[str, str]:
    """Log every user in once, spread over the servers; the hashing is the server's cost, not ours."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(concurrency) as pool:
        jobs = [
            loop.run_in_executor(pool, login_over_http, urls[i % len(urls)], name, password)
            for i, name in enumerate(usernames)
        ]
        sessions = await asyncio.gather(*jobs)
    return dict(zip(usernames, sessions))


# ---- a minimal WebSocket client (RFC 6455) ---------------------------------------------------
#
# The `websockets` library cost 7-25 µs of this process's CPU per received frame: its frame
# parser, its queue, an `async for` step, a `json.loads`, and asyncio's plain-Protocol read path,
# which allocates a 256 KiB bytes object per recv() (an mmap and a page fault each time). At tens
# of thousands of deliveries/s that took most of a core from the servers being measured. This
# client reads every socket into one preallocated buffer (asyncio.BufferedProtocol), parses the
# frames in place, and reads the bench stamp of a `Message` without JSON (message_stamp).

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_RESPONSE_HEAD = 64 * 1024

# messaging.protocol.encode: json.dumps(frame, ensure_ascii=False, separators=(",", ":")) of
# {"Type": "Message", "Id": .., "From": .., "To": .., "Chat": .., "Content": .., ...}.
MESSAGE_HEAD = b'{"Type":"Message",'
FROM_KEY = b',"From":"'
CONTENT_KEY = b',"Content":"'
CONTENT_BENCH = CONTENT_KEY + PREFIX.encode()
NOT_BENCH = ()  # message_stamp: a Message whose Content is not a bench stamp


class HandshakeError(Exception):
    """The server did not switch to the WebSocket protocol (403, a bad accept key, ...)."""


class WebSocketClosed(ConnectionError):
    """Sending on a socket that is closed or closing."""


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer to Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    """XOR `payload` with the 4-byte `mask` repeated (masking and unmasking are the same)."""
    n = len(payload)
    if not n:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One unfragmented client-to-server frame, masked with a fresh random key."""
    if mask is None:
        mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + mask_payload(payload, mask)


def handshake_request(host: str, path: str, key: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_handshake_response(head: bytes, key: str) -> None:
    """Raise HandshakeError unless `head` (status line and headers, no blank line) accepts `key`."""
    status, *lines = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HandshakeError(f"malformed handshake response: {status[:80]!r}")
    if parts[1] != "101":
        raise HandshakeError(f"server rejected WebSocket connection: HTTP {' '.join(parts[1:])}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError(f"malformed handshake header: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError(f"handshake: Upgrade is {headers.get('upgrade')!r}, not websocket")
    if "upgrade" not in {token.strip().lower() for token in headers.get("connection", "").split(",")}:
        raise HandshakeError(f"handshake: Connection is {headers.get('connection')!r}, not Upgrade")
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError(f"handshake: wrong Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
    for offered_none in ("sec-websocket-extensions", "sec-websocket-protocol"):
        if headers.get(offered_none):
            raise HandshakeError(f"handshake: unrequested {offered_none}: {headers[offered_none]!r}")


OnMessage = Callable[[Any, int, int, int], None]


# Every socket reads into this one buffer (get_buffer, then buffer_updated at once): its frames
# are handled before any other read, so sharing it is safe. Only an incomplete frame at the end of
# a read is copied, to the socket's own buffer.
RECV_BUFFER = bytearray(256 * 1024)
RECV_VIEW = memoryview(RECV_BUFFER)


class WebSocketProtocol(asyncio.BufferedProtocol):
    """The client end of one WebSocket: the opening handshake, then frames parsed as they are read.

    `on_message(buf, start, end, arrived_ns)` gets each whole data message (text or binary,
    fragments joined) as `buf[start:end]`; `buf` is only valid during the call. `arrived_ns` is
    perf_counter_ns taken once per read: the frames in one read arrived together.
    Pings are answered, a close is answered and closes the socket; `on_close()` runs once at the end.
    """

    def __init__(self, key: str, request: bytes, on_message: OnMessage, on_close: Callable[[], None] | None) -> None:
        self.key, self.request = key, request
        self.on_message, self.on_close = on_message, on_close
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.open = False  # handshake done and not closed: frames are read
        self.closed = False  # closed or closing: nothing more is read or sent
        self.close_code: int | None = None
        self.error: str | None = None
        self.head = bytearray()  # the handshake response, until its blank line
        self.buf = bytearray()  # an incomplete frame left from the last chunk
        self.fragments: bytearray | None = None  # a fragmented message being joined
        self.paused = False
        self.drained: asyncio.Future[None] | None = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        return RECV_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if self.open:
            self._frames(RECV_BUFFER, nbytes, time.perf_counter_ns())
        elif not self.closed:
            self._handshake_data(RECV_BUFFER[:nbytes])

    def data_received(self, data: bytes) -> None:
        """Take `data` as if read from the socket (the tests feed frames this way)."""
        if self.open:
            self._frames(data, len(data), time.perf_counter_ns())
        elif not self.closed:
            self._handshake_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection closed during the opening handshake: {exc}"))
        self._closed()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # -- sending

    async def send(self, text: str) -> None:
        """Send one text frame; wait while the transport's write buffer is over its high mark."""
        if self.closed:
            raise WebSocketClosed(f"WebSocket is closed (code {self.close_code}, {self.error or 'no error'})")
        self.transport.write(encode_frame(OP_TEXT, text.encode()))
        if self.paused:
            self.drained = asyncio.get_running_loop().create_future()
            await self.drained

    def abort(self) -> None:
        """Drop the TCP connection at once; no more callbacks."""
        self.on_message, self.on_close = _ignore_message, None
        self.open, self.closed = False, True
        if self.transport is not None:
            self.transport.abort()

    # -- receiving

    def _handshake_data(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_RESPONSE_HEAD:
                self._fail_handshake(HandshakeError("handshake response head too long"))
            return
        try:
            check_handshake_response(bytes(self.head[:end]), self.key)
        except HandshakeError as error:
            self._fail_handshake(error)
            return
        rest, self.head = bytes(self.head[end + 4 :]), bytearray()
        self.open = True
        if not self.handshake.done():
            self.handshake.set_result(None)
        if rest:
            self._frames(rest, len(rest), time.perf_counter_ns())

    def _fail_handshake(self, error: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(error)
        self.closed = True
        self.transport.close()

    def _frames(self, data: bytes | bytearray, n: int, arrived: int) -> None:
        """Every whole frame in what was left over plus data[:n]; keep the incomplete rest."""
        buf = self.buf
        if buf:
            buf += memoryview(data)[:n]
            data, n = buf, len(buf)
        pos = 0
        while n - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length, start = int.from_bytes(data[pos + 2 : pos + 4], "big"), pos + 4
            else:
                if n - pos < 10:
                    break
                length, start = int.from_bytes(data[pos + 2 : pos + 10], "big"), pos + 10
            if b1 & 0x80:
                return self._fail(1002, "masked frame from the server")
            end = start + length
            if end > n:
                break
            pos = end
            if b0 == 0x81 and self.fragments is None:  # the usual: one whole text frame
                self.on_message(data, start, end, arrived)
            else:
                self._other_frame(b0, data, start, end, arrived)
                if self.closed:
                    return
        if data is buf:
            del buf[:pos]
        elif pos < n:
            buf += memoryview(data)[pos:n]

    def _other_frame(self, b0: int, data: bytes, start: int, end: int, arrived: int) -> None:
        opcode, fin = b0 & 0x0F, b0 & 0x80
        if b0 & 0x70:
            return self._fail(1002, "reserved bits set (no extension was negotiated)")
        if opcode >= 0x8:
            if not fin or end - start > 125:
                return self._fail(1002, "fragmented or too long control frame")
            if opcode == OP_PING:
                self.transport.write(encode_frame(OP_PONG, bytes(data[start:end])))
            elif opcode == OP_CLOSE:
                self._close_received(bytes(data[start:end]))
            elif opcode != OP_PONG:
                self._fail(1002, f"unknown control opcode {opcode}")
        elif opcode == OP_CONTINUATION:
            if self.fragments is None:
                return self._fail(1002, "continuation frame outside a fragmented message")
            self.fragments += data[start:end]
            if fin:
                message, self.fragments = self.fragments, None
                self.on_message(message, 0, len(message), arrived)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self.fragments is not None:
                return self._fail(1002, "new message inside a fragmented one")
            if fin:
                self.on_message(data, start, end, arrived)
            else:
                self.fragments = bytearray(data[start:end])
        else:
            self._fail(1002, f"unknown data opcode {opcode}")

    def _close_received(self, payload: bytes) -> None:
        self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.transport.write(encode_frame(OP_CLOSE, payload[:2]))  # echo the status code
        self.transport.close()  # the server closes its end too; nothing more to wait for
        self._closed()

    def _fail(self, code: int, reason: str) -> None:
        self.error = reason
        print(f"[loadgen] WebSocket protocol error: {reason}", file=sys.stderr, flush=True)
        self.transport.write(encode_frame(OP_CLOSE, code.to_bytes(2, "big")))
        self.transport.close()
        self._closed()

    def _closed(self) -> None:
        self.open, self.closed = False, True
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()


def _ignore_message(buf: Any, start: int, end: int, arrived: int) -> None:
    pass


async def ws_connect(
    url: str,
    *,
    headers: dict[str, str],
    on_message: OnMessage,
    on_close: Callable[[], None] | None = None,
    open_timeout: float = 60,
) -> WebSocketProtocol:
    """Open ws://host:port/path: TCP, the upgrade request with `headers`, a checked 101 answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"only ws:// URLs are supported, not {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    request = handshake_request(parts.netloc, path, key, headers)
    loop = asyncio.get_running_loop()
    protocol: WebSocketProtocol | None = None

    def factory() -> WebSocketProtocol:
        nonlocal protocol
        protocol = WebSocketProtocol(key, request, on_message, on_close)
        return protocol

    try:
        async with asyncio.timeout(open_timeout):
            await loop.create_connection(factory, parts.hostname, parts.port or 80)
            await protocol.handshake
    except BaseException:
        if protocol is not None:
            protocol.abort()
        raise
    return protocol


def message_stamp(buf: Any, start: int, end: int) -> tuple[Any, int] | tuple[()] | None:
    """Read a `Message` frame in buf[start:end] without json.loads.

    Returns (From as bytes, the sender's perf_counter_ns) for a bench message, NOT_BENCH when its
    Content is not a bench stamp, None when the frame must be decoded in full (a key missing, or a
    backslash anywhere: an escape). Without escapes, `,"From":"` cannot occur inside a JSON string
    (its quotes would be escaped), so the first match is the key itself; likewise for Content.
    """
    if buf.find(b"\\", start, end) >= 0:
        return None
    f = buf.find(FROM_KEY, start, end)
    c = buf.find(CONTENT_BENCH, start, end)
    if f < 0 or c < 0:
        return NOT_BENCH if f >= 0 and buf.find(CONTENT_KEY, start, end) >= 0 else None
    f += len(FROM_KEY)
    c += len(CONTENT_BENCH)
    c_end = buf.find(b'"', c, end)
    sender = buf[f : buf.find(b'"', f, end)]
    # Content is `bench <sender> <seq> <ns>`: the stamp follows the last space (the prefix's at least).
    return sender, int(buf[buf.rfind(b" ", c - 1, c_end) + 1 : c_end])


# ---- chat clients ------------------------------------------------------------------------------


class Client:
    """One browser tab: a socket that reads everything it gets; senders also track their echoes."""

    def __init__(self, username: str, index: int) -> None:
        self.username, self.index = username, index
        self.name_bytes = username.encode()
        self.ws: WebSocketProtocol | None = None
        self.ready = asyncio.Event()
        self.inflight: asyncio.Semaphore | None = None
        self.seq = 0
        self.closed = False

    async def open(self, base_url: str, session: str) -> tuple[float, float]:
        """Handshake, then `Connect` and wait for `State`. Returns both durations in ms."""
        t0 = now_ns()
        self.ws = await ws_connect(
            base_url.replace("http://", "ws://") + "/ws/chat/",
            headers={"Origin": base_url, "Cookie": f"sessionid={session}"},
            on_message=self.on_ws_message,
            on_close=self.on_ws_close,
            open_timeout=60,
        )
        t1 = now_ns()
        await self.ws.send('{"Type":"Connect"}')
        await asyncio.wait_for(self.ready.wait(), timeout=60)
        return (t1 - t0) / 1e6, (now_ns() - t0) / 1e6

    def on_ws_close(self) -> None:
        self.closed = True

    def on_ws_message(self, buf: Any, start: int, end: int, arrived: int) -> None:
        """A bench `Message` is read without JSON; any other frame goes through `handle`."""
        if buf.startswith(MESSAGE_HEAD, start, end):
            stamp = message_stamp(buf, start, end)
            if stamp is not None:
                REC.frames += 1
                if stamp is not NOT_BENCH:
                    REC.delivery(stamp[1], arrived)
                    if stamp[0] == self.name_bytes and self.inflight is not None:
                        self.inflight.release()
                return
        self.handle(buf[start:end], arrived)

    def handle(self, raw: str | bytes, arrived: int | None = None) -> None:
        if arrived is None:
            arrived = now_ns()
        REC.frames += 1
        frame = json.loads(raw)
        kind = frame.get("Type")
        if kind == "Message":
            self._on_message(frame, arrived)
        elif kind == "Presence":
            REC.presence += 1
        elif kind == "State":
            self.ready.set()
        elif kind == "Error":
            REC.error(frame.get("Code", "?"))
            if frame.get("Ref") == "Send" and self.inflight is not None:
                self.inflight.release()

    def _on_message(self, frame: dict, arrived: int) -> None:
        content = frame.get("Content", "")
        if not content.startswith(PREFIX):
            return
        REC.delivery(int(content.rsplit(" ", 1)[1]), arrived)
        if frame.get("From") == self.username and self.inflight is not None:
            self.inflight.release()

    async def send_bench(self, chat: str, to: str, run_id: str) -> None:
        """One `Send` as the browser builds it (with a ClientId), stamped with the send time."""
        self.seq += 1
        sent = now_ns()
        if REC.in_window(sent):
            REC.window_sent += 1
        frame = {
            "Type": "Send",
            "Chat": chat,
            "To": to,
            "is_image": 0,
            "Content": f"{PREFIX}{self.index} {self.seq} {sent}",
            "ClientId": f"{run_id}-{self.index}-{self.seq}",
        }
        await self.ws.send(json.dumps(frame))

    def abort(self) -> None:
        if self.ws is not None:
            self.ws.abort()


async def open_clients(
    clients: list[Client], urls: list[str], sessions: dict[str, str], concurrency: int, timeout: float
) -> dict[str, Any]:
    """Open every socket (client i on server i mod n), `concurrency` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)
    handshakes: list[float] = []
    ready: list[float] = []
    failures: list[str] = []

    async def one(i: int, client: Client) -> None:
        async with gate:
            try:
                shake, whole = await client.open(urls[i % len(urls)], sessions[client.username])
                handshakes.append(shake)
                ready.append(whole)
            except Exception as error:  # a refused or timed-out socket is a figure, not a crash
                failures.append(f"{client.username}: {type(error).__name__}: {error}"[:200])

    t0 = time.monotonic()
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(one(i, c) for i, c in enumerate(clients))), timeout)
    except TimeoutError:
        timed_out = True
        for client in clients:
            if not client.ready.is_set():
                client.abort()  # no half-open sockets left for the server to finish later
    return {
        "requested": len(clients),
        "sockets": len(handshakes),
        "timed_out": timed_out,
        "failed": len(failures),
        "failures": failures[:10],
        "total_s": round(time.monotonic() - t0, 2),
        "handshake": _short(latency_summary([int(v * 1e6) for v in handshakes])),
        "until_state": _short(latency_summary([int(v * 1e6) for v in ready])),
    }


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "hist"}


async def quiesce(quiet_s: float, timeout: float) -> float:
    """Wait until no frame arrived for `quiet_s` (presence storms, backlogs); returns the wait."""
    t0 = time.monotonic()
    last, last_change = REC.frames, time.monotonic()
    while time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.1)
        if REC.frames != last:
            last, last_change = REC.frames, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            break
    return round(time.monotonic() - t0, 2)


# ---- senders -----------------------------------------------------------------------------------


async def send_max(client: Client, chat: str, to: str, run_id: str, stop_ns: int, window: int) -> int:
    """Send as fast as the server echoes: at most `window` of this sender's messages in flight."""
    client.inflight = asyncio.Semaphore(window)
    stalls = 0
    try:
        while now_ns() < stop_ns:
            try:
                await asyncio.wait_for(client.inflight.acquire(), timeout=5)
            except TimeoutError:
                stalls += 1  # an echo never came; go on rather than hang
            await client.send_bench(chat, to, run_id)
    finally:
        client.inflight = None
    return stalls


async def send_paced(
    client: Client, chat: str, to: str, run_id: str, first_ns: int, period_ns: int, stop_ns: int
) -> int:
    """Send one message every `period_ns` on a fixed schedule; returns how late we ever were (µs)."""
    due, worst_late = first_ns, 0
    while due < stop_ns:
        delay = due - now_ns()
        if delay > 0:
            await asyncio.sleep(delay / NS)
        worst_late = max(worst_late, now_ns() - due)
        await client.send_bench(chat, to, run_id)
        due += period_ns
    return worst_late // 1000


@dataclass
class Phase:
    """One measured run: `target` deliveries/s (None: as fast as possible)."""

    name: str
    target: float | None
    warmup_s: float
    window_s: float
    drain_s: float = 10.0


async def run_phase(
    phase: Phase, sends: list[tuple[Client, str]], chat: str, fanout: int, meter: CpuMeter, inflight: int
) -> dict[str, Any]:
    """Warm up, measure deliveries/s and latency over the window, then let the window's messages land.

    `sends` pairs each sending socket with its `To`; a message reaches `fanout` sockets.
    """
    run_id = f"{phase.name}{os.getpid()}{now_ns() % 10**6}"
    start = now_ns() + int(phase.warmup_s * NS)
    end = start + int(phase.window_s * NS)
    REC.open_window(start, end)
    tasks = [
        asyncio.create_task(_sender(phase, client, to, i, len(sends), chat, run_id, end, fanout, inflight))
        for i, (client, to) in enumerate(sends)
    ]
    await asyncio.sleep(max(0, start - now_ns()) / NS)
    received0 = REC.received
    meter.start()
    await asyncio.sleep(max(0, end - now_ns()) / NS)
    received1, cpu = REC.received, meter.stop()
    sender_results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=phase.drain_s + 10)
    drain = await _drain(fanout, phase.drain_s)
    return _phase_result(phase, (received1 - received0) / phase.window_s, fanout, cpu, drain, sender_results)


def _sender(
    phase: Phase, client: Client, to: str, i: int, n: int, chat: str, run_id: str, end: int, fanout: int, inflight: int
) -> Awaitable[int]:
    if phase.target is None:
        return send_max(client, chat, to, run_id, end, inflight)
    period = int(NS * n * fanout / phase.target)  # messages/s in all = target / fanout, spread over n senders
    return send_paced(client, chat, to, run_id, now_ns() + i * period // n, period, end)


async def _drain(fanout: int, timeout: float) -> float:
    """Wait until every message sent in the window reached all its sockets (or time runs out)."""
    t0 = time.monotonic()
    while REC.window_delivered < REC.window_sent * fanout and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.05)
    return round(time.monotonic() - t0, 2)


def _phase_result(phase: Phase, rate: float, fanout: int, cpu: dict, drain_s: float, senders: list[int]) -> dict:
    expected = REC.window_sent * fanout
    result = {
        "target_deliveries_per_s": phase.target,
        "deliveries_per_s": round(rate, 1),
        "messages_per_s": round(rate / fanout, 1),
        "window_s": phase.window_s,
        "window_messages": REC.window_sent,
        "lost_deliveries": expected - REC.window_delivered,
        "drain_s": drain_s,
        "errors": dict(REC.errors),
        **cpu,
        **latency_summary(REC.latencies),
    }
    if phase.target is None:
        result["echo_stalls"] = sum(senders)
    else:
        result["reached"] = rate >= 0.95 * phase.target and result["lost_deliveries"] == 0
        result["worst_send_lateness_us"] = max(senders)
    REC.window = None
    return result


# ---- workloads ---------------------------------------------------------------------------------


async def workload_fanout(args: argparse.Namespace) -> dict[str, Any]:
    """A / C: `members` sockets in one group, `senders` of them sending; phases from --phases."""
    sessions = json.loads(Path(args.sessions).read_text())
    members = [Client(f"{args.user_prefix}{i:04d}", i) for i in range(args.members)]
    connect_stats = await open_clients(members, args.urls, sessions, args.concurrency, timeout=120)
    settle = await quiesce(0.5, timeout=30)
    meter = CpuMeter(args.pids, args.redis_pid)
    phases = {}
    for name in args.phases:
        target = None if name == "max" else float(name)
        phase = Phase(name, target, args.warmup, args.window)
        sends = [(client, args.group) for client in members[: args.senders]]
        phases[name] = await run_phase(phase, sends, "Group", args.members, meter, args.inflight)
        print(
            f"  {args.label} {name}: {phases[name]['deliveries_per_s']:.0f} deliveries/s, "
            f"p99 {phases[name]['p99_ms']} ms",
            flush=True,
        )
        await quiesce(0.5, timeout=20)
    for client in members:
        client.abort()
    return {
        "connect": connect_stats,
        "settle_s": settle,
        "phases": phases,
        "rss_kib": [rss_kib(pid) for pid in args.pids],
        "frames_received": REC.frames,
    }


async def workload_idle(args: argparse.Namespace) -> dict[str, Any]:
    """B: RSS per idle socket and connect time for `idle` sockets, then chat latency beside them."""
    sessions = json.loads(Path(args.sessions).read_text())
    pid = args.pids[0]
    chatters = [Client(name, 10_000 + i) for i, name in enumerate(args.chatters)]
    await open_clients(chatters, args.urls, sessions, 2, timeout=30)
    meter = CpuMeter(args.pids)
    await run_phase(Phase("warm", 4 * args.chat_rate, 0.5, 1.0), _pair(chatters), "Private", 2, meter, 1)
    await quiesce(0.5, timeout=10)
    rss_before = rss_kib(pid)
    idle = [Client(f"{args.user_prefix}{i:04d}", i) for i in range(args.idle)]
    presence0 = REC.presence
    meter.start()
    connect_stats = await open_clients(idle, args.urls, sessions, args.concurrency, timeout=args.connect_timeout)
    settle = await quiesce(1.0, timeout=args.settle_timeout)
    connect_stats["cpu"] = meter.stop()
    rss_after = rss_kib(pid)
    per_socket = (rss_after["VmRSS"] - rss_before["VmRSS"]) / max(connect_stats["sockets"], 1)
    chat = await _chat(chatters, meter, args)
    result = {
        "connect": connect_stats,
        "settle_after_connect_s": settle,
        "settled": settle < args.settle_timeout,
        "presence_frames": REC.presence - presence0,
        "still_open": sum(c.ready.is_set() and not c.closed for c in idle),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_socket_kib": round(per_socket, 2),
        "chat": chat,
    }
    for client in idle + chatters:
        client.abort()
    return result


def _pair(chatters: list[Client]) -> list[tuple[Client, str]]:
    a, b = chatters
    return [(a, b.username), (b, a.username)]


async def _chat(chatters: list[Client], meter: CpuMeter, args: argparse.Namespace) -> dict[str, Any]:
    """Two users in a private chat, each sending `chat_rate` messages/s; echo and peer both count."""
    phase = Phase("chat", 4 * args.chat_rate, 1.0, args.chat_window)
    return await run_phase(phase, _pair(chatters), "Private", 2, meter, 1)


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["login", "fanout", "idle"])
    parser.add_argument("--urls", type=lambda s: s.split(","), required=True, help="http://127.0.0.1:PORT,...")
    parser.add_argument("--pids", type=lambda s: [int(p) for p in s.split(",")], default=[])
    parser.add_argument("--redis-pid", type=int, help="count Redis's CPU apart from the rest of the machine")
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--sessions", help="JSON {username: sessionid} written by `login`")
    parser.add_argument("--users", type=lambda s: s.split(","), default=[], help="login: usernames")
    parser.add_argument("--password", default="")
    parser.add_argument("--user-prefix", default="bench")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--group", default="bench room")
    parser.add_argument("--phases", type=lambda s: s.split(","), default=["1000", "10000", "max"])
    parser.add_argument("--inflight", type=int, default=8, help="max-rate: messages in flight per sender")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--chatters", type=lambda s: s.split(","), default=["chatter-a", "chatter-b"])
    parser.add_argument("--chat-rate", type=float, default=10.0, help="messages/s each chatter sends")
    parser.add_argument("--chat-window", type=float, default=5.0)
    parser.add_argument("--connect-timeout", type=float, default=90.0)
    parser.add_argument("--settle-timeout", type=float, default=20.0, help="B: wait for the presence storm to end")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "login":
        t0 = time.monotonic()
        sessions = await login_all(args.urls, args.users, args.password, args.concurrency)
        Path(args.sessions).write_text(json.dumps(sessions))
        return {"users": len(sessions), "seconds": round(time.monotonic() - t0, 1)}
    runners: dict[str, Callable[[argparse.Namespace], Awaitable[dict]]] = {
        "fanout": workload_fanout,
        "idle": workload_idle,
    }
    return await runners[args.command](args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
