"""The WebSocket transport: authenticate, parse, call an action, reply. Nothing else.

Every ORM call runs in a worker thread through `database_sync_to_async`; events an
action commits come back to the event loop and are sent from here (messaging.events).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatsite.errors import ChatError
from groups import actions as group_actions
from groups.selectors import group_get
from messaging import actions, events, protocol, selectors

log = logging.getLogger(__name__)
CLOSE_POLICY = 4003


class TokenBucket:
    """Per-socket flood control: `rate` frames a second, bursts up to `burst`."""

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


@database_sync_to_async
def _run(fn: Callable[..., Any], /, **kwargs: Any) -> tuple[Any, list[events.Event]]:
    return events.collecting(fn, **kwargs)


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake is refused with 403
            return
        self.user = user
        self.subscriptions: set[str] = set()
        self.bucket = TokenBucket(settings.CHAT_RATE_PER_SECOND, settings.CHAT_RATE_BURST)
        layer_groups, pending = await _run(actions.connection_open, user=user, channel_name=self.channel_name)
        for name in layer_groups:
            await self._subscribe(name)
        await self.accept()
        await self._publish(pending)

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "user"):
            return
        for name in list(self.subscriptions):
            await self.channel_layer.group_discard(name, self.channel_name)
        _, pending = await _run(actions.connection_close, user=self.user, channel_name=self.channel_name)
        await self._publish(pending)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        allowed = self.bucket.take()  # every frame counts, refused ones too
        command = None
        try:
            command = protocol.parse(text_data, username=self.user.username)
            if allowed:
                await self.HANDLERS[type(command)](self, command)
                return
        except ChatError as error:
            if allowed:
                await self._send_frame(protocol.error_frame(error, command=command))
                return
        limited = ChatError("rate_limited", "Too many frames; slow down and send again.")
        await self._send_frame(protocol.error_frame(limited, command=command))

    # ---- client commands ----------------------------------------------------------

    async def on_connect(self, command: protocol.Connect) -> None:
        frame = await database_sync_to_async(selectors.state)(user=self.user)
        await self._send_frame(frame)
        after = command.since
        while after is not None:  # replay everything after `Since`, a batch per query
            batch = await database_sync_to_async(selectors.messages_after)(user=self.user, after=after)
            for frame in batch:
                await self._send_frame(frame)
            after = batch[-1]["Id"] if batch else None

    async def on_send(self, command: protocol.Send) -> None:
        (message, created), pending = await _run(
            actions.message_send,
            sender=self.user,
            chat=command.chat,
            to=command.to,
            content=command.content,
            is_image=command.is_image,
            client_id=command.client_id,
        )
        if created:
            await self._publish(pending)
        else:
            await self._send_frame(selectors.message_to_frame(message))

    async def on_join(self, command: protocol.Join) -> None:
        if command.chat == protocol.GROUP and command.before is None:
            _, pending = await _run(_join_group, user=self.user, name=command.to)
            await self._publish(pending)
        frame = await database_sync_to_async(selectors.history)(
            user=self.user, chat=command.chat, to=command.to, before=command.before
        )
        await self._send_frame(frame)

    async def on_create(self, command: protocol.Create) -> None:
        _, pending = await _run(
            group_actions.group_create, owner=self.user, name=command.name, member_usernames=command.members
        )
        await self._publish(pending)

    async def on_delete(self, command: protocol.Delete) -> None:
        _, pending = await _run(_delete_group, user=self.user, name=command.name)
        await self._publish(pending)

    async def on_leave(self, command: protocol.Leave) -> None:
        _, pending = await _run(_leave_group, user=self.user, name=command.name)
        await self._publish(pending)

    async def on_read(self, command: protocol.Read) -> None:
        _, pending = await _run(
            actions.conversation_read,
            user=self.user,
            chat=command.chat,
            to=command.to,
            message_id=command.id,
            skip_channel=self.channel_name,
        )
        await self._publish(pending)

    async def on_report(self, command: protocol.Report) -> None:
        await _run(actions.report_create, reporter=self.user, message_id=command.id, reason=command.reason)
        await self._send_frame(protocol.reported_frame(id=command.id))

    HANDLERS: dict[type, Callable[[ChatConsumer, Any], Awaitable[None]]] = {
        protocol.Connect: on_connect,
        protocol.Send: on_send,
        protocol.Join: on_join,
        protocol.Create: on_create,
        protocol.Delete: on_delete,
        protocol.Leave: on_leave,
        protocol.Read: on_read,
        protocol.Report: on_report,
    }

    # ---- channel layer events -------------------------------------------------------

    async def chat_event(self, event: dict[str, Any]) -> None:
        if event.get("skip") == self.channel_name:
            return
        if name := event.get("subscribe"):
            await self._subscribe(name)
        if (name := event.get("unsubscribe")) and name in self.subscriptions:
            self.subscriptions.discard(name)
            await self.channel_layer.group_discard(name, self.channel_name)
        if event.get("close"):
            await self.close(code=CLOSE_POLICY)
            return
        if event.get("text"):
            await self.send(text_data=event["text"])

    # ---- helpers --------------------------------------------------------------------

    async def _subscribe(self, name: str) -> None:
        if name not in self.subscriptions:
            self.subscriptions.add(name)
            await self.channel_layer.group_add(name, self.channel_name)

    async def _publish(self, pending: list[events.Event]) -> None:
        for layer_group, message in pending:
            await self.channel_layer.group_send(layer_group, message)

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=protocol.encode(frame))


def _join_group(*, user, name: str) -> bool:
    return group_actions.group_join(user=user, group=group_get(name=name))


def _delete_group(*, user, name: str) -> None:
    group_actions.group_delete(user=user, group=group_get(name=name))


def _leave_group(*, user, name: str) -> None:
    group_actions.group_leave(user=user, group=group_get(name=name))
