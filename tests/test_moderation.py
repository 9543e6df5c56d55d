"""Moderation through the admin's own views, with its live effect on connected sockets.

iago is the moderator (a superuser), alice, bob and carol chat, and stan is staff without the
moderation permission.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.models import AuditEntry, Mute
from groups import actions as group_actions
from groups.models import ChatGroup
from messaging.actions import message_send
from messaging.models import Message, Report
from messaging.protocol import format_time
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stan(transactional_db):
    user = make_user("stan", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "delete_message"]))
    return user


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_action(user, model_url: str, action: str, ids, **form) -> object:
    """Post an admin action twice, as a person does: pick it, then confirm with a reason."""
    client = admin_client(user)
    picked = client.post(model_url, {"action": action, "_selected_action": [str(i) for i in ids]})
    if picked.status_code != 200:
        return picked
    return client.post(
        model_url, {"action": action, "_selected_action": [str(i) for i in ids], "apply": "1", **form}, follow=True
    )


async def admin_action(user, model_url, action, ids, **form):
    return await database_sync_to_async(run_action)(user, model_url, action, ids, **form)


def audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).select_related("actor"))


# ---- remove messages ----------------------------------------------------------------


async def test_removing_messages_makes_them_vanish_from_open_clients(connect, iago, alice, bob, carol):
    a, b, c = await connect(alice), await connect(bob), await connect(carol)
    for sock in (a, b):
        await sock.drain()  # the presence of those who connected after it
    await a.send({"Type": "Send", "To": "bob", "Chat": "Private", "Content": "something rude"})
    frame = await b.expect("Message")
    await a.expect("Message", Id=frame["Id"])
    page = await admin_action(iago, "/admin/messaging/message/", "remove_messages", [frame["Id"]], reason="rude")
    assert page.status_code == 200
    for sock in (a, b):
        await sock.expect("Removed", Ids=[frame["Id"]])
    assert await c.sync() == []
    assert not await database_sync_to_async(Message.objects.exists)()
    [entry] = await database_sync_to_async(audit)("remove message")
    assert (entry.actor.username, entry.reason) == ("iago", "rude") and "something rude" in entry.target


def test_the_confirmation_page_asks_for_a_reason(iago, alice, bob):
    message, _ = message_send(sender=alice, chat="Private", to="bob", content="hi")
    client = admin_client(iago)
    page = client.post("/admin/messaging/message/", {"action": "remove_messages", "_selected_action": [message.pk]})
    assert b"Written to the audit log" in page.content
    client.post(
        "/admin/messaging/message/",
        {"action": "remove_messages", "_selected_action": [message.pk], "apply": "1", "reason": ""},
    )
    assert Message.objects.exists(), "no reason, nothing done"


# ---- ban and unban ------------------------------------------------------------------


async def test_ban_closes_open_sockets_and_blocks_login_and_reconnect(connect, iago, alice, bob):
    a1, a2, b = await connect(alice), await connect(alice), await connect(bob)
    for sock in (a1, a2):
        await sock.expect("Presence", Username="bob", Online=True)
    await admin_action(iago, "/admin/auth/user/", "ban", [alice.pk], reason="spam")
    for sock in (a1, a2):
        closed = await sock.comm.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4003}
        await sock.comm.disconnect()  # what Daphne reports once the close handshake is done
    await b.expect("Presence", Username="alice", Online=False)
    connected, _ = await connect(alice, expect_ok=False)
    assert not connected
    login = await database_sync_to_async(Client().post)(
        "/accounts/login/", {"username": "alice", "password": "alice-pass-123"}
    )
    assert login.status_code == 200, "the login form is shown again: refused"
    [entry] = await database_sync_to_async(audit)("ban")
    assert entry.target == "user alice" and entry.reason == "spam"


def test_unban_lets_the_user_back_in(iago, alice):
    run_action(iago, "/admin/auth/user/", "ban", [alice.pk], reason="spam")
    run_action(iago, "/admin/auth/user/", "unban", [alice.pk], reason="appeal accepted")
    alice.refresh_from_db()
    assert alice.is_active
    response = Client().post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"})
    assert response.status_code == 302
    assert [e.action for e in AuditEntry.objects.order_by("id")] == ["ban", "unban"]


def test_unticking_active_on_the_user_page_is_a_ban_too(iago, alice):
    client = admin_client(iago)
    page = client.get(f"/admin/auth/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {
        k: v
        for k, v in form.initial.items()
        if v is not None and k not in ("is_active", "groups", "user_permissions", "password")
    }
    data.update(
        {
            "date_joined_0": alice.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": alice.date_joined.strftime("%H:%M:%S"),
        }
    )
    client.post(f"/admin/auth/user/{alice.pk}/change/", data)
    alice.refresh_from_db()
    assert not alice.is_active
    assert audit("ban")[0].reason == "changed on the user's page"


# ---- mute ---------------------------------------------------------------------------


async def test_a_muted_user_gets_forbidden_with_the_reason_until_unmuted(connect, iago, alice, bob):
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await admin_action(iago, "/admin/auth/user/", "mute", [alice.pk], reason="cool down", minutes="60")
    await a.send({"Type": "Send", "To": "bob", "Chat": "Private", "Content": "hello?"})
    error = await a.expect("Error", Code="forbidden", Ref="Send")
    assert "muted until" in error["Detail"] and "cool down" in error["Detail"]
    mute = await database_sync_to_async(Mute.objects.get)(user=alice)
    assert (error["Until"], error["Reason"]) == (format_time(mute.until), "cool down")  # shown in local time
    assert await b.sync() == []
    await admin_action(iago, "/admin/auth/user/", "unmute", [alice.pk], reason="ok now")
    await a.send({"Type": "Send", "To": "bob", "Chat": "Private", "Content": "hello again"})
    await b.expect("Message", Content="hello again")
    assert [e.action for e in await database_sync_to_async(list)(AuditEntry.objects.order_by("id"))] == [
        "mute",
        "unmute",
    ]


def test_a_mute_ends_by_itself(iago, alice, bob):
    from datetime import timedelta

    from django.utils import timezone

    run_action(iago, "/admin/auth/user/", "mute", [alice.pk], reason="short", minutes="15")
    Mute.objects.filter(user=alice).update(until=timezone.now() - timedelta(seconds=1))
    message, created = message_send(sender=alice, chat="Private", to="bob", content="free again")
    assert created


# ---- delete a group -------------------------------------------------------------------


async def test_deleting_a_group_in_the_admin_tells_its_members(connect, iago, alice, bob):
    group = await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=["bob"])
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await admin_action(iago, "/admin/groups/chatgroup/", "delete_groups", [group.pk], reason="off-topic")
    for sock in (a, b):
        await sock.expect("Group", Event="Deleted", Name="Team", User="iago")
    assert not await database_sync_to_async(ChatGroup.objects.exists)()
    [entry] = await database_sync_to_async(audit)("delete group")
    assert entry.reason == "off-topic"


def test_group_page_shows_members_inline(iago, alice, bob):
    group = group_actions.group_create(owner=alice, name="Team", member_usernames=["bob"])
    page = admin_client(iago).get(f"/admin/groups/chatgroup/{group.pk}/change/")
    assert page.status_code == 200
    assert b"members" in page.content.lower() and b"bob" in page.content


# ---- reports ------------------------------------------------------------------------------


async def test_a_user_reports_a_message_and_a_moderator_resolves_it(connect, iago, alice, bob):
    message, _ = await database_sync_to_async(message_send)(sender=alice, chat="Private", to="bob", content="spam spam")
    b = await connect(bob)
    await b.send({"Type": "Report", "Id": message.pk, "Reason": "spam"})
    await b.expect("Reported", Id=message.pk)
    await b.send({"Type": "Report", "Id": message.pk, "Reason": "again"})
    await b.expect("Reported", Id=message.pk)
    report = await database_sync_to_async(Report.objects.get)()
    assert (report.reason, report.message_text) == ("spam", "spam spam")
    listing = await database_sync_to_async(lambda: admin_client(iago).get("/admin/messaging/report/"))()
    assert f"/admin/messaging/message/{message.pk}/change/".encode() in listing.content
    await admin_action(iago, "/admin/messaging/report/", "resolve_reports", [report.pk], reason="looked at it")
    await database_sync_to_async(report.refresh_from_db)()
    assert report.resolved is not None and report.resolved_by_id == iago.pk


async def test_nobody_reports_a_message_they_cannot_see(connect, alice, bob, carol):
    message, _ = await database_sync_to_async(message_send)(sender=alice, chat="Private", to="bob", content="private")
    c = await connect(carol)
    await c.send({"Type": "Report", "Id": message.pk})
    await c.expect("Error", Code="not_found", Ref="Report")


# ---- the audit log and permissions ----------------------------------------------------


def test_the_audit_log_cannot_be_edited_in_the_admin(iago, alice):
    run_action(iago, "/admin/auth/user/", "ban", [alice.pk], reason="spam")
    entry = AuditEntry.objects.get()
    client = admin_client(iago)
    assert client.get("/admin/accounts/auditentry/").status_code == 200
    page = client.get(f"/admin/accounts/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and b'name="reason"' not in page.content
    assert client.get("/admin/accounts/auditentry/add/").status_code == 403
    assert client.get(f"/admin/accounts/auditentry/{entry.pk}/delete/").status_code == 403


def test_staff_without_the_permission_cannot_moderate(stan, alice, bob):
    message, _ = message_send(sender=alice, chat="Private", to="bob", content="hi")
    run_action(stan, "/admin/messaging/message/", "remove_messages", [message.pk], reason="x")
    assert Message.objects.exists()
    run_action(stan, "/admin/auth/user/", "ban", [alice.pk], reason="x")
    alice.refresh_from_db()
    assert alice.is_active
    assert not AuditEntry.objects.exists()


def test_the_moderators_group_grants_moderation(stan, alice, bob):
    stan.groups.add(Group.objects.get(name="Moderators"))
    stan = get_user_model().objects.get(pk=stan.pk)
    message, _ = message_send(sender=alice, chat="Private", to="bob", content="hi")
    run_action(stan, "/admin/messaging/message/", "remove_messages", [message.pk], reason="tidy")
    assert not Message.objects.exists()


def test_the_message_list_stays_cheap_with_100000_messages(iago, alice, bob, django_assert_max_num_queries):
    Message.objects.bulk_create(
        (Message(sender=alice, recipient=bob, text=f"message {i}") for i in range(100_000)), batch_size=5000
    )
    client = admin_client(iago)
    with django_assert_max_num_queries(12):
        page = client.get("/admin/messaging/message/")
    assert page.status_code == 200 and b"message 99999" in page.content


def test_a_banned_user_cannot_send_even_from_a_socket_that_outlived_the_ban(iago, alice, bob):
    from chatsite.errors import ChatError

    run_action(iago, "/admin/auth/user/", "ban", [alice.pk], reason="spam")
    with pytest.raises(ChatError) as error:
        message_send(sender=alice, chat="Private", to="bob", content="still here?")  # alice: stale, active
    assert error.value.code == "forbidden" and not Message.objects.exists()
