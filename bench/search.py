"""Search latency over 1,000,000 stored messages, on SQLite and PostgreSQL (`make bench` step S).

`python -m bench.search` runs it alone; `--messages 100000` for a smaller corpus, `--only sqlite`.
Each database is built once and kept (SQLite: bench/results/search-<n>.sqlite3; PostgreSQL: the
database BENCH_SEARCH_DATABASE, default `search_bench`, at 127.0.0.1:5432 as user postgres),
so only the first run pays for it. Building: `migrate`, 1,000 users and 50 groups of 40 through
the ORM, then the messages in bulk (SQLite `executemany`, PostgreSQL `COPY`) with the index left
out, then the index made once (FTS5 `rebuild`, `CREATE INDEX`).

The messages: 80 % in the groups, 20 % private between random pairs; 3 to 20 words each from
a Zipf-like mix of 200 common English words and 20,000 made-up ones; the rare word `zebracorn`
in 1 message of 20,000. Measured: `messaging.search.message_search`, the selector `Search`
calls, in the process (no socket), for `student` (a member of 5 groups, about 80,000 messages
she may read, and her private ones) and `outsider` (no group, no private message: every match
is one she may not read, the bound CHAT_SEARCH_SCAN at work). Each query runs REPEAT times, the
first page and pages at random `Before`s, after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_DATABASE = os.environ.get("BENCH_SEARCH_DATABASE", "search_bench")
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
MESSAGES = 1_000_000
USERS, GROUPS, GROUP_SIZE = 1000, 50, 40
RARE = "zebracorn"
QUERIES = {"rare word": RARE, "common word": "the", "two words": "exam tomorrow", "3-letter substring": "omo"}
REPEAT = 40
TARGET_P95_MS = 50.0
COMMON = (
    "the be to of and a in that have I it for not on with he as you do at this but his by from they we say her"
    " she or an will my one all would there their what so up out if about who get which go me when make can"
    " like time no just him know take people into year your good some could them see other than then now look"
    " only come its over think also back after use two how our work first well way even new want because any"
    " these give day most us is are was were been has had did said exam tomorrow class homework test friday"
    " monday meeting lunch today tonight later sorry thanks ok yes lol please week room notes lecture question"
    " answer help late early paper page chapter group project deadline grade teacher school bus train home"
    " call phone text send read write open close start finish next last again still here where why very much"
    " really right sure maybe thing things place great nice cool fine love hate game play music movie book"
).split()


def _corpus(count: int, seed: int = 7):
    """(sender, recipient or None, group or None, text) rows, reproducibly."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    made_up = ["".join(rng.choices(letters, k=rng.randint(4, 9))) for _ in range(20_000)]
    vocab = COMMON + made_up
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(COMMON))] + [0.001] * len(made_up)
    cum = list(_accumulate(weights))
    lengths = rng.choices(range(3, 21), k=count)
    words = iter(rng.choices(vocab, cum_weights=cum, k=sum(lengths)))
    for index, length in enumerate(lengths):
        text = " ".join(next(words) for _ in range(length))
        if index % 20_000 == 7:
            text += " " + RARE
        if rng.random() < 0.8:
            group = rng.randrange(GROUPS)
            yield _group_start(group) + rng.randrange(GROUP_SIZE), None, group, text
        else:  # between two people, never `outsider` (user 1)
            yield rng.randrange(2, USERS), 0 if rng.random() < 0.002 else rng.randrange(2, USERS), None, text


def _group_start(group: int) -> int:
    """Group n's members are the users from this one on (after `student` and `outsider`)."""
    return 2 + group * 17 % (USERS - GROUP_SIZE - 2)


def _accumulate(values):
    total = 0.0
    for value in values:
        total += value
        yield total


# ---- inside Django, on one database ---------------------------------------------------------


