"""Reads about accounts: who is a moderator, may this user send, is a socket's session still good?"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import Invite
from chatsite.errors import ChatError
from messaging.protocol import CLOSE_POLICY, CLOSE_SESSION_ENDED, format_time

# Engines whose sessions are rows of django.contrib.sessions' Session model (read in one query).
_DB_ENGINES = {"django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"}

MODERATE_PERMISSION = "accounts.moderate"

Verdict = tuple[int | None, datetime | None]  # (close code, or None while valid; when it expires)


def user_is_moderator(user: AbstractBaseUser) -> bool:
    """The one definition: active staff holding the moderation permission (a superuser holds
    every permission). Moderation happens in the admin, which only staff can open."""
    return user.is_active and user.is_staff and user.has_perm(MODERATE_PERMISSION)


def moderator_require(actor: AbstractBaseUser) -> None:
    if not user_is_moderator(actor):
        raise ChatError("forbidden", "You do not have the moderation permission.")


def active_check(*, user: AbstractBaseUser) -> None:
    """Raise `forbidden` (and close the socket) if the account was deactivated: a socket can
    outlive a ban by a moment (the close goes through the channel layer)."""
    if not get_user_model().objects.filter(pk=user.pk, is_active=True).exists():
        raise ChatError("forbidden", "This account is deactivated.", close=CLOSE_POLICY)


def sender_check(*, user: AbstractBaseUser, now: datetime | None = None) -> None:
    """Raise `forbidden` unless the user may send now: not banned (even if a socket of theirs
    outlived the ban), not muted. One query, on every send."""
    row = get_user_model().objects.filter(pk=user.pk).values_list("is_active", "mute__until", "mute__reason").first()
    if row is None or not row[0]:
        raise ChatError("forbidden", "This account is deactivated.", close=CLOSE_POLICY)
    _, until, reason = row
    if until is not None and until > (now or timezone.now()):
        because = f": {reason}" if reason else "."
        # `Until` (and `Reason`) too, so that a client shows the end in its reader's own time.
        fields = {"Until": format_time(until), **({"Reason": reason} if reason else {})}
        raise ChatError("forbidden", f"You are muted until {until:%Y-%m-%d %H:%M} UTC{because}", fields=fields)


def sessions_check(pairs: dict[str, int]) -> dict[str, Verdict]:
    """For each `session_key: user_id`, whether a socket opened with it may stay open.

    Valid means what Django's own `get_user` requires of a request: the session exists and has
    not expired, names this user, carries the hash of their current password, and the user is
    active. A close code says why not: CLOSE_POLICY for an inactive account, else
    CLOSE_SESSION_ENDED. Two queries for any number of sockets (with database sessions).
    """
    sessions = _load_sessions(list(pairs))
    users = get_user_model().objects.in_bulk({int(pk) for pk in pairs.values()})
    verdicts: dict[str, Verdict] = {}
    for key, user_id in pairs.items():
        user = users.get(int(user_id))
        data, expires = sessions.get(key, (None, None))
        if user is not None and not user.is_active:
            verdicts[key] = (CLOSE_POLICY, None)
        elif user is None or data is None or not _names_user(data, user):
            verdicts[key] = (CLOSE_SESSION_ENDED, None)
        else:
            verdicts[key] = (None, expires)
    return verdicts


def session_check(*, session_key: str, user_id: int) -> Verdict:
    return sessions_check({session_key: user_id})[session_key]


def _names_user(data: dict, user) -> bool:
    if data.get(SESSION_KEY) != str(user.pk) or data.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return False
    stored = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored, candidate) for candidate in hashes)


def _load_sessions(keys: list[str]) -> dict[str, tuple[dict, datetime | None]]:
    """The decoded data and expiry of each unexpired session among `keys`."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if settings.SESSION_ENGINE in _DB_ENGINES:
        rows = Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
        store = store_class()
        return {row.session_key: (store.decode(row.session_data), row.expire_date) for row in rows}
    loaded = {}
    for key in keys:  # other engines: one read each, expiry left to the next periodic check
        store = store_class(key)
        data = store.load()
        if store.session_key is not None and data:
            loaded[key] = (data, None)
    return loaded


# ---- invites --------------------------------------------------------------------------------

# What `secrets.token_urlsafe` makes; anything else (NUL, 10 kB, another alphabet) is no token.
INVITE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def invite_check(*, token: object, lock: bool = False) -> Invite:
    """The invite of `token`, if it may be used now (`lock`: its row held until the transaction
    ends, so that two uses cannot both take its last one).

    `not_found` for a token that is none; `forbidden`, saying why, for a revoked, expired or
    used-up one: only someone holding the link learns that.
    """
    if not isinstance(token, str) or not INVITE_TOKEN.fullmatch(token):
        raise ChatError("not_found", "This invite link is not valid.")
    invites = Invite.objects.select_related("group")
    if lock:
        invites = invites.select_for_update(of=("self",))
    invite = invites.filter(token=token).first()
    if invite is None:
        raise ChatError("not_found", "This invite link is not valid.")
    if invite.revoked is not None:
        raise ChatError("forbidden", "This invite link has been revoked.")
    if invite.expires <= timezone.now():
        raise ChatError("forbidden", "This invite link has expired.")
    if invite.uses.count() >= invite.max_uses:
        raise ChatError("forbidden", "This invite link has been used up.")
    return invite


def invite_find(*, token: object) -> tuple[Invite | None, str]:
    """`invite_check` for pages: the usable invite, or None and why not."""
    try:
        return invite_check(token=token), ""
    except ChatError as error:
        return None, error.detail


def invites_with_uses() -> QuerySet[Invite]:
    """Invites, newest first, with `use_total` and their uses (oldest first)."""
    return (
        Invite.objects.select_related("group", "created_by").annotate(use_total=Count("uses")).prefetch_related("uses")
    )
