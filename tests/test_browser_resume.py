"""The browser client resumes by `Seq`: after any absence the page shows exactly what a fresh load
would, nothing twice, with "Catching up…" while the replay runs (docs/protocol.md, "Reconnecting")."""

import os

import pytest
from playwright.sync_api import expect

from tests.browser import Wire, badge, conv, retry_now, say, shot, texts

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM from a test that drives a browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chatting(person):
    """alice (her socket on a Wire) and bob, each with the other's chat open, three messages in."""
    alice = person("alice")
    bob = person("bob")
    wire = Wire(alice)
    alice.reload()
    conv(alice, "bob").click()
    conv(bob, "alice").click()
    for page, text in ((bob, "one"), (bob, "two"), (alice, "three")):
        say(page, text)
        expect(page.locator("#messages .msg.pending")).to_have_count(0)
    expect(texts(alice)).to_have_text(["one", "two", "three"])
    return alice, bob, wire


def message_id(page, text: str) -> int:
    return int(page.locator("#messages .msg", has_text=text).get_attribute("data-id"))


def bob_sends(bob, *messages: str) -> None:
    for text in messages:
        say(bob, text)
    expect(bob.locator("#messages .msg.pending")).to_have_count(0)  # stored: the server echoed them


def away(alice, bob, wire, *, carol, iago, bob_says: tuple[str, ...]) -> None:
    """alice's connection dies silently; meanwhile bob and carol write to her and a moderator
    removes "two" from her screen. Then her page notices and stays offline. (The actions run here,
    and their events go nowhere: only the database tells alice's page, as a replay must.)"""
    from messaging.actions import message_send, messages_remove
    from messaging.events import collecting

    doomed = message_id(alice, "two")
    wire.deafen()
    bob_sends(bob, *bob_says[:-1])
    collecting(message_send, sender=carol, chat="Private", to="alice", content="hello from carol")
    collecting(messages_remove, actor=iago, message_ids=[doomed], reason="spam")
    wire.cut()
    expect(alice.locator("#banner")).to_contain_text("Connection lost")
    bob_sends(bob, bob_says[-1])
    expect(bob.locator('li[data-name="alice"] .dot')).to_have_class("dot online")  # to the server she is there
    expect(texts(alice)).to_have_text(["one", "two", "three"])  # nothing reached her


def ids_shown(page) -> list[int]:
    return [int(i) for i in page.locator("#messages .msg").evaluate_all("rows => rows.map((r) => r.dataset.id)")]


def test_a_reconnected_page_shows_what_changed_while_away_and_nothing_twice(person, carol, iago):
    alice, bob, wire = chatting(person)
    away(alice, bob, wire, carol=carol, iago=iago, bob_says=("four", "five", "six"))

    wire.hold("Synced")
    wire.restore()
    retry_now(alice)
    banner = alice.locator("#banner")
    expect(banner).to_have_text("Catching up…")
    expect(banner).to_have_attribute("aria-live", "polite")
    final = ["one", "three", "four", "five", "six"]
    expect(texts(alice)).to_have_text(final)  # the replay, applied before its Synced came
    shot(alice, "resume-catching-up")
    wire.release()
    expect(banner).to_be_hidden()

    expect(texts(alice)).to_have_text(final)
    shown = ids_shown(alice)
    assert len(set(shown)) == len(shown) == len(final)
    expect(badge(alice, "carol")).to_have_text("1")  # counted by the State, not again by the replay
    expect(badge(alice, "bob")).to_have_count(0)
    connect = wire.last.sent[0]
    assert connect["Type"] == "Connect" and isinstance(connect["Seq"], int) and "Since" not in connect
    assert not any(frame["Type"] == "Join" for frame in wire.last.sent)  # resumed, not reloaded
    shot(alice, "resume-caught-up")


@pytest.mark.daphne_env(CHAT_REPLAY_MAX="3")
def test_a_page_too_far_behind_loads_its_conversations_again(person, carol, iago):
    alice, bob, wire = chatting(person)
    away(alice, bob, wire, carol=carol, iago=iago, bob_says=("four", "five", "six", "seven"))

    wire.restore()
    retry_now(alice)
    final = ["one", "three", "four", "five", "six", "seven"]
    expect(texts(alice)).to_have_text(final)
    expect(alice.locator("#banner")).to_be_hidden()
    shown = ids_shown(alice)
    assert len(set(shown)) == len(shown) == len(final)
    expect(badge(alice, "carol")).to_have_text("1")
    sent = [frame["Type"] for frame in wire.last.sent]
    assert sent[0] == "Connect" and "Join" in sent  # the server said Reset: the open chat loads again
    assert {"Type": "Join", "Chat": "Private", "To": "bob"} in wire.last.sent
    shot(alice, "resume-reset")
