"""`make bench`: start the server as it is, run the reference workloads, print and save the figures.

Steps: a fresh SQLite database under bench/results/ (`manage.py migrate`), users and one
100-member group written straight through the ORM (one precomputed password hash: hashing a
thousand passwords would take minutes), every user logged in once over HTTP, then

  A  one Daphne pinned to core 0, the load generator pinned to core 1: 100 sockets in one group,
     10 senders; fixed 1,000 and 10,000 deliveries/s, then as fast as the server goes;
  B  the same single pinned server: 1,000 idle sockets (RSS per socket, connect time), then two
     users chatting privately beside them;
  C  two Daphne processes over Redis, one pinned to each core, the load generator unpinned
     (2 cores cannot give three processes a core each); the max-rate run of A, sockets split.

Before all that, in this process (about a second): R, the cost of rendering a message's text to
HTML (bench/render.py), which the server pays once per message stored or edited; then S, search
latency over 1,000,000 messages on SQLite and PostgreSQL (bench/search.py, in processes of its own;
its databases are built once, in about 2 minutes, and kept).

Every server is killed at the end whatever happens. Figures go to bench/results/results.json,
latency histograms to bench/results/latency-*.png; a table is printed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import render as render_bench
from bench import search as search_bench
from tests.live import free_port, wait_for_port  # the same helpers the live-server tests use

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DB_PATH = RESULTS / "bench.sqlite3"
SESSIONS = RESULTS / "sessions.json"
PASSWORD = "bench-Passw0rd-7431"
PREFIX = "bench"
CHATTERS = ["chatter-a", "chatter-b"]
GROUP = "bench room"
WS_MAX = str(16 * 1024 * 1024)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

TARGETS = {"A_max": 60_000, "A_p99_1000": 10.0, "A_p99_10000": 50.0, "B_rss": 30.0, "C_ratio": 1.7}


@dataclass
class Config:
    """What to run and how long; `--quick` shrinks everything for a smoke run."""

    members: int = 100
    senders: int = 10
    idle: int = 1000
    window: float = 10.0
    warmup: float = 2.0
    workloads: str = "SABC"
    pin: bool = field(default_factory=lambda: shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2)


# ---- the database -------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """The server's environment: the bench database, loopback hosts, the rate limit out of the way."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DATABASE_URL": f"sqlite:///{DB_PATH}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CHAT_RATE_PER_SECOND": "100000",
            "CHAT_RATE_BURST": "100000",
            # The load's senders send far faster than any person: no flood limit per user either.
            "CHAT_USER_RATE_PER_SECOND": "100000",
            "CHAT_USER_RATE_BURST": "100000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def fresh_database() -> None:
    """Delete the last run's database, migrate a new one, and set Django up in this process."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for pattern in ("bench.sqlite3*", "latency-*.png", "loadgen-*.json", "daphne-*.log", "*.json"):
        for path in RESULTS.glob(pattern):  # nothing of an earlier run may pass for this one's
            path.unlink()
    env = base_env()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=180
    )
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "ALLOWED_HOSTS")})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed_users(config: Config) -> list[str]:
    """Users with one shared, precomputed password hash, and the group of the first `members`."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from groups.models import ChatGroup

    User = get_user_model()
    hashed = make_password(PASSWORD)
    names = [f"{PREFIX}{i:04d}" for i in range(max(config.idle, config.members))] + CHATTERS
    User.objects.bulk_create([User(username=name, password=hashed) for name in names], batch_size=500)
    users = list(User.objects.filter(username__startswith=PREFIX).order_by("username")[: config.members])
    group = ChatGroup.objects.create(name=GROUP, owner=users[0])
    group.members.add(*users)
    connection.close()
    return names


def reset_presence() -> None:
    """Drop connection rows a killed server left behind, as `make run` does (clear_presence)."""
    from django.db import connection

    from messaging.actions import presence_reset

    presence_reset()
    connection.close()


# ---- servers and the load generator ------------------------------------------------------------


