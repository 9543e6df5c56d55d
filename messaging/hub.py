"""The per-process delivery hub: one channel-layer member per process instead of one per socket.

Channel-layer groups (`chat.user.<id>`, `chat.group.<id>`, `chat.everyone`) each have, in
every server process, one member: that process's hub channel. The hub keeps its own map
of layer group -> local sockets. A layer event arrives once per process, already
serialized (messaging.events), and the hub writes it straight to exactly the local sockets in
that group: no layer message, dispatch task or thread hop per delivery, and under Daphne one
WebSocket frame built per event, not per socket (chatsite.fastwrite).

Layer events carry the `group` they were sent to, and may carry instructions that change
membership at once in every process: `subscribe` / `unsubscribe` (another layer group, for the
sockets of this group), `close` (a close code: a ban, a session that ended) and `skip` (one
socket, the sender of a `Read`).

Layer group sends are at most once (a full channel drops what it cannot hold; a channel whose
messages wait longer than the layer's `expiry` is dropped from its groups). So the hub
sends itself a numbered heartbeat through the layer every second. Beats are late, never
reordered, when the hub is busy; a missing number means events may have been lost (or a beat
could not be sent at all), and every local socket is closed with 4012. No beat at all for
`SILENCE_LIMIT` means the layer may have dropped this process from its groups: the hub joins
them again, then does the same. Clients reconnect at once and replay with `Since`, and
`State` gives them presence and groups afresh: a gap costs a reconnect, not missed messages.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from chatsite.fastwrite import Frame
from messaging.protocol import CLOSE_POLICY

log = logging.getLogger(__name__)
# channels_redis forgets a group member `group_expiry` (1 day) after its last group_add; a hub
# lives longer than that, so it renews its memberships well before.
RENEW_EVERY = 3600
HEARTBEAT_EVERY = 1.0
# No beat at all for this long: rejoin the groups and resync. Well under the layers' 60 s
# expiry, and long enough that a hub merely behind under load is not taken for deaf.
SILENCE_LIMIT = 20.0
# A failing layer receive is retried after 50 ms, doubling up to 5 s: no busy loop while Redis is down.
RECEIVE_BACKOFF_MIN = 0.05
RECEIVE_BACKOFF_MAX = 5.0


class LocalSocket(Protocol):
    socket_id: str

    def deliver_now(self, frame: Frame) -> bool:
        """Write the frame at once if the socket can (see chatsite.fastwrite); False if not."""

    async def deliver(self, text: str) -> None: ...

    async def close_for(self, code: int) -> None:
        """Close the socket with a WebSocket close code (messaging.protocol CLOSE_*)."""

    async def close_to_resync(self) -> None: ...


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel = ""
        self.members: dict[str, set[LocalSocket]] = {}
        self.groups_of: dict[LocalSocket, set[str]] = {}
        self._ids = itertools.count(1)
        self._opening: dict[LocalSocket, set[str]] = {}
        self._gone: weakref.WeakSet[LocalSocket] = weakref.WeakSet()
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self.heartbeat_group = f"chat.hub.{uuid.uuid4().hex}"
        self._beats_sent = 0
        self._beat_seen = 0
        self._beat_seen_at = 0.0
        self._silent = False
        self.resyncs = 0
        self.layer_ok = True  # False while the layer's receive fails (for a health check)

    async def start(self) -> None:
        async with self._start_lock:
            if not self.channel:
                channel = await self.layer.new_channel("hub.")
                await self.layer.group_add(self.heartbeat_group, channel)  # a failure: the next start() retries
                self.channel, self._beat_seen_at = channel, time.monotonic()
                self._tasks = [
                    asyncio.create_task(self._receive_loop()),
                    asyncio.create_task(self._renew_loop()),
                    asyncio.create_task(self._heartbeat_loop()),
                    asyncio.create_task(self._session_loop()),
                ]

    def new_socket_id(self) -> str:
        return f"{self.channel}#{next(self._ids)}"

    # ---- membership ------------------------------------------------------------------

    async def open(self, sock: LocalSocket, groups: list[str]) -> None:
        """Start a socket in `groups` (its user's group and everyone's), before its other
        groups are read from the database: from here on no instruction for it is missed."""
        self._opening[sock] = set()
        for group in groups:
            await self.join(sock, group)

    async def finish_open(self, sock: LocalSocket, groups: list[str]) -> None:
        """Join the groups the database listed, except those an instruction already settled:
        an instruction seen while opening is at least as new as that read."""
        settled = self._opening.pop(sock, set())
        for group in groups:
            if group not in settled:
                await self.join(sock, group)

    async def join(self, sock: LocalSocket, group: str) -> None:
        async with self._lock:
            if sock in self._gone:
                return
            if group not in self.members:
                await self.layer.group_add(group, self.channel)  # first: a failure leaves no trace
                self.members[group] = set()
            self.members[group].add(sock)
            self.groups_of.setdefault(sock, set()).add(group)

    async def leave(self, sock: LocalSocket, group: str) -> None:
        async with self._lock:
            await self._leave_locked(sock, group)

    async def _leave_locked(self, sock: LocalSocket, group: str) -> None:
        self.groups_of.get(sock, set()).discard(group)
        members = self.members.get(group)
        if members is None or sock not in members:
            return
        members.discard(sock)
        if not members:
            del self.members[group]
            await self.layer.group_discard(group, self.channel)

    async def leave_all(self, sock: LocalSocket) -> None:
        """Forget a closed socket for good: a late instruction cannot add it back."""
        async with self._lock:
            self._gone.add(sock)
            self._opening.pop(sock, None)
            for group in list(self.groups_of.get(sock, ())):
                await self._leave_locked(sock, group)
            self.groups_of.pop(sock, None)

    # ---- delivery --------------------------------------------------------------------

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Apply one layer event to the local sockets of its group."""
        if (beat := event.get("heartbeat")) is not None:
            await self._heartbeat(beat)
            return
        targets = list(self.members.get(event.get("group", ""), ()))
        if not targets:
            return
        if name := event.get("subscribe"):
            for sock in targets:
                self._settle(sock, name)
                await self.join(sock, name)
        if name := event.get("unsubscribe"):
            for sock in targets:
                self._settle(sock, name)
                await self.leave(sock, name)
        if code := event.get("close"):
            for sock in targets:
                await sock.close_for(CLOSE_POLICY if code is True else code)
            return
        if text := event.get("text"):
            skip = event.get("skip")
            frame = Frame(text)  # framed once, for every socket that takes it directly
            for sock in targets:
                if sock.socket_id != skip and not sock.deliver_now(frame):
                    await sock.deliver(text)

    def _settle(self, sock: LocalSocket, group: str) -> None:
        if sock in self._opening:
            self._opening[sock].add(group)

    async def _receive_loop(self) -> None:
        delay = 0.0
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the layer is down: wait longer each time, say so once
                if self.layer_ok:
                    self.layer_ok = False
                    log.warning("hub: the channel layer fails (%r); retrying with back-off", error)
                delay = min(RECEIVE_BACKOFF_MAX, max(RECEIVE_BACKOFF_MIN, delay * 2))
                await asyncio.sleep(delay)
                continue
            if not self.layer_ok:
                self.layer_ok, delay = True, 0.0
                log.warning("hub: the channel layer answers again")  # the heartbeat gap resyncs
            try:
                await self.dispatch(event)
            except Exception:  # one bad event must not stop delivery for the whole process
                log.exception("hub: event dropped")

    # ---- lost events: heartbeats through the layer ------------------------------------

    async def _heartbeat(self, beat: int) -> None:
        if beat <= self._beat_seen:  # a repeat or a stale beat says nothing new
            return
        lost = beat - self._beat_seen - 1
        self._beat_seen, self._beat_seen_at, self._silent = beat, time.monotonic(), False
        if lost:
            await self.resync(f"{lost} heartbeat(s) before {beat} never arrived")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            if not self._silent and time.monotonic() - self._beat_seen_at > SILENCE_LIMIT:
                # No beat at all: the layer may have dropped this process from its groups (the
                # in-memory and Redis core layers evict a channel whose messages expired).
                self._silent = True  # once per silence
                await self._rejoin()
                self._beat_seen = self._beats_sent  # the beats lost so far are answered here
                await self.resync(f"no heartbeat for {SILENCE_LIMIT:g} s")
            # Numbered before it is sent: a beat that cannot be sent (Redis down) is a gap too.
            self._beats_sent += 1
            message = {"type": "chat.event", "group": self.heartbeat_group, "heartbeat": self._beats_sent}
            try:
                await self.layer.group_send(self.heartbeat_group, message)
            except Exception as error:  # the gap shows when the layer is back
                log.warning("hub: heartbeat %d not sent: %r", self._beats_sent, error)

    async def _rejoin(self) -> None:
        """Add this process to its layer groups again (group_add is idempotent)."""
        for group in [self.heartbeat_group, *self.members]:
            try:
                await self.layer.group_add(group, self.channel)
            except Exception:  # the renewal loop and the next silence try again
                log.exception("hub: rejoining %s failed", group)

    async def resync(self, why: str) -> None:
        """Events may have been lost: every local socket reconnects and catches up."""
        self.resyncs += 1
        sockets = list(self.groups_of)
        log.warning("hub: %s; closing %d local sockets so they reconnect and catch up", why, len(sockets))
        for sock in sockets:
            try:
                await sock.close_to_resync()
            except Exception:
                log.exception("hub: closing a socket to resync failed")

    async def _session_loop(self) -> None:
        """Every open socket's session checked again (messaging.session_watch)."""
        from django.conf import settings

        from messaging.session_watch import sessions_watch

        while True:
            await asyncio.sleep(settings.CHAT_SESSION_CHECK_SECONDS)
            try:
                await sessions_watch(list(self.groups_of))
            except Exception:  # the database may be down: try again next time
                log.exception("hub: checking the sockets' sessions failed")

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            await self._rejoin()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for group in [self.heartbeat_group, *self.members]:
            try:
                await self.layer.group_discard(group, self.channel)
            except Exception:  # stopping anyway; the layer forgets the rest after group_expiry
                log.exception("hub: leaving %s failed", group)
        self.members.clear()
        self.groups_of.clear()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Hub]] = weakref.WeakKeyDictionary()


async def get_hub() -> Hub:
    """This process's hub for the current channel layer (one per event loop and layer)."""
    layer = get_channel_layer()
    per_loop = _hubs.setdefault(asyncio.get_running_loop(), {})
    hub = per_loop.get(id(layer))
    if hub is None or hub.layer is not layer:
        hub = per_loop[id(layer)] = Hub(layer)
    await hub.start()
    return hub


async def stop_hubs() -> None:
    """Stop the hubs of the running loop (tests: before the loop closes)."""
    for hub in _hubs.pop(asyncio.get_running_loop(), {}).values():
        await hub.stop()
