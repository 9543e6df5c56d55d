"""A socket lives only as long as the session it was opened with.

The actions here end sessions and tell every server process to close the sockets that used them
(through the channel layer, after commit), and the receivers wire them to everything that ends a
session or an account, whichever path does it:

- logging out (`user_logged_out`): that session's sockets close with 4001;
- a password change (`set_password` then `save`, as every Django form, view and command does)
  or the account becoming inactive (`is_active=False` saved): all of the user's sessions end and
  all of their sockets close (4001, or 4003 for a deactivated account);
- a session expiring, or anything that bypasses `save()` (a queryset `update`, a raw delete of
  sessions): caught by the per-process check of every open socket's session
  (messaging.session_watch) at least every `CHAT_SESSION_CHECK_SECONDS`, and on every command.
"""

from __future__ import annotations

import hashlib
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import UserSession
from messaging import events
from messaging.protocol import CLOSE_POLICY, CLOSE_SESSION_ENDED


def session_group(session_key: str) -> str:
    """The layer group of the sockets opened with one session (a hash: keys are secrets)."""
    return "chat.session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


def session_register(*, user: AbstractBaseUser, session_key: str) -> None:
    """Remember that `user` holds `session_key`, so that ending their sessions finds it."""
    UserSession.objects.get_or_create(session_key=session_key, defaults={"user": user})


def session_end(*, session_key: str) -> None:
    """Forget one session (logout): its sockets close in every process."""
    with transaction.atomic():
        UserSession.objects.filter(session_key=session_key).delete()
        events.publish(session_group(session_key), close=CLOSE_SESSION_ENDED)


def sessions_end(*, user: AbstractBaseUser, close: int = CLOSE_SESSION_ENDED) -> int:
    """End every session of `user` (the ones logged in or used for a socket) and close all of
    their sockets in every process. Exactly their sessions: nothing else is read or decoded."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    with transaction.atomic():
        keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
        for key in keys:
            store.delete(key)
        UserSession.objects.filter(session_key__in=keys).delete()
        events.publish(events.user_group(user.pk), close=close)
    return len(keys)


@receiver(user_logged_in, dispatch_uid="accounts.sessions.logged_in")
def _logged_in(sender, request, user, **kwargs) -> None:
    if getattr(request, "session", None) is not None and request.session.session_key:
        session_register(user=user, session_key=request.session.session_key)


@receiver(user_logged_out, dispatch_uid="accounts.sessions.logged_out")
def _logged_out(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        session_end(session_key=key)


@receiver(post_save, sender=get_user_model(), dispatch_uid="accounts.sessions.user_saved")
def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    """A new password (set_password, then save) or an inactive account ends every session.

    `_password` is what `set_password` leaves for `save()` to report to the password validators;
    Django's own hash upgrade at login clears it first, so that does not count as a change.
    """
    if created:
        return
    if not instance.is_active and (update_fields is None or "is_active" in update_fields):
        sessions_end(user=instance, close=CLOSE_POLICY)
    elif getattr(instance, "_password", None) is not None:
        sessions_end(user=instance)
