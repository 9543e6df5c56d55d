"""What makes a hub lose nothing: every change a local socket should have had, it gets.

The channel layer is fast but at most once: a full channel drops events, Redis forgets group
memberships when it restarts, a process killed between its commit and its publish never
publishes, and a hub subscribes a socket to a group only when it reads the instruction, a
moment after the database says the user joined. So the database, where every change is
numbered in commit order (messaging.seq), is the truth, and each hub checks itself against it:

- **The sweep**, every SWEEP_EVERY: the changes committed in the window just behind (those
  numbered up to what `seq_committed` said SWEEP_LAG ago) that a local user may see, compared
  with the `Seq`s the hub received for each layer group. What never came is read from the
  database and delivered as it is now. The same pass makes the hub's memberships those of the
  database (a lost `subscribe` or `unsubscribe`, a Redis restart).
- **A socket added to a group** (by an instruction or by the sweep) gets that group's changes
  since its mark: those sent before the hub subscribed it.
- **Marks**: each socket that sent `Connect` holds every change up to its mark. After a sweep,
  that is the window's end; now and then the hub tells the sockets (`Synced`), and that is the
  cursor a client resumes from. A client cannot take the highest `Seq` it saw: frames from two
  processes arrive out of order, and a smaller one may still be on its way.

Normally nothing is missing and a sweep costs two small queries a second. Replays can repeat
what a client already holds; clients apply a change only if its `Seq` is newer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from chatsite.fastwrite import Frame
from groups.models import group_id_of, layer_group_for
from messaging import protocol, selectors
from messaging.events import user_group
from messaging.seq import seq_committed

if TYPE_CHECKING:
    from messaging.hub import Hub, LocalSocket

log = logging.getLogger(__name__)
SWEEP_EVERY = 1.0
# Changes are swept once they are this old: a live event normally arrives in milliseconds, so
# the sweep finds nothing missing and sends nothing twice.
SWEEP_LAG = 2.0
# How often the sockets are told their mark (`Synced`) while things change.
SYNCED_EVERY = 5.0
GROUP_PREFIX = layer_group_for(0)[:-1]


async def change_pages(
    *, user: Any, after: int, upto: int, group_id: int | None = None, size: int = 500
) -> AsyncIterator[list[dict]]:
    """The changes of `selectors.change_list` after `after` up to `upto`, a page of `size` at a
    time, as current-state frames: for a resume (messaging.consumers) and a group replay."""
    cursor: int | tuple[int, int] = after
    while True:
        changes = await database_sync_to_async(selectors.change_list)(
            user=user, after=cursor, upto=upto, group_id=group_id, limit=size
        )
        yield protocol.change_frames(changes)
        if len(changes) < size:
            return
        cursor = (changes[-1].seq, changes[-1].pk)


class CatchUp:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.swept: int | None = None  # every change up to here was checked
        self.seen: dict[int, list[str]] = {}  # Seq received -> the layer groups it came through
        self.marks: dict[LocalSocket, int] = {}
        self.ready: set[LocalSocket] = set()  # their resume is over: the sweep moves their mark
        self.busy: dict[LocalSocket, int] = {}  # group replays running for them
        self.epoch = 0  # bumped by every membership instruction
        self.delivered = 0  # changes the sweep found missing and delivered
        self._committed: deque[tuple[float, int]] = deque()
        self._synced_at = 0.0
        self._synced_seq = 0
        self._failing = False

    async def start(self) -> None:
        try:
            self.swept = await database_sync_to_async(seq_committed)()
        except Exception:  # the first sweep tries again
            log.exception("hub: reading the change cursor failed")

    # ---- what the hub tells it ------------------------------------------------------------

    def saw(self, seq: int, layer_group: str) -> None:
        self.seen.setdefault(seq, []).append(layer_group)

    def hold(self, sock: LocalSocket, seq: int, *, ready: bool) -> None:
        """`sock` holds every change up to `seq`: while it resumes (not ready), or once done."""
        self.marks[sock] = seq
        (self.ready.add if ready else self.ready.discard)(sock)

    def forget(self, sock: LocalSocket) -> None:
        self.marks.pop(sock, None)
        self.ready.discard(sock)
        self.busy.pop(sock, None)

    def left(self) -> None:
        self.epoch += 1

    def joined(self, sock: LocalSocket, layer_group: str) -> None:
        """An instruction put `sock` in a group: replay what it may have missed, in a task."""
        self.epoch += 1
        mark = self.marks.get(sock)
        if mark is None or not layer_group.startswith(GROUP_PREFIX):
            return  # no `Connect` yet: its own replay will cover the group
        self.busy[sock] = self.busy.get(sock, 0) + 1
        asyncio.create_task(self._replay_group(sock, group_id_of(layer_group), mark))

    # ---- replays --------------------------------------------------------------------------

    async def _replay_group(self, sock: LocalSocket, group_id: int, mark: int) -> None:
        try:
            upto = await database_sync_to_async(seq_committed)()
            async for frames in change_pages(user=sock.user, after=mark, upto=upto, group_id=group_id):
                for frame in frames:
                    await sock.deliver(protocol.encode(frame))
                if sock.closed:
                    return
        except Exception:  # its mark stays where it was: the socket's next resume covers it
            log.exception("hub: replaying a group to a socket that joined it failed")
            self.ready.discard(sock)
        finally:
            left = self.busy.get(sock, 1) - 1
            if left > 0:
                self.busy[sock] = left
            else:
                self.busy.pop(sock, None)

    # ---- the sweep ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
                if self._failing:
                    self._failing = False
                    log.warning("hub: the sweep works again")
            except Exception:  # the database may be down: the window stays, the next sweep covers it
                if not self._failing:
                    self._failing = True
                    log.exception("hub: the sweep failed; retrying every %g s", SWEEP_EVERY)

    async def sweep(self) -> None:
        now = time.monotonic()
        committed = await database_sync_to_async(seq_committed)()
        if self.swept is None:
            self.swept = committed
        self._committed.append((now, committed))
        upto = None
        while self._committed and self._committed[0][0] <= now - SWEEP_LAG:
            upto = self._committed.popleft()[1]
        if upto is not None and upto > self.swept:
            await self._check(upto)
        await self._tell_marks(now)

    async def _check(self, upto: int) -> None:
        hub = self.hub
        sockets = [s for s in hub.groups_of if getattr(s, "user", None) is not None and not s.closed]
        if sockets:
            for _attempt in range(3):
                epoch = self.epoch
                groups, rows = await database_sync_to_async(selectors.sweep_read)(
                    user_ids=sorted({sock.user.pk for sock in sockets}), after=self.swept, upto=upto
                )
                if epoch == self.epoch:
                    break
            else:  # instructions kept moving people meanwhile: that read may be stale; next time
                return
            joined = await self._reconcile(sockets, groups)
            await self._deliver_missing(rows)
            for sock, layer_group in joined:
                if sock in self.marks:
                    self.busy[sock] = self.busy.get(sock, 0) + 1
                    await self._replay_group(sock, group_id_of(layer_group), self.marks[sock])
            for sock in sockets:
                if sock in self.ready and sock not in self.busy:
                    self.marks[sock] = max(self.marks[sock], upto)
        self.swept = upto
        self.seen = {seq: groups for seq, groups in self.seen.items() if seq > upto}

    async def _reconcile(
        self, sockets: list[LocalSocket], groups: dict[int, set[int]]
    ) -> list[tuple[LocalSocket, str]]:
        """Make each socket's groups in the hub those its user is in now; returns the joins."""
        hub, joined = self.hub, []
        for sock in sockets:
            if sock in hub._opening:
                continue  # its groups are being read now
            want = {layer_group_for(group_id) for group_id in groups.get(sock.user.pk, ())}
            have = {name for name in hub.groups_of.get(sock, ()) if name.startswith(GROUP_PREFIX)}
            for name in have - want:
                await hub.leave(sock, name)
            for name in sorted(want - have):
                await hub.join(sock, name)
                joined.append((sock, name))
        if joined:
            log.warning("hub: %d group membership(s) were missing here; added, and their groups replayed", len(joined))
        return joined

    async def _deliver_missing(self, rows: list[tuple]) -> None:
        """Deliver, as they are now, the changes that never came through a layer group of ours."""
        hub, wanted = self.hub, []
        for seq, pk, group_id, sender_id, recipient_id, removed in rows:
            if group_id is not None:
                targets = [layer_group_for(group_id)]
            else:
                targets = list(dict.fromkeys([user_group(sender_id), user_group(recipient_id)]))
            got = self.seen.get(seq, ())
            missing = [name for name in targets if name in hub.members and name not in got]
            if missing:
                wanted.append((seq, pk, removed, missing))
        if not wanted:
            return
        messages = await database_sync_to_async(selectors.message_list_by_id)(
            ids=[pk for _, pk, removed, _ in wanted if not removed]
        )
        tombstones = await database_sync_to_async(selectors.tombstone_list_by_id)(
            ids=[pk for _, pk, removed, _ in wanted if removed]
        )
        now = {(False, m.pk): m for m in messages} | {(True, t.pk): t for t in tombstones}
        for _seq, pk, removed, names in sorted(wanted):
            change = now.get((removed, pk))
            if change is None:  # changed again since: that later change is swept in its turn
                continue
            text = protocol.encode(protocol.change_frames([change])[0])
            frame = Frame(text)
            for name in names:
                for sock in list(hub.members.get(name, ())):
                    if not sock.deliver_now(frame):
                        await sock.deliver(text)
            self.delivered += 1
        log.warning("hub: %d change(s) never came through the channel layer; delivered from the database", len(wanted))

    async def _tell_marks(self, now: float) -> None:
        """`Synced` to the sockets whose mark moved, every SYNCED_EVERY at most."""
        if now - self._synced_at < SYNCED_EVERY or self.swept is None or self.swept <= self._synced_seq:
            return
        self._synced_at, self._synced_seq = now, self.swept
        text = protocol.encode(protocol.synced_frame(seq=self.swept))
        frame = Frame(text)
        for sock, mark in list(self.marks.items()):
            if mark == self.swept and sock in self.ready and not sock.closed:
                if not sock.deliver_now(frame):
                    await sock.deliver(text)
