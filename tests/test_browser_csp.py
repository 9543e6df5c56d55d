"""In headless Chromium under the Content-Security-Policy: the chat connects and the admin's
JavaScript runs, and the browser reports no violation anywhere."""

import os

import pytest
from playwright.sync_api import Page, expect

from tests.browser import PASSWORD, register

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # only the DB flush after each test

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watched(browser, problems: list[str]) -> Page:
    page = browser.new_context().new_page()
    # A CSP violation is a console error; a missing resource (the admin has no favicon) is not one.
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page


def test_chat_and_admin_work_under_the_policy_without_violations(browser, daphne_server):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

    problems: list[str] = []
    alice, bob = (watched(browser, problems) for _ in range(2))
    for page, name in ((alice, "alice"), (bob, "bob")):
        register(page, daphne_server.url, name)
    alice.locator('li[data-name="bob"] button').click()
    alice.fill("#input", "hello under CSP")
    alice.press("#input", "Enter")
    bob.locator('li[data-name="alice"] button').click()
    expect(bob.locator("#messages .msg .text")).to_have_text(["hello under CSP"])  # over the WebSocket

    password = make_password(PASSWORD, hasher=Argon2PasswordHasher())  # one the server knows
    get_user_model().objects.create(username="iago", is_staff=True, is_superuser=True, password=password)
    iago = watched(browser, problems)
    iago.goto(daphne_server.url + "/admin/login/")
    iago.fill("#id_username", "iago")
    iago.fill("#id_password", PASSWORD)
    iago.click("input[type=submit]")
    iago.goto(daphne_server.url + "/admin/auth/user/")
    iago.check("#action-toggle")  # the admin's actions.js counts the selection
    expect(iago.locator(".action-counter")).to_contain_text("3 of 3 selected")
    iago.goto(daphne_server.url + "/admin/auth/user/add/")
    expect(iago.locator("#id_username")).to_be_visible()
    assert problems == []


def test_rendered_text_reactions_and_the_message_actions_raise_no_violation(browser, daphne_server):
    problems: list[str] = []
    alice, bob = (watched(browser, problems) for _ in range(2))
    for page, name in ((alice, "alice"), (bob, "bob")):
        register(page, daphne_server.url, name)
    alice.locator('li[data-name="bob"] button').click()
    bob.locator('li[data-name="alice"] button').click()
    alice.fill("#input", "**see** https://example.com and\n```\ncode\n```")
    alice.press("#input", "Enter")
    message = bob.locator("#messages .msg", has_text="code")
    expect(message.locator("pre code")).to_have_text("code")  # the server's Html, inserted
    message.hover()
    message.locator(".act-react").click()  # the picker is placed with element.style
    bob.get_by_role("button", name="More emoji").click()
    bob.get_by_role("button", name="React with 🔥").click()
    expect(alice.locator('.chip[data-react="🔥"]')).to_have_count(1)
    message.hover()
    message.locator(".act-reply").click()
    bob.fill("#input", "ok")
    bob.press("#input", "Enter")
    expect(alice.locator("#messages .quote")).to_have_count(1)
    assert problems == []
