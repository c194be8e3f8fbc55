#!/usr/bin/env bash
# Create .venv and install the project into it; install the web front end's npm packages.
# torch is installed first, pinned, so pip never pulls a multi-GB CUDA build on a CPU machine.
# GPU users: install their CUDA torch into .venv first (see README); a torch already present is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
fi
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
if [ ! -d web/node_modules ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
