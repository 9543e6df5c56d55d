"""Helpers of the browser tests: people on the chat page, and what to look at there."""

import json
import os
import re
from pathlib import Path

from playwright.sync_api import Page, WebSocketRoute, expect

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


class Wire:
    """The page's chat sockets, routed through Playwright so that they fail the way networks do.
    Set up before the page opens its socket (then reload it).

    - `deafen()`: every frame the server sends from now on is lost on the way, while the server
      believes it delivered them (a connection that died without a close frame).
    - `cut()`: the page's side closes; the server's side stays open (the server finds out later),
      and every new socket is refused until `restore()`.
    - `hold(frame_type)`: on the sockets to come, the first frame of that `Type` and all after it
      wait until `release()`.
    Each socket let through is a `Link`; `sent` lists the frames the page sent on it.
    """

    PATH = re.compile(r"/ws/chat/$")

    def __init__(self, page: Page) -> None:
        self.links: list[Link] = []
        self.refusing = False
        self.hold_from: str | None = None
        self.held: list[tuple[Link, str]] | None = None
        page.route_web_socket(self.PATH, self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.refusing:
            ws.close(code=4000, reason="offline")  # a code the client takes as "try again later"
            return
        self.links.append(Link(self, ws))

    @property
    def last(self) -> "Link":
        return self.links[-1]

    def deafen(self) -> None:
        self.last.deaf = True

    def cut(self) -> None:
        self.refusing = True
        self.last.cut = True
        self.last.page.close(code=4000, reason="network gone")

    def restore(self) -> None:
        self.refusing = False

    def hold(self, frame_type: str) -> None:
        self.hold_from = frame_type

    def release(self) -> None:
        held, self.held, self.hold_from = self.held or [], None, None
        for link, message in held:
            link.page.send(message)

    def deliver(self, link: "Link", message: str) -> None:
        if link.deaf or link.cut:
            return  # lost on the way
        if self.held is None and self.hold_from and json.loads(message).get("Type") == self.hold_from:
            self.held = []
        if self.held is not None:
            self.held.append((link, message))
        else:
            link.page.send(message)


class Link:
    """One socket through a Wire: the page's side, the server's, and what the page sent."""

    def __init__(self, wire: Wire, ws: WebSocketRoute) -> None:
        self.page = ws
        self.server = ws.connect_to_server()
        self.deaf = False
        self.cut = False
        self.sent: list[dict] = []
        self.server.on_message(lambda message: wire.deliver(self, message))
        ws.on_message(self._to_server)
        ws.on_close(lambda code, reason: None if self.cut else self.server.close())

    def _to_server(self, message: str) -> None:
        self.sent.append(json.loads(message))
        self.server.send(message)