def pinned(cpus: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


class Server:
    """One Daphne process as `make run` starts it, optionally pinned to CPUs; stopped for sure."""

    def __init__(self, cpus: str | None, env: dict[str, str], label: str) -> None:
        self.port, self.cpus, self.env, self.label = free_port(), cpus, env, label
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid  # taskset execs the command: the same pid

    def __enter__(self) -> "Server":
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket-max-message-size",
            WS_MAX,
            "--websocket-max-frame-size",
            WS_MAX,
            "chatsite.asgi:application",
        ]
        with open(RESULTS / f"daphne-{self.label}.log", "wb") as log:
            self.process = subprocess.Popen(
                pinned(self.cpus, command), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, timeout=30)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()  # 1,000 sockets closing one by one is not worth waiting for
            self.process.wait(timeout=10)


def loadgen(command: str, servers: list[Server], cpus: str | None, timeout: float, *args: str) -> dict[str, Any]:
    """Run bench.loadgen in its own process (its own core) and return the JSON it wrote."""
    out = RESULTS / f"loadgen-{command}-{'-'.join(s.label for s in servers)}.json"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        command,
        "--out",
        str(out),
        "--sessions",
        str(SESSIONS),
        "--urls",
        ",".join(s.url for s in servers),
        "--pids",
        ",".join(str(s.pid) for s in servers),
        *args,
    ]
    subprocess.run(pinned(cpus, argv), cwd=ROOT, env=base_env(), check=True, timeout=timeout)
    return json.loads(out.read_text())


# ---- the workloads -----------------------------------------------------------------------------


def login_everyone(names: list[str]) -> dict[str, Any]:
    """Log every user in once over HTTP. Set-up, not measured: two unpinned servers share the hashing."""
    env = base_env()
    with Server(None, env, "login-1") as one, Server(None, env, "login-2") as two:
        return loadgen(
            "login", [one, two], None, 600, "--users", ",".join(names), "--password", PASSWORD, "--concurrency", "4"
        )


def fanout_args(config: Config, label: str, phases: str) -> list[str]:
    return [
        "--label",
        label,
        "--members",
        str(config.members),
        "--senders",
        str(config.senders),
        "--group",
        GROUP,
        "--user-prefix",
        PREFIX,
        "--phases",
        phases,
        "--window",
        str(config.window),
        "--warmup",
        str(config.warmup),
    ]


def workload_a(config: Config) -> dict[str, Any]:
    reset_presence()
    server_cpu, client_cpu = ("0", "1") if config.pin else (None, None)
    with Server(server_cpu, base_env(), "A") as server:
        return loadgen("fanout", [server], client_cpu, 240, *fanout_args(config, "A", "1000,10000,max"))


def workload_b(config: Config) -> dict[str, Any]:
    reset_presence()
    server_cpu, client_cpu = ("0", "1") if config.pin else (None, None)
    with Server(server_cpu, base_env(), "B") as server:
        return loadgen(
            "idle",
            [server],
            client_cpu,
            300,
            "--idle",
            str(config.idle),
            "--user-prefix",
            PREFIX,
            "--chatters",
            ",".join(CHATTERS),
        )


def workload_c(config: Config) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()  # a database number of the bench's own (BENCH_REDIS_URL)
    redis_pid = str(client.info("server")["process_id"])
    reset_presence()
    env = {**base_env(), "REDIS_URL": REDIS_URL}
    cpus = ("0", "1") if config.pin else (None, None)
    with Server(cpus[0], env, "C1") as one, Server(cpus[1], env, "C2") as two:
        return loadgen("fanout", [one, two], None, 180, *fanout_args(config, "C", "max"), "--redis-pid", redis_pid)


# ---- the report ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def rows_a(a: dict) -> list[list[str]]:
    phases = a["phases"]
    top = phases["max"]
    rows = [
        [
            "A",
            "max deliveries/s (1 process)",
            fmt(top["deliveries_per_s"], 0),
            ">= 60,000",
            met(top["deliveries_per_s"] >= TARGETS["A_max"]),
        ],
        ["A", "  latency at max p50/p95/p99 ms", _pcts(top), "", ""],
        ["A", "  CPU at max: server / loadgen / other %", _cpu(top), "", ""],
    ]
    for rate, key in (("1000", "A_p99_1000"), ("10000", "A_p99_10000")):
        rows += _paced_rows("A", f"{int(rate):,}", phases[rate], TARGETS[key])
    return rows


