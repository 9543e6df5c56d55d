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
messages wait longer than the layer's `expiry` is dropped from its groups; Redis forgets every
membership when it restarts). What the layer loses, the hub's sweep (messaging.catchup) finds
in the database and delivers. The hub also sends itself a numbered heartbeat through the layer
every second: a missing number shows that events were lost (the sockets' sessions are checked
at once, for a lost logout or ban), and beats that stop coming back mean the layer dropped
this process from its groups: the watchdog joins every one of them again, with back-off, until
beats return. Nothing turns the watchdog off.
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
from messaging.catchup import CatchUp
from messaging.protocol import CLOSE_POLICY

log = logging.getLogger(__name__)
# channels_redis forgets a group member `group_expiry` (1 day) after its last group_add; a hub
# lives longer than that, so it renews its memberships well before.
RENEW_EVERY = 3600
HEARTBEAT_EVERY = 1.0
# This many beats sent and not come back: the layer may have dropped this process from its
# groups (a Redis restart): join them all again, then again after REJOIN_BACKOFF_MIN doubling up
# to REJOIN_BACKOFF_MAX while beats stay away. (A hub merely busy is late by a beat or two.)
BEATS_LATE = 3
REJOIN_BACKOFF_MIN = 1.0
REJOIN_BACKOFF_MAX = 30.0
# A failing layer receive is retried after 50 ms, doubling up to 5 s: no busy loop while Redis is down.
RECEIVE_BACKOFF_MIN = 0.05
RECEIVE_BACKOFF_MAX = 5.0


class LocalSocket(Protocol):
    socket_id: str
    user: Any  # its user (absent on test doubles that stand for no one)
    closed: bool

    def deliver_now(self, frame: Frame) -> bool:
        """Write the frame at once if the socket can (see chatsite.fastwrite); False if not."""

    async def deliver(self, text: str) -> None: ...

    async def close_for(self, code: int) -> None:
        """Close the socket with a WebSocket close code (messaging.protocol CLOSE_*)."""


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
        self.gaps = 0  # heartbeat gaps seen: events were lost on the way (the sweep delivers them)
        self.deaf = False  # beats stopped coming back: rejoining the layer groups with back-off
        self.rejoins = 0
        self._rejoin_delay = REJOIN_BACKOFF_MIN
        self._next_rejoin = 0.0
        self._rejoin_now = False
        self.layer_ok = True  # False while the layer's receive fails (for a health check)
        self.catchup = CatchUp(self)

    async def start(self) -> None:
        async with self._start_lock:
            if not self.channel:
                channel = await self.layer.new_channel("hub.")
                await self.layer.group_add(self.heartbeat_group, channel)  # a failure: the next start() retries
                await self.catchup.start()
                self.channel, self._beat_seen_at = channel, time.monotonic()
                self._tasks = [
                    asyncio.create_task(self._receive_loop()),
                    asyncio.create_task(self._renew_loop()),
                    asyncio.create_task(self._heartbeat_loop()),
                    asyncio.create_task(self._session_loop()),
                    asyncio.create_task(self.catchup.run()),
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
            self.catchup.forget(sock)
            for group in list(self.groups_of.get(sock, ())):
                await self._leave_locked(sock, group)
            self.groups_of.pop(sock, None)

    # ---- delivery --------------------------------------------------------------------

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Apply one layer event to the local sockets of its group."""
        if (beat := event.get("heartbeat")) is not None:
            await self._heartbeat(beat)
            return
        group = event.get("group", "")
        if (seq := event.get("seq")) is not None:
            self.catchup.saw(seq, group)
        targets = list(self.members.get(group, ()))
        if not targets:
            return
        if name := event.get("subscribe"):
            for sock in targets:
                self._settle(sock, name)
                await self.join(sock, name)
                self.catchup.joined(sock, name)
        if name := event.get("unsubscribe"):
            self.catchup.left()
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
                log.warning("hub: the channel layer answers again; joining every layer group again")
                self._rejoin_now = True  # a restarted Redis forgot them all
            try:
                await self.dispatch(event)
            except Exception:  # one bad event must not stop delivery for the whole process
                log.exception("hub: event dropped")

    # ---- lost events: heartbeats through the layer ------------------------------------

    async def _heartbeat(self, beat: int) -> None:
        if beat <= self._beat_seen:  # a repeat or a stale beat says nothing new
            return
        lost = beat - self._beat_seen - 1
        self._beat_seen, self._beat_seen_at = beat, time.monotonic()
        if lost:
            # Events may be lost with them: the sweep delivers those from the database. A lost
            # `close` (a logout, a ban) is found by checking every socket's session now.
            self.gaps += 1
            log.warning("hub: %d heartbeat(s) before %d never arrived; checking sessions, sweeping", lost, beat)
            asyncio.create_task(self._check_sessions())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await self._watchdog()
            # Numbered before it is sent: a beat that cannot be sent (Redis down) is a gap too.
            self._beats_sent += 1
            message = {"type": "chat.event", "group": self.heartbeat_group, "heartbeat": self._beats_sent}
            try:
                await self.layer.group_send(self.heartbeat_group, message)
            except Exception as error:  # the gap shows when the layer is back
                log.debug("hub: heartbeat %d not sent: %r", self._beats_sent, error)

    async def _watchdog(self) -> None:
        """Beats not coming back: join every layer group again, with back-off, until they do."""
        overdue = self._beats_sent - self._beat_seen
        now = time.monotonic()
        if overdue <= 1 and self.deaf:
            self.deaf, self._rejoin_delay = False, REJOIN_BACKOFF_MIN
            log.warning("hub: heartbeats come back again")
        if overdue <= 1 and not self._rejoin_now:
            return
        if self._rejoin_now:  # the layer answers again after failing
            self._rejoin_now = False
            await self._rejoin()
            return
        if overdue > BEATS_LATE and now >= self._next_rejoin:
            if not self.deaf:
                self.deaf = True
                log.warning("hub: %d heartbeats did not come back; joining every layer group again", overdue)
            await self._rejoin()
            self._next_rejoin = now + self._rejoin_delay
            self._rejoin_delay = min(REJOIN_BACKOFF_MAX, self._rejoin_delay * 2)

    async def _rejoin(self) -> bool:
        """Add this process to every layer group it holds again (group_add is idempotent)."""
        self.rejoins += 1
        failed = 0
        for group in [self.heartbeat_group, *self.members]:
            try:
                await self.layer.group_add(group, self.channel)
            except Exception as error:  # the watchdog tries again
                failed += 1
                last = error
        if failed:
            log.debug("hub: rejoining failed for %d layer group(s): %r", failed, last)
        return not failed

    async def _check_sessions(self) -> None:
        from messaging.session_watch import sessions_watch

        try:
            await sessions_watch(list(self.groups_of))
        except Exception:  # the database may be down: the periodic check tries again
            log.exception("hub: checking the sockets' sessions failed")

    async def _session_loop(self) -> None:
        """Every open socket's session checked again (messaging.session_watch)."""
        from django.conf import settings

        while True:
            await asyncio.sleep(settings.CHAT_SESSION_CHECK_SECONDS)
            await self._check_sessions()

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
