"""The protocol over a real consumer, once on the in-memory layer and once on Redis."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from groups.models import ChatGroup
from messaging.models import Connection, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("layer")]


@database_sync_to_async
def count_messages(**filters) -> int:
    return Message.objects.filter(**filters).count()


@database_sync_to_async
def make_group(name: str, owner, *members) -> ChatGroup:
    group = ChatGroup.objects.create(name=name, owner=owner)
    group.members.add(owner, *members)
    return group


@database_sync_to_async
def seed_private(sender, recipient, count: int) -> list[int]:
    rows = Message.objects.bulk_create(Message(sender=sender, recipient=recipient, text=f"m{i}") for i in range(count))
    return [row.pk for row in rows] if rows[0].pk else list(Message.objects.order_by("id").values_list("id", flat=True))


def send(to: str, content: str, chat: str = "Private", **extra) -> dict:
    return {"Type": "Send", "To": to, "Content": content, "Chat": chat, **extra}


# ---- handshake ---------------------------------------------------------------------


async def test_anonymous_socket_is_refused_at_handshake(connect, alice):
    connected, _ = await connect(None, expect_ok=False)
    assert not connected


async def test_foreign_origin_is_refused_at_handshake(connect, alice):
    connected, _ = await connect(alice, origin=b"http://evil.example", expect_ok=False)
    assert not connected


async def test_another_path_is_refused_at_handshake(alice):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application
    from tests.conftest import ORIGIN, session_cookie

    cookie = await database_sync_to_async(session_cookie)(alice)
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", ORIGIN), (b"cookie", f"sessionid={cookie}".encode())]
    for path in ("/ws/chat", "/ws/chat/x/", "/ws/other/"):
        comm = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await comm.connect(timeout=5)
        assert not connected and code == 1000, path
        await comm.wait()


async def test_banned_user_cannot_connect(connect, alice):
    alice.is_active = False
    await database_sync_to_async(alice.save)()
    connected, _ = await connect(alice, expect_ok=False)
    assert not connected


# ---- Connect and State ---------------------------------------------------------------


async def test_connect_answers_state(connect, alice, bob, carol):
    await make_group("Café ☕", alice, bob)
    a = await connect(alice)
    await a.send({"Type": "Connect", "Id": "tab1", "Username": "alice"})
    state = await a.expect("State", User="alice", LastId=0)
    users = {u["Username"]: u for u in state["Users"]}
    assert users["alice"] == {"Username": "alice", "Online": True, "Unread": 0}
    assert users["bob"]["Online"] is False
    assert state["Groups"] == [{"Name": "Café ☕", "Owner": "alice", "Members": ["alice", "bob"], "Unread": 0}]


async def test_connect_as_someone_else_is_forbidden(connect, alice, bob):
    a = await connect(alice)
    await a.send({"Type": "Connect", "Username": "bob"})
    await a.expect("Error", Code="forbidden", Ref="Connect")
    await a.send({"Type": "Connect"})
    await a.expect("State")


# ---- presence ------------------------------------------------------------------------


async def test_first_connection_makes_user_online_for_everyone(connect, alice, bob):
    b = await connect(bob)
    await connect(alice)
    await b.expect("Presence", Username="alice", Online=True)


async def test_several_tabs_count_right(connect, alice, bob):
    b = await connect(bob)
    a1 = await connect(alice)
    await b.expect("Presence", Username="alice", Online=True)
    a2 = await connect(alice)
    assert await b.sync() == [], "a second tab does not announce again"
    await a1.close()  # returns once the socket's handler has ended, its presence published
    assert await b.sync() == [], "alice still has a tab open"
    assert await database_sync_to_async(Connection.objects.filter(user=alice).count)() == 1
    await a2.close()
    await b.expect("Presence", Username="alice", Online=False)


# ---- private messages --------------------------------------------------------------


async def test_private_message_reaches_every_tab_of_both_and_no_one_else(connect, alice, bob, carol):
    a1, a2, b1, b2, c = [await connect(u) for u in (alice, alice, bob, bob, carol)]
    for sock in (a1, a2, b1, b2):
        await sock.drain()  # the presence of those who connected after it
    await a1.send(send("bob", "hi bob 👋", ClientId="c-1"))
    for sock in (a1, a2, b1, b2):
        frame = await sock.expect("Message", From="alice", To="bob", Chat="Private", Content="hi bob 👋")
        assert frame["ClientId"] == "c-1" and frame["is_image"] == 0
        assert frame["Time"].endswith("Z")
    assert await c.sync() == []
    assert await count_messages(sender=alice, recipient=bob) == 1


async def test_from_claiming_someone_else_is_forbidden_and_nothing_is_stored(connect, alice, bob):
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await a.send(send("alice", "fake", From="bob"))
    await a.expect("Error", Code="forbidden", Ref="Send")
    assert await b.sync() == []
    assert await count_messages() == 0


async def test_send_to_unknown_user_is_not_found(connect, alice):
    a = await connect(alice)
    await a.send(send("nobody", "hello?", ClientId="k1"))
    await a.expect("Error", Code="not_found", Ref="Send", ClientId="k1")
    assert await count_messages() == 0


@pytest.mark.parametrize("content, code", [("", "bad_request"), ("   ", "bad_request"), ("x" * 10_001, "too_large")])
async def test_bad_content_is_refused(connect, alice, bob, content, code):
    a = await connect(alice)
    await a.send(send("bob", content))
    await a.expect("Error", Code=code, Ref="Send")
    assert await count_messages() == 0


# ---- groups ------------------------------------------------------------------------


async def test_create_announces_the_group_and_members_receive_its_messages(connect, alice, bob, carol):
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    await a.send({"Type": "Create", "Name": "  Team 🚀  ", "From": "alice", "List": ["bob"]})
    for sock in (a, b, c):
        await sock.expect("Group", Event="Created", Name="Team 🚀", Owner="alice", Members=["alice", "bob"])
    await b.send(send("Team 🚀", "hello team", chat="Group"))
    await a.expect("Message", From="bob", To="Team 🚀", Chat="Group", Content="hello team")
    await b.expect("Message", From="bob", To="Team 🚀")
    assert await c.sync() == [], "carol is not a member"


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"Name": "Dup", "List": []}, "conflict"),
        ({"Name": "New", "List": ["bob", "ghost"]}, "not_found"),
        ({"Name": "   ", "List": []}, "bad_request"),
        ({"Name": "x" * 65, "List": []}, "bad_request"),
        ({"Name": "bell\x07", "List": []}, "bad_request"),
        ({"Name": "New", "List": "bob"}, "bad_request"),
    ],
)
async def test_create_refusals_change_nothing(connect, alice, bob, frame, code):
    await make_group("Dup", bob)
    a = await connect(alice)
    await a.send({"Type": "Create", **frame})
    await a.expect("Error", Code=code, Ref="Create")
    assert await a.sync() == [], "nothing announced"
    assert await database_sync_to_async(ChatGroup.objects.count)() == 1


async def test_non_member_cannot_send_to_group(connect, alice, bob, carol):
    await make_group("Team", alice, bob)
    a, c = await connect(alice), await connect(carol)
    await a.expect("Presence", Username="carol", Online=True)
    await c.send(send("Team", "let me in", chat="Group"))
    await c.expect("Error", Code="forbidden", Ref="Send")
    assert await a.sync() == []
    assert await count_messages() == 0


async def test_join_makes_a_member_and_sends_history(connect, alice, bob, carol):
    await make_group("Team", alice, bob)
    a, c1, c2 = await connect(alice), await connect(carol), await connect(carol)
    await a.expect("Presence", Username="carol", Online=True)
    await a.send(send("Team", "before carol", chat="Group"))
    await a.expect("Message", Content="before carol")
    await c1.send({"Type": "Join", "Chat": "Group", "To": "Team", "From": "carol"})
    # The Group event reaches everyone; the History only the joining tab.
    frames = [await c1.recv(), await c1.recv()]
    by_type = {f["Type"]: f for f in frames}
    assert by_type["Group"]["Event"] == "Joined" and by_type["Group"]["User"] == "carol"
    assert [m["Content"] for m in by_type["History"]["Messages"]] == ["before carol"]
    await a.expect("Group", Event="Joined", Members=["alice", "bob", "carol"])
    await c2.expect("Group", Event="Joined")
    await a.send(send("Team", "welcome", chat="Group"))
    await c1.expect("Message", Content="welcome")
    await c2.expect("Message", Content="welcome")


async def test_join_unknown_group_is_not_found(connect, alice):
    a = await connect(alice)
    await a.send({"Type": "Join", "Chat": "Group", "To": "Nowhere"})
    await a.expect("Error", Code="not_found", Ref="Join")


async def test_leave_stops_delivery(connect, alice, bob):
    await make_group("Team", alice, bob)
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await b.send({"Type": "Leave", "Name": "Team"})
    await a.expect("Group", Event="Left", User="bob", Members=["alice"])
    await b.expect("Group", Event="Left")
    await a.send(send("Team", "still there?", chat="Group"))
    await a.expect("Message")
    assert await b.sync() == []


async def test_owner_cannot_leave(connect, alice):
    await make_group("Team", alice)
    a = await connect(alice)
    await a.send({"Type": "Leave", "Name": "Team"})
    await a.expect("Error", Code="forbidden", Ref="Leave")


async def test_non_owner_cannot_delete(connect, alice, bob):
    await make_group("Team", alice, bob)
    b = await connect(bob)
    await b.send({"Type": "Delete", "Name": "Team", "From": "bob"})
    await b.expect("Error", Code="forbidden", Ref="Delete")
    assert await database_sync_to_async(ChatGroup.objects.filter(name="Team").exists)()


async def test_owner_deletes_group_with_its_messages(connect, alice, bob, carol):
    await make_group("Team", alice, bob)
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    await a.send(send("Team", "soon gone", chat="Group"))
    for sock, later in ((a, ["bob", "carol"]), (b, ["carol"])):
        for name in later:
            await sock.expect("Presence", Username=name, Online=True)
        await sock.expect("Message", Content="soon gone")
    await a.send({"Type": "Delete", "Name": "Team"})
    for sock in (a, b, c):
        await sock.expect("Group", Event="Deleted", Name="Team", User="alice")
    assert await count_messages() == 0
    assert not await database_sync_to_async(ChatGroup.objects.exists)()
    # A new group of the same name starts empty, and old members are not subscribed to it.
    await c.send({"Type": "Create", "Name": "Team", "List": []})
    await c.expect("Group", Event="Created", Members=["carol"])
    await a.expect("Group", Event="Created")
    await b.expect("Group", Event="Created")
    await c.send(send("Team", "mine now", chat="Group"))
    await c.expect("Message", Content="mine now")
    assert await b.sync() == [] and await a.sync() == []


async def test_a_moderator_may_delete_any_group(connect, alice, bob):
    await make_group("Team", alice)
    staff = await database_sync_to_async(
        lambda: get_user_model().objects.create_superuser("mod", "mod@example.com", "mod-pass-123")
    )()
    m = await connect(staff)
    await m.send({"Type": "Delete", "Name": "Team"})
    await m.expect("Group", Event="Deleted")


# ---- history -----------------------------------------------------------------------


async def test_history_pages_newest_first_page_oldest_first(connect, alice, bob):
    ids = await seed_private(alice, bob, 120)
    a = await connect(alice)
    await a.send({"Type": "Join", "Chat": "Private", "To": "bob"})
    page = await a.expect("History", Chat="Private", To="bob", HasMore=True)
    assert [m["Id"] for m in page["Messages"]] == ids[-50:]
    await a.send({"Type": "Join", "Chat": "Private", "To": "bob", "Before": ids[-50]})
    page = await a.expect("History", HasMore=True)
    assert [m["Id"] for m in page["Messages"]] == ids[-100:-50]
    await a.send({"Type": "Join", "Chat": "Private", "To": "bob", "Before": ids[-100]})
    page = await a.expect("History", HasMore=False)
    assert [m["Id"] for m in page["Messages"]] == ids[:20]


async def test_private_history_holds_only_that_conversation(connect, alice, bob, carol):
    await seed_private(alice, carol, 3)
    await seed_private(bob, alice, 2)
    a = await connect(alice)
    await a.send({"Type": "Join", "Chat": "Private", "To": "bob"})
    page = await a.expect("History", HasMore=False)
    assert [(m["From"], m["To"]) for m in page["Messages"]] == [("bob", "alice")] * 2


async def test_outsider_cannot_page_group_history(connect, alice, carol):
    await make_group("Team", alice)
    c = await connect(carol)
    await c.send({"Type": "Join", "Chat": "Group", "To": "Team", "Before": 10})
    await c.expect("Error", Code="forbidden", Ref="Join")


# ---- reconnect without loss -----------------------------------------------------------


async def test_connect_since_replays_every_readable_message_after_it(connect, alice, bob, carol):
    team = await make_group("Team", alice, bob)
    first = await seed_private(bob, alice, 1)
    await seed_private(bob, carol, 1)  # not alice's to read
    await database_sync_to_async(Message.objects.create)(sender=bob, group=team, text="group news")
    await database_sync_to_async(Message.objects.create)(sender=alice, recipient=bob, text="mine")
    a = await connect(alice)
    await a.send({"Type": "Connect", "Since": first[0]})
    state = await a.expect("State")
    assert state["LastId"] == await database_sync_to_async(lambda: Message.objects.get(text="mine").pk)()
    replayed = [await a.expect("Message"), await a.expect("Message")]
    assert [m["Content"] for m in replayed] == ["group news", "mine"]
    assert await a.sync() == []


async def test_client_id_makes_send_idempotent(connect, alice, bob):
    a1, a2, b = await connect(alice), await connect(alice), await connect(bob)
    for sock in (a1, a2):
        await sock.expect("Presence", Username="bob", Online=True)
    await a1.send(send("bob", "once", ClientId="abc"))
    first = await a1.expect("Message", ClientId="abc")
    await a2.expect("Message")
    await b.expect("Message")
    await a1.send(send("bob", "once", ClientId="abc"))
    again = await a1.expect("Message", ClientId="abc")
    assert again["Id"] == first["Id"]
    assert await a2.sync() == [] and await b.sync() == []
    assert await count_messages() == 1


# ---- read pointers -------------------------------------------------------------------


async def test_read_moves_pointer_echoes_to_other_tabs_and_unread_follows(connect, alice, bob):
    ids = await seed_private(bob, alice, 5)
    a1, a2 = await connect(alice), await connect(alice)
    await a1.send({"Type": "Connect"})
    state = await a1.expect("State")
    assert {u["Username"]: u["Unread"] for u in state["Users"]}["bob"] == 5
    await a1.send({"Type": "Read", "Chat": "Private", "To": "bob", "Id": ids[2]})
    await a2.expect("Read", Chat="Private", To="bob", Id=ids[2])
    assert await a1.sync() == [], "the echo goes to the other tabs"
    await a1.send({"Type": "Read", "Chat": "Private", "To": "bob", "Id": ids[0]})
    await a2.expect("Read", Id=ids[2])  # never moves back
    await a2.send({"Type": "Connect"})
    state = await a2.expect("State")
    assert {u["Username"]: u["Unread"] for u in state["Users"]}["bob"] == 2


async def test_group_unread_counts_others_messages_after_pointer(connect, alice, bob):
    team = await make_group("Team", alice, bob)
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    for text in ("one", "two"):
        await b.send(send("Team", text, chat="Group"))
    await a.send(send("Team", "mine", chat="Group"))
    for sock in (a, b):  # all three stored: each member has its Message
        assert sorted([(await sock.expect("Message"))["Content"] for _ in range(3)]) == ["mine", "one", "two"]
    await a.send({"Type": "Connect"})
    state = await a.expect("State")
    assert state["Groups"][0]["Unread"] == 2
    last = await database_sync_to_async(lambda: Message.objects.filter(group=team).last().pk)()
    await a.send({"Type": "Read", "Chat": "Group", "To": "Team", "Id": last})
    await a.send({"Type": "Connect"})
    state = await a.expect("State")
    assert state["Groups"][0]["Unread"] == 0


async def test_read_of_a_message_outside_the_conversation_is_not_found(connect, alice, bob, carol):
    ids = await seed_private(carol, bob, 1)
    a = await connect(alice)
    await a.send({"Type": "Read", "Chat": "Private", "To": "bob", "Id": ids[0]})
    await a.expect("Error", Code="not_found", Ref="Read")


# ---- malformed input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"To": "bob"}),
        json.dumps({"Type": "Shout"}),
        json.dumps({"Type": "Send", "To": "bob", "Content": 5, "Chat": "Private"}),
        json.dumps({"Type": "Send", "To": "bob", "Content": "x", "Chat": "Public"}),
        json.dumps({"Type": "Send", "To": "bob", "Content": "x", "Chat": "Private", "is_image": "yes"}),
        json.dumps({"Type": "Join", "Chat": "Private", "To": "bob", "Before": -1}),
        json.dumps({"Type": "Read", "Chat": "Private", "To": "bob"}),
        json.dumps({"Type": "Connect", "Since": "12"}),
    ],
)
async def test_malformed_frames_get_bad_request_and_the_socket_stays_open(connect, alice, bob, raw):
    a = await connect(alice)
    await a.comm.send_to(text_data=raw)
    await a.expect("Error", Code="bad_request")
    await a.send({"Type": "Connect"})
    await a.expect("State")
    assert await count_messages() == 0


async def test_flooding_is_rate_limited(connect, alice, bob, settings):
    settings.CHAT_RATE_BURST = 5
    settings.CHAT_RATE_PER_SECOND = 1
    a = await connect(alice)
    for _ in range(8):
        await a.send({"Type": "Connect"})
    frames = [await a.recv() for _ in range(8)]
    assert [f["Type"] for f in frames].count("State") == 5
    assert [f.get("Code") for f in frames].count("rate_limited") == 3


async def test_refused_frames_count_against_the_rate_limit_too(connect, alice, settings):
    settings.CHAT_RATE_BURST = 5
    settings.CHAT_RATE_PER_SECOND = 1
    a = await connect(alice)
    for _ in range(8):
        await a.comm.send_to(text_data="not json")
    codes = [(await a.recv())["Code"] for _ in range(8)]
    assert codes.count("rate_limited") == 3
