#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, offline: Python tests, the web front end's
# unit tests (node --test, run from pytest) and browser tests in Debian's headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "error: browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2
    exit 2
  fi
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1
python -m pytest -q -p no:cacheprovider "$@"
