"""Who may join, in headless Chromium against a live Daphne: invite-only sign-up with and
without a link, straight into a group; an owner's links; a password reset from the email the
console backend prints; the banned login; a mute's end in the reader's own time zone.
"""

import os
import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.utils import timezone
from playwright.sync_api import expect

from accounts import actions
from accounts.models import Mute
from groups.models import ChatGroup
from tests.browser import DESKTOP, PASSWORD, TEST_HOOKS, conv, register, shot

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the test's own ORM calls

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW = "another-long-secret-2"


def fresh_page(browser, **context):
    page = browser.new_context(viewport=DESKTOP, **context).new_page()
    page.on("pageerror", lambda error: pytest.fail(f"JavaScript error: {error}"))
    return page


def watched_page(browser):
    """A page under the site's Content-Security-Policy (test hooks on), failing on any error."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(TEST_HOOKS)
    page = context.new_page()
    page.on("pageerror", lambda error: pytest.fail(f"JavaScript error: {error}"))
    page.on("console", lambda m: pytest.fail(m.text) if m.type == "error" and "Content Security" in m.text else None)
    return page


def make_owner(name: str = "alice"):
    """A user the live server can log in (it hashes with Argon2; the tests' own hasher is MD5)."""
    return get_user_model().objects.create(
        username=name, password=make_password(PASSWORD, hasher=Argon2PasswordHasher())
    )


def class_7b(owner) -> ChatGroup:
    group = ChatGroup.objects.create(name="Class 7B", owner=owner)
    group.members.add(owner)
    return group


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def printed_link(server, pattern: str, timeout: float = 10) -> str:
    """The first link matching `pattern` in what the server printed (its console email)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log.read_text(errors="replace"))
        if found:
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} in {server.log}")


@pytest.mark.daphne_env(CHAT_REGISTRATION="invite")
def test_invite_only_sign_up_without_a_link_and_with_one_straight_into_the_group(browser, daphne_server):
    page = watched_page(browser)
    page.goto(daphne_server.url + "/accounts/register/")
    expect(page.locator("h2")).to_have_text("An invite is needed")
    expect(page.locator(".form-errors")).to_contain_text("only create an account here with an invite link")
    expect(page.locator("#id_username")).to_have_count(0)
    shot(page, "register-invite-only", settled=False)

    owner = make_owner()
    invite = actions.invite_create(actor=owner, group=class_7b(owner), valid_for=timedelta(days=7), max_uses=30)
    page.goto(f"{daphne_server.url}/accounts/invite/{invite.token}/")
    expect(page).to_have_url(daphne_server.url + "/accounts/register/")
    expect(page.locator(".invited")).to_contain_text("You are invited to the group Class 7B")
    page.fill("#id_username", "dave")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    shot(page, "register-invited", settled=False)

    page.click("button[type=submit]")
    page.wait_for_url(daphne_server.url + "/")
    expect(page.locator("#placeholder")).to_contain_text("You are in the group Class 7B")
    expect(conv(page, "Class 7B")).to_be_visible()
    conv(page, "Class 7B").click()
    expect(page.locator("#conv-name")).to_have_text("Class 7B")
    expect(page.locator("#conv-sub")).to_contain_text("dave")
    shot(page, "invite-joined-group")
    assert set(ChatGroup.objects.get(name="Class 7B").members.values_list("username", flat=True)) == {"alice", "dave"}


def test_an_owner_makes_a_link_and_someone_with_an_account_joins_with_it(person, browser, daphne_server):
    alice = person("alice")
    class_7b(get_user_model().objects.get(username="alice"))
    alice.reload()
    conv(alice, "Class 7B").click()
    alice.get_by_role("link", name="Invite people").click()  # the owner's, in the group's header
    expect(alice.locator("h2")).to_have_text("Invite links for Class 7B")
    alice.fill("#id_days", "14")
    alice.fill("#id_uses", "25")
    alice.click("text=Make a link")
    expect(alice.locator(".notice")).to_contain_text("A new invite link is ready")
    expect(alice.locator(".invites tbody tr")).to_have_count(1)
    expect(alice.locator(".invites tbody tr")).to_contain_text("0 of 25")
    url = alice.locator(".invite-url").input_value()
    assert re.fullmatch(re.escape(daphne_server.url) + r"/accounts/invite/[A-Za-z0-9_-]{32}/", url), url
    shot(alice, "owner-invite-links", settled=False)

    bob = person("bob")
    bob.goto(url)
    expect(bob.locator("h2")).to_have_text("Join Class 7B")
    bob.click("button.primary")
    bob.wait_for_url(daphne_server.url + "/")
    expect(bob.locator("#placeholder")).to_contain_text("You joined the group Class 7B")
    expect(conv(bob, "Class 7B")).to_be_visible()
    conv(bob, "Class 7B").click()
    expect(bob.locator("#conv-name")).to_have_text("Class 7B")
    expect(bob.get_by_role("link", name="Invite people")).to_be_hidden()  # a member's header has none
    alice.reload()
    expect(alice.locator(".invites tbody tr")).to_contain_text("1 of 25")


def test_a_password_reset_from_the_printed_email_sets_a_password_that_logs_in(person, browser, daphne_server):
    person("erin")
    get_user_model().objects.filter(username="erin").update(email="erin@example.com")
    page = fresh_page(browser)
    log_in(page, daphne_server.url, "erin", "wrong password")
    page.click("text=Forgot password?")
    expect(page.locator("h2")).to_have_text("Forgot your password?")
    page.fill("#id_email", "erin@example.com")
    shot(page, "password-reset-request", settled=False)
    page.click("button[type=submit]")
    expect(page.locator("h2")).to_have_text("Check your email")

    # The console email backend (the default) printed the email to the server's output.
    link = printed_link(daphne_server, re.escape(daphne_server.url) + r"/accounts/password/reset/[^/\s]+/[^/\s]+/")
    page.goto(link)
    expect(page.locator("h2")).to_have_text("Choose a new password")
    page.fill("#id_new_password1", NEW)
    page.fill("#id_new_password2", NEW)
    shot(page, "password-reset-new", settled=False)
    page.click("button[type=submit]")
    expect(page.locator("h2")).to_have_text("Your new password is set")

    log_in(page, daphne_server.url, "erin", NEW)
    page.wait_for_url(daphne_server.url + "/")
    expect(page.locator("#my-name")).to_have_text("erin")


def test_a_banned_user_is_told_so_at_login(person, browser, daphne_server):
    person("frank")
    iago = get_user_model().objects.create_superuser("iago", "iago@example.com", "iago-pass-123")
    actions.user_ban(actor=iago, user=get_user_model().objects.get(username="frank"), reason="spam")
    page = fresh_page(browser)
    log_in(page, daphne_server.url, "frank", PASSWORD)
    expect(page.locator(".form-errors")).to_have_text(
        "This account has been banned by a moderator, so it cannot log in."
    )
    shot(page, "login-banned", settled=False)
    log_in(page, daphne_server.url, "frank", "not the password")
    expect(page.locator(".form-errors")).to_contain_text("correct username and password")


def test_a_muted_user_sees_the_mutes_end_in_their_own_time_zone(browser, daphne_server):
    context = browser.new_context(viewport=DESKTOP, timezone_id="Asia/Tokyo", locale="en-US")
    page = context.new_page()
    page.on("pageerror", lambda error: pytest.fail(f"JavaScript error: {error}"))
    register(page, daphne_server.url, "gina")
    until = (timezone.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    Mute.objects.create(user=get_user_model().objects.get(username="gina"), until=until, reason="flooding")
    context.clear_cookies()
    log_in(page, daphne_server.url, "gina", PASSWORD)
    page.wait_for_url(daphne_server.url + "/")
    stamp = page.locator("#placeholder time")
    local = until.astimezone(ZoneInfo("Asia/Tokyo"))
    expect(stamp).to_contain_text(f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}")
    expect(stamp).not_to_contain_text("UTC")
    expect(stamp).to_have_attribute("title", f"{until:%Y-%m-%d %H:%M} UTC")
    expect(page.locator("#placeholder")).to_contain_text("(flooding)")
    shot(page, "muted-local-time", settled=False)

    make_owner("hank")
    page.reload()
    conv(page, "hank").click()  # a message is refused, and the toast says the end locally too
    page.fill("#input", "hello?")
    page.press("#input", "Enter")
    clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    expect(page.locator("#toasts")).to_contain_text("You are muted until")
    expect(page.locator("#toasts")).to_contain_text(f"{clock}: flooding")
    expect(page.locator("#toasts")).not_to_contain_text("UTC")
