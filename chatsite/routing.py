"""WebSocket routing: one endpoint, `/ws/chat/`.

A plain function rather than `URLRouter` and `as_asgi()`: those keep a coroutine and a copy of
the scope alive for every open socket, which `make bench` counts in the memory per idle socket
(bench/README.md). Any other path is refused at the handshake.
"""

from __future__ import annotations

from typing import Any, Awaitable

from messaging.consumers import ChatConsumer

CHAT_PATH = "/ws/chat/"


async def _refuse(scope: dict, receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})  # before accept: the handshake gets 403


def websocket_application(scope: dict, receive: Any, send: Any) -> Awaitable[None]:
    if scope.get("path") == CHAT_PATH:
        return ChatConsumer()(scope, receive, send)
    return _refuse(scope, receive, send)
