#!/usr/bin/env bash
# Set up and run the whole test suite: ./scripts/test.sh [pytest args]
#
# Installs the pinned Python packages, and Debian's Chromium for the browser tests when missing.
# Without arguments it runs two passes: everything on the embedded default (SQLite, ORM broker),
# then the scale-out tests on PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL; defaults
# are this machine's services on 127.0.0.1). With arguments it runs `pytest ARGS` once.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Debian's chromium for the browser tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped" >&2
  else
    echo "warning: chromium is missing (sudo apt-get install chromium); browser tests will be skipped" >&2
  fi
fi
PYTEST=(.venv/bin/python -m pytest)
if [ $# -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi
# Pass 1 runs in DGX_TEST_WORKERS processes (pytest-xdist; default 3): most tests wait on real
# processes (simulator, qcluster, daphne, Chromium) and sleep while they work, so three share two cores well. Each
# worker has its own SQLite test database and free ports; 1 runs them one after the other.
WORKERS=${DGX_TEST_WORKERS:-3}
echo "== pass 1: embedded default (SQLite, ORM broker, in-process channel layer), $WORKERS worker(s) =="
if [ "$WORKERS" -gt 1 ]; then
  "${PYTEST[@]}" -m "not services" -n "$WORKERS"
else
  "${PYTEST[@]}" -m "not services"
fi
echo "== pass 2: scale-out on PostgreSQL + Redis =="
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dgxpixels}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
if ! .venv/bin/python scripts/services_up.py; then
  if [ "${REQUIRE_SERVICES:-0}" = 1 ]; then
    echo "REQUIRE_SERVICES=1 but PostgreSQL or Redis is not reachable (see above)" >&2
    exit 1
  fi
  echo "Skipping the scale-out tests: PostgreSQL or Redis is not reachable (see above)."
  exit 0
fi
"${PYTEST[@]}" -m services
