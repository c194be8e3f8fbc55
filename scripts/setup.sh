#!/usr/bin/env bash
# Create .venv and install the project into it; install the web front end's npm packages.
# torch is installed first, pinned, so pip never pulls a multi-GB CUDA build on a CPU machine.
# GPU users: install their CUDA torch into .venv first (see README); a torch already present is kept.
# A no-op when nothing changed since the last good run (stamps of what was installed), so it works offline
# after the first run and costs nothing at each start.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_STAMP=.venv/.invoke-canvas-setup
NPM_STAMP=web/node_modules/.invoke-canvas-setup

digest() { "${PYTHON:-python3}" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(open(p, "rb").read() for p in sys.argv[1:])).hexdigest())' "$@"; }

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
. .venv/bin/activate
want_py="$(digest pyproject.toml setup.py) $(python -c 'import sys; print(sys.version.split()[0])') ${TORCH_VERSION:-2.13.0}"
if [ "$(cat "$PY_STAMP" 2>/dev/null)" != "$want_py" ]; then
  if ! python -c "import torch" >/dev/null 2>&1; then
    # TORCH_INDEX_URL: another wheel index (https://download.pytorch.org/whl/cpu for a CPU-only Linux build)
    python -m pip install --quiet --disable-pip-version-check ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION:-2.13.0}"
  fi
  python -m pip install --quiet --disable-pip-version-check -e ".[test]"
  # packages installed without their dependencies (pyproject.toml [tool.invoke-canvas] no-deps: spandrel, whose
  # metadata asks for torchvision and so another torch); part of this stamped step, the pins in the digest
  no_deps="$(python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb")).get("tool", {}).get("invoke-canvas", {}).get("no-deps", [])))')"
  if [ -n "$no_deps" ]; then
    python -m pip install --quiet --disable-pip-version-check --no-deps $no_deps
  fi
  echo "$want_py" > "$PY_STAMP"
fi
want_npm="$(digest web/package.json web/package-lock.json)"
if [ "$(cat "$NPM_STAMP" 2>/dev/null)" != "$want_npm" ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want_npm" > "$NPM_STAMP"
fi