def _people() -> None:
    """Users, groups and memberships through the ORM. User 0 is `student` (groups 0-4), user 1
    `outsider`; every group's members are a run of 40 users."""
    from django.contrib.auth import get_user_model

    from chatsite.names import name_key
    from groups.models import ChatGroup, Membership

    User = get_user_model()
    names = ["student", "outsider"] + [f"user{n:04d}" for n in range(2, USERS)]
    User.objects.bulk_create([User(username=name, password="!") for name in names])
    users = {user.username: user.pk for user in User.objects.all()}
    ids = [users[name] for name in names]
    groups = ChatGroup.objects.bulk_create(
        [ChatGroup(name=f"group {n}", name_key=name_key(f"group {n}"), owner_id=ids[2]) for n in range(GROUPS)]
    )
    members = set()
    for n, group in enumerate(groups):
        members |= {(group.pk, ids[_group_start(n) + k]) for k in range(GROUP_SIZE)}
        if n < 5:
            members.add((group.pk, ids[0]))
    Membership.objects.bulk_create([Membership(chatgroup_id=g, user_id=u) for g, u in sorted(members)])


def _rows(count: int):
    """The corpus with database ids; the ids are read now, not while a COPY holds the connection."""
    from django.contrib.auth import get_user_model

    from groups.models import ChatGroup

    users = list(get_user_model().objects.order_by("pk").values_list("pk", flat=True))
    groups = list(ChatGroup.objects.order_by("pk").values_list("pk", flat=True))
    return (
        (
            users[sender],
            None if recipient is None else users[recipient],
            None if group is None else groups[group],
            text,
            seq,
        )
        for seq, (sender, recipient, group, text) in enumerate(_corpus(count), start=1)
    )


def _build(count: int) -> float:
    """Fill an empty, migrated database: the messages in bulk without the index, then the index."""
    from django.db import connection, transaction

    from messaging.search_index import index_ensure

    started = time.monotonic()
    with transaction.atomic():  # one transaction: SQLite would commit each row on its own
        _load(count)
    loaded = time.monotonic()
    print(f"[search] {count:,} messages stored in {loaded - started:.0f} s; indexing", flush=True)
    index_ensure(connection)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE messaging_message")
    print(f"[search] indexed in {time.monotonic() - loaded:.0f} s", flush=True)
    return time.monotonic() - started


