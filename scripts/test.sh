#!/usr/bin/env bash
# Set up and run the whole test suite: ./scripts/test.sh [pytest args]
# Installs the pinned Python packages and Debian's Chromium (for the browser tests) when missing.
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
exec .venv/bin/python -m pytest "$@"