def _cpu(phase: dict) -> str:
    """% of one core: the server(s), the load generator, everything else on the machine."""
    servers = " + ".join(f"{v:.0f}" for v in phase["server_cpu_pct"])
    if "redis_cpu_pct" in phase:
        servers += f" + Redis {phase['redis_cpu_pct']:.0f}"
    return f"{servers} / {phase['loadgen_cpu_pct']:.0f} / {phase['other_cpu_pct']:.0f}"


def _pcts(phase: dict) -> str:
    return f"{fmt(phase['p50_ms'], 2)} / {fmt(phase['p95_ms'], 2)} / {fmt(phase['p99_ms'], 2)}"


def _paced_rows(workload: str, label: str, phase: dict, p99_target: float) -> list[list[str]]:
    reached = phase["reached"]
    rate_note = "" if reached else "  RATE NOT REACHED"
    ok = reached and phase["p99_ms"] is not None and phase["p99_ms"] <= p99_target
    return [
        [
            workload,
            f"at {label}/s: achieved deliveries/s",
            fmt(phase["deliveries_per_s"], 0) + rate_note,
            label,
            met(reached),
        ],
        [workload, f"at {label}/s: p50/p95/p99 ms", _pcts(phase), f"p99 <= {p99_target:g}", met(ok)],
    ]


def rows_b(b: dict) -> list[list[str]]:
    connect, chat = b["connect"], b["chat"]
    return [
        [
            "B",
            "RSS per idle socket KiB",
            fmt(b["rss_per_socket_kib"]),
            "<= 30",
            met(b["rss_per_socket_kib"] <= TARGETS["B_rss"]),
        ],
        [
            "B",
            "  RSS before / after MiB",
            f"{b['rss_before_kib']['VmRSS'] / 1024:.1f} / {b['rss_after_kib']['VmRSS'] / 1024:.1f}",
            "",
            "",
        ],
        [
            "B",
            f"connect {connect['requested']:,} sockets: opened / s",
            f"{connect['sockets']:,} / {fmt(connect['total_s'])}" + _gave_up(connect),
            "",
            "",
        ],
        [
            "B",
            "  handshake p50/p99 ms",
            f"{fmt(connect['handshake']['p50_ms'])} / {fmt(connect['handshake']['p99_ms'])}",
            "",
            "",
        ],
        [
            "B",
            "  handshake to State p50/p99 ms",
            f"{fmt(connect['until_state']['p50_ms'])} / {fmt(connect['until_state']['p99_ms'])}",
            "",
            "",
        ],
        [
            "B",
            "  presence frames / settle s",
            f"{b['presence_frames']:,} / {b['settle_after_connect_s']}" + ("" if b["settled"] else "  (STILL BUSY)"),
            "",
            "",
        ],
        ["B", "  server CPU while connecting %", _cpu(connect["cpu"]), "", ""],
        ["B", "chat (2 users, 20 msg/s) p50/p99 ms", f"{fmt(chat['p50_ms'], 2)} / {fmt(chat['p99_ms'], 2)}", "", ""],
        [
            "B",
            "  chat deliveries lost",
            f"{chat['lost_deliveries']} of {chat['window_messages'] * 2}",
            "0",
            met(chat["lost_deliveries"] == 0),
        ],
    ]


def _gave_up(connect: dict) -> str:
    notes = [f"{connect['failed']} FAILED"] if connect["failed"] else []
    notes += ["TIMED OUT"] if connect["timed_out"] else []
    return f"  ({', '.join(notes)})" if notes else ""


def per_cpu_second(phase: dict) -> float:
    """Deliveries per second of server CPU: throughput with the core starvation taken out."""
    return phase["deliveries_per_s"] / max(sum(phase["server_cpu_pct"]) / 100, 1e-9)


