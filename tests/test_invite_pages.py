"""The pages that make invite links: the owner's (/invites/, /groups/<id>/invites/) and the admin's.

alice owns "Class 7B" (bob is in it), carol owns nothing of it, iago is the superuser.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import actions
from accounts.models import AuditEntry, Invite
from groups.models import ChatGroup

pytestmark = pytest.mark.django_db(transaction=True)

WEEK = timedelta(days=7)


@pytest.fixture
def group(alice, bob):
    group = ChatGroup.objects.create(name="Class 7B", owner=alice)
    group.members.add(alice, bob)
    return group


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(group: ChatGroup) -> str:
    return f"/groups/{group.pk}/invites/"


# ---- the owner's page -------------------------------------------------------------------------


def test_the_owner_makes_a_link_and_sees_it_to_copy(group, alice):
    owner = browser(alice)
    response = owner.post(page_of(group), {"days": "7", "uses": "30"}, follow=True)
    assert response.status_code == 200
    invite = Invite.objects.get()
    assert (invite.group, invite.created_by, invite.max_uses) == (group, alice, 30)
    assert abs(invite.expires - (timezone.now() + WEEK)) < timedelta(minutes=1)
    page = response.content.decode()
    assert f'value="http://testserver/accounts/invite/{invite.token}/"' in page
    assert "0 of 30" in page and "A new invite link is ready" in page
    assert 'data-copy="invite-' in page and "accounts/copy.js" in page


def test_the_page_lists_who_used_each_link_and_what_stopped_it(group, alice, carol):
    used = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=1)
    actions.invite_redeem(user=carol, token=used.token)
    revoked = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=5)
    actions.invite_revoke(actor=alice, invite=revoked)
    page = browser(alice).get(page_of(group)).content.decode()
    assert "1 of 1" in page and "<li>carol, <time" in page
    assert "used up" in page and "revoked" in page


def test_the_owner_revokes_a_link(group, alice):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    response = browser(alice).post(f"{page_of(group)}{invite.pk}/revoke/")
    assert response.status_code == 302
    invite.refresh_from_db()
    assert invite.revoked is not None


def test_the_page_refuses_everyone_but_the_owner(group, alice, bob, carol, iago):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    for user in (bob, carol, iago):  # admins use the admin
        other = browser(user)
        assert other.get(page_of(group)).status_code == 404
        assert other.post(page_of(group), {"days": "7", "uses": "30"}).status_code == 404
        assert other.post(f"{page_of(group)}{invite.pk}/revoke/").status_code == 404
        assert other.get("/invites/?group=Class 7B").status_code == 404
    assert Invite.objects.count() == 1 and Invite.objects.get().revoked is None
    assert Client().get(page_of(group)).url.startswith("/accounts/login/")


def test_an_invite_of_another_group_cannot_be_revoked_through_ones_own(group, alice, carol):
    mine = ChatGroup.objects.create(name="Carol's", owner=carol)
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    assert browser(carol).post(f"{page_of(mine)}{invite.pk}/revoke/").status_code == 404
    assert Invite.objects.get().revoked is None


def test_revoking_takes_a_post(group, alice):
    invite = actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=30)
    assert browser(alice).get(f"{page_of(group)}{invite.pk}/revoke/").status_code == 405


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"days": "99999999999999999999", "uses": "5"}, "less than or equal to 90"),
        ({"days": "7", "uses": "10000000000000"}, "less than or equal to 1000"),
        ({"days": "0", "uses": "5"}, "greater than or equal to 1"),
        ({"days": "-5", "uses": "5"}, "greater than or equal to 1"),
        ({"days": "7", "uses": "0"}, "greater than or equal to 1"),
        ({"days": "1e308", "uses": "5"}, "Enter a whole number"),
        ({"days": "7\x00", "uses": "5"}, ""),
        ({}, "This field is required"),
    ],
)
def test_hostile_expiry_and_uses_get_the_form_again(group, alice, fields, error):
    response = browser(alice).post(page_of(group), fields)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Invite.objects.exists()


def test_the_limits_are_settings(group, alice, settings):
    settings.CHAT_INVITE_MAX_DAYS = 2
    settings.CHAT_INVITE_MAX_USES = 3
    assert browser(alice).post(page_of(group), {"days": "3", "uses": "3"}).status_code == 400
    assert browser(alice).post(page_of(group), {"days": "2", "uses": "4"}).status_code == 400
    assert browser(alice).post(page_of(group), {"days": "2", "uses": "3"}).status_code == 302


def test_the_index_lists_the_owners_groups_and_goes_to_one_by_name(group, alice, carol):
    owner = browser(alice)
    assert f'href="{page_of(group)}"' in owner.get("/invites/").content.decode()
    assert owner.get("/invites/?group=Class 7B").url == page_of(group)
    assert owner.get("/invites/?group=" + "x" * 10_000).status_code == 404
    assert "You own no groups" in browser(carol).get("/invites/").content.decode()


def test_the_account_page_links_to_the_invites_of_an_owner_only(group, alice, bob):
    assert 'href="/invites/"' in browser(alice).get("/accounts/account/").content.decode()
    assert 'href="/invites/"' not in browser(bob).get("/accounts/account/").content.decode()


# ---- the admin --------------------------------------------------------------------------------


def test_an_admin_makes_a_link_to_any_group_or_none_in_the_admin(group, iago):
    admin = browser(iago)
    assert admin.get("/admin/accounts/invite/add/").status_code == 200
    response = admin.post("/admin/accounts/invite/add/", {"group": group.pk, "days": "3", "uses": "12"})
    assert response.status_code == 302, response.content.decode()[:2000]
    response = admin.post("/admin/accounts/invite/add/", {"group": "", "days": "1", "uses": "1"})
    assert response.status_code == 302
    made = list(Invite.objects.order_by("id").values_list("group", "max_uses", "created_by"))
    assert made == [(group.pk, 12, iago.pk), (None, 1, iago.pk)]
    assert AuditEntry.objects.filter(action="create invite").count() == 2


def test_the_admin_refuses_huge_values(group, iago):
    response = browser(iago).post("/admin/accounts/invite/add/", {"group": group.pk, "days": "9" * 30, "uses": "5"})
    assert response.status_code == 200 and "less than or equal to 90" in response.content.decode()
    assert not Invite.objects.exists()


def test_the_admin_shows_the_link_and_its_uses(group, alice, carol, iago):
    invite = actions.invite_create(actor=iago, group=group, valid_for=WEEK, max_uses=5)
    actions.invite_redeem(user=carol, token=invite.token)
    page = browser(iago).get(f"/admin/accounts/invite/{invite.pk}/change/").content.decode()
    assert f"/accounts/invite/{invite.token}/" in page
    assert re.search(r'class="field-username">\s*<p>carol</p>', page), "the uses inline"
    listing = browser(iago).get("/admin/accounts/invite/").content.decode()
    assert "works" in listing


def test_the_admin_revoke_action_stops_links(group, alice, iago):
    invites = [actions.invite_create(actor=alice, group=group, valid_for=WEEK, max_uses=5) for _ in range(2)]
    response = browser(iago).post(
        "/admin/accounts/invite/",
        {"action": "revoke", "_selected_action": [invite.pk for invite in invites]},
        follow=True,
    )
    assert "Revoked 2 invite links." in response.content.decode()
    assert Invite.objects.filter(revoked__isnull=True).count() == 0


def test_the_admin_has_no_delete_and_no_edit_of_links(group, iago):
    invite = actions.invite_create(actor=iago, group=group, valid_for=WEEK, max_uses=5)
    admin = browser(iago)
    assert admin.get(f"/admin/accounts/invite/{invite.pk}/delete/").status_code == 403
    admin.post(f"/admin/accounts/invite/{invite.pk}/change/", {"max_uses": "999"})
    invite.refresh_from_db()
    assert invite.max_uses == 5


def test_staff_without_the_permission_cannot_open_invites(bob):
    bob.is_staff = True
    bob.save()
    assert browser(bob).get("/admin/accounts/invite/add/").status_code == 403
