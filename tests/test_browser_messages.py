"""Messages people can fix, take back, answer and react to, in the browser (docs/protocol.md,
"Edit, remove, reply, react"), and the server's rendered text shown safely."""

import os
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import PHONE, badge, conv, retry_now, say, shot, texts

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM from a test that drives a browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chatting(person, **phone):
    """alice and bob, each with the other's chat open."""
    alice = person("alice", **phone)
    bob = person("bob")
    conv(alice, "bob").click()
    conv(bob, "alice").click()
    return alice, bob


def row(page: Page, text: str):
    """The row of the message whose own text (not a quote of it) has `text`."""
    return page.locator("#messages .msg").filter(has=page.locator(".text", has_text=text))


def sent(page: Page, text: str) -> None:
    """Say it and wait for the server's echo."""
    say(page, text)
    expect(page.locator("#messages .msg.pending")).to_have_count(0)


def act(page: Page, text: str, action: str) -> None:
    """Hover the message and press one button of its actions bar (react, reply, edit, remove)."""
    target = row(page, text)
    target.hover()
    target.locator(f".msg-actions .act-{action}").click()


def edit_to(page: Page, new_text: str) -> None:
    page.fill(".editor textarea", new_text)
    page.press(".editor textarea", "Enter")
    expect(page.locator(".editor")).to_have_count(0)


def test_an_edit_shows_the_new_text_and_edited_to_both(person):
    alice, bob = chatting(person)
    sent(alice, "see you at 5")
    act(alice, "see you at 5", "edit")
    expect(alice.locator(".editor textarea")).to_have_value("see you at 5")
    alice.press(".editor textarea", "Escape")  # cancelled: nothing changes
    expect(alice.locator(".editor")).to_have_count(0)
    expect(row(alice, "see you at 5").locator(".edited")).to_have_count(0)

    act(alice, "see you at 5", "edit")
    edit_to(alice, "see you at 6, **sharp**")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["see you at 6, sharp"])
        edited = page.locator("#messages .msg .meta .edited")
        expect(edited).to_have_text("(edited)")
        expect(edited).to_have_attribute("title", re.compile(r"^Edited "))
    expect(bob.locator("#messages .text strong")).to_have_text("sharp")  # the new text's rendering
    shot(bob, "messages-edited")


def test_up_in_an_empty_composer_edits_my_last_message(person):
    alice, bob = chatting(person)
    sent(alice, "first")
    sent(bob, "from bob")
    sent(alice, "secnod")
    alice.focus("#input")
    alice.keyboard.press("ArrowUp")
    expect(alice.locator(".editor textarea")).to_be_focused()
    expect(alice.locator(".editor textarea")).to_have_value("secnod")
    edit_to(alice, "second")
    expect(texts(bob)).to_have_text(["first", "from bob", "second"])
    expect(alice.locator("#input")).to_be_focused()

    alice.fill("#input", "typed")  # not empty: ↑ moves the cursor as usual
    alice.keyboard.press("ArrowUp")
    expect(alice.locator(".editor")).to_have_count(0)
    alice.fill("#input", "")
    alice.keyboard.press("ArrowUp")
    alice.press(".editor textarea", "Enter")  # unchanged: it just closes
    expect(alice.locator(".editor")).to_have_count(0)
    expect(row(alice, "first").locator(".edited")).to_have_count(0)


def test_removing_asks_first_and_the_bubble_goes_for_the_other_at_once(person):
    alice, bob = chatting(person)
    sent(alice, "oops, wrong chat")
    sent(alice, "hello")
    expect(texts(bob)).to_have_count(2)

    target = row(bob, "oops")
    target.hover()
    expect(target.locator(".act-remove")).to_have_count(0)  # not his: he may only report it
    expect(target.locator(".report")).to_have_count(1)

    act(alice, "oops", "remove")
    expect(alice.locator("#confirm-dialog")).to_be_visible()
    alice.click("#confirm-cancel")
    expect(alice.locator("#confirm-dialog")).to_be_hidden()
    expect(texts(bob)).to_have_count(2)

    act(alice, "oops", "remove")
    alice.click("#confirm-ok")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["hello"])


def test_a_group_owner_may_remove_any_message_of_the_group(person):
    alice = person("alice")
    bob = person("bob")
    alice.click("#new-group")
    alice.fill("#group-name", "Team")
    alice.check('#member-choices input[value="bob"]')
    alice.click("#group-create")
    expect(alice.locator("#conv-name")).to_have_text("Team")
    bob.locator('li[data-name="Team"] button').click()
    sent(alice, "welcome")
    sent(bob, "spam spam")
    expect(texts(alice)).to_have_count(2)

    mine = row(bob, "welcome")
    mine.hover()
    expect(mine.locator(".report")).to_be_visible()
    expect(mine.locator(".act-remove")).to_have_count(0)  # a member may not remove the owner's
    act(alice, "spam spam", "remove")
    expect(alice.locator("#confirm-text")).to_contain_text("from bob")
    alice.click("#confirm-ok")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["welcome"])