def rows_c(c: dict, a: dict | None) -> list[list[str]]:
    top = c["phases"]["max"]
    a_top = a["phases"]["max"] if a else None
    ratio = top["deliveries_per_s"] / a_top["deliveries_per_s"] if a_top else None
    # What 2 processes would give if each had a whole core (the load generator and Redis share them here).
    projected = len(top["server_cpu_pct"]) * per_cpu_second(top) / a_top["deliveries_per_s"] if a_top else None
    return [
        ["C", "max deliveries/s (2 processes, Redis)", fmt(top["deliveries_per_s"], 0), "", ""],
        ["C", "  latency at max p50/p95/p99 ms", _pcts(top), "", ""],
        ["C", "  CPU: servers / loadgen / other %", _cpu(top), "", ""],
        [
            "C",
            "ratio to A (1 process)",
            fmt(ratio, 2),
            ">= 1.7",
            met(None if ratio is None else ratio >= TARGETS["C_ratio"]),
        ],
        [
            "C",
            "  deliveries per server CPU-s: A / C",
            f"{fmt(per_cpu_second(a_top), 0) if a_top else 'n/a'} / {fmt(per_cpu_second(top), 0)}",
            "",
            "",
        ],
        ["C", "  ratio if each server had a full core", fmt(projected, 2), "", ""],
    ]


