#!/usr/bin/env bash
# Set up (first run only) and start the app. Until the web server lands, "the app" is one
# generation with the built-in demo model (random weights), written to outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p outputs
invoke-canvas generate --prompt "${PROMPT:-a lighthouse at dusk}" --steps 8 --width 256 --height 256 --out outputs/first.png "$@"
