"""`make chaos`: many clients, two server processes, faults all along; then does every client
hold exactly what a fresh load shows? (issue 13; bench/README.md, "Chaos test (`make chaos`)")

Set-up: a private redis-server on a free port (no persistence: a restart forgets everything), a
fresh PostgreSQL database (`--database`, dropped at the end), `manage.py migrate`, users,
moderators (staff in the Moderators group), a few groups with members, one session per user
made as a login makes it, and two Daphne processes on that database and Redis.

The model. Each client (bench/chaos_client.py) is one socket: some users have two. It sends
`Connect`, holds every message it is sent by `Id` (with its `Seq`), drops removed ones and
remembers them, and on any disconnect reconnects to either process with its cursor: against a
server whose `State` carries `Seq`, `Connect {"Seq": <last Synced>}`; against one without,
`Connect {"Since": <highest Id seen>}`. A `Reset` drops what it holds and loads it again with
`Join` (`History`). Sends carry a unique `ClientId` and stay pending until their echo comes
back; every reconnect resends them with the same `ClientId`.

The faults (bench/chaos_run.py), all through the run: sockets cut without a close frame (the
TCP transport aborted), a server process SIGKILLed and started again (alternating, several
times), Redis killed and started again on its port, moderators removing random acknowledged
messages (`messaging.actions.messages_remove` in this process, published through Redis), and
users leaving and joining groups over the protocol.

The end: faults and sends stop, every service is up, and the run waits (bounded) until no send
is pending and every client has caught up (its `Synced` cursor at the database's last `Seq`, or
without `Seq` its highest `Id` at the newest message its user may read). Then the clients close
and the database is read straight (bench/chaos_check.py). The columns:

  sent           logical sends (distinct `ClientId`s)
  stored         of those, how many the database stored (removed ones included)
  lost           stored messages that a socket should hold and does not (with the number of
                 (socket, message) pairs). "Should hold": a private message its user sent or
                 received, or a message of a group its user is a member of at the end; changed
                 after the socket's first `State` (`Seq` above that State's `Seq`; without `Seq`,
                 `Id` above its `LastId`) and after its user last joined the group (`Seq` above the
                 membership's `Seq`; without, created after the join was confirmed). Removed
                 messages are not to be held.
  duplicated     a logical send stored twice, or a socket holding two copies of one
  never stored   sends that never reached the database (refused, or still pending at the end)
  leaked         message frames a socket got that its user may not read: a private message
                 between two others, or a group message of a group its user was never a
                 member of during the run
  stale          messages a socket still holds that were removed, in a conversation a fresh
                 load shows its user (a group it left is not shown, and no `Removed` reaches it)

Exit status 0 when lost, duplicated, never stored, leaked and stale are all 0; 1 otherwise;
2 when the run itself failed. Everything it started is stopped, and its database dropped,
whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from bench import chaos_services as services
from bench.chaos_check import Truth, compare, truth_load
from bench.chaos_run import Config, Run

FAILURES = ["lost", "duplicated", "never stored", "leaked", "stale"]
FAULTS = ["drops", "kills", "redis", "removals", "moves"]


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=150, help="how long the faults run (default 150)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100, help="messages a second, all clients together")
    parser.add_argument("--quick", action="store_true", help="the ~30 s CI version")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"which faults to inject, comma-separated (default all: {','.join(FAULTS)}); 'none' for none",
    )
    parser.add_argument("--json", type=Path, help="write the figures there")
    parser.add_argument("--database", default="chaos", help="PostgreSQL database to create and drop")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and Redis logs to this directory")
    args = parser.parse_args(argv)
    seconds = 25 if args.quick and args.seconds == 150 else args.seconds
    chosen = set() if args.faults == "none" else set(args.faults.split(","))
    if chosen - set(FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(chosen - set(FAULTS)))}")
    config = Config(
        seconds=seconds,
        users=args.users,
        rate=args.rate,
        seed=args.seed,
        double=max(1, args.users * 2 // 5),
        kills=max(2, round(seconds / 25)) if "kills" in chosen else 0,
        redis_restarts=max(1, round(seconds / 60)) if "redis" in chosen else 0,
        faults=chosen,
        settle_timeout=30 if args.quick else 60,
    )
    return config, args


# ---- the run ----------------------------------------------------------------------------------


async def chaos(config: Config, cast: services.Cast, servers: list, redis: services.Redis) -> dict[str, Any]:
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    moderators = await database_sync_to_async(lambda: list(get_user_model().objects.filter(is_staff=True)))()
    run = Run(config, cast, servers, redis, moderators)
    clients = [asyncio.create_task(c.run()) for c in run.clients]
    watch = asyncio.create_task(run.watch_stalls())
    try:
        if not await run.wait_for(lambda: all(c.ready for c in run.clients), 30):
            raise RuntimeError("not every client got its first State within 30 s")
        print(f"[chaos] {len(run.clients)} sockets connected; faults for {config.seconds:g} s", flush=True)
        started = time.monotonic()
        await faults(run)
        faulted = time.monotonic() - started
        settled = await settle(run)
    finally:
        await close_clients(run, clients + [watch])
    truth = await database_sync_to_async(truth_load)()
    figures = compare(run, truth)
    return {"run": run, "figures": figures, "settle": settled, "fault_s": round(faulted, 1), "stall_s": run.stall}


async def faults(run: Run) -> None:
    """Sends and every fault, for `seconds`; then everything is up again."""
    config = run.config
    periodic = {
        "drops": (config.drop_every, run.drop_one),
        "removals": (config.remove_every, run.remove_some),
        "moves": (config.move_every, run.move_one),
    }
    activities = [run.send_loop(), run.outages()]
    activities += [
        run.every(every, guarded(run, name, act)) for name, (every, act) in periodic.items() if name in config.faults
    ]
    tasks = [asyncio.create_task(a) for a in activities]
    await asyncio.wait(tasks, timeout=config.seconds, return_when=asyncio.FIRST_EXCEPTION)
    run.stopping.set()
    _, late = await asyncio.wait(tasks, timeout=30)
    for task in late:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()
    for service in (run.redis, *run.servers):
        await run.revive(service)


def guarded(run: Run, name: str, action):
    """A fault that fails (the database busy, say) is counted, and the run goes on."""

    async def attempt() -> None:
        try:
            await action()
        except Exception:  # noqa: BLE001 - counted in the report
            run.faults[f"{name} failed"] += 1

    return attempt


async def settle(run: Run) -> dict[str, Any]:
    """Wait (bounded) for every send to be acknowledged, then for every client to catch up with
    the database; again while the database still changes (a late resend being stored)."""
    from channels.db import database_sync_to_async

    started = time.monotonic()
    deadline = started + run.config.settle_timeout
    acked = await run.wait_for(lambda: run.pending_sends() == 0, run.config.settle_timeout / 2)
    truth, before = None, None
    while time.monotonic() < deadline:
        truth = await database_sync_to_async(truth_load)()
        now = (truth.seq, len(truth.live), max(truth.live, default=0))
        if now == before and not behind(run, truth):
            break
        before = now
        await run.wait_for(partial(lambda t: not behind(run, t), truth), max(0.0, deadline - time.monotonic()))
    return {
        "seconds": round(time.monotonic() - started, 1),
        "all sends acknowledged": acked,
        "sockets behind at the end": behind(run, truth) if truth else [c.name for c in run.clients],
        "sends unacknowledged at the end": unacknowledged(run, truth),
    }


def unacknowledged(run: Run, truth: Truth | None) -> list[dict[str, Any]]:
    """Sends whose echo never came back to their socket (stored or not), for the report."""
    stored = {r.client_id: r.id for r in truth.live.values()} if truth else {}
    now = time.time()
    return [
        {
            "socket": c.name,
            "ClientId": o.client_id,
            "attempts": o.attempts,
            "age_s": round(now - o.created, 1),
            "stored as": stored.get(o.client_id),
        }
        for c in run.clients
        for o in c.pending.values()
    ]


def behind(run: Run, truth: Truth) -> list[str]:
    """Sockets that have not caught up with `truth`: `Synced` below its last `Seq`, or (without
    `Seq`) highest `Id` seen below the newest message their user may read; with their cursor."""
    late = []
    for c in run.clients:
        target = truth.last_id.get(c.username, 0)
        if not c.caught_up(seq=truth.seq, last_id=target):
            cursor, goal = (c.cursor_seq, truth.seq) if c.seq_mode else (c.cursor_id, target)
            late.append(f"{c.name} at {cursor} of {goal}" + ("" if c.ready else " (not connected)"))
    return late


async def close_clients(run: Run, tasks: list[asyncio.Task]) -> None:
    run.stopping.set()
    for client in run.clients:
        client.stopping = True
    await asyncio.wait([asyncio.create_task(c.stop()) for c in run.clients], timeout=10)
    _, late = await asyncio.wait(tasks, timeout=10)
    for task in late:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)


# ---- the report -----------------------------------------------------------------------------


def summary(result: dict[str, Any], config: Config, elapsed: float) -> dict[str, Any]:
    run: Run = result["run"]
    modes = {c.seq_mode for c in run.clients}
    stats: dict[str, int] = {}
    for client in run.clients:
        for key, value in client.stats.items():
            stats[key] = stats.get(key, 0) + value
    faults = dict(run.faults)
    faults["reconnects"] = stats["connects"] - len(run.clients)
    return {
        "config": config.__dict__,
        "mode": "Seq" if modes == {True} else "Since" if modes == {False} else "mixed",
        "sockets": len(run.clients),
        "figures": result["figures"],
        "faults": faults,
        "errors": dict(run.errors),
        "chaos process warnings": result["log"],
        "clients": stats,
        "settle": result["settle"],
        "fault_seconds": result["fault_s"],
        "stall_s": round(result["stall_s"], 2),
        "slowest acknowledgements": slowest(run),
        "total_seconds": round(elapsed, 1),
        "commit": _commit(),
    }


def slowest(run: Run) -> list[dict[str, Any]]:
    """The sends whose echo took longest to come back (to read a run's figures with)."""
    acked = sorted((o for o in run.outgoing.values() if o.acked_at), key=lambda o: o.created - o.acked_at)
    return [{"ClientId": o.client_id, "s": round(o.acked_at - o.created, 2), "attempts": o.attempts} for o in acked[:5]]


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=services.ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def print_report(report: dict[str, Any]) -> None:
    figures, faults, config = report["figures"], report["faults"], report["config"]
    print(
        f"\n[chaos] {config['users']} users, {report['sockets']} sockets, 2 Daphne processes, PostgreSQL, Redis; "
        f"{report['fault_seconds']} s of faults at {config['rate']:g} msg/s; resume by {report['mode']}"
    )
    print("[chaos] faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    if report["errors"]:
        print("[chaos] error frames: " + ", ".join(f"{k} {v}" for k, v in sorted(report["errors"].items())))
    if report["chaos process warnings"]:
        logged = report["chaos process warnings"].items()
        print("[chaos] logged here (removals' events): " + ", ".join(f"{k} {v}" for k, v in sorted(logged)))
    rows = [
        ("sent (distinct ClientIds)", figures["sent"]),
        ("stored", figures["stored"]),
        ("lost", f"{figures['lost']} ({figures['lost (socket, message) pairs']} socket-message pairs)"),
        ("duplicated", figures["duplicated"]),
        ("never stored", _never(figures)),
        ("leaked", figures["leaked"]),
        ("stale", figures["stale"]),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'column'.ljust(width)}  value\n{'-' * width}  -----")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:,}" if isinstance(value, int) else f"{name.ljust(width)}  {value}")
    for kind, examples in figures["samples"].items():
        for example in examples:
            print(f"[chaos] {kind}: {example}")
    settle = report["settle"]
    behind, unacked = settle["sockets behind at the end"], settle["sends unacknowledged at the end"]
    print(
        f"\n[chaos] settled in {settle['seconds']} s; sockets behind at the end: {len(behind)} {behind[:5]}; "
        f"sends unacknowledged: {len(unacked)} {unacked[:3]}; longest event-loop stall {report['stall_s']} s"
    )
    verdict = "FAIL: " + ", ".join(k for k in FAILURES if figures[k]) if failed(report) else "OK: 0 in every column"
    print(f"[chaos] {verdict} ({report['total_seconds']} s in all)")


def _never(figures: dict[str, Any]) -> str:
    refused = ", ".join(f"{k} {v}" for k, v in figures["never stored: refused"].items())
    detail = f"still pending {figures['never stored: still pending']}" + (f"; refused: {refused}" if refused else "")
    return f"{figures['never stored']} ({detail})" if figures["never stored"] else "0"


def failed(report: dict[str, Any]) -> bool:
    return any(report["figures"][k] for k in FAILURES)


# ---- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds the clean-up below
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if args.keep_logs:
            stack.callback(_copy_logs, workdir, args.keep_logs)
        result = setup_and_run(stack, config, args.database, workdir)
    report = summary(result, config, time.monotonic() - started)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 1 if failed(report) else 0


def setup_and_run(stack: ExitStack, config: Config, database: str, workdir: Path) -> dict[str, Any]:
    import random

    print(f"[chaos] PostgreSQL database {database!r}, Redis and logs in {workdir}", flush=True)
    services.database_create(database)
    stack.callback(services.database_drop, database)
    redis = services.Redis(workdir)
    stack.callback(redis.stop)
    redis.start()
    env = services.server_env(services.database_url(database), redis.url)
    services.migrate(env)
    tally = services.django_setup(env, workdir / "chaos.log")
    cast = services.seed(users=config.users, groups=config.groups, rng=random.Random(config.seed))
    servers = [services.Daphne(label, env, workdir) for label in ("1", "2")]
    for server in servers:
        stack.callback(server.stop)
        server.start()
    timeout = config.seconds + 2 * config.settle_timeout + 120
    result = asyncio.run(asyncio.wait_for(chaos(config, cast, servers, redis), timeout))
    return {**result, "log": dict(tally.counts)}


def _copy_logs(workdir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in workdir.glob("*.log"):
        shutil.copy(path, target / path.name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the run failed: say why, status 2
        traceback.print_exc()
        print("[chaos] the run failed", file=sys.stderr)
        sys.exit(2)