def test_a_reply_written_offline_goes_out_a_reply_on_reconnect(person, daphne_server):
    alice, bob = chatting(person)
    sent(bob, "are you coming?")
    expect(texts(alice)).to_have_count(1)
    daphne_server.stop()
    expect(alice.locator("#banner button")).to_be_visible()
    act(alice, "are you coming?", "reply")
    say(alice, "yes!")
    pending = alice.locator("#messages .msg.pending")
    expect(pending.locator(".quote-text")).to_have_text("are you coming?")  # from the original held
    daphne_server.start()
    retry_now(alice)
    for page in (alice, bob):
        expect(row(page, "yes!").locator(".quote-text")).to_have_text("are you coming?", timeout=15_000)
    expect(pending).to_have_count(0)


def test_a_reply_quotes_its_original_as_it_is_now(person):
    alice, bob = chatting(person)
    sent(bob, "what time?")
    act(alice, "what time?", "reply")
    expect(alice.locator("#reply-bar")).to_contain_text("Replying to bob: what time?")
    alice.press("#input", "Escape")
    expect(alice.locator("#reply-bar")).to_be_hidden()
    act(alice, "what time?", "reply")
    expect(alice.locator("#input")).to_be_focused()
    sent(alice, "at 6")
    expect(alice.locator("#reply-bar")).to_be_hidden()
    for page in (alice, bob):
        quote = row(page, "at 6").locator(".quote")
        expect(quote.locator(".quote-from")).to_have_text("bob")
        expect(quote.locator(".quote-text")).to_have_text("what time?")

    act(bob, "what time?", "edit")
    edit_to(bob, "what time tomorrow?")
    for page in (alice, bob):  # the quote follows its original
        expect(row(page, "at 6").locator(".quote-text")).to_have_text("what time tomorrow?")

    act(bob, "what time tomorrow?", "remove")
    bob.click("#confirm-ok")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["at 6"])
        expect(row(page, "at 6").locator(".quote")).to_have_text("Original message removed")
    alice.reload()  # as the server tells it
    conv(alice, "bob").click()
    expect(row(alice, "at 6").locator(".quote")).to_have_text("Original message removed")
    shot(alice, "messages-reply-removed")


def store_with_a_reply_to_an_old_message(daphne_server, *, older: int) -> None:
    """bob's "the original", then `older` messages, then alice's reply to it: stored while no
    server runs (a running one would deliver rows that appeared without their events)."""
    from django.contrib.auth import get_user_model

    from messaging.models import Message

    daphne_server.stop()
    users = get_user_model().objects.in_bulk(["alice", "bob"], field_name="username")
    original = Message.objects.create(sender=users["bob"], recipient=users["alice"], text="the original")
    Message.objects.bulk_create(
        Message(sender=users["bob"], recipient=users["alice"], text=f"filler {i}") for i in range(older)
    )
    Message.objects.create(sender=users["alice"], recipient=users["bob"], text="about that", reply_to=original)
    daphne_server.start()


def test_clicking_a_quote_shows_the_original_loading_older_pages(person, daphne_server):
    alice, bob = chatting(person)
    store_with_a_reply_to_an_old_message(daphne_server, older=120)  # more than two pages back
    alice.reload()
    conv(alice, "bob").click()
    expect(row(alice, "about that").locator(".quote-text")).to_have_text("the original")
    original = alice.locator("#messages .msg").filter(
        has=alice.locator(".text", has_text=re.compile(r"^\s*the original\s*$"))
    )
    expect(original).to_have_count(0)  # not loaded: 120 newer messages are

    row(alice, "about that").locator(".quote").click()
    expect(original).to_be_in_viewport()
    expect(original).to_be_focused()


