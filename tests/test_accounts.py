"""Register, log in, log out: Django's auth with clear form errors."""

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import make_user

pytestmark = pytest.mark.django_db

REAL_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]


def register(client, username="dave", password="correct horse battery", confirm=None):
    return client.post(
        "/accounts/register/", {"username": username, "password1": password, "password2": confirm or password}
    )


def test_register_logs_in_and_hashes_with_argon2(client, settings):
    settings.PASSWORD_HASHERS = REAL_HASHERS
    response = register(client)
    assert response.status_code == 302 and response.url == "/"
    assert client.get("/").status_code == 200
    assert get_user_model().objects.get(username="dave").password.startswith("argon2$")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"password": "short"}, "too short"),
        ({"password": "password123"}, "too common"),
        ({"password": "12345678901"}, "entirely numeric"),
        ({"confirm": "something else entirely"}, "didn"),
        ({"username": "bad name!"}, "Enter a valid username"),
        ({"username": "alice"}, "already exists"),
    ],
)
def test_register_explains_what_is_wrong(client, alice, kwargs, message):
    response = register(client, **kwargs)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert get_user_model().objects.count() == 1


def test_login_and_logout(client):
    make_user("erin")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Log in" in page.content
    response = client.post("/accounts/login/", {"username": "erin", "password": "erin-pass-123"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_shows_an_error(client):
    make_user("erin")
    response = client.post("/accounts/login/", {"username": "erin", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_chat_page_needs_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_chat_page_carries_its_config(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'id="chat-config"' in page and '"User": "alice"' in page


# ---- who is on a WebSocket: the session cookie, read once at the handshake ----


def _socket_user(cookie: str | None):
    from asgiref.sync import async_to_sync

    from accounts.middleware import SessionAuthMiddleware

    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    headers = [(b"host", b"testserver")] + ([(b"cookie", cookie.encode())] if cookie is not None else [])
    async_to_sync(SessionAuthMiddleware(inner))({"type": "websocket", "headers": headers}, None, None)
    return seen["user"]


@pytest.mark.django_db(transaction=True)
def test_a_socket_is_its_session_user_and_nobody_without_a_valid_session():
    from django.conf import settings

    from tests.conftest import session_cookie

    dave = make_user("dave")
    name = settings.SESSION_COOKIE_NAME
    cookie = f"theme=dark; {name}={session_cookie(dave)}"
    assert _socket_user(cookie) == dave
    for other in (None, "", f"{name}=forged", "garbage;;=="):
        assert not _socket_user(other).is_authenticated, other
    dave.set_password("a new password entirely")  # Django ends the sessions of a changed password
    dave.save()
    assert not _socket_user(cookie).is_authenticated
