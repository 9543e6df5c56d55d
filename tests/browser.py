"""Helpers of the browser tests: people on the chat page, and what to look at there."""

import os
from pathlib import Path

from playwright.sync_api import Page, expect

PASSWORD = "a-long-secret-1"
SHOTS = Path(os.environ.get("SCREENSHOTS_DIR", Path(__file__).parent.parent / "test-results" / "screenshots"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 780}

# Run before the page's own scripts. The flag turns on the client's test hooks (`window.chatApp`,
# `window.__chatPings`), which real users never get; the wrapper counts the sockets the page opens.
TEST_HOOKS = """
window.chatTestHooks = true;
window.__sockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.__sockets.push(this); }
};
"""


def register(page: Page, base_url: str, name: str) -> None:
    page.goto(base_url + "/accounts/register/")
    page.fill("#id_username", name)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    expect(page.locator("#my-name")).to_have_text(name)


def shot(page: Page, name: str, *, settled: bool = True) -> None:
    """A screenshot for the README; `settled`: once every message sent has its server echo."""
    if settled:
        expect(page.locator("#messages .msg.pending")).to_have_count(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def conv(page: Page, name: str):
    return page.locator(f'li[data-name="{name}"] button')


def badge(page: Page, name: str):
    return page.locator(f'li[data-name="{name}"] .badge')


def say(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def texts(page: Page):
    return page.locator("#messages .msg .text")


def retry_now(page: Page) -> None:
    """Press "Retry now" if the banner still offers it (the page may have reconnected by itself)."""
    page.evaluate("document.querySelector('#banner:not([hidden]) button')?.click()")
