"""End to end: real people in headless Chromium against a live Daphne.

Run in their own pytest invocation (`make test` does): sync Playwright keeps an event loop
running in the main thread, which Django's async-safety check would otherwise trip over.
"""

import os
import re

import pytest
from playwright.sync_api import expect

from tests.browser import DESKTOP, PASSWORD, PHONE, badge, conv, retry_now, say, shot, texts

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # only the DB flush after each test

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_register_page_shows_clear_errors(page, daphne_server):
    page.goto(daphne_server.url + "/accounts/register/")
    page.fill("#id_username", "dave")
    page.fill("#id_password1", "12345")
    page.fill("#id_password2", "12345")
    page.click("button[type=submit]")
    expect(page.locator(".field .error").first).to_contain_text("too short")
    shot(page, "register-errors")


def test_people_chat_privately_and_in_a_group(person, daphne_server):
    alice = person("alice")
    bob = person("bob")
    expect(alice.locator('li[data-name="bob"] .dot.online')).to_be_visible()
    expect(bob.locator('li[data-name="alice"] .dot.online')).to_be_visible()

    # A private chat; markup in a message is shown as text.
    conv(alice, "bob").click()
    say(alice, "Hi Bob <img src=x onerror=alert(1)>")
    expect(badge(bob, "alice")).to_have_text("1")
    conv(bob, "alice").click()
    expect(texts(bob).last).to_have_text("Hi Bob <img src=x onerror=alert(1)>")
    assert bob.locator("#messages img").count() == 0
    expect(badge(bob, "alice")).to_have_count(0)

    # Emoji from the picker, at the cursor; Shift+Enter makes a new line.
    bob.fill("#input", "party time")
    bob.press("#input", "Home")
    bob.click("#emoji-toggle")
    bob.click('button[aria-label="Insert 🎉"]')
    bob.press("#input", "Shift+Enter")
    bob.press("#input", "Enter")
    expect(texts(alice).last).to_have_text("🎉\nparty time")  # inserted at the cursor, then a new line
    expect(alice.locator("#messages .msg.theirs").last).to_contain_text("bob")

    # A group with a third person.
    carol = person("carol")
    alice.click("#new-group")
    alice.fill("#group-name", "Team 🚀")
    alice.check('#member-choices input[value="bob"]')
    alice.check('#member-choices input[value="carol"]')
    shot(alice, "new-group-dialog")
    alice.click("#group-create")
    expect(alice.locator("#conv-name")).to_have_text("Team 🚀")
    expect(conv(carol, "Team 🚀")).to_be_visible()
    say(alice, "Hello team 👋")

    # Unread badges, cleared in bob's second tab when he reads in the first.
    bob2 = bob.context.new_page()
    bob2.goto(daphne_server.url + "/")
    expect(badge(bob2, "Team 🚀")).to_have_text("1")
    conv(bob, "alice").click()
    expect(badge(bob, "Team 🚀")).to_have_text("1")
    shot(bob, "desktop-unread")
    conv(bob, "Team 🚀").click()
    expect(texts(bob).last).to_have_text("Hello team 👋")
    expect(badge(bob2, "Team 🚀")).to_have_count(0)
    bob2.close()

    conv(carol, "Team 🚀").click()
    expect(texts(carol).last).to_have_text("Hello team 👋")
    say(carol, "Hi all 😀")
    expect(texts(alice).last).to_have_text("Hi all 😀")
    say(bob, "Great to be here ❤️")
    expect(texts(alice).last).to_have_text("Great to be here ❤️")
    shot(alice, "desktop-group")

    # An error from the server becomes a readable notice.
    carol.click("#new-group")
    carol.fill("#group-name", "Team 🚀")
    carol.click("#group-create")
    expect(carol.locator(".toast").last).to_contain_text("already exists")

    # The owner deletes the group, after a confirmation.
    expect(carol.locator("#delete-group")).to_be_hidden()
    alice.once("dialog", lambda dialog: dialog.accept())
    alice.click("#delete-group")
    expect(conv(carol, "Team 🚀")).to_have_count(0)
    expect(carol.locator(".toast").last).to_contain_text("deleted")
    expect(alice.locator("#placeholder")).to_be_visible()


