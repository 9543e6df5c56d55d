"""Nobody raises their own privileges through the admin, and every change of a user is audited.

iago is the superuser, mona a moderator (staff in the Moderators group), stan staff who was
given `change_user` but is no superuser; alice and bob chat.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts import actions
from accounts.models import AuditEntry, Mute
from chatsite.errors import ChatError
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


@pytest.fixture
def mona(transactional_db):
    user = make_user("mona", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def stan(transactional_db):
    user = make_user("stan", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user", "add_user"]))
    return User.objects.get(pk=user.pk)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


def form_data(client: Client, user) -> dict:
    """What the user's change page would post unchanged (as a browser would submit it)."""
    form = client.get(change_url(user)).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name)
        if field.disabled or value in (None, False):
            continue
        data[name] = [item.pk for item in value] if name in ("groups", "user_permissions") else value
    return data


def refreshed(user):
    return User.objects.get(pk=user.pk)


# ---- the Moderators group ------------------------------------------------------------------


def test_the_moderators_group_can_view_and_moderate_nothing_more():
    codenames = set(Group.objects.get(name="Moderators").permissions.values_list("codename", flat=True))
    assert codenames == {
        "moderate",
        "view_auditentry",
        "view_user",
        "view_chatgroup",
        "view_message",
        "view_messageedit",
        "view_reaction",
        "view_report",
    }


def test_the_migration_takes_change_user_back_from_an_existing_moderators_group():
    group = Group.objects.get(name="Moderators")
    group.permissions.add(Permission.objects.get(codename="change_user"))
    migration = importlib.import_module("accounts.migrations.0003_moderators_cannot_change_users")
    migration.drop_change_user(apps, None)
    assert not group.permissions.filter(codename="change_user").exists()


def test_a_moderator_cannot_make_themselves_superuser(mona):
    client = logged_in(mona)
    data = {"username": "mona", "is_active": "on", "is_staff": "on", "is_superuser": "on"}
    assert client.post(change_url(mona), data).status_code == 403
    assert not refreshed(mona).is_superuser


def test_a_moderator_still_bans_and_mutes_ordinary_users_from_the_list(mona, alice):
    client = logged_in(mona)
    for action, extra in [("ban", {}), ("mute", {"minutes": "60"})]:
        form = {"action": action, "_selected_action": [str(alice.pk)], "apply": "1", "reason": "spam", **extra}
        assert client.post("/admin/auth/user/", form, follow=True).status_code == 200
    assert not refreshed(alice).is_active and Mute.objects.filter(user=alice).exists()
    assert [entry.action for entry in AuditEntry.objects.order_by("id")] == ["ban", "mute"]


# ---- privilege fields and passwords --------------------------------------------------------


def test_staff_who_are_not_superusers_see_no_privileges_or_password_link(stan):
    page = logged_in(stan).get(change_url(stan))
    assert page.status_code == 200
    for name in (b"is_superuser", b"is_staff", b"groups", b"user_permissions", b"password"):
        assert b'name="' + name + b'"' not in page.content
    assert b"../password/" not in page.content


def test_staff_cannot_post_privileges_but_their_other_changes_are_audited(stan):
    client = logged_in(stan)
    data = form_data(client, stan)
    moderators = Group.objects.get(name="Moderators")
    everything = [permission.pk for permission in Permission.objects.all()]
    data.update(email="stan@example.com", is_superuser="on", groups=[moderators.pk], user_permissions=everything)
    assert client.post(change_url(stan), data).status_code == 302
    stan = refreshed(stan)
    assert stan.email == "stan@example.com"
    assert not stan.is_superuser and not stan.groups.exists() and stan.user_permissions.count() == 3
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.actor, entry.target) == (
        "change user",
        stan,
        "user stan: email '' -> 'stan@example.com'",
    )


def test_only_superusers_open_the_set_password_form(iago, mona, stan, alice):
    for actor in (mona, stan):
        client = logged_in(actor)
        for target in (alice, iago, actor):
            url = f"/admin/auth/user/{target.pk}/password/"
            assert client.get(url).status_code == 403
            form = {"password1": "taken-over-123", "password2": "taken-over-123", "usable_password": "true"}
            assert client.post(url, form).status_code == 403
    assert all(not refreshed(user).check_password("taken-over-123") for user in (iago, mona, stan, alice))
    assert not AuditEntry.objects.exists()


def test_a_superuser_sets_a_password_through_the_audit_log(iago, alice):
    form = {"password1": "new-Secret-4242", "password2": "new-Secret-4242", "usable_password": "true"}
    response = logged_in(iago).post(f"/admin/auth/user/{alice.pk}/password/", form)
    assert response.status_code == 302
    assert refreshed(alice).check_password("new-Secret-4242")
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.actor, entry.target) == ("set password", iago, "user alice")
    assert "new-Secret-4242" not in entry.target + entry.reason


