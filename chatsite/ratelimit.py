"""In-process token buckets: one per socket for frame floods, and keyed ones per user for actions.

The state lives in this process's memory. With several server processes each keeps its own
buckets, so a user who reaches several processes gets each process's allowance: the limits are
per process. That bounds floods well enough for a chat; a shared store (Redis) would be needed
for exact limits across processes.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """`rate` tokens a second, bursts up to `burst`. Not locked: one owner (a socket) uses it."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class RateLimiter:
    """A bucket per key (a user id), `per_hour` takes an hour with bursts of as many.

    Thread-safe: actions run in several worker threads. A full bucket is the same as none, so
    when there are more than `max_keys` buckets the full ones are dropped, which bounds memory.
    """

    def __init__(self, *, per_hour: int, max_keys: int = 10_000) -> None:
        self.per_hour = per_hour
        self.max_keys = max_keys
        self._buckets: dict[object, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: object) -> bool:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._sweep()
                bucket = self._buckets[key] = TokenBucket(self.per_hour / 3600, self.per_hour)
            return bucket.take()

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [key for key, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


_limiters: dict[tuple[str, int], RateLimiter] = {}
_registry_lock = threading.Lock()


def limit_take(name: str, key: object, *, per_hour: int) -> bool:
    """Take one from `key`'s bucket in the limiter `name` (a new limiter if `per_hour` changed)."""
    with _registry_lock:
        limiter = _limiters.get((name, per_hour))
        if limiter is None:
            limiter = _limiters[(name, per_hour)] = RateLimiter(per_hour=per_hour)
    return limiter.take(key)


def limits_reset() -> None:
    """Forget every keyed bucket (tests: user ids are reused between them)."""
    with _registry_lock:
        _limiters.clear()


class SharedBuckets:
    """One TokenBucket per key (a user) shared by several owners (their sockets), kept while any
    owner holds it. Used from the event loop only."""

    def __init__(self) -> None:
        self._buckets: dict[object, list] = {}  # key -> [bucket, owners]

    def take(self, key: object, rate: float, burst: int) -> TokenBucket:
        entry = self._buckets.get(key)
        if entry is None:
            bucket = TokenBucket(rate, burst)
            entry = self._buckets[key] = [bucket, 0]
        entry[1] += 1
        return entry[0]

    def release(self, key: int) -> None:
        entry = self._buckets.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._buckets[key]
