# The two commands of a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Daphne drops WebSocket messages over 1 MiB without a close frame; allow more so that an
# oversized message gets a clear error instead of a dead socket.
WS_MAX := 16777216

.PHONY: run test test-postgres screenshots setup browser-deps clean bench chaos

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py clear_presence
	$(PY) -m daphne -b $(HOST) -p $(PORT) \
		--websocket-max-message-size $(WS_MAX) --websocket-max-frame-size $(WS_MAX) \
		chatsite.asgi:application

# Debian's Chromium (a Playwright browser download cannot work here) and a colour emoji font
# for the browser tests; redis-server, of which the chaos test starts a private copy.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 \
			|| ! test -x /usr/bin/redis-server; then \
		echo "Installing chromium, fonts-noto-color-emoji and redis-server with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q && \
		$$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium fonts-noto-color-emoji redis-server; \
	fi

test: setup browser-deps
	$(PY) -m pytest -m "not browser"
	$(MAKE) test-postgres
	$(PY) -m pytest -m browser -p no:warnings

# Fresh screenshots of the main screens for the README (desktop and phone width).
screenshots: setup browser-deps
	SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest -q -m browser -p no:warnings

# The suites that touch the database in ways SQLite and PostgreSQL may not share, again on
# PostgreSQL (skipped without a server unless REQUIRE_SERVICES=1).
PG_SUITES := \
	tests/test_ws_protocol.py \
	tests/test_ws_hostile.py \
	tests/test_names.py \
	tests/test_actions.py \
	tests/test_hub.py \
	tests/test_moderation.py \
	tests/test_images.py \
	tests/test_import_legacy.py \
	tests/test_sessions.py \
	tests/test_user_delete.py \
	tests/test_replay.py \
	tests/test_admin_security.py \
	tests/test_group_limits.py \
	tests/test_login_security.py \
	tests/test_origin.py \
	tests/test_csp.py \
	tests/test_send_access.py \
	tests/test_events.py \
	tests/test_authz_matrix.py \
	tests/test_resume.py \
	tests/test_catchup.py \
	tests/test_resume_model.py \
	tests/test_message_changes.py \
	tests/test_invites.py \
	tests/test_invite_pages.py \
	tests/test_passwords.py \
	tests/test_search.py
test-postgres: setup
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(PY) -m pytest -q -p no:cacheprovider $(PG_SUITES) -k "not redis"

# Load benchmark of bench/README.md: starts its own servers on a fresh database in bench/results/,
# prints a table of figures and writes results.json and latency PNGs there (about 5 minutes).
bench: setup
	$(PY) -m pip install -q -r requirements-bench.txt
	$(PY) -m bench.run

# Chaos test of bench/README.md: its own Redis, a fresh PostgreSQL database (CHAOS_DATABASE), two
# Daphne processes, ~20 clients and faults for CHAOS_SECONDS; prints what was lost (about 3 minutes).
CHAOS_SECONDS ?= 150
CHAOS_DATABASE ?= chaos
chaos: setup
	$(PY) -m bench.chaos --seconds $(CHAOS_SECONDS) --database $(CHAOS_DATABASE) --json bench/results/chaos.json

clean:
	rm -rf $(VENV) staticfiles db.sqlite3* test_db.sqlite3*
