"""One protocol client of a chaos run (bench/chaos.py): a socket that keeps what it was sent.

It holds messages by `Id` with their `Seq`, remembers removed ids, and keeps its cursor:
with a server that sends `Seq` (docs/protocol.md, resume by `Seq`) the `Seq` of the last `Synced`
(or of the first `State`), else the highest message `Id` seen (`Since`). Sends carry a unique
`ClientId` and stay pending until their echo comes back; every reconnect resends them.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

RETRY_CODES = {"server_error", "rate_limited"}  # nothing was done: the same frame may go again
MAX_ATTEMPTS = 50


@dataclass
class Outgoing:
    """One logical send: what was sent, by which socket, and what became of it."""

    client_id: str
    username: str
    chat: str
    to: str
    text: str
    created: float = field(default_factory=time.time)
    attempts: int = 0
    acked_id: int | None = None
    acked_at: float | None = None
    refused: str | None = None  # the error code it was given up on

    def frame(self) -> str:
        return json.dumps(
            {"Type": "Send", "Chat": self.chat, "To": self.to, "Content": self.text, "ClientId": self.client_id}
        )


@dataclass
class Held:
    """A message as this socket holds it."""

    seq: int
    sender: str
    to: str
    chat: str
    client_id: str | None


@dataclass
class Hooks:
    """What the run wants to hear of (see bench/chaos.py)."""

    history: Callable[[str, str, str], None] = lambda username, chat, to: None
    group: Callable[[dict], None] = lambda frame: None
    error: Callable[[str, dict], None] = lambda username, frame: None


class Client:
    def __init__(self, name: str, username: str, session: str, servers: list, rng: random.Random, hooks: Hooks):
        self.name, self.username, self.session = name, username, session
        self.servers, self.rng, self.hooks = servers, rng, hooks
        self.held: dict[int, Held] = {}
        self.removed: dict[int, int] = {}  # id -> Seq of its removal (0 without Seq)
        self.seen: dict[int, tuple[str, str, str]] = {}  # every message frame ever received: from, to, chat
        self.pending: dict[str, Outgoing] = {}
        self.seq_mode: bool | None = None  # known at the first State: does the server send `Seq`?
        self.baseline: int | None = None  # first State's Seq (or LastId); raised by a Reset
        self.cursor_seq = 0
        self.cursor_id = 0
        self.member_of: set[str] = set()  # groups, as the last State and Group frames tell
        self.left_seq: dict[str, float] = {}  # group -> Seq up to which it was left (frames before: late)
        self.ws: ClientConnection | None = None
        self.ready = False  # a State came on the current connection
        self.stopping = False
        self._tasks: set[asyncio.Future] = set()
        self.stats = {"connects": 0, "failed_connects": 0, "drops": 0, "frames": 0, "repeats": 0, "resets": 0}

    # ---- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, read, and on any disconnect reconnect (to either server) with the cursor."""
        while not self.stopping:
            server = self.rng.choice(self.servers)
            try:
                async with connect(
                    server.url,
                    origin=server.origin,
                    additional_headers={"Cookie": f"sessionid={self.session}"},
                    open_timeout=5,
                    close_timeout=2,
                    proxy=None,
                    compression=None,
                    max_size=None,
                ) as ws:
                    await self._session(ws)
            except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError):
                if self.ws is None:
                    self.stats["failed_connects"] += 1
            finally:
                self.ws, self.ready = None, False
            if not self.stopping:
                await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    async def _session(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.stats["connects"] += 1
        await ws.send(json.dumps(self._connect_frame()))
        for outgoing in list(self.pending.values()):  # unacknowledged: again, same ClientId
            outgoing.attempts += 1
            await ws.send(outgoing.frame())
        async for raw in ws:
            self.apply(json.loads(raw))

    def _connect_frame(self) -> dict:
        if self.baseline is None:
            return {"Type": "Connect"}
        if self.seq_mode:
            return {"Type": "Connect", "Seq": self.cursor_seq}
        return {"Type": "Connect", "Since": self.cursor_id}

    def drop(self) -> bool:
        """Cut the TCP connection without a close frame (a phone losing its network)."""
        if self.ws is None:
            return False
        self.ws.transport.abort()
        self.stats["drops"] += 1
        return True

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()

    async def send(self, outgoing: Outgoing) -> None:
        self.pending[outgoing.client_id] = outgoing
        await self._write(outgoing)

    async def _write(self, outgoing: Outgoing) -> None:
        if self.ws is None or not self.ready:
            return  # the next connection resends it
        outgoing.attempts += 1
        try:
            await self.ws.send(outgoing.frame())
        except ConnectionClosed:
            pass

    async def command(self, frame: dict) -> bool:
        """Send a command (Join, Leave) on the current connection; False if there is none."""
        if self.ws is None or not self.ready:
            return False
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    def caught_up(self, *, seq: int, last_id: int) -> bool:
        if self.baseline is None or not self.ready:
            return False
        return self.cursor_seq >= seq if self.seq_mode else self.cursor_id >= last_id

    # ---- frames -----------------------------------------------------------------------------

    def apply(self, frame: dict[str, Any]) -> None:
        self.stats["frames"] += 1
        handler = self.HANDLERS.get(frame.get("Type"))
        if handler is not None:
            handler(self, frame)

    def on_state(self, frame: dict) -> None:
        self.ready = True
        if self.seq_mode is None:
            self.seq_mode = "Seq" in frame
        self.member_of = {g["Name"] for g in frame["Groups"] if self.username in g["Members"]}
        held_groups = {h.to for h in self.held.values() if h.chat == "Group"}
        for group in held_groups - self.member_of:  # left while away: a fresh load does not show it
            self._forget_group(group, frame.get("Seq", math.inf))
        if not self.seq_mode:
            self.cursor_id = max(self.cursor_id, frame["LastId"])
            self.baseline = frame["LastId"] if self.baseline is None else self.baseline
        elif self.baseline is None:
            self.baseline = self.cursor_seq = frame["Seq"]  # no replay was asked for: nothing before it
        elif frame.get("Reset"):
            self._reset(frame["Seq"])

    def _forget_group(self, group: str, upto: float) -> None:
        """Drop a group the user is no longer in, up to `upto` (its `Seq` then; without `Seq`,
        all of it), and ignore late frames of it from before (by `Seq`)."""
        for message_id in [i for i, h in self.held.items() if h.chat == "Group" and h.to == group and h.seq <= upto]:
            del self.held[message_id]
        if self.seq_mode:
            self.left_seq[group] = max(self.left_seq.get(group, 0), upto)

    def _reset(self, seq: int) -> None:
        """Too far behind for a replay: drop what is older than `seq`, load the conversations again."""
        self.stats["resets"] += 1
        dropped = [i for i, held in self.held.items() if held.seq <= seq]
        peers = {self._peer(self.held[i]) for i in dropped if self.held[i].chat == "Private"}
        for i in dropped:
            del self.held[i]
        self.baseline = max(self.baseline or 0, seq)
        joins = [{"Type": "Join", "Chat": "Group", "To": g} for g in sorted(self.member_of)]
        joins += [{"Type": "Join", "Chat": "Private", "To": p} for p in sorted(peers)]
        for join in joins:
            self._spawn(self.command(join))

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _write_later(self, outgoing: Outgoing, delay: float) -> None:
        await asyncio.sleep(delay)
        if outgoing.client_id in self.pending:
            await self._write(outgoing)

    def _peer(self, held: Held) -> str:
        return held.to if held.sender == self.username else held.sender

    def on_synced(self, frame: dict) -> None:
        self.cursor_seq = max(self.cursor_seq, frame["Seq"])

    def on_message(self, frame: dict, *, history: bool = False) -> None:
        message_id, seq = frame["Id"], frame.get("Seq", 0)
        self.seen[message_id] = (frame["From"], frame["To"], frame["Chat"])
        self.cursor_id = max(self.cursor_id, message_id)
        client_id = frame.get("ClientId")
        if client_id in self.pending and frame["From"] == self.username:
            outgoing = self.pending.pop(client_id)
            outgoing.acked_id, outgoing.acked_at = message_id, time.time()
        if message_id in self.removed and (not self.seq_mode or self.removed[message_id] >= seq):
            return  # a late frame of a removed message
        if not history and frame["Chat"] == "Group" and seq <= self.left_seq.get(frame["To"], -1):
            return  # a late frame from before the user left that group
        held = self.held.get(message_id)
        if held is not None and seq <= held.seq:
            self.stats["repeats"] += 1  # a replay repeating what is held: de-duplicated here
            return
        self.held[message_id] = Held(seq, frame["From"], frame["To"], frame["Chat"], client_id)

    def on_history(self, frame: dict) -> None:
        if frame["Chat"] == "Group":
            self.member_of.add(frame["To"])  # a Join answers with History once the user is a member
        for message in frame["Messages"]:
            self.on_message(message, history=True)
        self.hooks.history(self.username, frame["Chat"], frame["To"])

    def on_removed(self, frame: dict) -> None:
        seq = frame.get("Seq", 0)
        for message_id in frame["Ids"]:
            self.held.pop(message_id, None)
            self.removed[message_id] = max(self.removed.get(message_id, 0), seq)

    def on_group(self, frame: dict) -> None:
        if frame["Event"] in ("Created", "Joined") and self.username in frame["Members"]:
            self.member_of.add(frame["Name"])
        elif frame["Event"] == "Deleted" or (frame["Event"] == "Left" and frame["User"] == self.username):
            self.member_of.discard(frame["Name"])
            self._forget_group(frame["Name"], frame.get("Seq", math.inf))
        self.hooks.group(frame)

    def on_error(self, frame: dict) -> None:
        outgoing = self.pending.get(frame.get("ClientId"))
        if outgoing is not None and frame["Code"] in RETRY_CODES and outgoing.attempts < MAX_ATTEMPTS:
            self._spawn(self._write_later(outgoing, 0.5))
        elif outgoing is not None:
            self.pending.pop(outgoing.client_id)
            outgoing.refused = frame["Code"]
        self.hooks.error(self.username, frame)

    HANDLERS: dict[str, Callable[[Client, dict], None]] = {
        "State": on_state,
        "Synced": on_synced,
        "Message": on_message,
        "History": on_history,
        "Removed": on_removed,
        "Group": on_group,
        "Error": on_error,
    }
