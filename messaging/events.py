"""Publishing to the channel layer: after commit, each event serialized exactly once.

Layer groups are ASCII names built from ids, never from user-typed text:
``chat.user.<id>`` (every socket of one user), ``chat.group.<id>`` (every socket of
every member of one group) and ``chat.everyone`` (every socket: presence and the
group directory, since groups are open to all).

A layer message is ``{"type": "chat.event", "group": <the layer group>, "text": <frame JSON
or None>, ...}`` plus optional instructions for the sockets of that group: ``subscribe`` /
``unsubscribe`` another layer group, ``skip`` one socket (the sender of a `Read`), or
``close`` (ban). Each process's hub (messaging.hub) applies them to its local sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Callable, TypeVar

from asgiref.sync import async_to_sync
from channels.db import DatabaseSyncToAsync
from channels.layers import get_channel_layer
from django.db import transaction

from messaging.protocol import encode

log = logging.getLogger(__name__)
EVERYONE = "chat.everyone"
T = TypeVar("T")

Event = tuple[str, dict[str, Any]]
_collector: ContextVar[list[Event] | None] = ContextVar("chat_event_collector", default=None)


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


def publish(layer_groups: str | Iterable[str], frame: dict | None = None, **instructions: Any) -> None:
    """Send `frame` to layer groups once the current transaction commits (at once outside one).

    The frame is encoded here, once, however many groups and sockets it reaches.
    """
    targets = [layer_groups] if isinstance(layer_groups, str) else list(dict.fromkeys(layer_groups))
    text = encode(frame) if frame is not None else None
    # Each process's hub needs to know which group an event was sent to; the text is shared.
    messages = [(target, {"type": "chat.event", "group": target, "text": text, **instructions}) for target in targets]

    def fire() -> None:
        pending = _collector.get()
        if pending is not None:
            pending.extend(messages)
            return
        for target, message in messages:  # committed already: a failure must not undo the caller
            try:
                async_to_sync(get_channel_layer().group_send)(target, message)
            except Exception as error:
                _publish_failed(target, error)

    transaction.on_commit(fire)


def collecting(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> tuple[T, list[Event]]:
    """Run a (sync) action and return the events it committed instead of sending them.

    For tests and for `run_action`; everything else calls `run_action` (async) or the action
    itself (sync: admin, commands), whose events `publish` then sends on commit.
    """
    token = _collector.set([])
    try:
        result = fn(*args, **kwargs)
        return result, _collector.get() or []
    finally:
        _collector.reset(token)


def _collected(fn: Callable[..., T], kwargs: dict[str, Any]) -> tuple[T | None, BaseException | None, list[Event]]:
    """`collecting`, keeping what was committed even when the action then raised."""
    token = _collector.set([])
    try:
        try:
            return fn(**kwargs), None, _collector.get() or []
        except Exception as error:
            return None, error, _collector.get() or []
    finally:
        _collector.reset(token)


# The database thread (every ORM call is serialized on it), or a pool thread for slow work
# that must not hold the database thread up (decoding an image).
_in_db_thread = DatabaseSyncToAsync(_collected)
_in_pool = DatabaseSyncToAsync(_collected, thread_sensitive=False)


async def run_action(fn: Callable[..., T], /, *, pool: bool = False, **kwargs: Any) -> T:
    """Run a sync action from async code: in a worker thread, its committed events collected
    there and published from the event loop (no thread hop back per event). Raises what the
    action raised, once whatever it committed before that has gone out."""
    result, error, pending = await (_in_pool if pool else _in_db_thread)(fn, kwargs)
    await publish_collected(pending)
    if error is not None:
        raise error
    return result


async def publish_collected(pending: list[Event]) -> None:
    """Send events collected from committed transactions (`collecting`) to the channel layer.

    What was committed stands even if the layer fails: the failure is logged (once an outage),
    not raised, and every hub's sweep delivers what it never received from the database
    (messaging.catchup), so a failed publish delays an event by a few seconds, never drops it.
    """
    if pending:
        layer = get_channel_layer()
        for layer_group, message in pending:
            try:
                await layer.group_send(layer_group, message)
            except Exception as error:
                _publish_failed(layer_group, error)
                continue
            _publish_works()


_failing = False


def _publish_failed(layer_group: str, error: BaseException) -> None:
    global _failing
    if not _failing:
        _failing = True
        log.warning("publishing to %s failed (%r); the hubs' sweep delivers it from the database", layer_group, error)


def _publish_works() -> None:
    global _failing
    if _failing:
        _failing = False
        log.warning("publishing to the channel layer works again")
