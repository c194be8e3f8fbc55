#!/usr/bin/env bash
# Set up (first run only) and start the app: the server on http://127.0.0.1:9090 with the built-in
# demo model and SQLite under the data folder. Extra arguments go to `invoke-canvas`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec invoke-canvas "$@"
