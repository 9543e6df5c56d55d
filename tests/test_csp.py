"""Content-Security-Policy on every page: the site's own scripts, styles and socket, nothing inline."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import make_user

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
STYLE_ATTR = re.compile(r"<[^>]+\sstyle\s*=", re.I)


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.fixture
def iago(db):
    return get_user_model().objects.create_superuser("iago", "iago@example.com", "iago-pass-123")


def pages(iago) -> dict[str, str]:
    alice = make_user("alice")
    anonymous, member, admin = Client(), Client(), Client()
    member.force_login(alice)
    admin.force_login(iago)
    return {
        "/accounts/login/": anonymous,
        "/accounts/register/": anonymous,
        "/admin/login/": anonymous,
        "/": member,
        "/admin/": admin,
        "/admin/auth/user/": admin,
        f"/admin/auth/user/{alice.pk}/change/": admin,
        "/admin/accounts/auditentry/": admin,
        "/admin/messaging/message/": admin,
    }


def test_every_page_has_a_strict_policy(iago):
    for path, client in pages(iago).items():
        response = client.get(path)
        assert response.status_code == 200, path
        csp = policy(response)
        assert csp["default-src"] == ["'self'"], path
        assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"], path
        assert csp["connect-src"] == ["'self'"], "the site's own ws:// and wss://"
        assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_no_page_of_ours_has_inline_script_handlers_or_styles(iago):
    for path, client in pages(iago).items():
        if path.startswith("/admin/"):
            continue  # Django's own templates: the browser test checks them for violations
        page = client.get(path).content.decode()
        assert not INLINE_SCRIPT.search(page), path
        assert not HANDLER.search(page), path
        assert not STYLE_ATTR.search(page), path


def test_the_lockout_and_sign_up_limit_pages_have_the_policy_too(settings):
    settings.CHAT_REGISTRATIONS_PER_HOUR = 0
    password = "correct horse battery"
    limited = Client().post("/accounts/register/", {"username": "x", "password1": password, "password2": password})
    assert limited.status_code == 429 and policy(limited)["script-src"] == ["'self'"]
    make_user("erin")
    client = Client()
    for _ in range(5):
        locked = client.post("/accounts/login/", {"username": "erin", "password": "wrong"})
    assert locked.status_code == 429 and policy(locked)["script-src"] == ["'self'"]