def table(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for key, build in (("R", render_bench.rows), ("S", search_bench.rows), ("A", rows_a), ("B", rows_b)):
        if isinstance(results.get(key), dict) and "error" not in results[key]:
            rows += build(results[key])
        elif key in results:
            rows.append([key, "failed", str(results[key].get("error"))[:60], "", ""])
    if isinstance(results.get("C"), dict) and "error" not in results["C"]:
        a = results.get("A") if isinstance(results.get("A"), dict) and "phases" in results["A"] else None
        rows += rows_c(results["C"], a)
    elif "C" in results:
        rows.append(["C", "failed", str(results["C"].get("error"))[:60], "", ""])
    return rows


def noise_warnings(results: dict[str, Any]) -> list[str]:
    """Measured windows in which other processes took a real share of the server's core(s)."""
    pinned = results["meta"]["pinned"]
    windows = [
        (f"{key} {name}", phase)
        for key in ("A", "C")
        for name, phase in ((results.get(key) or {}).get("phases") or {}).items()
    ]
    b = results.get("B") or {}
    windows += [("B connect", (b.get("connect") or {}).get("cpu") or {}), ("B chat", b.get("chat") or {})]
    warnings = []
    for label, window in windows:
        if not window.get("core_busy_pct"):
            continue
        if pinned and not label.startswith("C"):  # server alone on core 0 (the load generator is on 1)
            stolen = window["core_busy_pct"][0] - window["server_cpu_pct"][0]
        else:
            stolen = window["other_cpu_pct"]
        if stolen > 15:
            warnings.append(f"{label}: other processes used {stolen:.0f}% of a core beside the server")
    return warnings


def print_table(rows: list[list[str]]) -> None:
    header = ["workload", "metric", "value", "target", "met?"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = lambda r: "  ".join(cell.ljust(w) for cell, w in zip(r, widths))  # noqa: E731
    print("\n" + line(header) + "\n" + "  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def plot(results: dict[str, Any]) -> list[str]:
    """One latency histogram PNG per workload; without matplotlib, say so and carry on."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -r requirements-bench.txt): no PNG plots")
        return []
    written = []
    for key, series in _plot_series(results).items():
        fig, ax = plt.subplots(figsize=(8, 4.5))
        lowest, highest = 10**9, 0  # bins that hold data, for the x range
        for label, phase in series.items():
            edges, counts = phase["hist"]["edges_ms"], phase["hist"]["counts"]
            total = sum(counts) or 1
            used = [i for i, c in enumerate(counts) if c]
            lowest, highest = min([lowest, *used[:1]]), max([highest, *used[-1:]])
            ax.step(
                edges[:-1],
                [c / total for c in counts],
                where="post",
                label=f"{label}: p50 {fmt(phase['p50_ms'], 1)}, p99 {fmt(phase['p99_ms'], 1)} ms",
            )
        if highest:
            ax.set_xlim(edges[max(lowest - 2, 0)], edges[min(highest + 3, len(edges) - 1)])
        ax.set_xscale("log")
        ax.set_xlabel("delivery latency (ms, log scale)")
        ax.set_ylabel("share of deliveries")
        ax.set_title(f"Workload {key}: send to receive, every socket")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        path = RESULTS / f"latency-{key}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path.relative_to(ROOT)))
    return written


def _plot_series(results: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """Per workload, each measured phase with its latency histogram."""
    series: dict[str, dict[str, dict]] = {}
    for key in ("A", "C"):
        phases = (results.get(key) or {}).get("phases") or {}
        series[key] = {_phase_label(name, p): p for name, p in phases.items() if p["samples"]}
    chat = (results.get("B") or {}).get("chat")
    if chat and chat["samples"]:
        series["B"] = {"chat beside the idle sockets": chat}
    return {k: v for k, v in series.items() if v}


def _phase_label(name: str, phase: dict) -> str:
    if name == "max":
        return f"max ({phase['deliveries_per_s']:,.0f}/s)"
    reached = "" if phase["reached"] else f", only {phase['deliveries_per_s']:,.0f} reached"
    return f"{int(name):,}/s{reached}"


def strip_hists(value: Any) -> Any:
    """The printed/saved summary keeps histograms only in results.json's `histograms`."""
    if isinstance(value, dict):
        return {k: strip_hists(v) for k, v in value.items() if k != "hist"}
    return value


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pinned": None,
        "loadavg_at_start": os.getloadavg(),
        "commit": commit.strip(),
        "uncommitted_changes": bool(dirty.strip()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---- main ---------------------------------------------------------------------------------------


def run_step(results: dict[str, Any], key: str, step: Callable[[], dict[str, Any]]) -> None:
    """One workload; a failure is recorded and the others still run."""
    t0 = time.monotonic()
    print(f"[bench] workload {key} ...", flush=True)
    try:
        results[key] = step()
    except Exception as error:  # noqa: BLE001 - every failure becomes a figure in the report
        results[key] = {"error": f"{type(error).__name__}: {error}"}
        print(f"[bench] workload {key} failed: {results[key]['error']}", flush=True)
    results.setdefault("durations_s", {})[key] = round(time.monotonic() - t0, 1)


def parse_args() -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: short windows, 200 idle sockets")
    parser.add_argument("--only", default="SABC", help="workloads to run, e.g. AC (S: search)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    args = parser.parse_args()
    config = Config(workloads=args.only.upper())
    if args.quick:
        config.window, config.warmup, config.idle = 3.0, 1.0, 200
    if args.no_pin:
        config.pin = False
    return config


def main() -> None:
    config = parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {"meta": {**machine(), "pinned": config.pin, "config": config.__dict__}}
    run_step(results, "R", render_bench.measure)
    if "error" not in results["R"]:
        print(f"[bench] {render_bench.summary(results['R'])}", flush=True)
    if "S" in config.workloads:
        print("[bench] search over 1,000,000 messages (bench/search.py; built once, then cached)", flush=True)
        run_step(results, "S", search_bench.measure)
    print(f"[bench] fresh database {DB_PATH.relative_to(ROOT)}", flush=True)
    fresh_database()
    names = seed_users(config)
    print(f"[bench] {len(names)} users; logging each in over HTTP ...", flush=True)
    results["login"] = login_everyone(names)
    print(f"[bench] logged in {results['login']['users']} users in {results['login']['seconds']} s", flush=True)
    steps = {"A": lambda: workload_a(config), "B": lambda: workload_b(config), "C": lambda: workload_c(config)}
    for key in config.workloads.replace("S", ""):
        run_step(results, key, steps[key])
    results["meta"]["total_s"] = round(time.monotonic() - started, 1)
    finish(results)


def finish(results: dict[str, Any]) -> None:
    rows = table(results)
    results["plots"] = plot(results)
    results["noise"] = noise_warnings(results)
    results["table"] = [dict(zip(["workload", "metric", "value", "target", "met"], row)) for row in rows]
    histograms = {k: {label: phase["hist"] for label, phase in v.items()} for k, v in _plot_series(results).items()}
    RESULTS.joinpath("results.json").write_text(
        json.dumps({**strip_hists(results), "histograms": histograms}, indent=1, default=str)
    )
    print_table(rows)
    for warning in results["noise"]:
        print(f"[bench] NOISY: {warning}; its figures understate the server")
    print(
        f"\n[bench] {results['meta']['total_s']} s in all; figures in bench/results/results.json, "
        f"plots {', '.join(results['plots']) or 'none'}"
    )


if __name__ == "__main__":
    main()