def test_phone_layout_collapses_the_sidebar(person):
    alice = person("alice", viewport=PHONE)
    bob = person("bob")
    conv(bob, "alice").click()
    say(bob, "Hi from the desktop 💻")
    expect(badge(alice, "bob")).to_have_text("1")
    shot(alice, "phone-list")
    conv(alice, "bob").click()
    expect(alice.locator(".sidebar")).to_be_hidden()
    expect(texts(alice).last).to_have_text("Hi from the desktop 💻")
    say(alice, "Hi from my phone 📱")
    shot(alice, "phone-conversation")
    alice.click("#back")
    expect(alice.locator(".sidebar")).to_be_visible()


def test_reconnect_after_restart_loses_and_duplicates_nothing(person, daphne_server):
    alice = person("alice")
    bob = person("bob")
    conv(alice, "bob").click()
    conv(bob, "alice").click()
    say(alice, "before the restart")
    expect(texts(bob).last).to_have_text("before the restart")

    daphne_server.stop()
    expect(alice.locator("#banner")).to_be_visible()
    expect(bob.locator("#banner")).to_be_visible()
    # bob writes while offline: shown as pending, sent on reconnect
    say(bob, "sent during the outage")
    expect(bob.locator("#messages .msg.pending")).to_have_count(1)
    shot(bob, "desktop-offline", settled=False)  # the pending message is the point
    alice.context.set_offline(True)  # alice stays away while bob's message is stored

    daphne_server.start()
    retry_now(bob)
    expect(bob.locator("#banner")).to_be_hidden(timeout=15_000)
    expect(bob.locator("#messages .msg.pending")).to_have_count(0)
    alice.context.set_offline(False)
    retry_now(alice)
    expect(alice.locator("#banner")).to_be_hidden(timeout=15_000)
    expect(texts(alice).filter(has_text="sent during the outage")).to_have_count(1)
    expect(texts(bob).filter(has_text="sent during the outage")).to_have_count(1)


def test_scrolling_up_loads_older_messages_with_day_separators(person):
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from messaging.models import Message

    alice = person("alice")
    person("bob").context.close()
    users = get_user_model().objects.in_bulk(["alice", "bob"], field_name="username")
    Message.objects.bulk_create(
        Message(sender=users["bob"], recipient=users["alice"], text=f"old message {i}") for i in range(120)
    )
    Message.objects.filter(text__in=[f"old message {i}" for i in range(60)]).update(
        created=timezone.now() - timedelta(days=3)
    )
    conv(alice, "bob").click()
    expect(texts(alice).last).to_have_text("old message 119")
    expect(texts(alice)).to_have_count(50)
    for expected in (100, 120):
        alice.locator("#messages").evaluate("box => { box.scrollTop = 0; box.dispatchEvent(new Event('scroll')); }")
        expect(texts(alice)).to_have_count(expected)
    expect(texts(alice).first).to_have_text("old message 0")
    expect(alice.locator("#messages .older.start")).to_be_visible()
    expect(alice.locator("#messages .day")).to_have_count(2)


def test_sound_and_title_call_attention_and_mute_is_remembered(person, daphne_server):
    alice = person("alice")
    bob = person("bob")
    conv(bob, "alice").click()
    say(bob, "ping 1")
    expect(badge(alice, "bob")).to_have_text("1")
    assert alice.evaluate("window.__chatPings") == 1
    expect(alice).to_have_title("💬 bob")
    alice.click("#mute")
    expect(alice.locator("#mute")).to_have_attribute("aria-pressed", "true")
    alice.reload()
    expect(alice.locator("#mute")).to_have_attribute("aria-pressed", "true")
    expect(badge(alice, "bob")).to_have_text("1")  # from the server's Unread
    expect(alice).to_have_title("(1) Chat")


