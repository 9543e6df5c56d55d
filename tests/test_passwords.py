"""A user's own password: the account page, changing it (other sessions and sockets end), and a
reset by email that never tells whether an account exists.

alice uses two browsers; bob is someone else online; iago is the superuser.
"""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import AuditEntry, UserSession
from messaging.protocol import CLOSE_SESSION_ENDED
from tests.test_sessions import browser, closed_with, key_of, still_open

pytestmark = pytest.mark.django_db(transaction=True)

NEW = "a-brand-new-secret-9"
RESET = "/accounts/password/reset/"


def logged_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def log_in(username: str, password: str) -> Client:
    client = Client()
    client.post("/accounts/login/", {"username": username, "password": password})
    return client


@pytest.fixture
def with_email(alice):
    alice.email = "alice@example.com"
    alice.save(update_fields=["email"])
    return alice


# ---- the account page -------------------------------------------------------------------------


def test_the_account_page_needs_a_login(client):
    assert client.get("/accounts/account/").url.startswith("/accounts/login/")
    assert client.get("/accounts/password/").url.startswith("/accounts/login/")


def test_the_account_page_shows_who_and_leads_to_a_new_password(alice):
    page = browser(alice).get("/accounts/account/").content.decode()
    assert "Logged in as <strong>alice</strong>" in page
    assert 'href="/accounts/password/"' in page and 'action="/accounts/logout/"' in page


def test_an_email_address_is_set_with_the_current_password(alice):
    client = browser(alice)
    wrong = client.post("/accounts/account/", {"email": "alice@example.com", "password": "nope"})
    assert wrong.status_code == 200 and "That is not your current password." in wrong.content.decode()
    alice.refresh_from_db()
    assert alice.email == ""
    right = client.post("/accounts/account/", {"email": "alice@EXAMPLE.com", "password": "alice-pass-123"}, follow=True)
    assert "Your email address is saved." in right.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.com", "the domain is normalized"
    assert AuditEntry.objects.filter(actor=alice, action="change email").exists()


def test_registering_may_give_an_email_address(client):
    fields = {"username": "dave", "email": "dave@example.com", "password1": NEW, "password2": NEW}
    assert client.post("/accounts/register/", fields).status_code == 302
    assert get_user_model().objects.get(username="dave").email == "dave@example.com"


# ---- changing it ------------------------------------------------------------------------------


