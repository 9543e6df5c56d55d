"""Spoofed and invisible names: group names and usernames that look like another, or like nothing."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from accounts.models import UsernameKey
from chatsite.errors import ChatError
from chatsite.names import has_visible, name_key
from groups.actions import group_create
from groups.models import ChatGroup
from groups.names import clean_group_name
from tests.conftest import make_user

INVISIBLE_ONLY = ["\u200b", "\u200d\u200d", "\ufeff", "\u3164", "\u115f\u1160", " \u2060 ", "\u00ad"]
LOOK_ALIKES = [
    ("Team", "Tеam"),  # Cyrillic е
    ("Team", "ＴＥＡＭ"),  # fullwidth
    ("Team", "te\u200bam"),  # a zero-width space inside
    ("Team", "team"),
    ("Team", "Te\u00a0 am".replace("\u00a0 ", "")),
    ("my team", "my   team"),
    ("cool", "C00L"),
    ("paypal", "pаypаl"),
]


# ---- the key (pure) -----------------------------------------------------------------


@pytest.mark.parametrize("first, second", LOOK_ALIKES)
def test_look_alike_names_share_a_key(first, second):
    assert name_key(first) == name_key(second)


@pytest.mark.parametrize("first, second", [("alice", "alicia"), ("Team", "Tram"), ("ボブ", "ボプ"), ("a b", "ab")])
def test_different_names_keep_different_keys(first, second):
    assert name_key(first) != name_key(second)


@pytest.mark.parametrize("text", INVISIBLE_ONLY)
def test_invisible_characters_draw_nothing(text):
    assert not has_visible(text) and name_key(text) == ""


def test_a_very_long_key_is_hashed_to_fit_its_column():
    key = name_key("\ufdfa" * 64)  # NFKC makes each of these 18 characters
    assert len(key) <= 255 and key.startswith("sha256:")


# ---- group names ------------------------------------------------------------------


@pytest.mark.parametrize("name", INVISIBLE_ONLY)
def test_a_group_name_of_invisible_characters_is_refused(name):
    with pytest.raises(ChatError) as error:
        clean_group_name(name)
    assert error.value.code == "bad_request" and ("invisible" in error.value.detail or "empty" in error.value.detail)


@pytest.mark.parametrize("name", ["abc\u202edef", "\u202atext", "x\u2066y\u2069", "\u200fname"])
def test_a_group_name_with_a_bidi_control_is_refused(name):
    with pytest.raises(ChatError) as error:
        clean_group_name(name)
    assert "bidirectional" in error.value.detail


def test_emoji_sequences_with_joiners_are_fine_group_names():
    assert clean_group_name("👨\u200d👩\u200d👧 family") == "👨\u200d👩\u200d👧 family"


@pytest.mark.parametrize("first, second", LOOK_ALIKES)
def test_a_group_that_looks_like_an_existing_one_is_a_conflict_naming_it(alice, bob, first, second):
    group_create(owner=alice, name=first, member_usernames=[])
    with pytest.raises(ChatError) as error:
        group_create(owner=bob, name=second, member_usernames=[])
    assert error.value.code == "conflict" and f"'{first}'" in error.value.detail
    assert ChatGroup.objects.count() == 1


def test_the_same_group_name_twice_is_still_a_plain_conflict(alice):
    group_create(owner=alice, name="Team", member_usernames=[])
    with pytest.raises(ChatError) as error:
        group_create(owner=alice, name="Team", member_usernames=[])
    assert error.value.detail == "A group named 'Team' already exists."


def test_every_group_gets_its_key_however_it_is_made(alice):
    group = ChatGroup.objects.create(name="Café ☕", owner=alice)
    assert ChatGroup.objects.get(pk=group.pk).name_key == name_key("Café ☕")
    group.name = "Tеam"
    group.save(update_fields=["name"])
    assert ChatGroup.objects.get(pk=group.pk).name_key == "tearn"


def test_renaming_a_group_in_the_admin_to_a_look_alike_is_a_form_error(alice, client):
    ChatGroup.objects.create(name="Team", owner=alice)
    other = ChatGroup.objects.create(name="Other", owner=alice)
    iago = make_user("iago", is_staff=True, is_superuser=True)
    client.force_login(iago)
    response = client.post(f"/admin/groups/chatgroup/{other.pk}/change/", {"name": "Tеam", **_no_inline()})
    assert response.status_code == 200 and "too like the existing group" in response.content.decode()
    assert ChatGroup.objects.get(pk=other.pk).name == "Other"


def _no_inline() -> dict:
    prefix = "ChatGroup_members"
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}


@pytest.mark.django_db(transaction=True)
async def test_a_look_alike_group_over_the_socket_gets_conflict(connect, alice, bob):
    a, b = await connect(alice), await connect(bob)
    await a.drain()  # bob's Presence
    await a.send({"Type": "Create", "Name": "Team"})
    await a.expect("Group", Event="Created")
    await b.drain()
    await b.send({"Type": "Create", "Name": "Tеam"})
    error = await b.expect("Error", Code="conflict", Ref="Create")
    assert "'Team'" in error["Detail"]


def test_the_migration_keys_existing_groups_and_tolerates_old_look_alikes(alice):
    migration = importlib.import_module("groups.migrations.0003_chatgroup_name_key")
    ChatGroup.objects.bulk_create(  # bulk_create skips save(): rows as they were before the column
        [ChatGroup(name="Team", owner=alice), ChatGroup(name="Tеam", owner=alice), ChatGroup(name="Other", owner=alice)]
    )
    migration.backfill_name_keys(apps, None)
    keys = dict(ChatGroup.objects.values_list("name", "name_key"))
    assert keys == {"Team": "tearn", "Tеam": None, "Other": "other"}
    with pytest.raises(ChatError):
        group_create(owner=alice, name="TEAM", member_usernames=[])


# ---- usernames ----------------------------------------------------------------------


def register(client, username):
    password = "correct horse battery"
    return client.post("/accounts/register/", {"username": username, "password1": password, "password2": password})


@pytest.mark.parametrize("username", ["\u3164", "\u3164\u3164", "\u115f"])
def test_registering_an_invisible_username_is_refused(client, transactional_db, username):
    response = register(client, username)
    assert response.status_code == 400 and "invisible" in response.content.decode()
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("username", ["аlice", "аlісе", "a\u3164lice", "\u0430lice\u3164"])
def test_registering_a_look_alike_of_an_existing_username_is_refused(client, alice, username):
    response = register(client, username)
    assert response.status_code == 400
    assert "looks too much like the existing user" in response.content.decode()
    assert get_user_model().objects.count() == 1


def test_a_different_username_registers(client, alice):
    assert register(client, "alicia").status_code == 302
    assert UsernameKey.objects.get(user__username="alicia").key == "alicia"


def test_the_admin_refuses_a_look_alike_username_too(client, alice):
    iago = make_user("iago", is_staff=True, is_superuser=True)
    client.force_login(iago)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "аlice",
            "password1": "correct horse battery",
            "password2": "correct horse battery",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200 and "looks too much like the existing user" in response.content.decode()
    assert not get_user_model().objects.filter(username="аlice").exists()


def test_a_username_key_follows_renames_but_not_logins(alice):
    assert UsernameKey.objects.get(user=alice).key == "alice"
    alice.username = "alicе2"
    alice.save()
    assert UsernameKey.objects.get(user=alice).key == name_key("alicе2")
    UsernameKey.objects.filter(user=alice).update(key="sentinel")
    alice.save(update_fields=["last_login"])
    assert UsernameKey.objects.get(user=alice).key == "sentinel"


def test_a_look_alike_made_outside_the_forms_keeps_no_key_and_does_not_crash(alice):
    mallory = make_user("аlice")  # createsuperuser or the shell skip the form's check
    assert not UsernameKey.objects.filter(user=mallory).exists()
    assert UsernameKey.objects.get(user=alice).key == "alice"


def test_the_migration_keys_existing_users_and_tolerates_old_look_alikes(transactional_db):
    migration = importlib.import_module("accounts.migrations.0005_usernamekey")
    get_user_model().objects.bulk_create([get_user_model()(username=name) for name in ("bob", "bоb", "carol")])
    migration.backfill_username_keys(apps, None)
    assert sorted(UsernameKey.objects.values_list("user__username", "key")) == [("bob", "bob"), ("carol", "carol")]
