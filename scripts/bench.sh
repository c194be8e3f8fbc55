#!/usr/bin/env bash
# Set up (first run only) and run the speed suite: one table, and JSON in bench/results/suite.json
# (docs/PERFORMANCE.md). CPU only, offline, about 8 minutes on 2 cores; extra arguments go to
# bench/suite.py (--quick leaves out the full-size models; --only families,cache,canvas,...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
exec python bench/suite.py "$@"