def test_changing_the_password_keeps_this_browser_and_ends_the_others(alice, bob):
    here, there, elsewhere = browser(alice), browser(alice), browser(bob)
    old_key = key_of(here)
    response = here.post(
        "/accounts/password/",
        {"old_password": "alice-pass-123", "new_password1": NEW, "new_password2": NEW},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/accounts/account/"
    assert "Your other browsers have been logged out." in response.content.decode()
    assert logged_in(here), "this browser stays logged in, with a new session"
    assert key_of(here) != old_key and not Session.objects.filter(pk=old_key).exists()
    assert UserSession.objects.filter(user=alice, session_key=key_of(here)).exists(), "so the next change ends it"
    assert not logged_in(there)
    assert logged_in(elsewhere)
    assert logged_in(log_in("alice", NEW)) and not logged_in(log_in("alice", "alice-pass-123"))
    assert AuditEntry.objects.filter(actor=alice, action="change password").exists()


def test_a_wrong_old_password_changes_nothing(alice):
    here, there = browser(alice), browser(alice)
    response = here.post("/accounts/password/", {"old_password": "nope", "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 200 and "incorrectly" in response.content.decode()
    assert logged_in(there) and logged_in(log_in("alice", "alice-pass-123"))


def test_a_weak_new_password_is_refused_by_the_validators(alice):
    weak = {"old_password": "alice-pass-123", "new_password1": "12345", "new_password2": "12345"}
    response = browser(alice).post("/accounts/password/", weak)
    assert "too short" in response.content.decode()


async def test_changing_the_password_closes_the_users_sockets_and_no_one_elses(connect, alice, bob):
    here, there = await database_sync_to_async(browser)(alice), await database_sync_to_async(browser)(alice)
    a_here = await connect(alice, session=key_of(here))
    a_there = await connect(alice, session=key_of(there))
    b = await connect(bob)
    fields = {"old_password": "alice-pass-123", "new_password1": NEW, "new_password2": NEW}
    response = await database_sync_to_async(here.post)("/accounts/password/", fields)
    assert response.status_code == 302
    assert await closed_with(a_there) == CLOSE_SESSION_ENDED
    assert await closed_with(a_here) == CLOSE_SESSION_ENDED, "its session key changed: the page reconnects"
    await still_open(b)
    assert (await connect(alice, session=key_of(there), expect_ok=False))[0] is False
    await still_open(await connect(alice, session=key_of(here)))  # this browser's new session


# ---- reset by email ---------------------------------------------------------------------------


def reset_link(mail) -> str:
    found = re.search(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)", mail.body)
    assert found, mail.body
    return found.group(1)


def test_the_login_page_offers_a_reset(client):
    assert f'href="{RESET}">Forgot password?</a>' in client.get("/accounts/login/").content.decode()


def test_a_reset_link_by_email_sets_a_password_that_logs_in(with_email, mailoutbox):
    there = browser(with_email)
    client = Client()
    response = client.post(RESET, {"email": "alice@example.com"})
    assert response.url == "/accounts/password/reset/sent/"
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["alice@example.com"] and mail.subject == "A new password for your chat account"
    assert "Hello alice" in mail.body and mail.from_email == django_settings.DEFAULT_FROM_EMAIL
    form = client.get(reset_link(mail), follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done.url == "/accounts/password/reset/done/"
    assert "Log in with the new password" in client.get(done.url).content.decode()
    assert logged_in(log_in("alice", NEW)), "the new password logs in"
    assert not logged_in(log_in("alice", "alice-pass-123"))
    assert not logged_in(there), "and every session from before ended"
    assert AuditEntry.objects.filter(actor=with_email, action="reset password").exists()


def test_a_reset_link_works_once(with_email, mailoutbox):
    client = Client()
    client.post(RESET, {"email": "alice@example.com"})
    link = reset_link(mailoutbox[0])
    form = client.get(link, follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    again = Client().get(link, follow=True).content.decode()
    assert "This link does not work" in again and "new_password1" not in again


@pytest.mark.parametrize("link", ["/accounts/password/reset/MQ/abc-def/", "/accounts/password/reset/%00/x/"])
def test_a_forged_reset_link_does_not_work(with_email, client, link):
    assert "This link does not work" in client.get(link, follow=True).content.decode()


def test_the_reset_answer_is_the_same_for_known_and_unknown_addresses(with_email, bob, mailoutbox):
    bob.email = "bob@example.com"
    bob.is_active = False  # banned: no link either
    bob.save()
    answers = []
    for email in ("alice@example.com", "nobody@example.com", "bob@example.com", "ALICE@example.com"):
        response = Client().post(RESET, {"email": email}, follow=True)
        answers.append((response.redirect_chain, response.status_code, response.content))
    assert answers[0] == answers[1] == answers[2] == answers[3]
    assert [mail.to for mail in mailoutbox] == [["alice@example.com"], ["alice@example.com"]]


@pytest.mark.parametrize("email", ["x" * 10_000 + "@example.com", "not an address", "a\x00@example.com", ""])
def test_hostile_reset_addresses_get_the_form_again(client, email, mailoutbox):
    response = client.post(RESET, {"email": email})
    assert response.status_code == 200 and "Send the link" in response.content.decode()
    assert mailoutbox == []


def test_reset_requests_are_limited_alike_for_known_and_unknown_addresses(with_email, settings, mailoutbox):
    settings.CHAT_PASSWORD_RESETS_PER_HOUR = 2
    statuses = [Client().post(RESET, {"email": "alice@example.com"}).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
    from chatsite.ratelimit import limits_reset

    limits_reset()
    statuses = [Client().post(RESET, {"email": f"nobody{i}@example.com"}).status_code for i in range(3)]
    assert statuses == [302, 302, 429], "by client address too"
    assert len(mailoutbox) == 2
