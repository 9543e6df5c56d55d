"""Who may do what: every client frame and every HTTP endpoint, against every kind of account.

The tables at the top are the policy, one cell per test. The personas:
alice owns the group "Team" (members bob and erin) and "Lobby" (alone); bob is a member; carol an
outsider; anonymous has no session; dave was banned by iago; erin was muted by iago; frank was
deactivated behind the server's back (a queryset `update`, not a ban); stan is staff with view
permissions only; mona a moderator (staff in the "Moderators" group); iago the superuser.

Only the public surfaces are driven: the socket through `connect`, HTTP through `Client`. Every
refusal also checks that nothing changed and nobody else heard of it (a round trip, not a sleep).
"""

from __future__ import annotations

import base64
import copy
import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import Client, override_settings
from PIL import Image as Pil

from accounts.actions import user_ban, user_mute
from accounts.models import AuditEntry, Mute
from groups.actions import group_create
from groups.models import ChatGroup
from messaging.actions import message_send, report_create
from messaging.models import Message, ReadMarker, Report
from tests.conftest import make_user, session_cookie

User = get_user_model()

# ---- outcomes ---------------------------------------------------------------------------
OK = "ok"  # the frame's answer (and its announcement, if it has one)
JOINS = "joins"  # Join of a group one is not in: `Joined` to everyone, then `History`
FORBIDDEN, NOT_FOUND = "forbidden", "not_found"  # an `Error` with that code, nothing done
CLOSED = "closed 4003"  # the socket is closed for the deactivated account, nothing done
REFUSED = "refused"  # the WebSocket handshake is refused
LOGIN, ADMIN, HOME = "302 login", "302 admin login", "302 home"  # redirects
DONE, UNDONE = "done", "undone"  # an admin change: made (and audited), or answered but not made

PERSONAS = ("alice", "bob", "carol", "anonymous", "dave", "erin", "frank", "stan", "mona", "iago")
SOCKET_PERSONAS = ("alice", "bob", "carol", "erin", "frank", "stan", "mona", "iago")

# fmt: off
# Opening a socket. dave and frank try with the session they had before, and with a new one.
#            alice    bob      carol    anon     dave     erin     frank    stan     mona     iago
HANDSHAKE = (OK,      OK,      OK,      REFUSED, REFUSED, OK,      REFUSED, OK,      OK,      OK)

