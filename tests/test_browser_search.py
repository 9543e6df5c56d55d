"""Message search in the browser (docs/protocol.md, "Search"): the results panel with the words
marked, what an outsider finds, and a click that opens the conversation at that message, loaded
around it when it is older than the newest page."""

import os
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import PHONE, conv, shot, texts

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM from a test that drives a browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def store_messages(daphne_server, *, group: list[tuple[str, str]], private: list[tuple[str, str, str]]) -> None:
    """The group "Class" (alice owns it, bob is a member; carol is not), with `group` as
    (sender, text), and `private` as (sender, recipient, text): stored while no server runs
    (a running one would deliver rows that appeared without their events)."""
    from django.contrib.auth import get_user_model

    from groups.actions import group_create
    from messaging.models import Message

    daphne_server.stop()
    users = get_user_model().objects.in_bulk(["alice", "bob", "carol"], field_name="username")
    chat = group_create(owner=users["alice"], name="Class", member_usernames=["bob"])
    Message.objects.bulk_create(Message(sender=users[who], group=chat, text=text) for who, text in group)
    Message.objects.bulk_create(Message(sender=users[who], recipient=users[to], text=text) for who, to, text in private)
    daphne_server.start()


def search(page: Page, query: str, *, here: bool = False) -> None:
    """Open the search panel (from the sidebar, or the open conversation's header) and search."""
    page.click("#conv-search" if here else "#open-search")
    expect(page.locator("#msg-query")).to_be_focused()
    page.fill("#msg-query", query)
    page.press("#msg-query", "Enter")


def results(page: Page):
    return page.locator("#search-results .result")


def message_row(page: Page, text: str):
    return page.locator("#messages .msg").filter(has=page.locator(".text", has_text=re.compile(rf"^\s*{text}\s*$")))


def test_a_search_finds_group_and_private_messages_with_the_words_marked(person, daphne_server):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    store_messages(
        daphne_server,
        group=[("alice", "When is the EXAM? <b>not bold</b>"), ("bob", "lunch at noon"), ("bob", "Exams are hard")],
        private=[("alice", "bob", "my exam notes, exam tips"), ("carol", "alice", "an exam for carol")],
    )
    for page in (alice, bob, carol):
        page.reload()  # connected again to the restarted server
    search(bob, "exam")
    found = results(bob)
    expect(found).to_have_count(3)  # newest first; nothing of carol's private chat
    expect(found.locator(".result-name")).to_have_text(["alice", "Class", "Class"])
    expect(found.locator(".result-from")).to_have_text(["alice", "You", "alice"])
    expect(found.nth(0).locator("mark")).to_have_text(["exam", "exam"])
    expect(found.nth(1).locator("mark")).to_have_text(["Exam"])
    expect(found.nth(2).locator(".result-text")).to_have_text("When is the EXAM? <b>not bold</b>")  # text, not HTML
    expect(found.nth(2).locator("mark")).to_have_text(["EXAM"])
    expect(found.nth(2).locator("b")).to_have_count(0)
    expect(bob.locator("#search-status")).to_have_text("3 messages found")
    expect(bob.locator("#search-more")).to_be_hidden()
    shot(bob, "search-results")

    search(bob, "exam tips")  # every word must be there
    expect(results(bob)).to_have_count(1)
    expect(results(bob).locator("mark")).to_have_text(["exam", "exam", "tips"])

    bob.press("#msg-query", "Escape")
    expect(bob.locator("#search-panel")).to_be_hidden()
    expect(bob.locator("#open-search")).to_be_focused()

    search(carol, "exam")  # not in the group: only her own private message
    expect(results(carol)).to_have_count(1)
    expect(results(carol).locator(".result-name")).to_have_text("alice")
    search(carol, "hard")
    expect(carol.locator("#search-status")).to_have_text("No messages found")
    expect(results(carol)).to_have_count(0)
    carol.click("#search-close")
    expect(carol.locator("#search-panel")).to_be_hidden()

    conv(alice, "Class").click()  # only the open conversation
    search(alice, "exam", here=True)
    expect(alice.locator("#msg-scope")).to_have_value("open")
    expect(alice.locator("#msg-scope-open")).to_have_text("In “Class”")
    expect(results(alice).locator(".result-name")).to_have_text(["Class", "Class"])