def test_an_image_sent_by_the_attach_button_arrives_as_a_thumbnail(person, tmp_path):
    from PIL import Image as Pil
    from PIL import ImageDraw

    path = tmp_path / "sunset.png"
    sunset = Pil.new("RGB", (640, 400))
    draw = ImageDraw.Draw(sunset)
    for y in range(400):
        draw.line([(0, y), (640, y)], fill=(250 - y // 4, 120 + y // 5, 90 + y // 3))
    draw.ellipse([250, 200, 390, 340], fill=(255, 210, 80))
    draw.rectangle([0, 300, 640, 400], fill=(40, 60, 110))
    sunset.save(path)
    alice = person("alice")
    bob = person("bob")
    conv(alice, "bob").click()
    conv(bob, "alice").click()
    with alice.expect_file_chooser() as chooser:
        alice.click("#attach")
    chooser.value.set_files(str(path))
    expect(alice.locator("#attachment-img")).to_be_visible()
    alice.click("#attachment-send")
    thumb = bob.locator("#messages .msg.theirs img")
    expect(thumb).to_have_attribute("src", re.compile(r"^/images/\d+/thumb/$"))
    bob.wait_for_function("document.querySelector('#messages .msg.theirs img').naturalWidth > 0")
    assert bob.evaluate("document.querySelector('#messages .msg.theirs img').naturalWidth") == 320
    full = thumb.get_attribute("src").removesuffix("thumb/")
    expect(alice.locator("#messages .msg.mine img")).to_have_attribute("src", full + "thumb/")
    shot(bob, "desktop-image")
    thumb.click()
    expect(bob.locator("#lightbox img")).to_have_attribute("src", full)
    bob.wait_for_function("document.querySelector('#lightbox img').naturalWidth === 640")


def test_a_report_and_a_moderators_removal_reach_the_browser(person, browser, daphne_server):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

    from messaging.models import Message, Report

    alice = person("alice")
    bob = person("bob")
    conv(alice, "bob").click()
    conv(bob, "alice").click()
    say(alice, "buy cheap watches")
    say(alice, "sorry, wrong chat")
    expect(texts(bob)).to_have_count(2)
    bob.once("dialog", lambda dialog: dialog.accept("spam"))
    bob.locator("#messages .msg.theirs").first.hover()
    bob.locator("#messages .msg.theirs .report").first.click()
    expect(bob.locator(".toast").last).to_contain_text("moderators")
    report = Report.objects.get()
    assert (report.reason, report.message_text) == ("spam", "buy cheap watches")

    # iago, a moderator, removes it in the admin; it vanishes from both open chats.
    get_user_model().objects.create(
        username="iago",
        is_staff=True,
        is_superuser=True,
        password=make_password(PASSWORD, hasher=Argon2PasswordHasher()),
    )
    iago = browser.new_context(viewport=DESKTOP).new_page()
    iago.goto(daphne_server.url + "/admin/login/")
    iago.fill("#id_username", "iago")
    iago.fill("#id_password", PASSWORD)
    iago.click("input[type=submit]")
    iago.goto(daphne_server.url + "/admin/messaging/report/")
    expect(iago.locator("#result_list")).to_contain_text("buy cheap watches")
    shot(iago, "admin-reports")
    iago.check(f'input[name=_selected_action][value="{report.pk}"]')
    iago.select_option("select[name=action]", "remove_reported")
    iago.click("button[title='Run the selected action']")
    iago.fill("#id_reason", "spam")
    iago.click("input[value=Confirm]")
    expect(iago.locator(".messagelist")).to_contain_text("done for 1")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["sorry, wrong chat"])
    assert Message.objects.count() == 1
    iago.context.close()


def test_a_dropped_photo_over_the_limit_is_scaled_down_in_the_browser(person):
    alice = person("alice")
    bob = person("bob")
    conv(alice, "bob").click()
    size = alice.evaluate(
        """async () => {
            // A noisy 1600x1200 PNG (over 5 MB: noise does not compress), dropped on the conversation.
            const canvas = document.createElement("canvas");
            canvas.width = 1600; canvas.height = 1200;
            const ctx = canvas.getContext("2d");
            const pixels = ctx.createImageData(1600, 1200);
            const random = new Uint32Array(pixels.data.buffer);
            for (let i = 0; i < random.length; i += 16384) crypto.getRandomValues(random.subarray(i, i + 16384));
            for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255;
            ctx.putImageData(pixels, 0, 0);
            const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
            const dt = new DataTransfer();
            dt.items.add(new File([blob], "noise.png", { type: "image/png" }));
            const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
            document.getElementById("conversation").dispatchEvent(drop);
            return blob.size;
        }"""
    )
    assert size > 5_000_000
    expect(alice.locator("#attachment-name")).to_contain_text("scaled down to", timeout=15_000)
    alice.click("#attachment-send")
    conv(bob, "alice").click()
    expect(bob.locator("#messages .msg.theirs img")).to_have_count(1, timeout=15_000)
    bob.wait_for_function("document.querySelector('#messages .msg.theirs img').naturalWidth > 0")
