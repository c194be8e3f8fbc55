#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (its image has torch, transformers, peft, OpenCV, pytest; not diffusers or
# compel), at the versions of this checkout's .venv, into .whl/ (git-ignored). Run here, then carry .whl.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
version() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl && mkdir -p .whl
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "diffusers==$(version diffusers)" "compel==$(version compel)" "importlib-metadata==$(version importlib-metadata)"
# bitsandbytes for the nf4 / int8 weights test (not in the CPU venv: pyproject's `cuda` extra)
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 -d .whl "bitsandbytes>=0.48"
ls -l .whl
