"""scripts/setup.sh: after one good run, a second one with no package index (pip's or npm's) reachable is a
no-op that passes, so the app starts offline and each start spends nothing in pip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {  # every index unreachable: pip or npm would fail at once if setup ran them
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "",
    "npm_config_registry": "http://127.0.0.1:9/", "npm_config_offline": "true",
}


def run_setup(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)


def test_setup_twice_the_second_time_offline():
    first = run_setup({})
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_setup(OFFLINE)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "pip" not in second.stderr.lower() and "npm" not in second.stderr.lower(), second.stderr
    stamp = (ROOT / ".venv" / ".invoke-canvas-setup").read_text().split()
    assert len(stamp) == 3 and len(stamp[0]) == 64  # pyproject digest, Python version, torch pin
