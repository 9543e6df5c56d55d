"""`manage.py check --deploy` is clean in production mode, and the development default stays plain http."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_HTTPS": "true",
    "DJANGO_BEHIND_PROXY": "true",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_SECRET_KEY": "a-long-random-production-key-" + "k3y5" * 10,
}
# Not inherited from the test run: the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE when collected.
NOT_INHERITED = (
    "DJANGO_HTTPS",
    "DJANGO_BEHIND_PROXY",
    "DJANGO_DEBUG",
    "CHAT_HSTS_SECONDS",
    "CHAT_HSTS_PRELOAD",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DATABASE_URL",
)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)


def settings_of(*names: str, **env: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}))"
    )
    result = run(["-c", code], DJANGO_SETTINGS_MODULE="chatsite.settings", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_mode_passes_check_deploy_without_a_warning():
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_the_development_default_is_plain_http():
    found = settings_of(
        "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER"
    )
    assert found == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    assert check_deploy().returncode != 0, "check --deploy does warn about the development default"


def test_the_https_switches_turn_on_what_check_deploy_asks_for():
    found = settings_of(
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
        **PRODUCTION,
        CHAT_HSTS_SECONDS="3600",
    )
    assert found == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_the_limits_come_from_the_environment():
    found = settings_of(
        "AXES_FAILURE_LIMIT",
        "CHAT_REGISTRATIONS_PER_HOUR",
        "CHAT_FAST_WRITE",
        CHAT_LOGIN_FAILURES="7",
        CHAT_REGISTRATIONS_PER_HOUR="3",
        CHAT_FAST_WRITE="false",
    )
    assert found == {"AXES_FAILURE_LIMIT": 7, "CHAT_REGISTRATIONS_PER_HOUR": 3, "CHAT_FAST_WRITE": False}
    minutes = "import django; django.setup(); from django.conf import settings as s; print(s.AXES_COOLOFF_TIME)"
    result = run(["-c", minutes], DJANGO_SETTINGS_MODULE="chatsite.settings", CHAT_LOGIN_LOCKOUT_MINUTES="30")
    assert result.stdout.strip().splitlines()[-1] == "0:30:00"


@pytest.mark.django_db
def test_behind_the_proxy_plain_http_is_redirected_and_https_gets_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain.url.startswith("https://")
    secure = client.get("/accounts/login/", headers={"x-forwarded-proto": "https"})
    assert secure.status_code == 200 and "max-age=3600" in secure.headers["Strict-Transport-Security"]
