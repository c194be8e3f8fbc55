"""Start-up and CLI times, as a newcomer meets them (after setup): each figure the median of --rounds runs,
alternating, with the cost of starting Python itself (`python -c pass`) in the same rounds as the baseline.

  setup      : `bash scripts/setup.sh` when nothing changed (a no-op: goal ~0 s)
  start      : `invoke-canvas` to the first 200 from /api/v1/health (goal < 3 s), and to the engine ready
               (health names a device: torch loaded in the background)
  models list, doctor (storage checks, then the torch device line): goal < 1 s for list

    python bench/bench_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "invoke-canvas")
sys.path.insert(0, str(ROOT / "tests"))

from server_process import free_port  # noqa: E402


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def start_times(root: Path) -> tuple[float, float]:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([EXE, "--root", str(root), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    healthy = ready = None
    try:
        while time.perf_counter() - start < 120:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()
                healthy = healthy or time.perf_counter() - start
                if health.get("device"):
                    ready = time.perf_counter() - start
                    break
            except requests.RequestException:
                pass
            time.sleep(0.02)
    finally:
        proc.send_signal(2)
        proc.wait(30)
    return healthy, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    figures: dict[str, list[float]] = {k: [] for k in ("python", "setup", "healthy", "ready", "models list", "doctor")}
    start_times(root)  # first start: migrations, folders
    for _ in range(args.rounds):
        figures["python"].append(timed([sys.executable, "-c", "pass"]))
        figures["setup"].append(timed(["bash", "scripts/setup.sh"], cwd=ROOT))
        healthy, ready = start_times(root)
        figures["healthy"].append(healthy)
        figures["ready"].append(ready)
        figures["models list"].append(timed([EXE, "models", "list", "--root", str(root)]))
        figures["doctor"].append(timed([EXE, "doctor", "--root", str(root)]))
    base = statistics.median(figures["python"])
    print(f"{'':14} {'median s':>9} {'min':>7} {'max':>7} {'x python':>9}")
    for name, values in figures.items():
        med = statistics.median(values)
        print(f"{name:14} {med:9.3f} {min(values):7.3f} {max(values):7.3f} {med / base:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
