"""Messages people fix, take back, answer and react to (docs/protocol.md, *Client to server*):
`Edit`, `Remove`, `Send` with `ReplyTo`, `React`, and the rendered `Html` every text carries.

alice owns the group "Class", bob is in it, carol is not; iago moderates. Each command: it works,
the personas who must be refused are (with the right code), the right sockets get the change and
nobody else does, and a client that was offline gets it on resume.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.actions import user_mute
from accounts.models import AuditEntry
from chatsite.errors import ChatError
from groups import actions as group_actions
from messaging import actions
from messaging.models import Image, Message, MessageEdit, Reaction, Tombstone
from messaging.seq import seq_committed
from tests.conftest import make_user
from tests.test_images import data_url, picture

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


@pytest.fixture
def group(alice, bob):
    return group_actions.group_create(owner=alice, name="Class", member_usernames=["bob"])


def post(sender, to: str, content: str, chat: str = "Group", **extra) -> Message:
    return actions.message_send(sender=sender, chat=chat, to=to, content=content, **extra)[0]


async def sockets(connect, *users):
    """A socket each, every one past the presence of those connected after it."""
    opened = [await connect(user) for user in users]
    for sock in opened:
        await sock.drain()
    return opened


async def refused(sock, frame: dict, code: str) -> dict:
    await sock.send(frame)
    error = await sock.next_of("Error")
    assert (error["Code"], error["Ref"]) == (code, frame["Type"]), error
    return error


async def resume(sock, seq: int) -> list[dict]:
    """The `Message` and `Removed` frames a `Connect` with `Seq` replays."""
    await sock.send({"Type": "Connect", "Seq": seq})
    await sock.next_of("State")
    replayed = []
    while (frame := await sock.recv())["Type"] != "Synced":
        if frame["Type"] in ("Message", "Removed"):
            replayed.append(frame)
    return replayed


# ---- Edit --------------------------------------------------------------------------------


async def test_the_sender_edits_and_every_member_gets_the_new_state(layer, connect, group, alice, bob, carol):
    message = await db(post)(alice, "Class", "Homework: page 12")
    a, b, c = await sockets(connect, alice, bob, carol)
    await a.send({"Type": "Edit", "Id": message.pk, "Content": "Homework: page **21**"})
    for sock in (a, b):
        frame = await sock.expect("Message", Id=message.pk, Change="edit", Content="Homework: page **21**")
        assert frame["Seq"] > message.seq and frame["Edited"].endswith("Z")
        assert "<strong>21</strong>" in frame["Html"]
    assert await c.sync() == []
    [earlier] = await db(list)(MessageEdit.objects.all())
    assert (earlier.message_id, earlier.text, earlier.written) == (message.pk, "Homework: page 12", message.created)


async def test_a_private_edit_reaches_both_people_only(connect, alice, bob, carol):
    message = await db(post)(alice, "bob", "see you at 5", chat="Private")
    a, b, c = await sockets(connect, alice, bob, carol)
    await a.send({"Type": "Edit", "Id": message.pk, "Content": "see you at 6"})
    for sock in (a, b):
        await sock.expect("Message", Id=message.pk, Change="edit", Content="see you at 6")
    assert await c.sync() == []


async def test_the_same_text_again_changes_nothing_and_answers_only_the_editor(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "unchanged")
    a, b = await sockets(connect, alice, bob)
    await a.send({"Type": "Edit", "Id": message.pk, "Content": "unchanged"})
    frame = await a.expect("Message", Id=message.pk, Seq=message.seq)
    assert "Change" not in frame and "Edited" not in frame
    assert await b.sync() == []
    assert not await db(MessageEdit.objects.exists)()


@pytest.mark.parametrize(
    ("who", "content", "code"),
    [
        ("bob", "not mine", "forbidden"),  # a member, not the sender
        ("carol", "not mine", "not_found"),  # an outsider learns nothing
        ("alice", "   ", "bad_request"),
        ("alice", "x" * 10_001, "too_large"),
    ],
)
async def test_edit_is_refused_to_others_and_for_bad_text(connect, group, alice, bob, carol, who, content, code):
    message = await db(post)(alice, "Class", "original")
    users = {"alice": alice, "bob": bob, "carol": carol}
    [sock] = await sockets(connect, users[who])
    await refused(sock, {"Type": "Edit", "Id": message.pk, "Content": content}, code)
    assert (await db(Message.objects.get)(pk=message.pk)).text == "original"


async def test_edit_is_refused_for_images_missing_messages_and_bad_frames(connect, group, alice):
    image = await db(post)(alice, "Class", data_url(picture("PNG")), is_image=True)
    [a] = await sockets(connect, alice)
    await refused(a, {"Type": "Edit", "Id": image.pk, "Content": "a caption"}, "forbidden")
    await refused(a, {"Type": "Edit", "Id": image.pk + 100, "Content": "x"}, "not_found")
    for bad in (
        {"Id": "1", "Content": "x"},
        {"Id": -1, "Content": "x"},
        {"Id": True, "Content": "x"},
        {"Id": image.pk},
        {"Id": image.pk, "Content": 5},
        {"Id": image.pk, "Content": "a\x00b"},
    ):
        await refused(a, {"Type": "Edit", **bad}, "bad_request")


async def test_edit_window_over_is_forbidden(connect, group, alice, settings):
    settings.CHAT_EDIT_WINDOW = 60
    message = await db(post)(alice, "Class", "old")
    await db(Message.objects.filter(pk=message.pk).update)(created=timezone.now() - timedelta(seconds=61))
    fresh = await db(post)(alice, "Class", "new")
    [a] = await sockets(connect, alice)
    error = await refused(a, {"Type": "Edit", "Id": message.pk, "Content": "changed"}, "forbidden")
    assert "60 seconds" in error["Detail"]
    await a.send({"Type": "Edit", "Id": fresh.pk, "Content": "changed"})
    await a.expect("Message", Id=fresh.pk, Change="edit")


async def test_a_muted_sender_or_one_who_left_cannot_edit(connect, group, iago, alice, bob):
    message = await db(post)(bob, "Class", "mine")
    [b] = await sockets(connect, bob)
    await db(user_mute)(actor=iago, user=bob, duration=timedelta(hours=1), reason="cool down")
    error = await refused(b, {"Type": "Edit", "Id": message.pk, "Content": "edited"}, "forbidden")
    assert "cool down" in error["Detail"]
    assert (await db(Message.objects.get)(pk=message.pk)).text == "mine"
    await db(group_actions.group_leave)(user=bob, group="Class")
    await refused(b, {"Type": "Edit", "Id": message.pk, "Content": "edited"}, "not_found")


async def test_an_edit_made_while_away_comes_back_on_resume(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "before")
    seq = await db(seq_committed)()
    await db(actions.message_edit)(user=alice, message_id=message.pk, content="after")
    [b] = await sockets(connect, bob)
    [frame] = await resume(b, seq)
    assert (frame["Id"], frame["Content"], "Edited" in frame) == (message.pk, "after", True)


# ---- Remove ------------------------------------------------------------------------------


async def test_the_sender_removes_their_message_for_everyone_at_once(layer, connect, group, alice, bob, carol):
    message = await db(post)(bob, "Class", "oops, wrong group")
    a, b, c = await sockets(connect, alice, bob, carol)
    await b.send({"Type": "Remove", "Id": message.pk})
    for sock in (a, b):
        frame = await sock.expect("Removed", Ids=[message.pk], By="bob")
        assert frame["Seq"] > message.seq
    assert await c.sync() == []
    assert not await db(Message.objects.filter(pk=message.pk).exists)()
    assert await db(Tombstone.objects.filter(message_id=message.pk, removed_by="bob").exists)()
    assert not await db(AuditEntry.objects.exists)(), "removing one's own is not moderation"


async def test_a_removed_image_loses_its_bytes_at_once(connect, alice, bob):
    image = await db(post)(alice, "bob", data_url(picture("PNG")), chat="Private", is_image=True)
    a, b = await sockets(connect, alice, bob)
    await a.send({"Type": "Remove", "Id": image.pk})
    await b.expect("Removed", Ids=[image.pk])
    assert not await db(Image.objects.filter(pk=image.pk).exists)()


async def test_the_group_owner_removes_a_members_message_and_it_is_audited(connect, group, alice, bob):
    message = await db(post)(bob, "Class", "spam")
    a, b = await sockets(connect, alice, bob)
    await a.send({"Type": "Remove", "Id": message.pk})
    await b.expect("Removed", Ids=[message.pk], By="alice")
    entry = await db(AuditEntry.objects.select_related("actor").get)(action="remove message")
    assert entry.actor.username == "alice" and "spam" in entry.target


async def test_a_moderator_removes_any_message_even_a_private_one(connect, iago, alice, bob):
    message = await db(post)(alice, "bob", "private words", chat="Private")
    a, b, i = await sockets(connect, alice, bob, iago)
    await i.send({"Type": "Remove", "Id": message.pk})
    for sock in (a, b):
        await sock.expect("Removed", Ids=[message.pk], By="iago")
    assert await i.sync() == [], "the moderator could not read it: no frame for them"


async def test_remove_is_refused_to_members_and_outsiders(connect, group, alice, bob, carol):
    owners = await db(post)(alice, "Class", "the owner's")
    private = await db(post)(alice, "bob", "between us", chat="Private")
    b, c = await sockets(connect, bob, carol)
    await refused(b, {"Type": "Remove", "Id": owners.pk}, "forbidden")
    await refused(b, {"Type": "Remove", "Id": private.pk}, "forbidden")  # bob may read it, not remove it
    await refused(c, {"Type": "Remove", "Id": owners.pk}, "not_found")
    await refused(c, {"Type": "Remove", "Id": private.pk}, "not_found")
    await refused(c, {"Type": "Remove", "Id": private.pk + 100}, "not_found")
    await refused(c, {"Type": "Remove", "Id": "1"}, "bad_request")
    assert await db(Message.objects.count)() == 2


async def test_staff_without_the_moderation_permission_remove_only_their_own(connect, alice, bob):
    from django.contrib.auth.models import Permission

    def staff():
        user = make_user("stan", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_message", "delete_message"]))
        return user

    stan = await db(staff)()
    to_stan = await db(post)(alice, "stan", "hello stan", chat="Private")
    elsewhere = await db(post)(alice, "bob", "not for stan", chat="Private")
    [s] = await sockets(connect, stan)
    await refused(s, {"Type": "Remove", "Id": to_stan.pk}, "forbidden")
    await refused(s, {"Type": "Remove", "Id": elsewhere.pk}, "not_found")
    assert await db(Message.objects.count)() == 2


def test_a_deactivated_account_removes_nothing_not_even_its_own(group, alice, bob):
    """The consumer re-reads the session before each command; the action checks on its own too
    (any caller: the admin, a command, a socket in the moment before its close)."""
    own, members = post(alice, "Class", "mine"), post(bob, "Class", "bob's")
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)  # behind the server's back
    for message in (own, members):
        with pytest.raises(ChatError) as refused_with:
            actions.message_remove(actor=alice, message_id=message.pk)
        assert refused_with.value.code == "forbidden"
    assert Message.objects.filter(pk__in=[own.pk, members.pk]).count() == 2


async def test_a_muted_owner_takes_back_their_own_but_removes_no_one_elses(connect, group, iago, alice, bob):
    own = await db(post)(alice, "Class", "mine")
    members = await db(post)(bob, "Class", "bob's")
    a, b = await sockets(connect, alice, bob)
    await db(user_mute)(actor=iago, user=alice, duration=timedelta(hours=1))
    await refused(a, {"Type": "Remove", "Id": members.pk}, "forbidden")
    await a.send({"Type": "Remove", "Id": own.pk})
    await b.expect("Removed", Ids=[own.pk], By="alice")


async def test_a_removal_made_while_away_comes_back_on_resume(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "soon gone")
    seq = await db(seq_committed)()
    await db(actions.message_remove)(actor=alice, message_id=message.pk)
    [b] = await sockets(connect, bob)
    assert await resume(b, seq) == [
        {"Type": "Removed", "Ids": [message.pk], "Seq": seq + 1, "By": "alice"},
    ]


# ---- Reply -------------------------------------------------------------------------------


async def test_a_reply_quotes_the_start_of_its_original(connect, group, alice, bob, carol):
    original = await db(post)(alice, "Class", "When is the exam? " + "x" * 300)
    a, b, c = await sockets(connect, alice, bob, carol)
    await b.send({"Type": "Send", "Chat": "Group", "To": "Class", "Content": "Friday", "ReplyTo": original.pk})
    for sock in (a, b):
        frame = await sock.expect("Message", Content="Friday")
        assert frame["ReplyTo"] == {
            "Id": original.pk,
            "From": "alice",
            "Content": ("When is the exam? " + "x" * 300)[:200],
            "is_image": 0,
        }
    assert await c.sync() == []


async def test_a_reply_to_an_image_quotes_its_picture(connect, alice, bob):
    image = await db(post)(alice, "bob", data_url(picture("PNG")), chat="Private", is_image=True)
    [b] = await sockets(connect, bob)
    await b.send({"Type": "Send", "Chat": "Private", "To": "alice", "Content": "nice", "ReplyTo": image.pk})
    frame = await b.expect("Message", Content="nice")
    assert frame["ReplyTo"] == {"Id": image.pk, "From": "alice", "Content": f"/images/{image.pk}/", "is_image": 1}


async def test_a_reply_must_answer_a_message_of_the_same_conversation(connect, group, alice, bob, carol):
    elsewhere = await db(post)(carol, "bob", "private to bob", chat="Private")
    in_group = await db(post)(alice, "Class", "in the group")
    [b] = await sockets(connect, bob)
    for reply_to in (elsewhere.pk, in_group.pk + 100):
        frame = {"Type": "Send", "Chat": "Group", "To": "Class", "Content": "re", "ReplyTo": reply_to}
        await refused(b, {**frame, "ClientId": f"c{reply_to}"}, "not_found")
    await refused(
        b, {"Type": "Send", "Chat": "Private", "To": "alice", "Content": "re", "ReplyTo": in_group.pk}, "not_found"
    )
    await refused(b, {"Type": "Send", "Chat": "Group", "To": "Class", "Content": "re", "ReplyTo": "x"}, "bad_request")
    assert await db(Message.objects.count)() == 2


async def test_a_reply_shows_its_originals_current_text_then_that_it_was_removed(connect, group, alice, bob):
    original = await db(post)(alice, "Class", "first version")
    reply = await db(post)(bob, "Class", "an answer", reply_to=original.pk)
    await db(actions.message_edit)(user=alice, message_id=original.pk, content="second version")
    [b] = await sockets(connect, bob)

    async def history_reply() -> dict:
        await b.send({"Type": "Join", "Chat": "Group", "To": "Class"})
        history = await b.next_of("History")
        return next(m for m in history["Messages"] if m["Id"] == reply.pk)["ReplyTo"]

    assert (await history_reply())["Content"] == "second version"
    await db(actions.message_remove)(actor=alice, message_id=original.pk)
    assert await history_reply() == {"Id": original.pk, "Removed": True}


# ---- React -------------------------------------------------------------------------------


async def test_reactions_add_up_and_each_user_takes_back_only_their_own(layer, connect, group, alice, bob, carol):
    message = await db(post)(alice, "Class", "Exam moved to Friday")
    a, b, c = await sockets(connect, alice, bob, carol)

    async def react(sock, emoji: str, on: bool, reactions: list[dict]) -> None:
        await sock.send({"Type": "React", "Id": message.pk, "Emoji": emoji, "On": on})
        for each in (a, b):
            frame = await each.expect("Message", Id=message.pk, Change="reaction")
            assert frame.get("Reactions", []) == reactions

    await react(b, "👍", True, [{"Emoji": "👍", "Users": ["bob"]}])
    await react(a, "👍", True, [{"Emoji": "👍", "Users": ["bob", "alice"]}])
    await react(a, "❤", True, [{"Emoji": "👍", "Users": ["bob", "alice"]}, {"Emoji": "❤️", "Users": ["alice"]}])
    await react(b, "👍", False, [{"Emoji": "👍", "Users": ["alice"]}, {"Emoji": "❤️", "Users": ["alice"]}])
    await b.send({"Type": "React", "Id": message.pk, "Emoji": "👍", "On": False})  # a repeat: nothing
    await b.send({"Type": "React", "Id": message.pk, "Emoji": "❤️", "On": False})  # not bob's: nothing
    assert await b.sync() == [] and await a.sync() == [] and await c.sync() == []


async def test_react_is_refused_to_outsiders_the_muted_and_for_bad_emoji(connect, group, iago, alice, bob, carol):
    message = await db(post)(alice, "Class", "react to me")
    b, c = await sockets(connect, bob, carol)
    await refused(c, {"Type": "React", "Id": message.pk, "Emoji": "👍", "On": True}, "not_found")
    for emoji in ("a", "👍👍", "", ":)", "👍 ", "\u200d", 5, None, "🏳️‍🌈" * 5):
        await refused(b, {"Type": "React", "Id": message.pk, "Emoji": emoji, "On": True}, "bad_request")
    for on in (None, 1, "true"):
        await refused(b, {"Type": "React", "Id": message.pk, "Emoji": "👍", "On": on}, "bad_request")
    await db(user_mute)(actor=iago, user=bob, duration=timedelta(hours=1))
    await refused(b, {"Type": "React", "Id": message.pk, "Emoji": "👍", "On": True}, "forbidden")
    assert not await db(Reaction.objects.exists)()


async def test_emoji_sequences_are_reactions_and_a_message_takes_at_most_20_kinds(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "so many feelings")
    [b] = await sockets(connect, bob)
    for emoji in ("👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣", "🏳️‍🌈"):
        await b.send({"Type": "React", "Id": message.pk, "Emoji": emoji, "On": True})
        frame = await b.next_of("Message", Change="reaction")
        assert frame["Reactions"][-1]["Emoji"] == emoji
    kinds = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰"]
    await db(Reaction.objects.bulk_create)([Reaction(message=message, user=alice, emoji=e) for e in kinds])
    await refused(b, {"Type": "React", "Id": message.pk, "Emoji": "🙃", "On": True}, "too_large")
    await b.send({"Type": "React", "Id": message.pk, "Emoji": "😀", "On": True})  # a kind already there
    frame = await b.next_of("Message", Change="reaction")
    assert len(frame["Reactions"]) == 20


@pytest.mark.parametrize(("typed", "stored"), [("❤", "❤️"), ("🏳‍🌈", "🏳️‍🌈"), ("👁‍🗨", "👁️‍🗨️"), ("#⃣", "#️⃣"), ("☺", "☺️")])
async def test_spellings_of_one_emoji_are_one_reaction(connect, group, alice, bob, typed, stored):
    message = await db(post)(alice, "Class", "one or two?")
    await db(actions.reaction_set)(user=alice, message_id=message.pk, emoji=stored, on=True)
    [b] = await sockets(connect, bob)
    await b.send({"Type": "React", "Id": message.pk, "Emoji": typed, "On": True})
    frame = await b.next_of("Message", Change="reaction")
    assert frame["Reactions"] == [{"Emoji": stored, "Users": ["alice", "bob"]}]


async def test_a_lone_skin_tone_is_no_reaction(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "tone")
    [b] = await sockets(connect, bob)
    await refused(b, {"Type": "React", "Id": message.pk, "Emoji": "🏻", "On": True}, "bad_request")


async def test_a_deleted_accounts_reactions_go_for_everyone_and_on_resume(connect, group, iago, alice, bob, carol):
    from accounts.actions import user_delete

    message = await db(post)(alice, "Class", "who liked it?")
    await db(group_actions.group_join)(user=carol, group="Class")
    for user in (bob, carol):
        await db(actions.reaction_set)(user=user, message_id=message.pk, emoji="👍", on=True)
    seq = await db(seq_committed)()
    [a] = await sockets(connect, alice)
    await db(user_delete)(actor=iago, user=carol)
    frame = await a.next_of("Message", Id=message.pk, Change="reaction")
    assert frame["Reactions"] == [{"Emoji": "👍", "Users": ["bob"]}]
    [b] = await sockets(connect, bob)
    [replayed] = [f for f in await resume(b, seq) if f["Type"] == "Message"]
    assert replayed["Reactions"] == [{"Emoji": "👍", "Users": ["bob"]}]


async def test_reactions_given_while_away_come_back_on_resume_and_in_history(connect, group, alice, bob):
    message = await db(post)(alice, "Class", "vote here")
    seq = await db(seq_committed)()
    await db(actions.reaction_set)(user=alice, message_id=message.pk, emoji="🎉", on=True)
    [b] = await sockets(connect, bob)
    [frame] = await resume(b, seq)
    assert frame["Reactions"] == [{"Emoji": "🎉", "Users": ["alice"]}]
    await b.send({"Type": "Join", "Chat": "Group", "To": "Class"})
    [shown] = (await b.next_of("History"))["Messages"]
    assert shown["Reactions"] == [{"Emoji": "🎉", "Users": ["alice"]}]


# ---- Html --------------------------------------------------------------------------------


async def test_every_text_carries_its_html_rendered_once_and_safe(connect, alice, bob):
    a, b = await sockets(connect, alice, bob)
    content = "<script>window.pwned=1</script> see https://example.com and `code`"
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": content})
    frame = await b.expect("Message", Content=content)
    assert "<script" not in frame["Html"] and "&lt;script&gt;" in frame["Html"]
    assert '<a href="https://example.com"' in frame["Html"] and "<code>code</code>" in frame["Html"]
    stored = await db(Message.objects.get)(pk=frame["Id"])
    assert stored.html == frame["Html"]


def test_messages_stored_without_an_action_are_rendered_too(alice, bob):
    message = Message.objects.create(sender=alice, recipient=bob, text="**made in a shell**")
    assert "<strong>made in a shell</strong>" in message.html
    [imported] = Message.objects.bulk_create([Message(sender=alice, recipient=bob, text="_imported_")])
    assert "<em>imported</em>" in imported.html


# ---- the admin ---------------------------------------------------------------------------


def test_moderators_see_earlier_versions_in_the_admin_and_view_only_staff_do_not(iago, alice, bob):
    from django.contrib.auth.models import Group, Permission
    from django.test import Client

    original = post(alice, "bob", "first words", chat="Private")
    reply = post(bob, "alice", "an answer", chat="Private", reply_to=original.pk)
    actions.message_edit(user=alice, message_id=original.pk, content="better words")
    actions.reaction_set(user=bob, message_id=original.pk, emoji="👀", on=True)
    viewer = make_user("stan", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_message"))
    moderator = make_user("mona", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))
    pages = {}
    for user in (iago, moderator, viewer):
        client = Client()
        client.force_login(user)
        pages[user.username] = client.get(f"/admin/messaging/message/{original.pk}/change/").content.decode()
    for name in ("iago", "mona"):
        assert "first words" in pages[name] and "better words" in pages[name] and "👀" in pages[name], name
    assert "better words" in pages["stan"] and "first words" not in pages["stan"]
    actions.message_remove(actor=alice, message_id=original.pk)
    client = Client()
    client.force_login(iago)
    page = client.get(f"/admin/messaging/message/{reply.pk}/change/").content.decode()
    assert f"message {original.pk} (removed)" in page
