"""The load generator's own WebSocket client (bench/loadgen.py): frames, masking, handshake, fast path."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone
from http import HTTPStatus

import pytest
from websockets.asyncio.server import serve

from bench import loadgen
from bench.loadgen import (
    MESSAGE_HEAD,
    NOT_BENCH,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Client,
    HandshakeError,
    Recorder,
    WebSocketClosed,
    WebSocketProtocol,
    accept_key,
    check_handshake_response,
    encode_frame,
    mask_payload,
    message_stamp,
    ws_connect,
)
from chatsite.errors import ChatError
from messaging.protocol import encode, error_frame, message_frame, presence_frame

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


# ---- helpers -------------------------------------------------------------------------------------


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked server-to-client frame."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


def parse_client_frame(data: bytes) -> tuple[int, int, bytes, int]:
    """(first byte, opcode, unmasked payload, frame size) of one masked client frame."""
    assert data[1] & 0x80, "client frames must be masked"
    n, pos = data[1] & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(data[2:10], "big"), 10
    mask = data[pos : pos + 4]
    payload = mask_payload(data[pos + 4 : pos + 4 + n], mask)
    return data[0], data[0] & 0x0F, payload, pos + 4 + n


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> list[tuple[int, bytes]]:
        out, data = [], bytes(self.written)
        while data:
            _, opcode, payload, size = parse_client_frame(data)
            out.append((opcode, payload))
            data = data[size:]
        return out


class Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.arrivals: list[int] = []
        self.closes = 0

    def message(self, buf, start: int, end: int, arrived: int) -> None:
        self.messages.append(bytes(buf[start:end]))
        self.arrivals.append(arrived)

    def close(self) -> None:
        self.closes += 1


def open_protocol() -> tuple[WebSocketProtocol, FakeTransport, Collector]:
    """A protocol past its handshake, on a transport that records what it is sent."""
    sink = Collector()
    protocol = WebSocketProtocol("key", b"", sink.message, sink.close)
    transport = FakeTransport()
    protocol.connection_made(transport)
    transport.written.clear()
    protocol.open = True
    protocol.handshake.set_result(None)
    return protocol, transport, sink


def payload_of(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


# ---- masking and client frames -------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 125, 126, 65535, 65536, 70001])
def test_masking_round_trips(n):
    payload, mask = os.urandom(n), os.urandom(4)
    masked = mask_payload(payload, mask)
    assert len(masked) == n
    assert mask_payload(masked, mask) == payload
    assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("n", LENGTHS)
def test_client_frames_are_masked_with_every_length_form(n):
    payload = payload_of(n)
    data = encode_frame(OP_TEXT, payload)
    first, opcode, unmasked, size = parse_client_frame(data)
    assert (first, opcode, unmasked, size) == (0x81, OP_TEXT, payload, len(data))
    assert data[1] & 0x7F == (n if n < 126 else 126 if n < 65536 else 127)


def test_each_client_frame_gets_a_fresh_mask():
    masks = {encode_frame(OP_TEXT, b"same")[2:6] for _ in range(20)}
    assert len(masks) > 1


# ---- the frame parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", LENGTHS)
async def test_parser_reads_7_16_and_64_bit_lengths(n):
    protocol, _, sink = open_protocol()
    payload = payload_of(n)
    protocol.data_received(server_frame(OP_TEXT, payload) + server_frame(OP_BINARY, payload[::-1]))
    assert sink.messages == [payload, payload[::-1]]
    assert not protocol.buf


async def test_parser_takes_frames_split_byte_by_byte():
    protocol, _, sink = open_protocol()
    payloads = [b"a", payload_of(300), payload_of(70000), b"", b'{"Type":"Message"}']
    stream = b"".join(server_frame(OP_TEXT, p) for p in payloads)
    for i in range(len(stream)):
        protocol.data_received(stream[i : i + 1])
    assert sink.messages == payloads
    assert not protocol.buf


async def test_parser_takes_frames_split_at_any_point():
    payloads = [payload_of(n) for n in (3, 200, 126, 66000, 0, 125)]
    stream = b"".join(server_frame(OP_TEXT, p) for p in payloads)
    for cut in (1, 2, 3, 4, 9, 10, 11, 130, 66010, len(stream) - 1):
        protocol, _, sink = open_protocol()
        protocol.data_received(stream[:cut])
        protocol.data_received(stream[cut:])
        assert sink.messages == payloads, cut


async def test_reads_through_the_shared_buffer():
    """The socket path: asyncio fills get_buffer(), then calls buffer_updated(nbytes)."""
    protocol, _, sink = open_protocol()
    payloads = [payload_of(n) for n in (5, 126, 70000, 0, 300)]
    stream = b"".join(server_frame(OP_TEXT, p) for p in payloads)
    for i in range(0, len(stream), 1000):
        chunk = stream[i : i + 1000]
        buffer = protocol.get_buffer(-1)
        buffer[: len(chunk)] = chunk
        buffer[len(chunk) : len(chunk) + 8] = b"garbage!"  # past nbytes: never read
        protocol.buffer_updated(len(chunk))
    assert sink.messages == payloads


async def test_many_frames_in_one_chunk_share_one_arrival_time():
    protocol, _, sink = open_protocol()
    payloads = [f'{{"n":{i}}}'.encode() for i in range(1000)]
    protocol.data_received(b"".join(server_frame(OP_TEXT, p) for p in payloads))
    assert sink.messages == payloads
    assert len(set(sink.arrivals)) == 1


async def test_fragmented_message_is_joined_and_pings_between_fragments_are_answered():
    protocol, transport, sink = open_protocol()
    stream = (
        server_frame(OP_TEXT, b"hel", fin=False)
        + server_frame(OP_PING, b"p1")
        + server_frame(OP_CONTINUATION, b"lo ", fin=False)
        + server_frame(OP_CONTINUATION, payload_of(70000))
        + server_frame(OP_TEXT, b"next")
    )
    for i in range(0, len(stream), 7):
        protocol.data_received(stream[i : i + 7])
    assert sink.messages == [b"hello " + payload_of(70000), b"next"]
    assert transport.frames() == [(OP_PONG, b"p1")]


async def test_fragmented_binary_message():
    protocol, _, sink = open_protocol()
    protocol.data_received(server_frame(OP_BINARY, b"\x00\x01", fin=False) + server_frame(OP_CONTINUATION, b"\x02"))
    assert sink.messages == [b"\x00\x01\x02"]


async def test_ping_gets_a_masked_pong_with_its_payload():
    protocol, transport, sink = open_protocol()
    protocol.data_received(server_frame(OP_PING, b"are you there") + server_frame(OP_PONG, b"ignored"))
    assert transport.written[1] & 0x80  # masked
    assert transport.frames() == [(OP_PONG, b"are you there")]
    assert sink.messages == []
    assert not protocol.closed


async def test_close_is_answered_and_closes_the_client():
    protocol, transport, sink = open_protocol()
    protocol.data_received(
        server_frame(OP_TEXT, b"before") + server_frame(OP_CLOSE, (4003).to_bytes(2, "big") + b"bye")
    )
    protocol.data_received(server_frame(OP_TEXT, b"after"))
    assert sink.messages == [b"before"]
    assert transport.frames() == [(OP_CLOSE, (4003).to_bytes(2, "big"))]
    assert transport.closing and protocol.closed and protocol.close_code == 4003
    assert sink.closes == 1
    protocol.connection_lost(None)
    assert sink.closes == 1
    with pytest.raises(WebSocketClosed):
        await protocol.send("late")


@pytest.mark.parametrize(
    "bad",
    [
        bytes((0x81, 0x81)) + b"mask" + b"x",  # masked server frame
        server_frame(OP_TEXT, b"x", rsv=0x40),  # RSV1 without an extension
        server_frame(OP_CONTINUATION, b"x"),  # continuation out of nowhere
        server_frame(OP_PING, b"x", fin=False),  # fragmented control frame
        server_frame(0x3, b"x"),  # reserved opcode
    ],
)
async def test_protocol_errors_fail_the_connection(bad, capsys):
    protocol, transport, sink = open_protocol()
    protocol.data_received(bad + server_frame(OP_TEXT, b"after"))
    assert sink.messages == [] and protocol.closed and transport.closing and sink.closes == 1
    assert transport.frames() == [(OP_CLOSE, (1002).to_bytes(2, "big"))]
    assert "protocol error" in capsys.readouterr().err


# ---- the handshake ---------------------------------------------------------------------------------


def response(key: str, **overrides: str) -> bytes:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept_key(key)}
    headers.update(overrides)
    lines = ["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in headers.items() if v]
    return "\r\n".join(lines).encode()


def test_accept_key_is_rfc_6455s_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_response_checks():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    check_handshake_response(response(key), key)
    check_handshake_response(response(key, Upgrade="WebSocket", Connection="keep-alive, upgrade"), key)
    bad = [
        (response(key, **{"Sec-WebSocket-Accept": accept_key("other")}), "Sec-WebSocket-Accept"),
        (response(key, **{"Sec-WebSocket-Accept": ""}), "Sec-WebSocket-Accept"),
        (response(key, Upgrade="h2c"), "Upgrade"),
        (response(key, Connection="close"), "Connection"),
        (response(key, **{"Sec-WebSocket-Extensions": "permessage-deflate"}), "extensions"),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0", "server rejected WebSocket connection: HTTP 403 Forbidden"),
        (b"SSH-2.0-OpenSSH", "malformed"),
    ]
    for head, message in bad:
        with pytest.raises(HandshakeError, match=message):
            check_handshake_response(head, key)


async def test_handshake_bytes_split_and_followed_by_frames():
    sink = Collector()
    protocol = WebSocketProtocol("k", b"GET / HTTP/1.1\r\n\r\n", sink.message, sink.close)
    transport = FakeTransport()
    protocol.connection_made(transport)
    assert transport.written == b"GET / HTTP/1.1\r\n\r\n"
    stream = response("k") + b"\r\n\r\n" + server_frame(OP_TEXT, b"first") + server_frame(OP_TEXT, b"sec")
    for i in range(0, len(stream) - 3, 5):
        protocol.data_received(stream[i : i + 5])
    assert protocol.handshake.done() and protocol.open
    protocol.data_received(stream[(len(stream) - 3) // 5 * 5 + 5 :])
    assert sink.messages == [b"first", b"sec"]


# ---- the Message fast path -------------------------------------------------------------------------


def message(content: str, sender: str = "bench0001", **extra) -> bytes:
    frame = message_frame(
        id=7,
        sender=sender,
        to="bench room",
        chat="Group",
        content=content,
        is_image=False,
        time=datetime.now(timezone.utc),
        client_id="run-1-2",
    )
    return encode({**frame, **extra}).encode()


def test_message_stamp_reads_the_servers_encoding():
    raw = message("bench 1 2 123456789")
    assert raw.startswith(MESSAGE_HEAD)
    assert message_stamp(raw, 0, len(raw)) == (b"bench0001", 123456789)
    framed = b"xx" + raw + b"yy"
    assert message_stamp(bytearray(framed), 2, 2 + len(raw)) == (b"bench0001", 123456789)
    assert message_stamp(message("hello"), 0, len(message("hello"))) is NOT_BENCH
    assert message_stamp(message("benchmark 1"), 0, len(message("benchmark 1"))) is NOT_BENCH
    tricky = message('bench "quoted" 5')  # an escape: decoded by json.loads instead
    assert message_stamp(tricky, 0, len(tricky)) is None


def refusal(code: str, ref: str) -> bytes:
    error = ChatError(code, "refused")
    error.ref = ref
    raw = encode(error_frame(error)).encode()
    assert not raw.startswith(MESSAGE_HEAD)
    return raw


@pytest.fixture
def rec(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(loadgen, "REC", recorder)
    recorder.open_window(0, 10**30)
    return recorder


def feed(client: Client, raw: bytes, arrived: int) -> None:
    padded = b"\x00" + raw + b"\x00"
    client.on_ws_message(padded, 1, 1 + len(raw), arrived)


@pytest.mark.parametrize("fast", [True, False])
async def test_fast_path_records_exactly_what_json_decoding_does(rec, monkeypatch, fast):
    """The same frames through on_ws_message (fast) and through handle (json.loads) give the same figures."""
    client = Client("bench0001", 1)
    client.inflight = asyncio.Semaphore(0)
    if not fast:
        monkeypatch.setattr(loadgen, "message_stamp", lambda *args: None)
    decoded = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda raw: decoded.append(raw) or loads(raw))
    frames = [
        message("bench 1 1 1000"),  # own echo: a delivery and a release
        message("bench 2 1 2000", sender="bench0002"),  # someone else's: a delivery
        message("hello", sender="bench0002"),  # not a bench stamp: ignored
        message('bench 2 2 "x" 3000', sender="bench0002"),  # escaped: json.loads, still a delivery
        message("bench 1 2 4000", sender="bench0001", Extra="x"),
        encode(presence_frame(username="bench0003", online=True)).encode(),
        refusal("rate_limited", "Send"),  # a refused Send: a release
        refusal("forbidden", "Join"),
    ]
    for raw in frames:
        feed(client, raw, 10_000)
    assert rec.frames == 8
    assert rec.received == rec.window_delivered == 4
    assert sorted(rec.latencies) == [6000, 7000, 8000, 9000]
    assert rec.presence == 1
    assert rec.errors == {"rate_limited": 1, "forbidden": 1}
    assert client.inflight._value == 3  # two echoes and one refused Send
    assert len(decoded) == (4 if fast else 8)  # fast: only the escaped Message, Presence and the Errors


async def test_state_frame_sets_ready(rec):
    client = Client("bench0001", 1)
    feed(client, json.dumps({"Type": "State", "User": "bench0001", "Users": [], "Groups": [], "LastId": 0}).encode(), 1)
    assert client.ready.is_set() and rec.frames == 1


# ---- against a real WebSocket server -----------------------------------------------------------


TEXTS = ["short", "é" * 100, "x" * 70000, "y" * 600_000]  # the last one takes several reads


async def test_against_a_websockets_server():
    seen: dict = {}
    got_close = asyncio.Event()

    async def handler(ws):
        seen["headers"] = dict(ws.request.headers)
        async for text in ws:
            if text == "ping me":
                await (await ws.ping(b"hi"))  # returns once our pong came back
                await ws.send("ponged")
            elif text == "close me":
                await ws.close(4000, "done")
            else:
                await ws.send(text)  # echo
                await ws.send(text.encode())  # and as binary

    sink = Collector()
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await ws_connect(
            f"ws://127.0.0.1:{port}/ws/chat/",
            headers={"Origin": "http://127.0.0.1:8000", "Cookie": "sessionid=abc"},
            on_message=sink.message,
            on_close=lambda: got_close.set(),
        )
        for text in TEXTS:
            await ws.send(text)
        await ws.send("ping me")
        await ws.send("close me")
        await asyncio.wait_for(got_close.wait(), 5)
    assert seen["headers"]["origin"] == "http://127.0.0.1:8000"
    assert seen["headers"]["cookie"] == "sessionid=abc"
    expected = []
    for text in TEXTS:
        expected += [text.encode(), text.encode()]
    assert sink.messages == expected + [b"ponged"]
    assert ws.closed and ws.close_code == 4000


async def test_a_refused_handshake_raises():
    def refuse(connection, request):
        return connection.respond(HTTPStatus.FORBIDDEN, "go away\n")

    async with serve(lambda ws: ws.close(), "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError, match="HTTP 403"):
            await ws_connect(f"ws://127.0.0.1:{port}/", headers={}, on_message=Collector().message)


async def test_a_silent_server_times_out():
    request = asyncio.get_running_loop().create_future()
    ended = asyncio.get_running_loop().create_future()

    async def silent(reader, writer):
        request.set_result(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()  # until the client gives up
        writer.close()
        await writer.wait_closed()
        ended.set_result(True)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(TimeoutError):
            await ws_connect(
                f"ws://127.0.0.1:{port}/x?y=1", headers={}, on_message=Collector().message, open_timeout=0.3
            )
        head = (await request).decode()
        assert head.startswith("GET /x?y=1 HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{port}\r\n" in head and "Sec-WebSocket-Version: 13\r\n" in head
        await asyncio.wait_for(ended, 5)  # the handler sees the abort and closes


async def test_client_open_and_bench_messages_end_to_end(rec):
    async def chat(ws):
        assert json.loads(await ws.recv()) == {"Type": "Connect"}
        await ws.send(json.dumps({"Type": "State", "User": "bench0001", "Users": [], "Groups": [], "LastId": 0}))
        async for text in ws:
            sent = json.loads(text)
            assert sent["Type"] == "Send"
            frame = message_frame(
                id=1,
                sender="bench0001",
                to=sent["To"],
                chat=sent["Chat"],
                content=sent["Content"],
                is_image=False,
                time=datetime.now(timezone.utc),
                client_id=sent["ClientId"],
            )
            await ws.send(encode(frame))

    async with serve(chat, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        client = Client("bench0001", 1)
        handshake_ms, ready_ms = await client.open(f"http://127.0.0.1:{port}", "session")
        assert 0 < handshake_ms <= ready_ms
        client.inflight = asyncio.Semaphore(0)
        for _ in range(5):
            await client.send_bench("Group", "bench room", "run")
        for _ in range(5):
            await asyncio.wait_for(client.inflight.acquire(), 5)
        assert rec.window_sent == 5 and rec.window_delivered == 5 and rec.frames == 6
        assert all(latency > 0 for latency in rec.latencies)
        client.abort()
        assert not client.closed  # as before: abort does not count as the server closing
