"""The moving parts of a chaos run (bench/chaos.py): clients sending, and the faults.

`Run` owns the clients and what the run knows about its users: every logical send (by
`ClientId`), which groups each user may send to now, who was ever a member of each group, and
when each join was confirmed. Each activity is one loop; all stop when asked, and every wait in
them is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from bench.chaos_client import Client, Hooks, Outgoing


@dataclass
class Config:
    seconds: float = 150.0
    users: int = 20
    rate: float = 100.0  # messages a second, all clients together
    groups: int = 4
    double: int = 8  # users with a second socket
    seed: int = 13
    drop_every: float = 1.0
    kills: int = 6  # SIGKILLs of a server process, alternating between the two
    redis_restarts: int = 2
    remove_every: float = 2.0
    move_every: float = 1.5
    settle_timeout: float = 30.0
    faults: set[str] = field(default_factory=lambda: {"drops", "kills", "redis", "removals", "moves"})


class Run:
    def __init__(self, config: Config, cast: Any, servers: list, redis: Any, moderators: list) -> None:
        self.config, self.cast, self.servers, self.redis = config, cast, servers, redis
        self.moderators = moderators  # user objects, for messages_remove
        self.rng = random.Random(config.seed)
        self.outgoing: dict[str, Outgoing] = {}
        self.sendable = {u: {g for g, m in cast.members.items() if u in m} for u in cast.users}
        self.ever_members = {g: set(m) for g, m in cast.members.items()}
        self.joined_at: dict[tuple[str, str], float] = {}  # (user, group) -> when the last join was confirmed
        self.joining: dict[tuple[str, str], float] = {}
        # user -> when their Join or Leave went out: one at a time, or a Join could overtake a Leave
        self.moving: dict[str, float] = {}
        self.removed_ids: set[int] = set()
        self.removed_client_ids: set[str] = set()
        self.faults: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.stall = 0.0
        self._numbers = itertools.count(1)
        self.clients = self._make_clients()
        self.by_user: dict[str, list[Client]] = {}
        for client in self.clients:
            self.by_user.setdefault(client.username, []).append(client)

    def _make_clients(self) -> list[Client]:
        hooks = Hooks(history=self._on_history, group=self._on_group, error=self._on_error)
        twice = set(self.cast.users[: self.config.double])
        names = [(u, 1) for u in self.cast.users] + [(u, 2) for u in self.cast.users if u in twice]
        return [
            Client(f"{u}#{n}", u, self.cast.sessions[u], self.servers, random.Random(self.rng.random()), hooks)
            for u, n in names
        ]

    # ---- what the clients tell ------------------------------------------------------------

    def _confirm_join(self, username: str, group: str) -> None:
        self.moving.pop(username, None)
        if self.joining.pop((username, group), None) is not None:
            self.joined_at[(username, group)] = time.time()
            self.sendable[username].add(group)

    def _on_history(self, username: str, chat: str, to: str) -> None:
        if chat == "Group":
            self._confirm_join(username, to)

    def _on_group(self, frame: dict) -> None:
        if frame["Event"] == "Joined":
            self._confirm_join(frame["User"], frame["Name"])
        elif frame["Event"] == "Left":
            self.moving.pop(frame["User"], None)

    def _on_error(self, username: str, frame: dict) -> None:
        self.errors[f"{frame.get('Ref', '?')} {frame['Code']}"] += 1
        if frame.get("Ref") in ("Join", "Leave"):
            self.moving.pop(username, None)

    # ---- activities -------------------------------------------------------------------------

    async def every(self, period: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` about every `period` seconds (jittered) until the run stops."""
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), period * self.rng.uniform(0.5, 1.5))
            except TimeoutError:
                await action()

    def ready_clients(self, username: str | None = None) -> list[Client]:
        pool = self.by_user[username] if username else self.clients
        return [c for c in pool if c.ready]

    async def send_loop(self) -> None:
        """`rate` sends a second in all, each by a random connected client, paced by the clock
        (after a stall of this process, it catches up)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self.stopping.is_set():
            next_at += 1 / self.config.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            ready = self.ready_clients()
            if ready:
                client = self.rng.choice(ready)
                await client.send(self._new_outgoing(client.username))

    def _new_outgoing(self, username: str) -> Outgoing:
        number = next(self._numbers)
        groups = sorted(self.sendable[username])
        if groups and self.rng.random() < 0.5:
            chat, to = "Group", self.rng.choice(groups)
        else:
            chat, to = "Private", self.rng.choice([u for u in self.cast.users if u != username])
        outgoing = Outgoing(f"chaos-{number}", username, chat, to, f"chaos {number}: {username} to {to}")
        self.outgoing[outgoing.client_id] = outgoing
        return outgoing

    async def drop_one(self) -> None:
        connected = [c for c in self.clients if c.ws is not None]
        if connected and self.rng.choice(connected).drop():
            self.faults["socket drops"] += 1

    async def remove_some(self) -> None:
        """A moderator removes 1-3 random acknowledged messages, through the one write path, from
        this process. A resend still on its way meanwhile is refused (`conflict`): the tombstone
        keeps the `ClientId`, so a removed message is never stored again."""
        from messaging.actions import messages_remove
        from messaging.events import run_action

        acked = [o for o in self.outgoing.values() if o.acked_id and o.client_id not in self.removed_client_ids]
        if not acked:
            return
        chosen = self.rng.sample(acked, k=min(len(acked), self.rng.randint(1, 3)))
        ids = [o.acked_id for o in chosen]
        moderator = self.rng.choice(self.moderators)
        removed = await run_action(messages_remove, actor=moderator, message_ids=ids, reason="chaos")
        self.removed_ids.update(ids)
        self.removed_client_ids.update(o.client_id for o in chosen)
        self.faults["removals"] += 1
        self.faults["messages removed"] += removed

    async def move_one(self) -> None:
        """A random user leaves a group they are in, or joins one they are not in (not their own),
        always from their first socket, and only once their last move was confirmed (or 10 s ago)."""
        username = self.rng.choice(self.cast.users)
        group = self.rng.choice([g for g, owner in self.cast.groups.items() if owner != username])
        client = self.by_user[username][0]
        if not client.ready or time.time() - self.moving.get(username, 0) < 10:
            return
        self.moving[username] = time.time()
        if group in self.sendable[username]:
            if any(o.to == group for c in self.by_user[username] for o in c.pending.values()):
                self.moving.pop(username)
                return  # a resend after leaving would be refused: leave once they are through
            self.sendable[username].discard(group)
            await self._move(client, {"Type": "Leave", "Name": group}, "leaves")
            return
        self.ever_members[group].add(username)
        self.joining[(username, group)] = time.time()
        await self._move(client, {"Type": "Join", "Chat": "Group", "To": group}, "joins")

    async def _move(self, client: Client, frame: dict, name: str) -> None:
        if await client.command(frame):
            self.faults[name] += 1
        else:  # not sent: nothing to wait for
            self.moving.pop(client.username, None)

    async def outages(self) -> None:
        """SIGKILL a server process (alternating) or restart Redis, at evenly spread times."""
        start, seconds = time.monotonic(), self.config.seconds
        timeline = [(seconds * (k + 0.5) / max(self.config.kills, 1), "kill", k % 2) for k in range(self.config.kills)]
        restarts = self.config.redis_restarts
        timeline += [(seconds * (k + 1) / (restarts + 1) + 2.5, "redis", 0) for k in range(restarts)]
        for at, kind, index in sorted(timeline):
            try:
                await asyncio.wait_for(self.stopping.wait(), max(0.0, start + at - time.monotonic()))
                return
            except TimeoutError:
                pass
            if kind == "kill":
                await self._outage(self.servers[index], "kills")
            else:
                await self._outage(self.redis, "redis restarts")

    async def _outage(self, service: Any, name: str) -> None:
        service.kill()
        self.faults[name] += 1
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await self.revive(service)

    async def revive(self, service: Any) -> None:
        """Start a service that is down again; a failed start is retried (3 tries in all)."""
        for _ in range(3):
            if service.alive():
                return
            try:
                await asyncio.to_thread(service.start)
            except RuntimeError:  # nothing listened in time
                service.kill()
                self.faults["failed restarts"] += 1
        if not service.alive():
            raise RuntimeError(f"{service} would not start again")

    async def watch_stalls(self) -> None:
        """The longest time this process's event loop did not run (a busy machine): a stall
        delays every client at once, which the figures should be read with."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            before = loop.time()
            await asyncio.sleep(0.1)
            self.stall = max(self.stall, loop.time() - before - 0.1)

    # ---- the end -----------------------------------------------------------------------------

    def pending_sends(self) -> int:
        return sum(len(c.pending) for c in self.clients)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True
