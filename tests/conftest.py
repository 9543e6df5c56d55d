"""Personas, WebSocket helpers and channel-layer switching shared by the test suite.

alice owns groups, bob is a member, carol is an outsider.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.sessions import session_group
from chatsite.settings import redis_channel_layer
from messaging.hub import stop_hubs

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ORIGIN = b"http://127.0.0.1:8000"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a real service is missing, unless REQUIRE_SERVICES=1 makes that a failure."""
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def database_service():
    """On PostgreSQL (DATABASE_URL), the server must answer, or every test skips (fails in CI)."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        require_service(db["ENGINE"].rsplit(".", 1)[-1], db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    """Hashing is tested on its own; elsewhere a fast hasher keeps the suite quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Per-user rate limits are keyed by user id, and ids are reused from one test to the next."""
    from chatsite.ratelimit import limits_reset

    limits_reset()


def redis_layer() -> dict:
    return {"default": redis_channel_layer(REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:8]}")}


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings):
    """Run a test once on the in-memory layer and once on the real Redis."""
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        settings.CHANNEL_LAYERS = redis_layer()
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return request.param


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=f"{username}-pass-123", **extra)


@pytest.fixture
def alice(transactional_db):
    return make_user("alice")


@pytest.fixture
def bob(transactional_db):
    return make_user("bob")


@pytest.fixture
def carol(transactional_db):
    return make_user("carol")


@pytest.fixture
def iago(transactional_db):
    """The superuser: moderates, and may act on staff and other superusers."""
    return get_user_model().objects.create_superuser("iago", "iago@example.com", "iago-pass-123")


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


# A frame only the tests send, through the channel layer to one socket (see Socket.probe).
PROBE = "TestProbe"


class Socket:
    """A WebsocketCommunicator with the helpers the protocol tests need.

    Tests wait for outcomes, never a fixed time: a frame with the expected content (`expect`), or
    a round trip that proves nothing else is on its way (`sync`), as in `assert await b.sync() == []`.
    """

    def __init__(self, communicator: WebsocketCommunicator, user, session: str = "") -> None:
        self.comm = communicator
        self.user = user
        self.session = session  # the session key it was opened with: its layer group

    async def send(self, frame: dict) -> None:
        await self.comm.send_json_to(frame)

    async def recv(self, timeout: float = 3) -> dict:
        while True:
            frame = await self.comm.receive_json_from(timeout=timeout)
            if frame.get("Type") != PROBE:  # another socket's probe (a shared session): not the test's
                return frame

    async def expect(self, type_: str, timeout: float = 3, **fields) -> dict:
        """The next frame, which must be of `type_` and carry `fields`."""
        frame = await self.recv(timeout)
        assert frame["Type"] == type_, frame
        for key, value in fields.items():
            assert frame.get(key) == value, (key, frame)
        return frame

    async def next_of(self, type_: str, timeout: float = 5, **fields) -> dict:
        """The next frame of that type and content, past any other (presence, `Synced`, ...)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame["Type"] == type_ and all(frame.get(key) == value for key, value in fields.items()):
                    return frame

    async def _until(self, last, timeout: float) -> list[dict]:
        """The frames before the first one `last` accepts (which is dropped), probes left out."""
        frames = []
        while not last(frame := await self.comm.receive_json_from(timeout=timeout)):
            if frame.get("Type") != PROBE:
                frames.append(frame)
        return frames

    async def probe(self, timeout: float = 5) -> list[dict]:
        """Every frame the channel layer was given for this socket before the call, and nothing else.

        A marker goes through the layer to this socket's session group; the process's hub reads its
        channel in order, so whatever was published before the marker reaches the socket before it.
        """
        token = uuid.uuid4().hex
        group = session_group(self.session)
        text = json.dumps({"Type": PROBE, "Token": token})
        await get_channel_layer().group_send(group, {"type": "chat.event", "group": group, "text": text})
        return await self._until(lambda f: f.get("Type") == PROBE and f.get("Token") == token, timeout)

    async def sync(self, timeout: float = 5) -> list[dict]:
        """Everything the server had for this socket, returned, once it has all arrived.

        First a `Connect` and its `State`: a socket handles one frame at a time, so every answer to
        its earlier frames, and every event they published, precedes it. Then a layer `probe`, so
        every event published before (by this socket, another, or the test) has arrived too.
        The caller makes sure the action it is checking is done (another socket's answer, say).
        """
        await self.send({"Type": "Connect"})
        frames = await self._until(lambda f: f.get("Type") == "State", timeout)
        return frames + await self.probe(timeout)

    async def drain(self) -> list[dict]:
        """Every frame published for this socket so far (a layer `probe`), returned."""
        return await self.probe()

    async def close(self) -> None:
        """Close, and wait until the server's side has ended (its presence published)."""
        await self.comm.disconnect(timeout=5)


