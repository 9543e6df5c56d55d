"""Invite links: made by a group's owner or an admin, used to register or to join the group,
stopped by expiry, their use count and revocation. Registration modes (CHAT_REGISTRATION).

alice owns "Class 7B", bob is in it, carol is an outsider, iago the superuser; dave and erin are
new people arriving with a link.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts import actions
from accounts.models import AuditEntry, Invite, InviteUse, Mute
from chatsite.errors import ChatError
from groups.models import ChatGroup
from messaging import events

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-secret-1"
WEEK = timedelta(days=7)


@pytest.fixture
def group(alice, bob):
    group = ChatGroup.objects.create(name="Class 7B", owner=alice)
    group.members.add(alice, bob)
    return group


def link(invite: Invite) -> str:
    return f"/accounts/invite/{invite.token}/"


def register(client: Client, username: str, **extra):
    fields = {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra}
    return client.post("/accounts/register/", fields)


def arrive(username: str, invite: Invite) -> tuple[Client, object]:
    """A new person opens the link, then registers: their browser and the answer."""
    client = Client()
    assert client.get(link(invite)).url == "/accounts/register/"
    return client, register(client, username)


def members(group: ChatGroup) -> set[str]:
    return set(group.members.values_list("username", flat=True))


# ---- registration modes ----------------------------------------------------------------------


def test_open_registration_needs_no_link(client, settings):
    settings.CHAT_REGISTRATION = "open"
    assert client.get("/accounts/register/").status_code == 200
    assert register(client, "dave").status_code == 302
    assert get_user_model().objects.filter(username="dave").exists()


def test_invite_only_registration_without_a_link_says_one_is_needed(client, settings):
    settings.CHAT_REGISTRATION = "invite"
    page = client.get("/accounts/register/")
    assert page.status_code == 403
    assert "You can only create an account here with an invite link" in page.content.decode()
    assert register(client, "dave").status_code == 403
    assert not get_user_model().objects.filter(username="dave").exists()


def test_invite_only_registration_with_a_link_makes_the_account(settings, alice, iago):
    settings.CHAT_REGISTRATION = "invite"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=5)
    client = Client()
    client.get(link(invite))
    page = client.get("/accounts/register/")
    assert page.status_code == 200 and "You are invited" in page.content.decode()
    assert register(client, "dave").status_code == 302
    dave = get_user_model().objects.get(username="dave")
    assert list(InviteUse.objects.values_list("invite", "user", "username", "new_account")) == [
        (invite.pk, dave.pk, "dave", True)
    ]
    assert client.get("/").status_code == 200, "logged in"


def test_closed_registration_refuses_everyone_even_with_a_link(settings, iago):
    settings.CHAT_REGISTRATION = "closed"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=5)
    client = Client()
    assert client.get(link(invite)).url == "/accounts/login/", "only existing accounts can use it"
    page = client.get("/accounts/register/")
    assert page.status_code == 403 and "Registration is closed" in page.content.decode()
    assert register(client, "dave").status_code == 403
    assert not get_user_model().objects.filter(username="dave").exists()


def test_closed_registration_still_lets_an_admin_add_users(settings, iago):
    settings.CHAT_REGISTRATION = "closed"
    admin = Client()
    admin.force_login(iago)
    response = admin.post(
        "/admin/auth/user/add/",
        {"username": "dave", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:300]
    assert get_user_model().objects.filter(username="dave").exists()


def test_the_action_refuses_sign_ups_the_mode_forbids(settings):
    user = get_user_model()(username="dave")
    for mode, message in (("closed", "Registration is closed"), ("invite", "You need an invite link")):
        settings.CHAT_REGISTRATION = mode
        with pytest.raises(ChatError, match=message):
            actions.user_register(user=user, ip="192.0.2.1")
    assert not get_user_model().objects.exists()


def test_an_unknown_mode_is_a_configuration_error():
    import subprocess
    import sys

    command = [sys.executable, "-c", "import chatsite.settings"]
    result = subprocess.run(command, env={"CHAT_REGISTRATION": "maybe", "PATH": ""}, capture_output=True, text=True)
    assert result.returncode != 0 and "CHAT_REGISTRATION must be one of open, invite, closed" in result.stderr


# ---- a group link -----------------------------------------------------------------------------


def test_registering_through_a_group_link_lands_in_the_group_and_everyone_hears(group, alice):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    client = Client()
    client.get(link(invite))
    assert "to the group <strong>Class 7B</strong>" in client.get("/accounts/register/").content.decode()
    response, sent = events.collecting(register, client, "dave")
    assert response.status_code == 302
    assert members(group) == {"alice", "bob", "dave"}
    frames = [json.loads(message["text"]) for _, message in sent if message.get("text")]
    assert [(f["Type"], f["Event"], f["User"]) for f in frames if f["Type"] == "Group"] == [
        ("Group", "Joined", "dave")
    ], "announced like any join (groups.actions.group_join)"
    assert "You are in the group Class 7B" in client.get("/").content.decode()


def test_an_existing_user_who_opens_a_group_link_joins_after_logging_in(group, alice, carol):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    client = Client()
    client.get(link(invite))
    page = client.get("/accounts/login/").content.decode()
    assert "Log in to join the group <strong>Class 7B</strong>" in page
    response = client.post("/accounts/login/", {"username": "carol", "password": "carol-pass-123"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "You joined the group Class 7B" in response.content.decode()
    assert "carol" in members(group)
    assert list(InviteUse.objects.values_list("username", "new_account")) == [("carol", False)]


def test_a_logged_in_user_confirms_joining_and_a_page_view_alone_changes_nothing(group, alice, carol):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    client = Client()
    client.force_login(carol)
    page = client.get(link(invite))
    assert page.status_code == 200 and "Join Class 7B" in page.content.decode()
    assert "carol" not in members(group)
    assert client.post(link(invite)).url == "/"
    assert "carol" in members(group)


def test_a_member_who_opens_the_link_again_uses_nothing(group, alice, bob):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=1)
    client = Client()
    client.force_login(bob)
    assert "already in the group" in client.get(link(invite)).content.decode()
    assert actions.invite_redeem(user=bob, token=invite.token) == (invite, False)
    assert not InviteUse.objects.exists()


def test_a_muted_user_cannot_join_through_a_link(group, alice, carol):
    Mute.objects.create(user=carol, until=timezone.now() + timedelta(hours=1))
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=5)
    client = Client()
    client.force_login(carol)
    response = client.post(link(invite), follow=True)
    assert "You are muted" in response.content.decode()
    assert "carol" not in members(group) and not InviteUse.objects.exists()


# ---- what stops a link ------------------------------------------------------------------------


def test_a_link_stops_after_its_uses(settings, iago):
    settings.CHAT_REGISTRATION = "invite"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=2)
    assert arrive("dave", invite)[1].status_code == 302
    assert arrive("erin", invite)[1].status_code == 302
    page = Client().get(link(invite))
    assert page.status_code == 404 and "This invite link has been used up." in page.content.decode()
    assert InviteUse.objects.count() == 2


def test_a_link_used_up_while_the_form_was_open_makes_no_account(settings, iago):
    settings.CHAT_REGISTRATION = "invite"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=1)
    late = Client()
    late.get(link(invite))
    late.get("/accounts/register/")
    assert arrive("dave", invite)[1].status_code == 302  # takes the last use first
    response = register(late, "erin")
    assert response.status_code == 403, "told again that a link is needed"
    assert "This invite link has been used up." in response.content.decode()
    assert not get_user_model().objects.filter(username="erin").exists()


def test_the_last_use_goes_once_even_when_the_page_saw_it_free(settings, iago):
    settings.CHAT_REGISTRATION = "open"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=1)
    actions.user_register(user=get_user_model()(username="dave"), ip="192.0.2.1", invite_token=invite.token)
    with pytest.raises(ChatError, match="used up"):
        actions.user_register(user=get_user_model()(username="erin"), ip="192.0.2.1", invite_token=invite.token)
    assert not get_user_model().objects.filter(username="erin").exists(), "rolled back with the use"


def test_a_link_stops_when_it_expires(settings, iago):
    settings.CHAT_REGISTRATION = "invite"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=5)
    Invite.objects.filter(pk=invite.pk).update(expires=timezone.now() - timedelta(seconds=1))
    client = Client()
    page = client.get(link(invite))
    assert page.status_code == 404 and "This invite link has expired." in page.content.decode()
    assert register(client, "dave").status_code == 403


def test_a_link_expiring_after_it_was_opened_is_forgotten_with_a_reason(settings, iago):
    settings.CHAT_REGISTRATION = "open"
    invite = actions.invite_create(actor=iago, valid_for=WEEK, max_uses=5)
    client = Client()
    client.get(link(invite))
    Invite.objects.filter(pk=invite.pk).update(expires=timezone.now() - timedelta(seconds=1))
    page = client.get("/accounts/register/").content.decode()
    assert "This invite link has expired. You can still register, without it." in page
    assert register(client, "dave").status_code == 302, "open registration: without the link"
    assert not InviteUse.objects.exists()


def test_revoking_a_link_stops_it_at_once(group, alice, carol):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    opened = Client()
    opened.get(link(invite))  # opened before the revocation: not used yet
    assert actions.invite_revoke(actor=alice, invite=invite) is True
    assert actions.invite_revoke(actor=alice, invite=invite) is False, "once"
    page = Client().get(link(invite))
    assert page.status_code == 404 and "This invite link has been revoked." in page.content.decode()
    assert register(opened, "dave").status_code == 302, "open registration: without the link"
    assert members(group) == {"alice", "bob"}
    assert AuditEntry.objects.filter(action="revoke invite", actor=alice).count() == 1


def test_a_deleted_groups_links_go_with_it(group, alice):
    from groups.actions import group_delete

    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    group_delete(user=alice, group=group)
    page = Client().get(link(invite))
    assert page.status_code == 404 and "This invite link is not valid." in page.content.decode()
    with pytest.raises(ChatError) as error:
        actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=3)
    assert error.value.code == "not_found"


@pytest.mark.parametrize(
    "token",
    ["x", "a" * 65, "a" * 10_000, "abc%00defghijklmnopq", "abc'--defghijklmnopq", "ёжик-ёжик-ёжик-ёжик", "../../admin"],
)
def test_hostile_tokens_are_no_link(client, token, iago):
    actions.invite_create(actor=iago, valid_for=WEEK, max_uses=5)
    response = client.get(f"/accounts/invite/{token}/")
    assert response.status_code == 404
    assert client.session.get("chat_invite") is None
    with pytest.raises(ChatError) as error:
        actions.invite_redeem(user=iago, token=token)
    assert error.value.code == "not_found"


def test_a_forged_session_token_is_no_link(settings, client):
    settings.CHAT_REGISTRATION = "invite"
    session = client.session
    session["chat_invite"] = "A" * 32
    session.save()
    assert client.get("/accounts/register/").status_code == 403
    assert register(client, "dave").status_code == 403


# ---- who may make and revoke links ------------------------------------------------------------


def test_an_owner_makes_links_to_their_own_group_only(group, alice, bob, carol):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    assert len(invite.token) == 32 and invite.created_by == alice and invite.group == group
    for actor in (bob, carol):
        with pytest.raises(ChatError) as error:
            actions.invite_create(actor=actor, group=group, valid_for=WEEK, max_uses=30)
        assert error.value.code == "forbidden"
    with pytest.raises(ChatError):
        actions.invite_create(actor=alice, valid_for=WEEK, max_uses=30)  # a link to no group: admins only


def test_only_the_owner_or_an_admin_revokes(group, alice, bob, iago):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    with pytest.raises(ChatError):
        actions.invite_revoke(actor=bob, invite=invite)
    assert actions.invite_revoke(actor=iago, invite=invite)


def test_a_muted_owner_makes_no_links(group, alice):
    Mute.objects.create(user=alice, until=timezone.now() + timedelta(hours=1))
    with pytest.raises(ChatError, match="muted"):
        actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)


@pytest.mark.parametrize(
    "valid_for, max_uses",
    [(timedelta(0), 5), (timedelta(days=91), 5), (timedelta(days=-1), 5), (WEEK, 0), (WEEK, -3), (WEEK, 1001)],
)
def test_out_of_range_expiry_and_uses_are_refused(group, alice, valid_for, max_uses):
    with pytest.raises(ChatError) as error:
        actions.invite_create(actor=alice, group=group, valid_for=valid_for, max_uses=max_uses)
    assert error.value.code == "bad_request"
    assert not Invite.objects.exists()


def test_links_are_random_and_unique(iago):
    tokens = {actions.invite_create(actor=iago, valid_for=WEEK, max_uses=1).token for _ in range(50)}
    assert len(tokens) == 50
