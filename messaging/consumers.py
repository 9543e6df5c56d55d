"""The WebSocket transport: authenticate, parse, call an action, reply. Nothing else.

Every ORM call runs in a worker thread through `database_sync_to_async`; events an
action commits come back to the event loop and are published from here (messaging.events).
Fan-out does not go through this class: the process's hub (messaging.hub) holds the
channel-layer memberships and writes each event's text straight to the local sockets.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Awaitable, Callable

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.selectors import session_check
from accounts.sessions import session_group
from chatsite.errors import ChatError
from chatsite.fastwrite import DirectWriter, Frame, direct_writer
from chatsite.ratelimit import SharedBuckets, TokenBucket
from groups import actions as group_actions
from messaging import actions, events, protocol, search, selectors
from messaging.catchup import change_pages
from messaging.events import run_action
from messaging.hub import Hub, get_hub
from messaging.writer import get_writer

log = logging.getLogger(__name__)
# A replay waits while more than this is written but not yet taken by the peer.
REPLAY_BACKLOG = 1 << 20
REPLAY_BATCH = 500
# Which close wins when several come while a socket opens: a ban, then an ended session.
_CLOSE_RANK = {protocol.CLOSE_RESYNC: 0, protocol.CLOSE_SESSION_ENDED: 1, protocol.CLOSE_POLICY: 2}


_user_buckets = SharedBuckets()  # one frame budget per user, for all their sockets here


class ChatConsumer(AsyncWebsocketConsumer):
    """One WebSocket. It has no channel-layer channel: the process's hub is the layer's only
    member here, and writes to this socket through `deliver_now` / `deliver`."""

    groups = ()  # no layer groups of its own (and no empty list per socket)

    # The socket's state, all of it: declared here, set by connect() (the defaults hold until
    # then: nothing to clean up, nothing to deliver to), read by the hub and the session watch.
    user: AbstractBaseUser
    session_key = ""
    session_expires: datetime | None = None  # known after the first check of the session
    socket_id = ""  # set once the hub knows the socket; _cleanup has work only after that
    closed = True
    cleaned = False
    refuse_with: int | None = None  # a close code the hub asked for while the socket opened
    early: list[str] | None = None  # what the hub delivers before the handshake completes
    bucket: TokenBucket  # this socket's frames
    user_bucket: TokenBucket  # all of its user's sockets' frames in this process
    direct: DirectWriter | None = None  # under Daphne: frames written past ASGI send()
    hub: Hub

    async def dispatch(self, message: dict) -> None:
        # Channels' own dispatch closes stale database connections before every handler, a
        # thread hop per frame; here the ORM is only used through database_sync_to_async,
        # which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope, receive, send) -> None:
        # AsyncConsumer.__call__ without a layer channel: one ASGI queue to read, so no
        # await_many_dispatch (a task and its futures per socket, all the socket's life).
        self.scope, self.base_send, self.channel_layer = scope, send, None
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:  # however the socket ends (crash, cancellation), it leaves the hub and presence
            await self._cleanup()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake is refused with 403
            return
        self.user = user
        self.session_key = self.scope["session_key"]
        self.closed = False
        self.early = []
        self.bucket = TokenBucket(settings.CHAT_RATE_PER_SECOND, settings.CHAT_RATE_BURST)
        self.direct = direct_writer(self.base_send)
        self.hub = await get_hub()
        self.socket_id = self.hub.new_socket_id()
        self.user_bucket = _user_buckets.take(
            user.pk, settings.CHAT_USER_RATE_PER_SECOND, settings.CHAT_USER_RATE_BURST
        )
        # In the user's and the session's own groups first, so no instruction (join, leave, ban,
        # logout) is missed while the rest is read from the database.
        await self.hub.open(self, [events.EVERYONE, events.user_group(user.pk), session_group(self.session_key)])
        try:
            layer_groups = await run_action(
                actions.connection_open, user=user, channel_name=self.socket_id, session_key=self.session_key
            )
        except ChatError:  # too many sockets: refused, and it was never registered
            self.cleaned = True
            _user_buckets.release(user.pk)
            await self.hub.leave_all(self)
            await self.close(code=protocol.CLOSE_POLICY)
            return
        await self.hub.finish_open(self, layer_groups)
        await self._session_alive()  # ended meanwhile (a logout racing the handshake): refused
        if self.refuse_with is not None:
            await self.close(code=self.refuse_with)
            return
        await self.accept()
        early, self.early = self.early, None
        for text in early:
            await self.send(text_data=text)

    async def disconnect(self, code: int) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        if not self.socket_id or self.cleaned:
            return
        self.cleaned = self.closed = True
        _user_buckets.release(self.user.pk)
        await self.hub.leave_all(self)
        await run_action(actions.connection_close, user=self.user, channel_name=self.socket_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        allowed = self.bucket.take() and self.user_bucket.take()  # every frame counts, refused ones too
        command = None
        try:
            command = protocol.parse(text_data, username=self.user.username)
            if allowed:
                # Who the user is now, before anything is done: a `Send` only needs the
                # session's expiry (its query checks the account itself), any other command
                # re-reads the session and the account.
                if not await self._session_alive(full=not isinstance(command, protocol.Send)):
                    return
                await self.HANDLERS[type(command)](self, command)
                return
        except ChatError as error:
            if allowed:
                if error.close is not None:  # a `Send` found the account deactivated: as any command
                    await self.close_for(error.close)
                    return
                await self._send_frame(protocol.error_frame(error, command=command))
                return
        except Exception:  # a bug or a failing database: say so, and keep the socket
            log.exception("handling a %s frame failed", type(command).__name__)
            failed = ChatError("server_error", "The server could not do that just now; please try again.")
            await self._send_frame(protocol.error_frame(failed, command=command))
            return
        limited = ChatError("rate_limited", "Too many frames; slow down and send again.")
        await self._send_frame(protocol.error_frame(limited, command=command))

    async def _session_alive(self, *, full: bool = True) -> bool:
        """True while the socket's session is good; else close the socket and return False."""
        if self.closed:
            return False
        if not full and (self.session_expires is None or timezone.now() < self.session_expires):
            return True
        code, self.session_expires = await database_sync_to_async(session_check)(
            session_key=self.session_key, user_id=self.user.pk
        )
        if code is None:
            return True
        await self.close_for(code)
        return False

    # ---- client commands ----------------------------------------------------------

    async def on_connect(self, command: protocol.Connect) -> None:
        """`State`, then the replay: every change after `Seq` (then `Synced`), or every new
        message after `Since`. A batch per query, each only once the last has left: a reader
        that does not read holds at most a batch or two in memory. The receive loop handles one
        frame at a time, so one socket runs at most one replay.

        The socket has been in the hub since its handshake, so whatever commits after `State`'s
        `Seq` reaches it live (or through the hub's sweep): the replay stops at that `Seq`."""
        state = await database_sync_to_async(selectors.state_for)(user=self.user, resume_after=command.seq)
        self.hub.catchup.hold(self, command.seq if command.seq is not None else state["seq"], ready=False)
        await self._send_frame(protocol.state_frame(**state))
        if command.seq is not None and not state["reset"]:
            if not await self._replay_changes(after=command.seq, upto=state["seq"]):
                return
        if command.seq is not None:
            await self._send_frame(protocol.synced_frame(seq=state["seq"]))
        self.hub.catchup.hold(self, state["seq"], ready=True)
        after = command.since
        while after is not None:
            batch = await database_sync_to_async(selectors.message_list_after)(user=self.user, after=after)
            for message in batch:
                await self._send_frame(protocol.message_to_frame(message))
            after = batch[-1].pk if batch else None
            if after is not None and not await self._drained():
                return

    async def _replay_changes(self, *, after: int, upto: int) -> bool:
        """Every change the user may see with `after < Seq <= upto`; False if the peer left."""
        async for frames in change_pages(user=self.user, after=after, upto=upto, size=REPLAY_BATCH):
            for frame in frames:
                await self._send_frame(frame)
            if not await self._drained():
                return False
        return True

    async def _drained(self) -> bool:
        """Wait until what was written has mostly left (under Daphne); False if the peer left."""
        if self.direct is None:  # another server: its own send() is all there is
            return True
        while (backlog := self.direct.backlog()) is not None and backlog > REPLAY_BACKLOG:
            await asyncio.sleep(0.01)
        return backlog is not None

    async def on_send(self, command: protocol.Send) -> None:
        fields = {
            "sender": self.user,
            "chat": command.chat,
            "to": command.to,
            "content": command.content,
            "is_image": command.is_image,
            "client_id": command.client_id,
            "reply_to": command.reply_to,
        }
        if command.is_image:  # decoded in a pool thread, outside the batch and the database thread
            message, created = await run_action(actions.message_send, pool=True, **fields)
        else:
            message, created = await get_writer().send(**fields)
        if not created:
            await self._send_frame(protocol.message_to_frame(message))

    async def on_edit(self, command: protocol.Edit) -> None:
        message, changed = await run_action(
            actions.message_edit, user=self.user, message_id=command.id, content=command.content
        )
        if not changed:  # the same text: nothing went out, so this socket hears the message as it is
            await self._send_frame(protocol.message_to_frame(message))

    async def on_remove(self, command: protocol.Remove) -> None:
        await run_action(actions.message_remove, actor=self.user, message_id=command.id)

    async def on_react(self, command: protocol.React) -> None:
        await run_action(
            actions.reaction_set, user=self.user, message_id=command.id, emoji=command.emoji, on=command.on
        )

    async def on_join(self, command: protocol.Join) -> None:
        paging = command.before is not None or command.around is not None or command.after is not None
        if command.chat == protocol.GROUP and not paging:
            await run_action(group_actions.group_join, user=self.user, group=command.to)
        page = await database_sync_to_async(selectors.history_page)(
            user=self.user,
            chat=command.chat,
            to=command.to,
            before=command.before,
            around=command.around,
            after=command.after,
        )
        frame = protocol.history_frame(
            chat=command.chat,
            to=command.to,
            messages=[protocol.message_to_frame(message) for message in page.messages],
            has_more=page.has_more,
            has_newer=page.has_newer if command.around is not None or command.after is not None else None,
        )
        await self._send_frame(frame)

    async def on_search(self, command: protocol.Search) -> None:
        found = await database_sync_to_async(search.message_search)(
            user=self.user, query=command.query, chat=command.chat, to=command.to, before=command.before
        )
        frame = protocol.found_frame(
            query=command.query,
            chat=command.chat,
            to=command.to,
            messages=[protocol.message_to_frame(message) for message in found.messages],
            before=found.before,
        )
        await self._send_frame(frame)

    async def on_create(self, command: protocol.Create) -> None:
        await run_action(
            group_actions.group_create, owner=self.user, name=command.name, member_usernames=command.members
        )

    async def on_delete(self, command: protocol.Delete) -> None:
        await run_action(group_actions.group_delete, user=self.user, group=command.name)

    async def on_leave(self, command: protocol.Leave) -> None:
        await run_action(group_actions.group_leave, user=self.user, group=command.name)

    async def on_read(self, command: protocol.Read) -> None:
        await run_action(
            actions.conversation_read,
            user=self.user,
            chat=command.chat,
            to=command.to,
            message_id=command.id,
            skip_channel=self.socket_id,
        )

    async def on_report(self, command: protocol.Report) -> None:
        await run_action(actions.report_create, reporter=self.user, message_id=command.id, reason=command.reason)
        await self._send_frame(protocol.reported_frame(id=command.id))

    HANDLERS: dict[type, Callable[[ChatConsumer, Any], Awaitable[None]]] = {
        protocol.Connect: on_connect,
        protocol.Send: on_send,
        protocol.Edit: on_edit,
        protocol.Remove: on_remove,
        protocol.React: on_react,
        protocol.Join: on_join,
        protocol.Search: on_search,
        protocol.Create: on_create,
        protocol.Delete: on_delete,
        protocol.Leave: on_leave,
        protocol.Read: on_read,
        protocol.Report: on_report,
    }

    # ---- called by the hub ------------------------------------------------------------

    def deliver_now(self, frame: Frame) -> bool:
        """Write a prepared frame straight to the connection, if it can take it now."""
        if self.closed:
            return True  # nothing to deliver to
        if self.early is not None or self.direct is None:
            return False
        return self.direct.write(frame)

    async def deliver(self, text: str) -> None:
        """Write one already-serialized frame to this socket through ASGI `send()`."""
        if self.closed:
            return
        if self.early is not None:  # not accepted yet: a WebSocket cannot send before that
            self.early.append(text)
            return
        try:
            await self.send(text_data=text)
        except Exception:  # the socket went away mid-fan-out: the others still get theirs
            log.debug("send to a closing socket failed", exc_info=True)
            self.closed = True

    async def close_for(self, code: int) -> None:
        if self.early is not None:  # still opening: connect() refuses the handshake instead
            if _CLOSE_RANK.get(code, 0) >= _CLOSE_RANK.get(self.refuse_with, -1):  # a ban wins
                self.refuse_with = code
        elif not self.closed:
            await self.close(code=code)
            self.closed = True  # only once the close went out: a failed one leaves it deliverable

    # ---- helpers --------------------------------------------------------------------

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=protocol.encode(frame))
