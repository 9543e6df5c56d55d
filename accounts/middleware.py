"""Who is on a WebSocket: the Django session cookie, read once at the handshake.

This does what Channels' `AuthMiddlewareStack` does (Cookie, Session and Auth middleware)
in one ASGI layer: one copy of the scope and one coroutine per socket instead of three of
each, and no session wrapper around every frame sent. A socket never changes its session,
so nothing is saved back; `scope["user"]` is the user of the session, or AnonymousUser, and
`scope["session_key"]` its key. Unlike the stack, it leaves no `session` or `cookies` in the scope.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.http.cookie import parse_cookie


class SessionAuthMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        header = next((value for name, value in scope.get("headers", ()) if name == b"cookie"), b"")
        session = self.session_store(parse_cookie(header.decode("latin1")).get(settings.SESSION_COOKIE_NAME))
        user = await get_user({"session": session})
        # Only the user and the session's key stay in the scope: a socket holds them for its
        # whole life (the key, to close it when the session ends), and nothing else is needed.
        return await self.inner({**scope, "user": user, "session_key": session.session_key}, receive, send)
