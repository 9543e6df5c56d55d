"""Login lockout (django-axes), what banned and muted users are told, and the sign-up limit.

erin logs in; frank tries other people's passwords.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts.models import Mute, Registration
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

RIGHT = "erin-pass-123"


@pytest.fixture
def erin(db):
    return make_user("erin")


def log_in(client, password, username="erin", path="/accounts/login/", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail(client, times, **kwargs):
    return [log_in(client, f"wrong-{i}", **kwargs).status_code for i in range(times)]


# ---- lockout -------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_login_with_a_clear_page(client, erin):
    assert fail(client, 4) == [200] * 4
    locked = log_in(client, "wrong-again")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page and "erin" in page
    assert 'class="auth-card"' in page, "in the site's own style"


def test_the_right_password_is_refused_while_locked(client, erin):
    fail(client, 5)
    response = log_in(client, RIGHT)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302, "not logged in"


def test_the_admin_login_is_locked_the_same_way(client, erin):
    iago = get_user_model().objects.create_superuser("iago", "iago@example.com", "iago-pass-123")
    assert fail(client, 5, username="iago", path="/admin/login/")[-1] == 429
    assert log_in(client, "iago-pass-123", username="iago", path="/admin/login/").status_code == 429
    assert client.get("/admin/").status_code == 302
    assert iago.is_superuser


def test_the_lock_is_on_the_username_and_address_together(client, erin):
    fail(client, 5)
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    assert log_in(elsewhere, RIGHT).status_code == 302, "erin from another address is not locked out"
    make_user("bob")
    assert log_in(client, "bob-pass-123", username="bob").status_code == 302, "nor bob from this one"


def test_the_lock_ends_after_its_minutes(client, erin):
    fail(client, 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert log_in(client, RIGHT).status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(client, erin):
    fail(client, 4)
    assert log_in(client, RIGHT).status_code == 302
    client.post("/accounts/logout/")
    assert fail(client, 4) == [200] * 4


def test_the_numbers_are_settings(client, erin, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    assert fail(client, 2) == [200, 429]
    assert "3 minutes" in log_in(client, RIGHT).content.decode()


@pytest.mark.parametrize(
    "username, password",
    [("x" * 10_000, "y" * 10_000), ("", ""), ("erin\x00", "p"), ("' OR 1=1 --", "p"), ("ерин 👋", "p")],
)
def test_hostile_credentials_get_the_form_again(client, erin, username, password):
    response = log_in(client, password, username=username)
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_hostile_usernames_are_locked_out_too(client, erin):
    assert fail(client, 5, username="x" * 10_000)[-1] == 429


# ---- banned and muted users ------------------------------------------------------------


def test_a_banned_user_with_the_right_password_is_told_they_are_banned(client, erin):
    erin.is_active = False
    erin.save()
    page = log_in(client, RIGHT).content.decode()
    assert "banned" in page and "correct username and password" not in page
    assert "_auth_user_id" not in client.session


def test_a_banned_user_with_a_wrong_password_learns_nothing_more(client, erin):
    erin.is_active = False
    erin.save()
    page = log_in(client, "wrong").content.decode()
    assert "correct username and password" in page and "banned" not in page


def test_a_banned_user_is_locked_out_like_anyone(client, erin):
    erin.is_active = False
    erin.save()
    fail(client, 5)
    assert log_in(client, RIGHT).status_code == 429


def test_a_muted_user_logs_in_and_is_told_until_when(client, erin):
    until = timezone.now() + timedelta(hours=2)
    Mute.objects.create(user=erin, until=until, reason="flooding")
    response = log_in(client, RIGHT, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/"
    # In UTC for the page, marked up for static/accounts/localtime.js to show in the reader's zone.
    stamp = f'<time datetime="{until:%Y-%m-%dT%H:%M:%S}Z" data-local>{until:%Y-%m-%d %H:%M} UTC</time>'
    assert f"muted until {stamp} (flooding)" in page


def test_a_mute_reason_is_text_not_markup(client, erin):
    Mute.objects.create(user=erin, until=timezone.now() + timedelta(hours=1), reason="<b>spam</b>")
    page = log_in(client, RIGHT, follow=True).content.decode()
    assert "(&lt;b&gt;spam&lt;/b&gt;)" in page and "<b>spam" not in page


def test_a_mute_that_is_over_is_not_mentioned(client, erin):
    Mute.objects.create(user=erin, until=timezone.now() - timedelta(minutes=1))
    assert "muted" not in log_in(client, RIGHT, follow=True).content.decode()


# ---- registration flood ---------------------------------------------------------------


def register(client, username):
    password = "correct horse battery"
    return client.post("/accounts/register/", {"username": username, "password1": password, "password2": password})


def test_one_address_may_create_only_so_many_accounts_an_hour(settings):
    settings.CHAT_REGISTRATIONS_PER_HOUR = 3
    assert [register(Client(), f"user{i}").status_code for i in range(3)] == [302] * 3
    refused = register(Client(), "user3")
    assert refused.status_code == 429
    assert "Too many new accounts" in refused.content.decode()
    assert not get_user_model().objects.filter(username="user3").exists()
    assert register(Client(REMOTE_ADDR="192.0.2.9"), "user3").status_code == 302, "another address may"


def test_the_limit_is_twenty_an_hour_by_default(settings):
    assert settings.CHAT_REGISTRATIONS_PER_HOUR == 20
    Registration.objects.bulk_create([Registration(ip="127.0.0.1") for _ in range(19)])
    assert register(Client(), "last").status_code == 302
    assert register(Client(), "onetoomany").status_code == 429


def test_sign_ups_older_than_an_hour_no_longer_count(settings):
    settings.CHAT_REGISTRATIONS_PER_HOUR = 1
    assert register(Client(), "early").status_code == 302
    Registration.objects.update(created=timezone.now() - timedelta(minutes=61))
    assert register(Client(), "later").status_code == 302
    assert Registration.objects.count() == 1, "the old row is gone"


def test_failed_sign_ups_do_not_use_up_the_limit(settings):
    settings.CHAT_REGISTRATIONS_PER_HOUR = 1
    for _ in range(3):
        assert (
            Client().post("/accounts/register/", {"username": "x", "password1": "a", "password2": "b"}).status_code
            == 400
        )
    assert register(Client(), "finally").status_code == 302


def test_an_address_that_is_not_one_is_limited_as_one_unknown_address(settings, erin):
    settings.CHAT_REGISTRATIONS_PER_HOUR = 1
    assert register(Client(REMOTE_ADDR="not-an-ip"), "first").status_code == 302
    assert register(Client(REMOTE_ADDR="x" * 1000), "second").status_code == 429
    assert fail(Client(REMOTE_ADDR="garbage"), 5)[-1] == 429
