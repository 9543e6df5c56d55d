"""The login form, and who a login attempt is from (for the lockout and the sign-up limit).

The form is Django's own, which also tells a banned user that they are banned.

Django's ModelBackend refuses an inactive (banned) user as if the password were wrong. Saying
"wrong password" to someone who typed the right one only makes them try again (and lock
themselves out), so when, and only when, the password is right, the form says why instead.
A lockout (django-axes) comes first: a locked-out try is not checked at all.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

UNKNOWN_ADDRESS = "0.0.0.0"  # the one bucket for whatever is not an address


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "banned": "This account has been banned by a moderator, so it cannot log in.",
    }

    def clean(self) -> dict:
        try:
            return super().clean()
        except ValidationError:
            if self._banned_with_right_password():
                raise ValidationError(self.error_messages["banned"], code="banned") from None
            raise

    def _banned_with_right_password(self) -> bool:
        if getattr(self.request, "axes_locked_out", False):
            return False
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return False
        user = get_user_model()._default_manager.filter(username=username).first()
        return user is not None and not user.is_active and user.check_password(password)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, which Daphne sets from X-Forwarded-For only when run
    with --proxy-headers (README: "Deploying behind HTTPS"). Anything that is not an IP address
    counts as one unknown address, so that it is limited too and fits the lockout's table."""
    address = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return UNKNOWN_ADDRESS


def lockout_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username a failed login is counted against (AXES_USERNAME_CALLABLE): as typed, cut to
    the longest a username can be. The lockout's table holds 255 characters at most, and a longer
    one (a hostile form post) would break the login on PostgreSQL."""
    field = settings.AXES_USERNAME_FORM_FIELD
    username = (credentials or {}).get(field) if credentials else request.POST.get(field)
    if username is None:
        return None
    return str(username).replace("\x00", "")[: get_user_model()._meta.get_field("username").max_length]
