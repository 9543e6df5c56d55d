"""The periodic check of every open socket's session (one per process, run by its hub).

Logouts, bans and password changes close their sockets at once through the channel layer
(accounts.sessions). This catches what no event announces: a session that expires while its
socket is idle, sessions deleted in bulk, an account deactivated or a password hash changed by a
queryset `update`. Two queries for all of a process's sockets, every `CHAT_SESSION_CHECK_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async

from accounts.selectors import sessions_check

log = logging.getLogger(__name__)


async def sessions_watch(sockets: Iterable[Any]) -> int:
    """Close each socket whose session is no longer good; returns how many were closed."""
    watched = [sock for sock in sockets if getattr(sock, "session_key", None) and not sock.closed]
    if not watched:
        return 0
    verdicts = await database_sync_to_async(sessions_check)({sock.session_key: sock.user.pk for sock in watched})
    closed = 0
    for sock in watched:
        code, expires = verdicts[sock.session_key]
        if code is None:
            sock.session_expires = expires
            continue
        closed += 1
        try:
            await sock.close_for(code)
        except Exception:  # the others are still checked
            log.exception("closing a socket whose session ended failed")
    return closed
