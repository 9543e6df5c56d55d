"""The services of a chaos run (bench/chaos.py): a private Redis, a fresh PostgreSQL database,
two Daphne processes, and the users, groups and sessions they serve.

Every process is started here and stopped here by its own pid; every wait is bounded.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.live import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = "/usr/bin/redis-server"
PG_HOST, PG_PORT = "127.0.0.1", 5432
WS_MAX = str(16 * 1024 * 1024)
MODERATORS = ["chaos-mod-1", "chaos-mod-2"]
# Limits that protect real users from floods would refuse the run's own traffic (and its resends).
UNLIMITED = {
    "CHAT_RATE_PER_SECOND": "100000",
    "CHAT_RATE_BURST": "100000",
    "CHAT_USER_RATE_PER_SECOND": "100000",
    "CHAT_USER_RATE_BURST": "100000",
    "CHAT_GROUP_MOVES_PER_HOUR": "100000",
    "CHAT_GROUP_CREATES_PER_HOUR": "100000",
    # Every SIGKILL leaves the killed process's presence rows behind; they count against this.
    "CHAT_MAX_SOCKETS_PER_USER": "100000",
}


def stop_process(process: subprocess.Popen | None, timeout: float = 5) -> None:
    """Terminate, then kill, one process we started; bounded."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def kill_process(process: subprocess.Popen | None) -> None:
    """SIGKILL: no goodbye to clients, no cleanup of presence rows."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(timeout=10)


class Service:
    """A process this run started (`process`), killed or stopped by its pid."""

    process: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        kill_process(self.process)

    def stop(self) -> None:
        stop_process(self.process)


class Redis(Service):
    """A redis-server of our own on a free port, without persistence: a restart forgets everything."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=10)

    def __str__(self) -> str:
        return f"redis-server on port {self.port}"


class Daphne(Service):
    """One chat server process on a fixed port (a restart comes back on the same one)."""

    def __init__(self, label: str, env: dict[str, str], logdir: Path) -> None:
        self.label, self.env, self.logdir = label, env, logdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        command += ["--websocket-max-message-size", WS_MAX, "--websocket-max-frame-size", WS_MAX]
        command += ["chatsite.asgi:application"]
        with open(self.logdir / f"daphne-{self.label}.log", "ab") as log:
            log.write(f"\n==== start {self.starts + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        wait_for_port(self.port, timeout=30)

    def __str__(self) -> str:
        return f"Daphne {self.label} on port {self.port}"


# ---- the database ---------------------------------------------------------------------------


def database_url(name: str) -> str:
    return f"postgres://postgres@{PG_HOST}:{PG_PORT}/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def database_create(name: str) -> None:
    """A fresh database: the last run's (if any) is dropped first."""
    database_drop(name)
    _admin(f'CREATE DATABASE "{name}"')


def database_drop(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: our own lingering connections


def server_env(db_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONPATH": str(ROOT),
            **UNLIMITED,
        }
    )
    return env


def migrate(env: dict[str, str]) -> None:
    command = [sys.executable, "manage.py", "migrate", "--noinput", "-v0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=300)


class Tally(logging.Handler):
    """Counts this process's warnings and errors by logger (a publish that failed, say)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] += 1


def django_setup(env: dict[str, str], logfile: Path) -> Tally:
    """Django in this process, on the run's database and Redis; its log goes to `logfile`."""
    for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", *UNLIMITED):
        os.environ[key] = env[key]
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    root, tally = logging.getLogger(), Tally()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.FileHandler(logfile))
    root.addHandler(tally)
    return tally


# ---- people, groups, sessions -----------------------------------------------------------------


@dataclass
class Cast:
    """Who takes part: usernames, their sessions, the groups and their first members."""

    users: list[str]
    sessions: dict[str, str]
    moderators: list[str]
    groups: dict[str, str]  # group name -> owner
    members: dict[str, set[str]] = field(default_factory=dict)  # group name -> usernames


def seed(*, users: int, groups: int, rng: random.Random) -> Cast:
    """Users (no usable password: they log in by session only), moderators (staff in the
    Moderators group, which holds `accounts.moderate`), groups with random members, and one
    session per user made the way a login makes it."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from groups.actions import group_create

    User = get_user_model()
    names = [f"chaos-{i:02d}" for i in range(users)]
    people = {name: User.objects.create_user(username=name, password=None) for name in names}
    moderators = Group.objects.get(name="Moderators")
    for name in MODERATORS:
        User.objects.create_user(username=name, password=None, is_staff=True).groups.add(moderators)
    cast = Cast(users=names, sessions={}, moderators=list(MODERATORS), groups={})
    for index in range(groups):
        name, owner = f"room {index}", names[index % len(names)]
        members = {owner, *rng.sample(names, k=max(2, len(names) // 2))}
        group_create(owner=people[owner], name=name, member_usernames=sorted(members - {owner}))
        cast.groups[name], cast.members[name] = owner, members
    cast.sessions = {name: session_for(user) for name, user in people.items()}
    return cast


def session_for(user) -> str:
    """A session key for `user`, as logging in makes one (Django's test client `force_login`)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