def test_a_superuser_grants_privileges_through_the_audit_log(iago, alice):
    client = logged_in(iago)
    data = form_data(client, alice)
    data.update(is_staff="on", groups=[Group.objects.get(name="Moderators").pk])
    assert client.post(change_url(alice), data).status_code == 302
    alice = refreshed(alice)
    assert alice.is_staff and alice.has_perm("accounts.moderate")
    [entry] = AuditEntry.objects.all()
    assert entry.action == "change user" and entry.actor == iago
    assert entry.target == "user alice: groups = [Moderators]; is_staff False -> True"


def test_only_superusers_change_privileges_even_calling_the_action(stan, alice):
    with pytest.raises(ChatError) as refused:
        actions.user_update(actor=stan, user=alice, changes={"is_staff": True})
    assert refused.value.code == "forbidden"
    for field in ("password", "is_active", "last_login"):
        with pytest.raises(ChatError) as refused:
            actions.user_update(actor=stan, user=alice, changes={field: "x"})
        assert refused.value.code == "bad_request"
    assert not refreshed(alice).is_staff and not AuditEntry.objects.exists()


# ---- who may act on whom -------------------------------------------------------------------


def test_staff_cannot_change_a_superusers_or_other_staffs_page(iago, mona, stan):
    client = logged_in(stan)
    for target in (iago, mona):
        data = {"username": target.username, "email": "stan@evil.example", "is_active": "on"}
        assert client.post(change_url(target), data).status_code == 403
        assert refreshed(target).email != "stan@evil.example"


def test_a_moderator_cannot_ban_or_mute_a_superuser_or_other_staff(iago, mona, stan):
    client = logged_in(mona)
    for target in (iago, stan):
        for action, extra in [("ban", {}), ("mute", {"minutes": "60"})]:
            form = {"action": action, "_selected_action": [str(target.pk)], "apply": "1", "reason": "x", **extra}
            page = client.post("/admin/auth/user/", form, follow=True)
            assert b"Only a superuser can act on" in page.content
        assert refreshed(target).is_active and not Mute.objects.filter(user=target).exists()
    with pytest.raises(ChatError):
        actions.user_ban(actor=mona, user=iago)
    assert not AuditEntry.objects.exists()


def test_a_selection_with_a_superuser_in_it_is_refused_as_a_whole(iago, mona, alice):
    form = {"action": "ban", "_selected_action": [str(alice.pk), str(iago.pk)], "apply": "1", "reason": "x"}
    page = logged_in(mona).post("/admin/auth/user/", form, follow=True)
    assert b"Only a superuser can act on a superuser" in page.content
    assert refreshed(alice).is_active and refreshed(iago).is_active


def test_a_superuser_may_moderate_staff(iago, mona):
    actions.user_mute(actor=iago, user=mona, duration=timedelta(minutes=15), reason="cool down")
    actions.user_ban(actor=iago, user=mona, reason="rogue")
    assert not refreshed(mona).is_active


def test_nobody_moderates_their_own_account(iago, mona):
    for actor in (iago, mona):
        for act, extra in [(actions.user_mute, {"duration": timedelta(minutes=15)}), (actions.user_unmute, {})]:
            with pytest.raises(ChatError) as refused:
                act(actor=actor, user=actor, **extra)
            assert "your own account" in refused.value.detail
    assert not AuditEntry.objects.exists()


def test_only_superusers_add_users_and_the_addition_is_audited(iago, stan):
    form = {"username": "dave", "password1": "dave-Secret-42", "password2": "dave-Secret-42", "usable_password": "true"}
    assert logged_in(stan).get("/admin/auth/user/add/").status_code == 403
    assert logged_in(stan).post("/admin/auth/user/add/", form).status_code == 403
    assert not User.objects.filter(username="dave").exists()
    assert logged_in(iago).post("/admin/auth/user/add/", form).status_code == 302
    assert User.objects.get(username="dave").check_password("dave-Secret-42")
    assert [(e.action, e.target) for e in AuditEntry.objects.all()] == [("add user", "user dave")]


def test_staff_cannot_edit_groups_to_give_themselves_permissions(stan):
    stan.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth", codename__endswith="_group"))
    stan = refreshed(stan)
    group = Group.objects.get(name="Moderators")
    client = logged_in(stan)
    everything = [permission.pk for permission in Permission.objects.all()]
    response = client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "Moderators", "permissions": everything})
    assert response.status_code == 403
    assert client.post("/admin/auth/group/add/", {"name": "Mine", "permissions": everything}).status_code == 403
    assert group.permissions.count() == 8 and not Group.objects.filter(name="Mine").exists()
    assert client.get("/admin/auth/group/").status_code == 200, "viewing stays"
