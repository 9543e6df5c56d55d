"""The WebSocket opens only from the site's own pages: the whole origin, scheme and port included."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from chatsite.origins import served_scheme, site_origins, well_formed
from tests.conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_page_of_the_site_itself_connects(connect, alice):
    await connect(alice, origin=b"http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:9000",  # another web app on the same host name
        b"http://127.0.0.1",  # port 80
        b"https://127.0.0.1:8000",  # the other scheme
        b"ws://127.0.0.1:8000",
        b"http://localhost:8000",  # an allowed host, but not the one this page was served from
        b"http://127.0.0.1.evil.example:8000",
        b"null",
        b"http://[::1",  # Channels' own parser raises on these two
        b"http://127.0.0.1:99999",
        b"http://127.0.0.1:8000" + b"/x" * 500,
        b"\xff\xfe",
        b"",
    ],
)
async def test_any_other_origin_is_refused(connect, alice, origin):
    connected, _ = await connect(alice, origin=origin, expect_ok=False)
    assert not connected


async def test_no_origin_at_all_is_refused(connect, alice):
    connected, _ = await connect(alice, origin=None, expect_ok=False)
    assert not connected


async def handshake(user, *, host: bytes, origin: bytes, extra: list | None = None) -> bool:
    from chatsite.asgi import application

    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"host", host), (b"origin", origin), (b"cookie", f"sessionid={cookie}".encode()), *(extra or [])]
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    await comm.disconnect()
    return connected


async def test_a_trusted_origin_connects_from_anywhere_it_is_listed(settings, alice):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    assert await handshake(alice, host=b"127.0.0.1:8000", origin=b"https://chat.example.com")
    assert await handshake(alice, host=b"127.0.0.1:8000", origin=b"https://eu.example.org")
    assert not await handshake(alice, host=b"127.0.0.1:8000", origin=b"http://chat.example.com")
    assert not await handshake(alice, host=b"127.0.0.1:8000", origin=b"https://chat.example.com:8443")


async def test_a_host_outside_allowed_hosts_is_not_the_site(alice):
    assert not await handshake(alice, host=b"evil.example", origin=b"http://evil.example")


async def test_behind_a_tls_proxy_the_page_is_https(settings, alice):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    tls = [(b"x-forwarded-proto", b"https")]
    host = b"chat.example.com"
    assert await handshake(alice, host=host, origin=b"https://chat.example.com", extra=tls)
    assert not await handshake(alice, host=host, origin=b"http://chat.example.com", extra=tls)
    assert not await handshake(alice, host=host, origin=b"https://chat.example.com")  # no proxy said so


def test_the_scheme_follows_the_connection_and_the_trusted_proxy_header_only(settings):
    plain = {"type": "websocket", "headers": [(b"x-forwarded-proto", b"https")]}
    assert served_scheme(plain) == "http", "without SECURE_PROXY_SSL_HEADER the header is anyone's"
    assert served_scheme({"type": "websocket", "scheme": "wss", "headers": []}) == "https"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert served_scheme(plain) == "https"
    assert served_scheme({"headers": [(b"x-forwarded-proto", b"http, https")]}) == "http"
    settings.SECURE_PROXY_SSL_HEADER = None
    settings.SECURE_SSL_REDIRECT = True
    assert served_scheme({"headers": []}) == "https", "a site served over HTTPS only"


def test_site_origins_are_the_trusted_ones_and_the_served_one(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    scope = {"headers": [(b"host", b"LOCALHOST:8000")]}
    assert site_origins(scope) == ["https://.example.com", "http://localhost:8000"]
    assert site_origins({"headers": [(b"host", b"127.0.0.1@evil.example")]}) == ["https://.example.com"]
    assert django_settings.ALLOWED_HOSTS  # the default list, never "*"


@pytest.mark.parametrize("origin", [None, "", "null", "http://[::1", "http://a:99999", "x" * 301, "/relative"])
def test_a_malformed_origin_is_not_judged_at_all(origin):
    assert not well_formed(origin)
