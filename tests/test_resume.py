"""Resume by `Seq` (docs/protocol.md, *Reconnecting*): one change cursor in commit order, and a
`Connect` with it that replays every change since, as current-state frames, then `Synced`."""

from __future__ import annotations

import threading

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction

from groups import actions as group_actions
from messaging import actions
from messaging.models import Image, Message, Tombstone
from messaging.seq import seq_committed, seq_take
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def resume(sock, seq: int) -> tuple[dict, list[dict], dict]:
    """`Connect` with `Seq`: (State, the replayed frames, Synced)."""
    await sock.send({"Type": "Connect", "Seq": seq})
    state = await sock.next_of("State")
    replayed = []
    while (frame := await sock.recv())["Type"] != "Synced":
        if frame["Type"] in ("Message", "Removed"):
            replayed.append(frame)
    return state, replayed, frame


def send(sender, to: str, content: str, chat: str = "Private") -> Message:
    return actions.message_send(sender=sender, chat=chat, to=to, content=content)[0]


@pytest.fixture
def moderator(iago):
    return iago


# ---- the cursor ----------------------------------------------------------------------------


def test_seq_take_needs_a_transaction_and_a_rollback_hands_its_number_back(alice):
    with pytest.raises(RuntimeError):
        seq_take()
    with transaction.atomic():
        first = seq_take()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        seq_take(5)
        raise ZeroDivisionError
    with transaction.atomic():
        assert seq_take() == first + 1, "no hole where the rollback was"
    assert seq_committed() == first + 1


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="a SQLite writer waits on the whole database")
def test_a_later_seq_commits_later_on_postgresql(alice, bob):
    """T1 takes a number and holds its transaction open; T2's number waits for T1's commit, so
    a reader that sees T2's number sees T1's change too (a sequence would not wait)."""
    took, release, seen_t1 = threading.Event(), threading.Event(), []
    first = {}

    def t1():
        with transaction.atomic():
            first["seq"] = seq_take()
            first["id"] = Message.objects.create(sender=alice, recipient=bob, text="t1", seq=first["seq"]).pk
            took.set()
            release.wait(5)
        connection.close()

    def t2():
        took.wait(5)
        with transaction.atomic():
            first["t2"] = seq_take()
            seen_t1.append(Message.objects.filter(pk=first["id"]).exists())
        connection.close()

    threads = [threading.Thread(target=t1), threading.Thread(target=t2)]
    for thread in threads:
        thread.start()
    took.wait(5)
    threads[1].join(0.3)
    assert threads[1].is_alive(), "T2 waits for T1's number to commit"
    release.set()
    for thread in threads:
        thread.join(5)
    assert first["t2"] == first["seq"] + 1 and seen_t1 == [True]