async def eventually(condition, timeout: float = 5.0, every: float = 0.01) -> None:
    """Wait until `condition()` is true (it may be a coroutine function, e.g. a database query
    wrapped in `database_sync_to_async`); fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {getattr(condition, '__name__', condition)}")
        await asyncio.sleep(every)


@pytest.fixture
async def connect():
    """connect(user) -> Socket, connected and authenticated; all are closed at teardown."""
    from chatsite.asgi import application

    opened: list[Socket] = []
    refused: list[WebsocketCommunicator] = []

    async def _connect(
        user,
        *,
        origin: bytes | None = ORIGIN,
        cookie: bool = True,
        session: str | None = None,
        expect_ok: bool = True,
        drain: bool = True,
    ):
        """A socket of `user`, with a new session of theirs or the given `session` key."""
        headers = [(b"host", b"127.0.0.1:8000")]
        if origin is not None:
            headers.append((b"origin", origin))
        value = ""
        if cookie and user is not None:
            value = session or await database_sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={value}".encode()))
        comm = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
        connected, code = await comm.connect(timeout=5)
        if not expect_ok:
            refused.append(comm)  # its consumer may still be cleaning up: let it finish
            return connected, code
        assert connected, code
        sock = Socket(comm, user, value)
        opened.append(sock)
        if drain:
            await sock.probe()  # its own Presence (the user's first socket), published before accept
        return sock

    yield _connect
    for comm in [sock.comm for sock in opened] + refused:
        try:
            await comm.disconnect()
        except (Exception, asyncio.CancelledError):  # already closed, or the test failed mid-way
            pass
    await stop_hubs()


def pytest_collection_modifyitems(config, items):
    """Browser tests last: sync Playwright keeps an event loop running in the main thread."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def live_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def daphne_server(request, transactional_db):
    """A real Daphne process serving the chat on the test database. A test marked
    `@pytest.mark.daphne_env(NAME="value")` gives it those environment variables (settings)."""
    from tests.live import DaphneServer

    marker = request.node.get_closest_marker("daphne_env")
    server = DaphneServer(live_database_url(), extra_env=marker.kwargs if marker else None).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """Close connections after each use in tests, so no worker thread holds the test database
    open when it is dropped (PostgreSQL refuses to drop a database in use)."""
    django_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright cannot download its own browser here."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": BROWSER_ARGS}


@pytest.fixture
def person(browser, daphne_server):
    """person(name) -> a page of a new browser, registered and on the chat page (test hooks on);
    further keywords go to its context (has_touch=True, is_mobile=True for a phone)."""
    from tests.browser import DESKTOP, TEST_HOOKS, register

    pages = []

    def _person(name: str, viewport=DESKTOP, **context_args):
        # Playwright's wait_for_function evaluates its predicate with eval(), which the site's CSP
        # forbids; the policy itself is tested in tests/test_browser_csp.py, without this.
        context = browser.new_context(viewport=viewport, bypass_csp=True, **context_args)
        context.add_init_script(TEST_HOOKS)
        page = context.new_page()
        page.on("pageerror", lambda error: pytest.fail(f"{name}: JavaScript error: {error}"))
        register(page, daphne_server.url, name)
        pages.append(page)
        return page

    yield _person
    for page in pages:
        page.context.close()
