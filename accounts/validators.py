"""Username rules beyond Django's: nothing invisible, no bidi controls, no look-alike of another.

Django's UnicodeUsernameValidator allows letters of every script, so `аlice` (Cyrillic `а`)
and `ㅤ` (U+3164 HANGUL FILLER, a letter that draws nothing) pass it. chatsite.names says
which names look alike; UsernameKey stores each user's key for the check.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import UsernameKey
from chatsite.names import has_bidi_control, has_visible, name_key


def validate_username(username: str, *, user: AbstractBaseUser | None = None) -> None:
    """Raise ValidationError if `username` is invisible, holds bidi controls, or looks like
    another user's name (`user`, when given, is the account being edited)."""
    if has_bidi_control(username):
        raise ValidationError("A username cannot contain bidirectional control characters.", code="bidi")
    if not has_visible(username):
        raise ValidationError("A username cannot be made only of invisible characters.", code="invisible")
    twin = UsernameKey.objects.filter(key=name_key(username)).select_related("user")
    if user is not None and user.pk is not None:
        twin = twin.exclude(user_id=user.pk)
    twin = twin.first()
    if twin is not None:
        raise ValidationError(
            "This username looks too much like the existing user '%(other)s'; pick another.",
            code="look_alike",
            params={"other": twin.user.username},
        )


class UsernameRulesMixin:
    """For a ModelForm of users: `clean_username` also runs validate_username."""

    def clean_username(self):
        parent = getattr(super(), "clean_username", None)
        username = parent() if parent else self.cleaned_data.get("username")
        if username:
            validate_username(username, user=self.instance)
        return username


def username_key_store(sender, instance: AbstractBaseUser, update_fields=None, **kwargs) -> None:
    """post_save of users: keep the UsernameKey row in step with the username.

    A save that did not touch the username (a login stamps `last_login`) costs nothing. A
    name made elsewhere (the shell, createsuperuser) that looks like another keeps no key:
    the older account holds it, so look-alikes of both are still refused.
    """
    if update_fields is not None and "username" not in update_fields:
        return
    key = name_key(instance.get_username())
    try:
        with transaction.atomic():
            UsernameKey.objects.update_or_create(user=instance, defaults={"key": key})
    except IntegrityError:
        UsernameKey.objects.filter(user=instance).delete()


def username_keys_store(users: list[AbstractBaseUser]) -> None:
    """Keys for users made by bulk_create (no post_save); look-alikes of a taken key get none."""
    rows = [UsernameKey(user=user, key=name_key(user.get_username())) for user in users]
    UsernameKey.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
