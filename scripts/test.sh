#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, offline: Python tests (the queue and storage suites on
# SQLite and on a real PostgreSQL, scale-out on real Redis), the web front end's unit tests (node --test, run
# from pytest) and browser tests in Debian's headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's packages the tests use: Chromium (browser tests), PostgreSQL and Redis (the tests start their own
# servers from these binaries on loopback ports; nothing is configured system-wide).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: the tests need Debian's ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1
python -m pytest -q -p no:cacheprovider "$@"