async def test_every_change_frame_carries_a_seq_that_grows_in_commit_order(connect, alice, bob, moderator):
    a = await connect(alice)
    b = await connect(bob)
    await a.send({"Type": "Create", "Name": "Team", "List": ["bob"]})
    created = await a.next_of("Group", Event="Created")
    await a.send({"Type": "Send", "Chat": "Group", "To": "Team", "Content": "one"})
    one = await a.next_of("Message", Content="one")
    await b.send({"Type": "Send", "Chat": "Private", "To": "alice", "Content": "two"})
    two = await a.next_of("Message", Content="two")
    await a.send({"Type": "Read", "Chat": "Private", "To": "bob", "Id": two["Id"]})
    other_tab = await connect(alice)
    await other_tab.send({"Type": "Read", "Chat": "Group", "To": "Team", "Id": one["Id"]})
    read = await a.next_of("Read", To="Team")
    await database_sync_to_async(actions.messages_remove)(actor=moderator, message_ids=[one["Id"]])
    removed = await a.next_of("Removed")
    assert removed["Ids"] == [one["Id"]] and removed["By"] == "iago"
    seqs = [created["Seq"], one["Seq"], two["Seq"], read["Seq"], removed["Seq"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


# ---- Connect with Seq ----------------------------------------------------------------------


async def test_a_resume_replays_new_and_removed_messages_oldest_first_then_synced(connect, alice, bob, moderator):
    before = await database_sync_to_async(send)(bob, "alice", "held before")
    a = await connect(alice)
    await a.send({"Type": "Connect"})
    cursor = (await a.next_of("State"))["Seq"]
    await a.close()
    new = await database_sync_to_async(send)(bob, "alice", "new while away")
    gone = await database_sync_to_async(send)(bob, "alice", "sent and removed while away")
    await database_sync_to_async(actions.messages_remove)(actor=moderator, message_ids=[before.pk, gone.pk])
    last = await database_sync_to_async(send)(alice, "bob", "from another tab")

    state, replayed, synced = await resume(await connect(alice), cursor)
    assert [(f["Type"], f.get("Id"), f.get("Ids")) for f in replayed] == [
        ("Message", new.pk, None),
        ("Removed", None, [before.pk, gone.pk]),
        ("Message", last.pk, None),
    ]
    assert [f["Seq"] for f in replayed] == sorted(f["Seq"] for f in replayed)
    assert synced["Seq"] == state["Seq"] >= last.seq and "Reset" not in state


async def test_a_resume_replays_only_what_the_user_may_see_now(connect, alice, bob, carol, moderator):
    await database_sync_to_async(group_actions.group_create)(owner=bob, name="Team", member_usernames=["alice"])
    await database_sync_to_async(group_actions.group_create)(owner=bob, name="Others", member_usernames=["carol"])
    a = await connect(alice)
    await a.send({"Type": "Connect"})
    cursor = (await a.next_of("State"))["Seq"]
    await a.close()
    theirs = await database_sync_to_async(send)(bob, "carol", "not for alice")
    await database_sync_to_async(send)(bob, "Others", "a group alice is not in", chat="Group")
    in_team = await database_sync_to_async(send)(bob, "Team", "in Team", chat="Group")
    await database_sync_to_async(group_actions.group_leave)(user=alice, group="Team")
    await database_sync_to_async(send)(bob, "Team", "after alice left", chat="Group")
    await database_sync_to_async(actions.messages_remove)(actor=moderator, message_ids=[theirs.pk, in_team.pk])
    mine = await database_sync_to_async(send)(carol, "alice", "for alice")

    _, replayed, _ = await resume(await connect(alice), cursor)
    assert [(f["Type"], f.get("Id"), f.get("Ids")) for f in replayed] == [("Message", mine.pk, None)]


async def test_too_far_behind_state_says_reset_and_nothing_is_replayed(connect, alice, bob, settings):
    settings.CHAT_REPLAY_MAX = 3
    for i in range(4):
        await database_sync_to_async(send)(bob, "alice", f"m{i}")
    state, replayed, synced = await resume(await connect(alice), 0)
    assert state["Reset"] is True and replayed == [] and synced["Seq"] == state["Seq"]
    state, replayed, _ = await resume(await connect(alice), 1)  # three changes after 1: not too many
    assert "Reset" not in state and [f["Content"] for f in replayed] == ["m1", "m2", "m3"]


async def test_a_resume_at_the_present_replays_nothing(connect, alice, bob):
    await database_sync_to_async(send)(bob, "alice", "old")
    a = await connect(alice)
    await a.send({"Type": "Connect"})
    now = (await a.next_of("State"))["Seq"]
    _, replayed, synced = await resume(a, now)
    assert replayed == [] and synced["Seq"] == now


@pytest.mark.parametrize(
    "frame",
    [
        {"Seq": -1},
        {"Seq": True},
        {"Seq": "5"},
        {"Seq": 1.5},
        {"Seq": 2**63},
        {"Seq": [1]},
        {"Seq": 3, "Since": 3},
    ],
)
async def test_a_bad_seq_is_refused_and_changes_nothing(connect, alice, frame):
    a = await connect(alice)
    await a.send({"Type": "Connect", **frame})
    error = await a.next_of("Error")
    assert error["Code"] == "bad_request" and error["Ref"] == "Connect"
    await a.send({"Type": "Connect", "Seq": 0})
    await a.next_of("State")  # the socket stays and works


async def test_since_keeps_its_meaning_and_skips_removed_messages(connect, alice, bob, moderator):
    first = await database_sync_to_async(send)(bob, "alice", "first")
    second = await database_sync_to_async(send)(bob, "alice", "second")
    await database_sync_to_async(actions.messages_remove)(actor=moderator, message_ids=[first.pk])
    a = await connect(alice)
    await a.send({"Type": "Connect", "Since": 0})
    state = await a.next_of("State")
    assert (await a.recv())["Id"] == second.pk and "Seq" in state
    await a.send({"Type": "Connect"})
    await a.next_of("State")  # nothing came between: the replay was one message


# ---- tombstones ----------------------------------------------------------------------------


def test_a_removed_message_keeps_a_tombstone_and_nothing_of_its_text_or_image(alice, bob, moderator):
    from tests.test_images import data_url, picture

    text = send(bob, "alice", "something regrettable")
    png = data_url(picture("PNG"))
    image = actions.message_send(sender=bob, chat="Private", to="alice", content=png, is_image=True)[0]
    actions.messages_remove(actor=moderator, message_ids=[text.pk, image.pk])
    assert not Message.objects.filter(pk__in=[text.pk, image.pk]).exists()
    assert not Image.objects.filter(pk=image.pk).exists()
    stones = Tombstone.objects.filter(pk__in=[text.pk, image.pk])
    assert {(s.sender_id, s.recipient_id, s.removed_by) for s in stones} == {(bob.pk, alice.pk, "iago")}
    assert len({s.seq for s in stones}) == 1, "one removal, one Seq"
    assert "regrettable" not in repr(list(stones.values()))


def test_deleting_an_account_leaves_tombstones_for_its_group_messages(alice, bob, iago):
    from accounts.actions import user_delete

    group_actions.group_create(owner=alice, name="Team", member_usernames=["bob"])
    said = send(bob, "Team", "bob was here", chat="Group")
    user_delete(actor=iago, user=bob)
    stone = Tombstone.objects.get(pk=said.pk)
    assert stone.group.name == "Team" and stone.seq > said.seq


def test_messages_made_without_an_action_still_get_a_seq(alice, bob):
    one = Message.objects.create(sender=alice, recipient=bob, text="admin or shell")
    many = Message.objects.bulk_create([Message(sender=alice, recipient=bob, text=f"b{i}") for i in range(3)])
    seqs = [one.seq, *(m.seq for m in many)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and seq_committed() == seqs[-1]


def test_group_membership_remembers_the_seq_of_the_join(alice, bob):
    from groups.models import Membership

    group = group_actions.group_create(owner=alice, name="Team", member_usernames=[])
    before = seq_committed()
    group_actions.group_join(user=make_user("dave"), group=group)
    assert Membership.objects.get(chatgroup=group, user__username="dave").seq == before + 1


async def test_a_retry_of_a_removed_message_is_refused_not_stored_again(connect, alice, bob, moderator):
    """The sender never got its echo (a dropped socket) and resends with the same ClientId
    after a moderator removed it: the row is gone, so only the tombstone can say no."""
    first = await database_sync_to_async(actions.message_send)(
        sender=alice, chat="Private", to="bob", content="regrettable", client_id="k-1"
    )
    await database_sync_to_async(actions.messages_remove)(actor=moderator, message_ids=[first[0].pk])
    a = await connect(alice)
    for is_image in (0, 1):
        content = "regrettable" if not is_image else "data:image/png;base64,AAAA"
        await a.send(
            {
                "Type": "Send",
                "Chat": "Private",
                "To": "bob",
                "Content": content,
                "ClientId": "k-1",
                "is_image": is_image,
            }
        )
        error = await a.next_of("Error")
        assert error["Code"] == "conflict" and error["ClientId"] == "k-1" and "removed" in error["Detail"]
    assert not await database_sync_to_async(Message.objects.filter(client_id="k-1").exists)()
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": "another", "ClientId": "k-2"})
    await a.next_of("Message", Content="another")
