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

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Callable, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from messaging.protocol import encode

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
        for target, message in messages:
            if pending is not None:
                pending.append((target, message))
            else:
                async_to_sync(get_channel_layer().group_send)(target, message)

    transaction.on_commit(fire)


def collecting(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> tuple[T, list[Event]]:
    """Run a (sync) action and return the events it committed instead of sending them.

    The consumer runs actions in a worker thread and then sends the events from the
    event loop itself: no thread hop back into the loop per event.
    """
    token = _collector.set([])
    try:
        result = fn(*args, **kwargs)
        return result, _collector.get() or []
    finally:
        _collector.reset(token)