def test_clicking_an_old_result_opens_its_conversation_around_it(person, daphne_server):
    person("alice")
    bob = person("bob", viewport=PHONE, has_touch=True, is_mobile=True)
    person("carol")
    fillers = [("alice", f"filler {i}") for i in range(120)]  # more than two pages newer than it
    store_messages(daphne_server, group=[("alice", "the exam is on friday"), *fillers], private=[])
    bob.reload()
    conv(bob, "Class").click()
    expect(texts(bob)).to_have_count(50)  # the newest page: the result is not in it
    bob.click("#back")

    search(bob, "friday")
    expect(results(bob)).to_have_count(1)
    shot(bob, "search-results-phone")
    results(bob).click()
    expect(bob.locator("#search-panel")).to_be_hidden()
    target = message_row(bob, "the exam is on friday")
    expect(target).to_be_in_viewport()
    expect(target).to_be_focused()
    expect(texts(bob)).to_have_count(25)  # the page around it: it and the 24 after it
    expect(message_row(bob, "filler 119")).to_have_count(0)
    expect(bob.locator("#latest")).to_be_visible()
    shot(bob, "search-landed-phone")
    expect(bob.locator("#messages .older")).to_have_text("This is the beginning of the conversation.")

    bob.evaluate("() => { const box = document.getElementById('messages'); box.scrollTop = box.scrollHeight; }")
    expect(message_row(bob, "filler 73")).to_have_count(1)  # scrolled down: the page after it
    expect(texts(bob)).to_have_count(75)

    bob.click("#latest")
    expect(message_row(bob, "filler 119")).to_be_in_viewport()
    expect(bob.locator("#latest")).to_be_hidden()
    expect(texts(bob)).to_have_count(50)
    expect(message_row(bob, "the exam is on friday")).to_have_count(0)

    bob.click("#back")
    bob.click("#open-search")  # the way back: the results are still there
    expect(results(bob)).to_have_count(1)
    expect(bob.locator("#msg-query")).to_have_value("friday")


def test_a_result_already_held_is_shown_without_loading(person, daphne_server):
    alice = person("alice")
    person("bob")
    store_messages(daphne_server, group=[("bob", "see the slides")], private=[("bob", "alice", "slides here")])
    alice.reload()
    conv(alice, "Class").click()
    expect(texts(alice)).to_have_text(["see the slides"])
    search(alice, "slides")
    expect(results(alice)).to_have_count(2)
    results(alice).filter(has_text="Class").click()
    expect(message_row(alice, "see the slides")).to_be_focused()
    expect(alice.locator("#latest")).to_be_hidden()
    search(alice, "slides")
    results(alice).filter(has_text="here").click()  # the private chat, not loaded yet: around it
    expect(alice.locator("#conv-name")).to_have_text("bob")
    expect(message_row(alice, "slides here")).to_be_focused()
    expect(alice.locator("#latest")).to_be_hidden()  # nothing newer


def test_load_more_shows_the_next_page(person, daphne_server):
    alice = person("alice")
    person("bob")
    person("carol")
    store_messages(daphne_server, group=[], private=[("bob", "alice", f"note {i}") for i in range(60)])
    alice.reload()
    search(alice, "note")
    expect(results(alice)).to_have_count(50)  # a page, newest first
    expect(results(alice).first.locator(".result-text")).to_have_text("note 59")
    expect(alice.locator("#search-status")).to_have_text("50+ messages found")
    alice.click("#search-more")
    expect(results(alice)).to_have_count(60)
    expect(results(alice).last.locator(".result-text")).to_have_text("note 0")
    expect(alice.locator("#search-more")).to_be_hidden()
    expect(alice.locator("#search-status")).to_have_text("60 messages found")