def _load(count: int) -> None:
    from django.db import connection

    from messaging.search_index import index_drop

    _people()
    index_drop(connection)
    columns = "sender_id, recipient_id, group_id, text, html, is_image, created, seq"
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.executemany(
                f"INSERT INTO messaging_message ({columns}) VALUES (%s, %s, %s, %s, '', 0, '2026-12-01 10:00:00', %s)",
                _rows(count),
            )
        else:
            created = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
            rows = _rows(count)
            with cursor.cursor.copy(f"COPY messaging_message ({columns}) FROM STDIN") as copy:
                for sender, recipient, group, text, seq in rows:
                    copy.write_row((sender, recipient, group, text, "", False, created, seq))
            cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("UPDATE messaging_seqcounter SET value = %s", [count])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _measure(repeat: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db.models import Max

    from messaging.models import Message
    from messaging.search import message_search

    rng = random.Random(3)
    top = Message.objects.aggregate(top=Max("id"))["top"]
    figures: dict[str, Any] = {}
    for username in ("student", "outsider"):
        user = get_user_model().objects.get(username=username)
        for label, query in QUERIES.items():
            message_search(user=user, query=query)  # warm-up
            times, found = [], 0
            for run in range(repeat):
                before = None if run % 2 == 0 else rng.randrange(top // 10, top)
                started = time.perf_counter()
                page = message_search(user=user, query=query, before=before)
                times.append((time.perf_counter() - started) * 1000)
                found += len(page.messages)
            figures[f"{username}: {label}"] = {
                "query": query,
                "p50_ms": statistics.median(times),
                "p95_ms": _percentile(times, 0.95),
                "results_per_page": found / repeat,
            }
    return figures


def worker(count: int, repeat: int) -> dict[str, Any]:
    """In a process whose DATABASE_URL is the bench database: build it if empty, then measure."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from messaging.models import Message

    call_command("migrate", verbosity=0, interactive=False)
    stored = Message.objects.count()
    built = None
    if stored == 0:
        built = _build(count)
    elif stored != count:
        raise SystemExit(f"the bench database holds {stored:,} messages, not {count:,}: delete it first")
    return {"vendor": connection.vendor, "messages": count, "build_s": built, "queries": _measure(repeat)}


# ---- the driver ------------------------------------------------------------------------------


def _pg_ready(count: int) -> str:
    """The bench database's URL; a database of the wrong size is dropped and made again."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as server:
        exists = server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone()
        if exists:
            with psycopg.connect(f"{PG_SERVER}/{PG_DATABASE}", connect_timeout=5) as bench:
                table = bench.execute("SELECT to_regclass('messaging_message')").fetchone()[0]
                rows = bench.execute("SELECT count(*) FROM messaging_message").fetchone()[0] if table else -1
            if rows == count:
                return f"{PG_SERVER}/{PG_DATABASE}"
            server.execute(f'DROP DATABASE "{PG_DATABASE}"')
        server.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    return f"{PG_SERVER}/{PG_DATABASE}"


def _sqlite_ready(count: int) -> str:
    """The cached file's URL; one of the wrong size (or half built) is deleted first."""
    path = RESULTS / f"search-{count}.sqlite3"
    if path.exists():
        with sqlite3.connect(path) as db:
            try:
                rows = db.execute("SELECT count(*) FROM messaging_message").fetchone()[0]
            except sqlite3.Error:
                rows = -1
        if rows != count:
            for stale in RESULTS.glob(f"{path.name}*"):
                stale.unlink()
    return f"sqlite:///{path}"


def measure(count: int = MESSAGES, repeat: int = REPEAT, only: str = "sqlite,postgresql") -> dict[str, Any]:
    """Each database in its own process (settings read DATABASE_URL once); at most 5 minutes each."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for vendor in only.split(","):
        try:
            url = _sqlite_ready(count) if vendor == "sqlite" else _pg_ready(count)
            env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
            env["PYTHONPATH"] = str(ROOT)
            command = [sys.executable, "-m", "bench.search", "--worker", "--messages", str(count)]
            done = subprocess.run(
                [*command, "--repeat", str(repeat)], cwd=ROOT, env=env, timeout=300, capture_output=True, text=True
            )
            sys.stderr.write(done.stderr)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
            lines = done.stdout.strip().splitlines()
            print("\n".join(lines[:-1]), flush=True)
            results[vendor] = json.loads(lines[-1])
        except Exception as error:  # one database failing leaves the other's figures
            results[vendor] = {"error": f"{type(error).__name__}: {error}"}
    return results


def rows(search: dict[str, Any]) -> list[list[str]]:
    """Rows for bench.run's table."""
    out = []
    for vendor, figures in search.items():
        name = "SQLite" if vendor == "sqlite" else "PostgreSQL"
        if "error" in figures:
            out.append(["S", f"search on {name}", "failed: " + figures["error"][:50], "", ""])
            continue
        out.append(["S", f"search on {name}, {figures['messages']:,} messages", "p50 / p95 ms", "", ""])
        for label, q in figures["queries"].items():
            target = f"p95 <= {TARGET_P95_MS:.0f}" if vendor == "sqlite" else ""
            met = ("yes" if q["p95_ms"] <= TARGET_P95_MS else "NO") if target else ""
            value = f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}  ({q['results_per_page']:.0f} a page)"
            out.append(["S", f"  {label} ({q['query']!r})", value, target, met])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--only", default="sqlite,postgresql", help="sqlite, postgresql, or both (comma)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.messages, args.repeat)))
        return
    results = measure(args.messages, args.repeat, args.only)
    for row in rows(results):
        print(f"{row[1]:52} {row[2]:34} {row[3]:10} {row[4]}")


if __name__ == "__main__":
    main()