def test_reactions_show_counts_who_and_mine(person):
    alice, bob = chatting(person)
    sent(bob, "pizza tonight?")
    act(alice, "pizza tonight?", "react")
    alice.get_by_role("button", name="React with 👍").click()
    thumbs = {page: row(page, "pizza").locator('.chip[data-react="👍"]') for page in (alice, bob)}
    for page, pressed in ((alice, "true"), (bob, "false")):
        expect(thumbs[page].locator(".chip-count")).to_have_text("1")
        expect(thumbs[page]).to_have_attribute("aria-pressed", pressed)

    thumbs[bob].click()  # his too
    row(bob, "pizza").locator(".chip.add").click()
    bob.get_by_role("button", name="More emoji").click()
    bob.locator(".react-all").get_by_role("button", name="React with 🔥").click()
    act(alice, "pizza tonight?", "react")
    alice.get_by_role("button", name="React with 🎉").click()
    for page in (alice, bob):
        expect(thumbs[page].locator(".chip-count")).to_have_text("2")
        expect(thumbs[page]).to_have_attribute("aria-pressed", "true")
        expect(thumbs[page]).to_have_attribute("title", re.compile(r"^alice, bob reacted"))
        expect(row(page, "pizza").locator(".chip[data-react]")).to_have_count(3)
    expect(bob.locator(".chip.mine")).to_have_count(2)  # 👍 🔥
    shot(bob, "messages-reactions")

    thumbs[alice].click()  # taken back
    for page in (alice, bob):
        expect(thumbs[page].locator(".chip-count")).to_have_text("1")
    expect(thumbs[alice]).to_have_attribute("aria-pressed", "false")


def test_the_actions_work_from_the_keyboard(person):
    alice, bob = chatting(person)
    sent(bob, "keyboard?")
    target = row(alice, "keyboard?")
    target.focus()
    expect(target.locator(".msg-actions")).to_be_visible()
    alice.keyboard.press("Tab")
    expect(alice.get_by_role("button", name="Add a reaction")).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.get_by_role("button", name="React with 👍")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.locator(".react-picker")).to_be_hidden()
    expect(alice.get_by_role("button", name="Add a reaction")).to_be_focused()
    alice.keyboard.press("Tab")
    expect(target.get_by_role("button", name="Reply")).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.locator("#reply-bar")).to_contain_text("Replying to bob")
    for button in target.locator(".msg-actions button").all():
        assert button.get_attribute("aria-label") and button.get_attribute("title")

    sent(alice, "mine can be edited")  # a reply, as the bar was set
    expect(row(alice, "mine can be edited").locator(".quote-text")).to_have_text("keyboard?")
    row(alice, "mine can be edited").hover()
    expect(row(alice, "mine can be edited").locator(".act-edit")).to_be_visible()
    shot(alice, "messages-actions-desktop")


def test_a_long_press_on_a_phone_opens_the_actions_bar_on_screen(person):
    alice, bob = chatting(person, viewport=PHONE, has_touch=True, is_mobile=True)
    sent(bob, "hi")  # a narrow bubble at the left edge
    sent(alice, "ok")  # and one at the right
    for text in ("hi", "ok"):
        target = row(alice, text)
        box = target.locator(".bubble").bounding_box()
        touch = alice.context.new_cdp_session(alice)
        point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
        expect(target).to_have_class(re.compile(r"\bactions-open\b"))
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        bar = target.locator(".msg-actions")
        expect(bar).to_be_visible()
        left, right = bar.evaluate("b => [b.getBoundingClientRect().left, b.getBoundingClientRect().right]")
        assert 0 <= left and right <= PHONE["width"]
        assert alice.evaluate("getSelection().toString()") == ""
    expect(row(alice, "ok").locator(".act-edit")).to_be_visible()
    shot(alice, "messages-actions-phone")
    row(alice, "ok").locator(".act-edit").tap()
    expect(alice.locator(".editor textarea")).to_have_value("ok")
    alice.press(".editor textarea", "Escape")

    act(bob, "hi", "react")  # a phone has no hover: a long press on a chip says who reacted
    bob.get_by_role("button", name="React with 🎉").click()
    chip = row(alice, "hi").locator('.chip[data-react="🎉"]')
    box = chip.bounding_box()
    touch = alice.context.new_cdp_session(alice)
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    expect(alice.locator("#toasts")).to_contain_text("bob reacted with 🎉")
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(chip).to_have_attribute("aria-pressed", "false")  # the release toggled nothing


def test_markdown_arrives_as_a_clickable_link_and_a_code_block(person):
    alice, bob = chatting(person)
    sent(alice, "The **notes** are at https://example.com/notes and:\n```\nfor i in range(3):\n    print(i)\n```")
    sent(bob, "*thanks*, see [the slides](https://example.com/slides) and `x = 1`")
    for page in (alice, bob):
        link = page.locator("#messages .text a", has_text="example.com/notes")
        expect(link).to_have_attribute("href", "https://example.com/notes")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
        expect(page.locator("#messages .text pre code")).to_contain_text("    print(i)")
        expect(page.locator("#messages .text a", has_text="the slides")).to_have_attribute(
            "href", "https://example.com/slides"
        )
        expect(page.locator("#messages .text em")).to_have_text("thanks")
    shot(bob, "messages-markdown")


