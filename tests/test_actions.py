"""Domain actions called directly, as the views and the admin call them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Mute
from chatsite.errors import ChatError
from groups import actions as group_actions
from groups.models import ChatGroup
from messaging import actions, events
from messaging.models import Message, ReadMarker

pytestmark = pytest.mark.django_db(transaction=True)


def test_message_send_publishes_one_serialized_frame_to_both_users(alice, bob):
    (message, created), sent = events.collecting(
        actions.message_send, sender=alice, chat="Private", to="bob", content="hi"
    )
    assert created
    assert [target for target, _ in sent] == [events.user_group(alice.pk), events.user_group(bob.pk)]
    first, second = (event for _, event in sent)
    assert first["text"] is second["text"], "one event, serialized once"
    assert json.loads(first["text"])["Id"] == message.pk


def test_nothing_is_published_when_the_transaction_rolls_back(alice, bob):
    def send_then_fail():
        with transaction.atomic():
            actions.message_send(sender=alice, chat="Private", to="bob", content="lost")
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        events.collecting(send_then_fail)
    assert not Message.objects.exists()
    _, sent = events.collecting(lambda: None)
    assert sent == []


def test_events_wait_for_the_outer_commit(alice, bob):
    with transaction.atomic():
        _, sent = events.collecting(actions.message_send, sender=alice, chat="Private", to="bob", content="x")
        assert sent == [], "published only once the outer transaction commits"


def test_group_create_checks_every_member_exists(alice):
    with pytest.raises(ChatError) as error:
        group_actions.group_create(owner=alice, name="Team", member_usernames=["ghost"])
    assert error.value.code == "not_found"
    assert not ChatGroup.objects.exists()


def test_group_join_does_not_count_old_messages_as_unread(alice, bob):
    group = group_actions.group_create(owner=alice, name="Team", member_usernames=[])
    last, _ = actions.message_send(sender=alice, chat="Group", to="Team", content="old news")
    assert group_actions.group_join(user=bob, group=group) is True
    assert group_actions.group_join(user=bob, group=group) is False
    assert ReadMarker.objects.get(user=bob, group=group).last_read_id == last.pk


def test_group_delete_by_a_moderator_and_refusal_for_members(alice, bob):
    group = group_actions.group_create(owner=alice, name="Team", member_usernames=["bob"])
    with pytest.raises(ChatError) as error:
        group_actions.group_delete(user=bob, group=group)
    assert error.value.code == "forbidden"
    bob.is_staff = True
    bob.save()
    with pytest.raises(ChatError):
        group_actions.group_delete(user=bob, group=group)  # staff, but not a moderator
    from django.contrib.auth.models import Group

    bob.groups.add(Group.objects.get(name="Moderators"))
    bob = type(bob).objects.get(pk=bob.pk)  # a fresh permission cache
    group_actions.group_delete(user=bob, group=group, reason="spam")
    assert not ChatGroup.objects.exists()


def test_connection_open_and_close_announce_presence_once_per_user(alice):
    _, sent = events.collecting(actions.connection_open, user=alice, channel_name="one", session_key="k1")
    assert len(sent) == 1 and json.loads(sent[0][1]["text"])["Online"] is True
    _, sent = events.collecting(actions.connection_open, user=alice, channel_name="two", session_key="k2")
    assert sent == []
    _, sent = events.collecting(actions.connection_close, user=alice, channel_name="one")
    assert sent == []
    _, sent = events.collecting(actions.connection_close, user=alice, channel_name="two")
    assert json.loads(sent[0][1]["text"]) == {"Type": "Presence", "Username": "alice", "Online": False}


def test_presence_reset_forgets_stale_connections(alice):
    actions.connection_open(user=alice, channel_name="crashed", session_key="k3")
    assert actions.presence_reset() == 1


# ---- who a Send may go to: one hand-written query, refusals explained by the ORM selectors ----


@pytest.fixture
def room(alice, bob):
    group = ChatGroup.objects.create(name="Room ⚡", owner=alice)
    group.members.add(alice)
    return group


def _send(sender, chat, to):
    return actions.message_send(sender=sender, chat=chat, to=to, content="hi")[0]


def test_a_member_sends_to_the_group_and_the_stored_message_is_whole(alice, room):
    message = _send(alice, "Group", "Room ⚡")
    stored = Message.objects.select_related("group", "sender").get(pk=message.pk)
    assert (stored.group, stored.sender, stored.recipient_id) == (room, alice, None)


def test_a_private_message_reaches_an_active_user_only(alice, bob, carol):
    assert Message.objects.get(pk=_send(alice, "Private", "bob").pk).recipient == bob
    carol.is_active = False
    carol.save()
    for name in ("carol", "nobody"):
        with pytest.raises(ChatError) as refused:
            _send(alice, "Private", name)
        assert (refused.value.code, refused.value.detail) == ("not_found", f"No user named '{name}'.")


@pytest.mark.parametrize(
    ("to", "code"), [("Room ⚡", "forbidden"), ("room ⚡", "not_found"), ("Room ⚡'; --", "not_found")]
)
def test_a_group_send_is_refused_to_non_members_and_unknown_groups(bob, room, to, code):
    with pytest.raises(ChatError) as refused:
        _send(bob, "Group", to)
    assert refused.value.code == code
    assert not Message.objects.exists()


def test_a_mute_refuses_with_its_reason_until_it_ends(alice, bob, room):
    mute = Mute.objects.create(user=alice, until=timezone.now() + timedelta(minutes=5), reason="cool off")
    for chat, to in (("Group", "Room ⚡"), ("Private", "bob")):
        with pytest.raises(ChatError) as refused:
            _send(alice, chat, to)
        assert refused.value.code == "forbidden" and "cool off" in refused.value.detail
    mute.until = timezone.now() - timedelta(microseconds=1)
    mute.save()
    assert _send(alice, "Group", "Room ⚡").pk


def test_a_banned_sender_is_refused_even_on_a_socket_that_outlived_the_ban(alice, room):
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)  # `alice` still says active
    with pytest.raises(ChatError) as refused:
        _send(alice, "Group", "Room ⚡")
    assert refused.value.code == "forbidden"
