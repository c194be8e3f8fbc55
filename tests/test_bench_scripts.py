"""The speed suite and the GPU script stay runnable (they are not timed tests: what is asserted here are
counts and pixels, which do not depend on the machine's speed).

- bench/suite.py's cache and events sections against the real server: the second job on a cached
  model and jobs switching between two models kept loaded spend no time loading and load nothing;
  every progress event carries the worker's clock (`at`), so its latency can be measured.
- bench/gpu.py --tiny on the CPU: raw diffusers, our default path, the fast path and its switches
  alone run on the demo models, and the fast path's pixels stay within rounding of the default path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_suite_cache_and_events_sections(tmp_path):
    out = tmp_path / "suite.json"
    done = _run(["bench/suite.py", "--quick", "--only", "cache,events", "--json", str(out), "--workdir", str(tmp_path)], 600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {r["case"]: r for r in json.loads(out.read_text())["rows"]}
    switch = next(r for c, r in rows.items() if c.startswith("switch") and c.endswith(": load"))
    assert "model loads during the switches: 0" in switch["note"]
    assert switch["max"] < 0.05, "a resident model's job spends (almost) nothing loading"
    events = next(r for c, r in rows.items() if c.startswith("progress event latency"))
    assert len(events["samples"]) >= 3 and all(v >= 0 for v in events["samples"])
    assert "suite:" in done.stdout and "figures" in done.stdout  # the table's last line


def test_gpu_script_runs_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = _run(["bench/gpu.py", "--tiny", "--device", "cpu", "--only", "sd15", "--rounds", "1", "--json", str(out),
                 "--workdir", str(tmp_path)], 600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    paths = [r["path"] for r in result["rows"]]
    assert paths[:2] == ["raw diffusers", "ours, default path"]
    assert any(p.startswith("ours, fast path") for p in paths)
    assert {"ours, channels_last alone", "ours, fused_qkv alone", "ours, compile alone"} <= set(paths)
    assert all(d["mean_abs_diff"] <= 1.0 for d in result["diffs"]), result["diffs"]
    assert result["diffs"][0]["vs_raw_mean_abs_diff"] <= 1.0, "our default path makes raw diffusers' image"


def test_live_bench_runs_tiny(tmp_path):
    """bench/live.py in a tiny configuration: every stroke's render reached the screen, and the parts of its
    latency (debounce, request, queue, run, delivery) add up to the total."""
    out = tmp_path / "live.json"
    done = _run(["bench/live.py", "--strokes", "2", "--box", "64", "--json", str(out)], 600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["strokes"]
    assert len(rows) == 2 and len({r["item_id"] for r in rows}) == 2 and result["errors"] == []
    for r in rows:
        parts = [r[k] for k in ("debounce", "request", "queue", "run")]
        assert all(v >= 0 for v in parts) and r["deliver"] > -25, r  # the request and the queue wait overlap by ms
        assert r["debounce"] >= result["debounce_ms"] - 50 and 0 <= r["queue_share"] < 1
    assert result["settings"]["scheduler"] == "lcm"
    assert "queueing share" in done.stdout


def test_live_cleanup_bench_runs_tiny():
    """bench/bench_live_cleanup.py in a tiny configuration: both purges ran and the ratio is printed."""
    done = _run(["bench/bench_live_cleanup.py", "--history", "50", "--superseded", "2", "--rounds", "1"], 300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "older generations" in done.stdout and done.stdout.strip().endswith("x")
