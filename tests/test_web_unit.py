"""The front end's pure modules, tested with node's built-in test runner (run from here so CI has one summary)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "web"


def test_node_unit_tests_pass():
    node = shutil.which("node")
    assert node, "node is required for the web unit tests"
    tests = sorted(str(p.relative_to(WEB)) for p in (WEB / "tests").glob("*.test.js"))
    assert tests, "no web unit tests found"
    proc = subprocess.run([node, "--test", *tests], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