# Each frame, sent from a socket of each persona that can hold one (anon and dave cannot:
# HANDSHAKE). frank's socket was opened while he was active, then he was deactivated (a frame the
# parser refuses is refused before his account is read: his next command closes him). "a user" is
# the watcher: bob, or alice when bob is the one acting; it must hear of what works, and of nothing
# else. "Read alice-bob" is a `Read` To bob of alice's message to bob; "Report Team msg" reports
# bob's message in Team; "Create" makes "Fresh" with carol in it.
FRAMES = {
    #                      alice      bob        carol      erin       frank      stan       mona       iago
    "Connect":            (OK,        OK,        OK,        OK,        CLOSED,    OK,        OK,        OK),
    "Send to a user":     (OK,        OK,        OK,        FORBIDDEN, CLOSED,    OK,        OK,        OK),
    "Send From alice":    (OK,        FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),
    "Send to dave":       (NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "Send to Team":       (OK,        OK,        FORBIDDEN, FORBIDDEN, CLOSED,    FORBIDDEN, FORBIDDEN, FORBIDDEN),
    "Send image to Team": (OK,        OK,        FORBIDDEN, FORBIDDEN, CLOSED,    FORBIDDEN, FORBIDDEN, FORBIDDEN),
    "Join Team":          (OK,        OK,        JOINS,     OK,        CLOSED,    JOINS,     JOINS,     JOINS),
    "Join Lobby":         (OK,        JOINS,     JOINS,     FORBIDDEN, CLOSED,    JOINS,     JOINS,     JOINS),
    "Join Team Before":   (OK,        OK,        FORBIDDEN, OK,        CLOSED,    FORBIDDEN, FORBIDDEN, FORBIDDEN),
    "Join a user":        (OK,        OK,        OK,        OK,        CLOSED,    OK,        OK,        OK),
    "Join dave":          (NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "Create":             (OK,        OK,        OK,        FORBIDDEN, CLOSED,    OK,        OK,        OK),
    "Delete Team":        (OK,        FORBIDDEN, FORBIDDEN, FORBIDDEN, CLOSED,    FORBIDDEN, OK,        OK),
    "Leave Team":         (FORBIDDEN, OK,        NOT_FOUND, OK,        CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "Read Team":          (OK,        OK,        FORBIDDEN, OK,        CLOSED,    FORBIDDEN, FORBIDDEN, FORBIDDEN),
    "Read alice-bob":     (OK,        NOT_FOUND, NOT_FOUND, NOT_FOUND, CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "Report alice-bob":   (OK,        OK,        NOT_FOUND, NOT_FOUND, CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "Report Team msg":    (OK,        OK,        NOT_FOUND, OK,        CLOSED,    NOT_FOUND, NOT_FOUND, NOT_FOUND),
}

# Each HTTP endpoint, asked by each persona ("anon" is anonymous; dave's and frank's browsers still
# hold the cookie they had before). Numbers are status codes; an admin change is DONE only if it is
# made and audited, UNDONE if the page answers but nothing is made or audited.
HTTP = {
    #                              alice   bob     carol   anon    dave    erin    frank   stan    mona    iago
    "GET /":                      (200,    200,    200,    LOGIN,  LOGIN,  200,    LOGIN,  200,    200,    200),
    "GET /accounts/login/":       (HOME,   HOME,   HOME,   200,    200,    HOME,   200,    HOME,   HOME,   HOME),
    "GET /accounts/register/":    (HOME,   HOME,   HOME,   200,    200,    HOME,   200,    HOME,   HOME,   HOME),
    "POST /accounts/logout/":     (LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN,  LOGIN),
    "GET /accounts/logout/":      (405,    405,    405,    405,    405,    405,    405,    405,    405,    405),
    "GET /api/users/":            (200,    200,    200,    401,    401,    200,    401,    200,    200,    200),
    "POST /api/users/":           (405,    405,    405,    405,    405,    405,    405,    405,    405,    405),
    "GET /api/groups/":           (200,    200,    200,    401,    401,    200,    401,    200,    200,    200),
    "GET alice-bob image":        (200,    200,    404,    401,    401,    404,    401,    404,    200,    200),
    "GET alice-bob thumbnail":    (200,    200,    404,    401,    401,    404,    401,    404,    200,    200),
    "GET Team image":             (200,    200,    404,    401,    401,    200,    401,    404,    200,    200),
    "GET Team thumbnail":         (200,    200,    404,    401,    401,    200,    401,    404,    200,    200),
    "GET missing image":          (404,    404,    404,    401,    401,    404,    401,    404,    404,    404),
    "GET /admin/":                (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "GET user list":              (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "GET alice's user page":      (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "POST alice's user page":     (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    DONE),
    "POST iago's user page":      (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    DONE),
    "GET alice's password page":  (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    200),
    "POST alice's password page": (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    DONE),
    "GET alice's delete page":    (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    200),
    "POST alice's delete page":   (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    DONE),
    "POST iago's delete page":    (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  403,    403,    403),
    "GET message list":           (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "GET group list":             (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "GET report list":            (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "GET audit log":              (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  200,    200,    200),
    "remove alice-bob message":   (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "ban alice":                  (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "ban stan":                   (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, UNDONE, DONE),
    "ban iago":                   (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, UNDONE, UNDONE),
    "unban dave":                 (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "mute bob":                   (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "mute iago":                  (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, UNDONE, UNDONE),
    "unmute erin":                (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "delete group Team":          (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
    "resolve bob's report":       (ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  ADMIN,  UNDONE, DONE,   DONE),
}
# fmt: on

# HOLES: cells where the code does not do what docs/protocol.md promises, as strict expected
# failures (a fixed hole then fails as XPASS, and its entry goes). None open now.
HOLES: dict[tuple[str, str], str] = {}


# ---- the world every test starts from ----------------------------------------------------


def png() -> str:
    out = io.BytesIO()
    Pil.new("RGB", (8, 8), (200, 30, 60)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@dataclass
class World:
    users: dict = field(default_factory=dict)
    private: int = 0  # alice -> bob, text
    private_image: int = 0  # alice -> bob
    team: int = 0  # bob in Team, text
    team_image: int = 0  # alice in Team
    report: int = 0  # bob's report of the alice -> bob message
    dave_session: str = ""
    watcher: str = "bob"


def world_build() -> World:
    """Everyone as described at the top, except dave's ban and frank's deactivation (later:
    each keeps a session from before)."""
    w = World()
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        w.users[name] = make_user(name)
    stan = make_user("stan", is_staff=True)
    stan.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    mona = make_user("mona", is_staff=True)
    mona.groups.add(Group.objects.get(name="Moderators"))
    iago = User.objects.create_superuser("iago", "iago@example.com", "iago-pass-123")
    w.users.update(stan=User.objects.get(pk=stan.pk), mona=User.objects.get(pk=mona.pk), iago=iago)
    alice, bob = w.users["alice"], w.users["bob"]
    group_create(owner=alice, name="Team", member_usernames=["bob", "erin"])
    group_create(owner=alice, name="Lobby", member_usernames=[])
    w.private = message_send(sender=alice, chat="Private", to="bob", content="hi bob")[0].pk
    w.private_image = message_send(sender=alice, chat="Private", to="bob", content=png(), is_image=True)[0].pk
    w.team = message_send(sender=bob, chat="Group", to="Team", content="hello team")[0].pk
    w.team_image = message_send(sender=alice, chat="Group", to="Team", content=png(), is_image=True)[0].pk
    w.report = report_create(reporter=bob, message_id=w.private, reason="rude").pk
    user_mute(actor=iago, user=w.users["erin"], duration=timedelta(hours=1), reason="cool down")
    return w


def dave_ban(w: World) -> None:
    user_ban(actor=w.users["iago"], user=w.users["dave"], reason="spam")


def frank_deactivate(w: World) -> None:
    """Behind the server's back: no save, so no signal closes his sockets or ends his sessions."""
    User.objects.filter(pk=w.users["frank"].pk).update(is_active=False)


def chat_state() -> tuple:
    """Everything a frame could change, to show that a refused one changed nothing."""
    groups = ChatGroup.objects.prefetch_related("members").order_by("name")
    return (
        list(Message.objects.order_by("id").values_list("id", "sender__username", "text")),
        [(g.name, sorted(m.username for m in g.members.all())) for g in groups],
        sorted(Report.objects.values_list("message_id", "reporter__username")),
        sorted(ReadMarker.objects.values_list("user__username", "peer__username", "group__name", "last_read_id")),
        AuditEntry.objects.count(),
    )


# ---- the socket -----------------------------------------------------------------------------


def text(to: str, content: str, chat: str = "Private", **extra) -> dict:
    return {"Type": "Send", "Chat": chat, "To": to, "Content": content, **extra}


def join(to: str, chat: str = "Group", **extra) -> dict:
    return {"Type": "Join", "Chat": chat, "To": to, **extra}


# What each frame is, what its sender gets when it works and what the watcher gets then.
Spec = tuple[Callable[[World], dict], list[str], list[str]]
SPECS: dict[str, Spec] = {
    "Connect": (lambda w: {"Type": "Connect"}, ["State"], []),
    "Send to a user": (lambda w: text(w.watcher, "hi"), ["Message"], ["Message"]),
    "Send From alice": (lambda w: text(w.watcher, "it is me", From="alice"), ["Message"], ["Message"]),
    "Send to dave": (lambda w: text("dave", "hi"), ["Message"], []),
    "Send to Team": (lambda w: text("Team", "hi all", chat="Group"), ["Message"], ["Message"]),
    "Send image to Team": (lambda w: text("Team", png(), chat="Group", is_image=1), ["Message"], ["Message"]),
    "Join Team": (lambda w: join("Team"), ["History"], []),
    "Join Lobby": (lambda w: join("Lobby"), ["History"], []),
    "Join Team Before": (lambda w: join("Team", Before=w.team_image + 1), ["History"], []),
    "Join a user": (lambda w: join(w.watcher, chat="Private"), ["History"], []),
    "Join dave": (lambda w: join("dave", chat="Private"), ["History"], []),
    "Create": (lambda w: {"Type": "Create", "Name": "Fresh", "List": ["carol"]}, ["Group"], ["Group"]),
    "Delete Team": (lambda w: {"Type": "Delete", "Name": "Team"}, ["Group"], ["Group"]),
    "Leave Team": (lambda w: {"Type": "Leave", "Name": "Team"}, ["Group"], ["Group"]),
    "Read Team": (lambda w: {"Type": "Read", "Chat": "Group", "To": "Team", "Id": w.team}, [], []),
    "Read alice-bob": (
        lambda w: {"Type": "Read", "Chat": "Private", "To": "bob", "Id": w.private},
        [],
        [],
    ),
    "Report alice-bob": (lambda w: {"Type": "Report", "Id": w.private}, ["Reported"], []),
    "Report Team msg": (lambda w: {"Type": "Report", "Id": w.team}, ["Reported"], []),
}
assert set(SPECS) == set(FRAMES)


@pytest.fixture
def socket_world(transactional_db) -> World:
    w = world_build()
    w.dave_session = session_cookie(w.users["dave"])  # his browser's, from before the ban
    dave_ban(w)
    return w


async def quiet(sock) -> None:
    """Nothing is pending: the next frame after a `Connect` is its `State`."""
    await sock.send({"Type": "Connect"})
    frame = await sock.recv()
    assert frame["Type"] == "State", f"{sock.user.username} got {frame}"


async def close_code(sock) -> int:
    """The socket's next output must be its close (not an `Error`, say): its code."""
    output = await sock.comm.receive_output(timeout=3)
    assert output["type"] == "websocket.close", output
    return output.get("code")


async def still_deactivated(sock) -> None:
    """frank's frame was refused before his account was looked at; his next command closes him."""
    await sock.send({"Type": "Connect"})
    assert await close_code(sock) == 4003


async def open_socket(connect, user):
    """A socket of `user`, its own `Presence` (first socket) taken."""
    sock = await connect(user, drain=False)
    await sock.expect("Presence", Username=user.username, Online=True)
    return sock


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona, outcome", list(zip(PERSONAS, HANDSHAKE)), ids=PERSONAS)
async def test_opening_a_socket(connect, socket_world, persona, outcome):
    w = socket_world
    user = w.users.get(persona)
    old_session = w.dave_session if persona == "dave" else None
    if persona == "frank":
        old_session = await database_sync_to_async(session_cookie)(user)
    await database_sync_to_async(frank_deactivate)(w)
    watcher = await open_socket(connect, w.users["bob"] if persona != "bob" else w.users["alice"])
    if outcome == OK:
        sock = await connect(user, session=old_session, drain=False)
        await sock.expect("Presence", Username=persona, Online=True)
        await watcher.expect("Presence", Username=persona, Online=True)
        await quiet(sock)
    else:
        for session in dict.fromkeys((old_session, None)):  # the cookie kept from before, and a new login
            connected, _ = await connect(user, session=session, expect_ok=False)
            assert not connected
    await quiet(watcher)


def frame_cases():
    for frame, row in FRAMES.items():
        for persona, outcome in zip(SOCKET_PERSONAS, row):
            hole = HOLES.get((frame, persona))
            marks = [pytest.mark.xfail(reason=hole, strict=True)] if hole else []
            yield pytest.param(frame, persona, outcome, id=f"{frame} by {persona}: {outcome}", marks=marks)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("frame_name, persona, outcome", list(frame_cases()))
async def test_frame(connect, socket_world, frame_name, persona, outcome):
    w = socket_world
    w.watcher = "alice" if persona == "bob" else "bob"
    build, sender_gets, watcher_gets = SPECS[frame_name]
    if outcome == JOINS:
        sender_gets, watcher_gets = ["Group", "History"], ["Group"]
    watcher = await open_socket(connect, w.users[w.watcher])
    sock = await open_socket(connect, w.users[persona])
    await watcher.expect("Presence", Username=persona, Online=True)
    if persona == "frank":
        await database_sync_to_async(frank_deactivate)(w)
    before = await database_sync_to_async(chat_state)()
    frame = build(w)
    await sock.send(frame)
    if outcome in (OK, JOINS):
        got = sorted([(await sock.recv())["Type"] for _ in sender_gets])
        assert got == sorted(sender_gets)
        for type_ in watcher_gets:
            await watcher.expect(type_)
        await quiet(sock)
        if frame["Type"] == "Read":
            assert await database_sync_to_async(chat_state)() != before, "the read pointer moved"
    else:
        if outcome == CLOSED:
            assert await close_code(sock) == 4003
        else:
            await sock.expect("Error", Code=outcome, Ref=frame["Type"])
            await (still_deactivated(sock) if persona == "frank" else quiet(sock))
        assert await database_sync_to_async(chat_state)() == before
    await quiet(watcher)


# ---- HTTP ------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    method: str
    path: Callable[[World], str]
    data: Callable[[World], dict] | None = None
    made: Callable[[World], bool] | None = None  # whether the change it asks for was made


def user_id(name: str) -> Callable[[World], int]:
    return lambda w: w.users[name].pk


def admin_action(model: str, action: str, ids: Callable[[World], list[int]], made, **extra) -> Endpoint:
    """An admin action, picked and confirmed with a reason in one post."""
    return Endpoint(
        "POST",
        lambda w: f"/admin/{model}/",
        lambda w: {"action": action, "_selected_action": ids(w), "apply": "1", "reason": "matrix", **extra},
        made,
    )


def user_field(name: str, **values) -> Callable[[World], bool]:
    return lambda w: User.objects.filter(username=name, **values).exists()


def muted(name: str) -> Callable[[World], bool]:
    return lambda w: Mute.objects.filter(user__username=name).exists()


def user_page(name: str, suffix: str = "change/") -> Callable[[World], str]:
    return lambda w: f"/admin/auth/user/{w.users[name].pk}/{suffix}"


NEW_PASSWORD = {"password1": "new-Secret-4242", "password2": "new-Secret-4242", "usable_password": "true"}
ENDPOINTS: dict[str, Endpoint] = {
    "GET /": Endpoint("GET", lambda w: "/"),
    "GET /accounts/login/": Endpoint("GET", lambda w: "/accounts/login/"),
    "GET /accounts/register/": Endpoint("GET", lambda w: "/accounts/register/"),
    "POST /accounts/logout/": Endpoint("POST", lambda w: "/accounts/logout/", lambda w: {}),
    "GET /accounts/logout/": Endpoint("GET", lambda w: "/accounts/logout/"),
    "GET /api/users/": Endpoint("GET", lambda w: "/api/users/"),
    "POST /api/users/": Endpoint("POST", lambda w: "/api/users/", lambda w: {}),
    "GET /api/groups/": Endpoint("GET", lambda w: "/api/groups/"),
    "GET alice-bob image": Endpoint("GET", lambda w: f"/images/{w.private_image}/"),
    "GET alice-bob thumbnail": Endpoint("GET", lambda w: f"/images/{w.private_image}/thumb/"),
    "GET Team image": Endpoint("GET", lambda w: f"/images/{w.team_image}/"),
    "GET Team thumbnail": Endpoint("GET", lambda w: f"/images/{w.team_image}/thumb/"),
    "GET missing image": Endpoint("GET", lambda w: f"/images/{w.team_image + 1000}/"),
    "GET /admin/": Endpoint("GET", lambda w: "/admin/"),
    "GET user list": Endpoint("GET", lambda w: "/admin/auth/user/"),
    "GET alice's user page": Endpoint("GET", user_page("alice")),
    "POST alice's user page": Endpoint(
        "POST",
        user_page("alice"),
        lambda w: {"username": "alice", "email": "alice@new.example", "is_active": "on"},
        user_field("alice", email="alice@new.example"),
    ),
    "POST iago's user page": Endpoint(
        "POST",
        user_page("iago"),
        lambda w: {
            "username": "iago",
            "email": "iago@new.example",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
        },
        user_field("iago", email="iago@new.example"),
    ),
    "GET alice's password page": Endpoint("GET", user_page("alice", "password/")),
    "POST alice's password page": Endpoint(
        "POST",
        user_page("alice", "password/"),
        lambda w: NEW_PASSWORD,
        lambda w: User.objects.get(username="alice").check_password("new-Secret-4242"),
    ),
    "GET alice's delete page": Endpoint("GET", user_page("alice", "delete/")),
    "POST alice's delete page": Endpoint(
        "POST", user_page("alice", "delete/"), lambda w: {"post": "yes"}, lambda w: not user_field("alice")(w)
    ),
    "POST iago's delete page": Endpoint(
        "POST", user_page("iago", "delete/"), lambda w: {"post": "yes"}, lambda w: not user_field("iago")(w)
    ),
    "GET message list": Endpoint("GET", lambda w: "/admin/messaging/message/"),
    "GET group list": Endpoint("GET", lambda w: "/admin/groups/chatgroup/"),
    "GET report list": Endpoint("GET", lambda w: "/admin/messaging/report/"),
    "GET audit log": Endpoint("GET", lambda w: "/admin/accounts/auditentry/"),
    "remove alice-bob message": admin_action(
        "messaging/message",
        "remove_messages",
        lambda w: [w.private],
        lambda w: not Message.objects.filter(pk=w.private).exists(),
    ),
    "ban alice": admin_action(
        "auth/user", "ban", lambda w: [user_id("alice")(w)], user_field("alice", is_active=False)
    ),
    "ban stan": admin_action("auth/user", "ban", lambda w: [user_id("stan")(w)], user_field("stan", is_active=False)),
    "ban iago": admin_action("auth/user", "ban", lambda w: [user_id("iago")(w)], user_field("iago", is_active=False)),
    "unban dave": admin_action(
        "auth/user", "unban", lambda w: [user_id("dave")(w)], user_field("dave", is_active=True)
    ),
    "mute bob": admin_action("auth/user", "mute", lambda w: [user_id("bob")(w)], muted("bob"), minutes="60"),
    "mute iago": admin_action("auth/user", "mute", lambda w: [user_id("iago")(w)], muted("iago"), minutes="60"),
    "unmute erin": admin_action("auth/user", "unmute", lambda w: [user_id("erin")(w)], lambda w: not muted("erin")(w)),
    "delete group Team": admin_action(
        "groups/chatgroup",
        "delete_groups",
        lambda w: list(ChatGroup.objects.filter(name="Team").values_list("pk", flat=True)),
        lambda w: not ChatGroup.objects.filter(name="Team").exists(),
    ),
    "resolve bob's report": admin_action(
        "messaging/report",
        "resolve_reports",
        lambda w: [w.report],
        lambda w: Report.objects.filter(pk=w.report, resolved__isnull=False).exists(),
    ),
}
assert set(ENDPOINTS) == set(HTTP)


def http_cases():
    for name, row in HTTP.items():
        for persona, outcome in zip(PERSONAS, row):
            yield pytest.param(name, persona, outcome, id=f"{name} by {persona}: {outcome}")


def browser_of(w: World, persona: str) -> Client:
    """A browser of the persona, logged in before dave's ban and frank's deactivation."""
    browser = Client()
    if persona != "anonymous":
        browser.force_login(w.users[persona])
    dave_ban(w)
    frank_deactivate(w)
    return browser


def check_status(response, outcome) -> None:
    where = response.headers.get("Location", "")
    if outcome == LOGIN:
        assert response.status_code == 302 and where.startswith("/accounts/login/"), (response.status_code, where)
    elif outcome == ADMIN:
        assert response.status_code == 302 and where.startswith("/admin/login/"), (response.status_code, where)
    elif outcome == HOME:
        assert response.status_code == 302 and where == "/", (response.status_code, where)
    elif outcome in (DONE, UNDONE):
        assert response.status_code in (200, 302), response.status_code  # answered, not refused outright
    else:
        assert response.status_code == outcome, (response.status_code, where)


@pytest.fixture(scope="class")
def http_base(django_db_setup, django_db_blocker):
    """Built in a transaction that every case's own (a savepoint inside it) rolls back to,
    and that is rolled back itself when the last case is done, as `TestCase.setUpTestData`."""
    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), fast, transaction.atomic():
        yield world_build()
        transaction.set_rollback(True)


class TestHttp:
    """One world for all the HTTP cases (built once: 370 cases), each case rolled back to it."""

    @pytest.fixture
    def http_world(self, http_base, db) -> World:
        return copy.deepcopy(http_base)  # each case may change its users in memory (a ban...)

    @pytest.mark.parametrize("endpoint, persona, outcome", list(http_cases()))
    def test_http(self, http_world, endpoint, persona, outcome):
        w = http_world
        spec = ENDPOINTS[endpoint]
        browser = browser_of(w, persona)
        audited = AuditEntry.objects.count()
        path = spec.path(w)
        response = browser.post(path, spec.data(w)) if spec.method == "POST" else browser.get(path)
        check_status(response, outcome)
        if spec.made is not None:
            assert spec.made(w) == (outcome == DONE), "made, and only when it should be"
            assert (AuditEntry.objects.count() > audited) == (outcome == DONE), "audited exactly when made"

    def test_the_user_list_shows_no_banned_or_deactivated_account(self, http_world):
        browser = browser_of(http_world, "carol")
        listed = [row["Username"] for row in browser.get("/api/users/").json()]
        assert listed == ["alice", "bob", "carol", "erin", "iago", "mona", "stan"]
