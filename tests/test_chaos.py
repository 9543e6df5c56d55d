"""The chaos test's short version (`python -m bench.chaos --quick`, about 30 s of faults):
two Daphne processes, a private Redis and a fresh PostgreSQL database, sockets cut, a process
SIGKILLed, Redis restarted, messages removed, groups left and joined; then every client must
hold exactly what a fresh load shows. See bench/README.md, "Chaos test"."""

import os
import subprocess
import sys

import pytest

from bench.chaos_services import REDIS_SERVER, ROOT
from tests.conftest import require_service

pytestmark = pytest.mark.services
DATABASE = os.environ.get("CHAOS_DATABASE", "chaos_ci")


def require_redis_server() -> None:
    """The run starts a redis-server of its own: skip without one, unless REQUIRE_SERVICES=1."""
    if os.access(REDIS_SERVER, os.X_OK):
        return
    message = f"{REDIS_SERVER} is missing"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and REQUIRE_SERVICES=1")
    pytest.skip(message)


def test_every_client_ends_up_holding_what_a_fresh_load_shows():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_redis_server()
    command = [sys.executable, "-m", "bench.chaos", "--quick", "--database", DATABASE]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    print(result.stdout)
    print(result.stderr[-5000:], file=sys.stderr)
    assert result.returncode == 0, result.stdout.strip().splitlines()[-3:]
