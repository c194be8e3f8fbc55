"""Scale-out: throughput of 1 vs 2 remote workers, and the per-job cost of the Celery path over the embedded worker.

Starts real PostgreSQL and Redis (tests/services.py: Debian's postgresql and redis-server), a web process
(`invoke-canvas --database-url ... --broker ...`, gunicorn) and `invoke-canvas worker` processes on one shared
data folder, each worker limited to one torch thread (OMP_NUM_THREADS=1), all on the demo model.

  (a) throughput: --jobs jobs queued at once, from the request to the last `completed` event, with worker A
      alone, then with A and B; alternating over --rounds rounds. Ratio t(1 worker) / t(2 workers), goal >= 1.8
      (on a 2-core machine the web process, PostgreSQL and Redis share the cores with the two workers).
  (b) overhead: one small job at a time, request -> `completed` event on a Socket.IO client, through the
      embedded server (SQLite, in-process worker, one torch thread) and through the Celery path (one worker),
      alternating, --latency-jobs each per round. Difference of the medians, goal <= +50 ms.

    python bench/bench_scale.py [--jobs 8] [--rounds 3] [--latency-jobs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import socketio  # noqa: E402
from scale_cluster import ONE_THREAD, Cluster  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from services import create_database, start_postgres, start_redis  # noqa: E402


def document(steps: int, size: int, batch_size: int = 1) -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": [],
        "params": {"prompt": "a lighthouse at dusk", "steps": steps, "model": "demo", "batch_size": batch_size, "seed": 1},
    }


class Completions:
    """`completed` events seen by a Socket.IO client of one web process."""

    def __init__(self, url: str):
        self.done: dict[int, float] = {}
        self.changed = threading.Condition()
        self.client = socketio.Client()
        self.client.on("queue_item_status_changed", self._on_status)
        self.client.connect(url, transports=["websocket"], wait_timeout=10)

    def _on_status(self, data: dict) -> None:
        if data["status"] in ("completed", "failed", "canceled"):
            with self.changed:
                self.done[data["item_id"]] = time.perf_counter()
                self.changed.notify_all()

    def wait(self, ids: list[int], timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(i in self.done for i in ids):
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"items {ids} not finished")
            return max(self.done[i] for i in ids)

    def close(self) -> None:
        self.client.disconnect()


def run_batch(server: ServerProcess, events: Completions, steps: int, size: int, count: int) -> float:
    start = time.perf_counter()
    response = server.post("/api/v1/canvas/jobs", json={"document": document(steps, size, count)})
    response.raise_for_status()
    return events.wait(response.json()["item_ids"]) - start


def one_job_latency(server: ServerProcess, events: Completions) -> float:
    start = time.perf_counter()
    response = server.post("/api/v1/canvas/jobs", json={"document": document(3, 64)})
    response.raise_for_status()
    return events.wait(response.json()["item_ids"]) - start


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    pg, redis = start_postgres(tmp / "pg"), start_redis(tmp / "redis")
    root = tmp / "shared"
    root.mkdir()
    cluster = Cluster(root, create_database(pg.url, "bench"), redis.url, lease=10.0)
    embedded_root = tmp / "embedded"
    embedded_root.mkdir()
    embedded = None
    try:
        web = cluster.start_web()
        cluster.start_worker("a")
        cluster.wait_workers(["a"])
        events = Completions(web.url)
        embedded = ServerProcess(embedded_root, env=ONE_THREAD)
        embedded_events = Completions(embedded.url)
        for server, ev in ((web, events), (embedded, embedded_events)):  # load the model, warm every path
            run_batch(server, ev, args.steps, args.size, 2)

        # (b) first, with worker A alone: one job at a time, embedded vs Celery, alternating
        lat_embedded: list[float] = []
        lat_celery: list[float] = []
        for _ in range(args.rounds):
            for _ in range(args.latency_jobs):
                lat_embedded.append(one_job_latency(embedded, embedded_events))
                lat_celery.append(one_job_latency(web, events))

        # (a) 1 worker vs 2 workers, alternating
        one: list[float] = []
        two: list[float] = []
        for _ in range(args.rounds):
            one.append(run_batch(web, events, args.steps, args.size, args.jobs))
            cluster.start_worker("b")
            cluster.wait_workers(["a", "b"])
            run_batch(web, events, args.steps, args.size, 2)  # b loads the model outside the timing
            two.append(run_batch(web, events, args.steps, args.size, args.jobs))
            cluster.workers.pop("b").stop()
        events.close()
        embedded_events.close()
    finally:
        cluster.stop()
        if embedded is not None:
            embedded.stop()
        pg.stop()
        redis.stop()

    ratio = statistics.median(one) / statistics.median(two)
    overhead_ms = (statistics.median(lat_celery) - statistics.median(lat_embedded)) * 1000
    print(f"throughput, {args.jobs} jobs of {args.steps} steps at {args.size}px, 1 torch thread per worker:")
    print(f"  1 worker : {summary(one)}")
    print(f"  2 workers: {summary(two)}")
    print(f"  speed-up : {ratio:.2f}x (goal >= 1.8)")
    print(f"per job, request -> completed event, 3 steps at 64px ({len(lat_celery)} jobs each, alternating):")
    print(f"  embedded worker: {summary(lat_embedded)}")
    print(f"  Celery worker  : {summary(lat_celery)}")
    print(f"  overhead       : {overhead_ms:+.1f} ms (goal <= +50 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "one_worker_s": one, "two_workers_s": two, "speedup": ratio,
            "embedded_latency_s": lat_embedded, "celery_latency_s": lat_celery, "overhead_ms": overhead_ms,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