HOSTILE = [
    '<img src=x onerror="window.pwned=1">',
    "[x](javascript:window.pwned=1)",
    "<script>window.pwned=1</script>",
    "<svg onload=window.pwned=1>",
    '<a href="javascript:window.pwned=1">click</a>',
    "[y](JaVaScRiPt:window.pwned=1) <iframe src=javascript:window.pwned=1></iframe>",
    '<div style="background:url(javascript:window.pwned=1)" onmouseover="window.pwned=1">hover</div>',
]


def test_hostile_texts_render_inert_for_sender_and_receiver(person):
    alice, bob = chatting(person)
    for text in HOSTILE:
        sent(alice, text)
    for page in (alice, bob):
        expect(texts(page)).to_have_count(len(HOSTILE))
        expect(page.locator("#messages .text.rich")).to_have_count(len(HOSTILE))  # the server's Html
        expect(texts(page).first).to_contain_text("<img src=x")  # shown as the text it is
        assert page.locator('#messages a[href^="javascript:" i]').count() == 0
        assert page.locator("#messages .text :is(img, script, svg, iframe, [style], [onmouseover])").count() == 0
        texts(page).last.hover()
        assert page.evaluate("window.pwned") is None


def test_a_change_redraws_its_row_only_and_the_view_stays_still(person, daphne_server):
    from django.contrib.auth import get_user_model

    from messaging.models import Message

    alice, bob = chatting(person)
    daphne_server.stop()  # stored while no server runs, as in store_with_a_reply_to_an_old_message
    users = get_user_model().objects.in_bulk(["alice", "bob"], field_name="username")
    Message.objects.bulk_create(
        Message(sender=users["bob"], recipient=users["alice"], text=f"line {i}") for i in range(80)
    )
    daphne_server.start()
    for page in (alice, bob):
        page.reload()
        conv(page, "alice" if page is bob else "bob").click()
        expect(texts(page)).to_have_count(50)
    # alice reads further up: "line 60" at the top of her view, "line 55" above it, off screen.
    alice.evaluate("""() => {
        const box = document.getElementById("messages");
        const target = [...box.querySelectorAll(".msg")].find((r) => r.textContent.trim().endsWith("line 60"));
        box.scrollTop += target.getBoundingClientRect().top - box.getBoundingClientRect().top;
        for (const r of box.querySelectorAll(".msg")) r.dataset.old = "1";
    }""")
    where = """() => [...document.querySelectorAll("#messages .msg")]
        .find((r) => r.textContent.trim().endsWith("line 60")).getBoundingClientRect().top"""
    before = alice.evaluate(where)

    act(bob, "line 55", "edit")
    edit_to(bob, "line 55, now\nmuch\nlonger\nthan\nit was")
    expect(row(alice, "much")).to_have_count(1)
    assert alice.locator("#messages .msg:not([data-old])").count() == 1  # that row, no other
    assert abs(alice.evaluate(where) - before) < 1
    expect(row(bob, "much")).to_be_in_viewport()  # his own edit does not take him to the end


def test_a_reaction_to_an_old_message_not_loaded_shows_only_once_scrolled_to(person, daphne_server):
    """The change of a message older than the page holds is no new message: no row above a gap,
    no unread badge; scrolled to, the original shows as it is now."""
    alice, bob = chatting(person)
    person("carol")
    store_with_a_reply_to_an_old_message(daphne_server, older=60)  # the original is on the second page
    for page in (alice, bob):
        page.reload()
    conv(alice, "bob").click()
    expect(row(alice, "about that")).to_have_count(1)
    conv(alice, "carol").click()  # the conversation with bob stays loaded, its oldest page not

    conv(bob, "alice").click()
    row(bob, "about that").locator(".quote").click()
    act(bob, "the original", "react")
    bob.get_by_role("button", name="React with 👍").click()
    expect(row(bob, "the original").locator('.chip[data-react="👍"] .chip-count')).to_have_text("1")
    sent(bob, "and one new message")  # after the reaction: once it is here, the reaction was too

    expect(badge(alice, "bob")).to_have_text("1")  # the new message only
    conv(alice, "bob").click()
    expect(row(alice, "and one new message")).to_have_count(1)
    expect(row(alice, "the original")).to_have_count(0)
    row(alice, "about that").locator(".quote").click()
    expect(row(alice, "the original").locator('.chip[data-react="👍"] .chip-count')).to_have_text("1")
