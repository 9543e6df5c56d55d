"""A real Daphne process on the test database, and an HTTP client that logs in like a browser."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class DaphneServer:
    """`python -m daphne` on a free port, sharing the test database through DATABASE_URL."""

    def __init__(self, database_url: str, *, port: int | None = None, extra_env: dict | None = None) -> None:
        self.port = port or free_port()
        self.database_url = database_url
        self.extra_env = extra_env or {}
        self.log = ROOT / "test-results" / f"daphne-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "DaphneServer":
        self.log.parent.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DATABASE_URL": self.database_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            **self.extra_env,
        }
        size = str(16 * 1024 * 1024)
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket-max-message-size",
            size,
            "--websocket-max-frame-size",
            size,
            "chatsite.asgi:application",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Browserish:
    """Just enough of a browser: cookies, CSRF tokens, form posts."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base_url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        _, page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        csrf = token.group(1) if token else self.cookie("csrftoken") or ""  # a page without a form
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": csrf}).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers={"Referer": self.base_url + path})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.geturl()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def register(self, username: str, password: str) -> None:
        status, where = self.post_form(
            "/accounts/register/", {"username": username, "password1": password, "password2": password}
        )
        assert status == 200 and where.rstrip("/") == self.base_url, (status, where[:500])

    def login(self, username: str, password: str) -> None:
        status, where = self.post_form("/accounts/login/", {"username": username, "password": password})
        assert status == 200 and where.rstrip("/") == self.base_url, (status, where[:500])

    @property
    def session_header(self) -> str:
        return f"sessionid={self.cookie('sessionid')}"
