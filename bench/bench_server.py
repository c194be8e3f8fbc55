"""The real server under load, and its overhead over a bare `invoke_core` job.

Starts `invoke-canvas` on a free loopback port with a temporary data root, uploads small images, then

  (a) 20 client threads (one requests.Session each) list image pages and fetch thumbnails and files
      for --load-seconds while one long generation job runs: requests/second, p50/p95/p99 latency,
      and the job's denoising speed idle vs under that load;
  (b) one job end to end through the server (POST /canvas/jobs until its `completed` event arrives
      on a python-socketio client) against `Engine.run` of the same request in this process, on the
      same model files, alternating, median of --rounds runs: the ratio (goal <= 1.05 on the demo).
      --full adds a full-size SD1.5 architecture with random weights (built like
      bench/bench_overhead.py, installed through /models/install; ~10 GB of RAM).

Only loopback traffic; every loop is bounded.

    python bench/bench_server.py [--images 200] [--threads 20] [--load-seconds 15] [--rounds 5] [--full]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import requests
import socketio
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from server_process import ServerProcess  # noqa: E402

API = "/api/v1"
FINISHED = ("completed", "failed", "canceled")
PROMPT = "a lighthouse at dusk, detailed painting"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def small_png(seed: int, side: int = 64) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def document(size: int, steps: int, seed: int, model: str) -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": size, "height": size},
        "layers": [],
        "params": {"prompt": PROMPT, "model": model, "steps": steps, "seed": seed, "scheduler": "euler", "cfg_scale": 7.5},
    }


class Listener:
    """A python-socketio client over WebSocket recording status times and progress steps."""

    def __init__(self, url: str):
        self.client = socketio.Client(reconnection=False)
        self.cond = threading.Condition()
        self.finished: dict[int, tuple[float, dict]] = {}
        self.status: dict[int, str] = {}
        self.progress: list[tuple[float, int, int]] = []  # (time, item_id, step)
        self.client.on("queue_item_status_changed", self._status)
        self.client.on("generation_progress", self._progress)
        self.client.connect(url, transports=["websocket"], wait_timeout=10)
        assert self.client.transport() == "websocket", "python-socketio fell back to polling (websocket-client missing?)"

    def _status(self, data: dict) -> None:
        now = time.perf_counter()
        with self.cond:
            self.status[data["item_id"]] = data["status"]
            if data["status"] in FINISHED:
                self.finished[data["item_id"]] = (now, data)
            self.cond.notify_all()

    def _progress(self, data: dict) -> None:
        with self.cond:
            self.progress.append((time.perf_counter(), data["item_id"], data["step"]))
            self.cond.notify_all()

    def wait_finished(self, item_id: int, timeout: float = 300) -> tuple[float, dict]:
        with self.cond:
            assert self.cond.wait_for(lambda: item_id in self.finished, timeout), f"item {item_id} did not finish in {timeout} s"
            return self.finished[item_id]

    def wait_progress(self, item_id: int, timeout: float = 120) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(i == item_id for _, i, _ in self.progress), timeout), "no progress event"

    def steps_between(self, item_id: int, start: float, end: float) -> float:
        """Denoising steps per second of `item_id` between two times (from the progress events)."""
        with self.cond:
            points = [(t, s) for t, i, s in self.progress if i == item_id and start <= t <= end]
        if len(points) < 2:
            return float("nan")
        (t0, s0), (t1, s1) = points[0], points[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else float("nan")

    def close(self) -> None:
        self.client.disconnect()


def enqueue(session: requests.Session, url: str, doc: dict) -> dict:
    response = session.post(url + f"{API}/canvas/jobs", json={"document": doc}, timeout=30)
    response.raise_for_status()
    return response.json()


# --- (a) concurrent reads while a job runs ---------------------------------------------------------


def idle_latencies(server: ServerProcess, count: int = 30) -> None:
    """One client, nothing else running: the floor under the loaded numbers."""
    session = requests.Session()
    page = session.get(server.url + f"{API}/images", params={"limit": 50}, timeout=30).json()
    times: dict[str, list[float]] = {"list": [], "thumbnail": [], "file": []}
    for i in range(count):
        image = page["items"][i % len(page["items"])]
        for kind, path, params in (("list", f"{API}/images", {"limit": 50}), ("thumbnail", image["thumbnail_url"], None), ("file", image["url"], None)):
            t0 = time.perf_counter()
            session.get(server.url + path, params=params, timeout=30).raise_for_status()
            times[kind].append(time.perf_counter() - t0)
    session.close()
    print("one client, idle server: " + ", ".join(f"{k} p50 {percentile(v, 50) * 1000:.1f} ms" for k, v in times.items()))


def load_phase(server: ServerProcess, listener: Listener, threads: int, seconds: float, job_size: int) -> None:
    idle_latencies(server)
    session = requests.Session()
    job = enqueue(session, server.url, document(job_size, 500, 1, "demo"))
    [item_id] = job["item_ids"]
    listener.wait_progress(item_id)
    idle_start = time.perf_counter()
    time.sleep(3.0)
    idle_rate = listener.steps_between(item_id, idle_start, time.perf_counter())

    samples: dict[str, list[float]] = {"list": [], "thumbnail": [], "file": []}
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    deadline_box: list[float] = []

    def client(index: int) -> None:
        rng = random.Random(index)
        s = requests.Session()
        mine = {k: [] for k in samples}
        bad: list[str] = []
        cursor = None
        start_gate.wait()
        deadline = deadline_box[0]
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            r = s.get(server.url + f"{API}/images", params=params, timeout=30)
            mine["list"].append(time.perf_counter() - t0)
            if r.status_code != 200:
                bad.append(f"list {r.status_code}")
                cursor = None
                continue
            page = r.json()
            cursor = page["next_cursor"]
            if not page["items"]:
                continue
            image = rng.choice(page["items"])
            for kind, path in (("thumbnail", image["thumbnail_url"]), ("file", image["url"])):
                if time.perf_counter() >= deadline:
                    break
                t0 = time.perf_counter()
                r = s.get(server.url + path, timeout=30)
                mine[kind].append(time.perf_counter() - t0)
                if r.status_code != 200 or not r.content:
                    bad.append(f"{kind} {r.status_code}")
        with lock:
            for kind, values in mine.items():
                samples[kind] += values
            errors.extend(bad)
        s.close()

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    load_start = time.perf_counter()
    deadline_box.append(load_start + seconds)
    start_gate.wait()
    for w in workers:
        w.join(seconds + 60)
    load_end = time.perf_counter()
    load_rate = listener.steps_between(item_id, load_start, load_end)

    status = session.get(server.url + f"{API}/queue/items/{item_id}", timeout=30).json()["status"]
    session.post(server.url + f"{API}/queue/items/{item_id}/cancel", timeout=30)
    listener.wait_finished(item_id, timeout=60)
    session.close()

    total = sum(len(v) for v in samples.values())
    elapsed = load_end - load_start
    every = [x for v in samples.values() for x in v]
    print(f"\n== (a) {threads} clients for {elapsed:.1f} s while a {job_size}x{job_size} demo job runs ({status} during the load) ==")
    print(f"requests: {total}  ({total / elapsed:.0f} req/s), errors: {len(errors)}" + (f" e.g. {errors[:3]}" if errors else ""))
    print(f"{'kind':10} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, values in list(samples.items()) + [("all", every)]:
        print(f"{kind:10} {len(values):7d} {percentile(values, 50) * 1000:8.1f} {percentile(values, 95) * 1000:8.1f} {percentile(values, 99) * 1000:8.1f}")
    print(f"job denoising: {idle_rate:.1f} steps/s without clients, {load_rate:.1f} steps/s under load ({load_rate / idle_rate:.2f}x;"
          f" the {threads} client threads share this machine's {os.cpu_count()} cores with the server)")


# --- (b) end to end vs Engine.run ------------------------------------------------------------------


def overhead_phase(server: ServerProcess, listener: Listener, engine, model: str, size: int, steps: int, rounds: int) -> dict:
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    seed = 1234
    doc = document(size, steps, seed, model)
    params = GenerationParams(prompt=PROMPT, model=model, steps=steps, seed=seed, scheduler="euler", cfg_scale=7.5)
    request = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    session = requests.Session()

    def through_server() -> tuple[float, float]:
        t0 = time.perf_counter()
        job = enqueue(session, server.url, doc)
        [item_id] = job["item_ids"]
        t1, data = listener.wait_finished(item_id)
        assert data["status"] == "completed", data
        generation = session.get(server.url + f"{API}/history/{job['generation_ids'][0]}", timeout=30).json()
        return t1 - t0, generation["timings"]["total"]

    def in_process() -> float:
        t0 = time.perf_counter()
        engine.run(request)
        return time.perf_counter() - t0

    through_server()  # warm up both: model load, first-call allocations
    in_process()
    served, raw, inside, pairs = [], [], [], []
    for i in range(rounds):
        if i % 2 == 0:
            (s, e), r = through_server(), in_process()
        else:
            r = in_process()
            s, e = through_server()
        served.append(s)
        raw.append(r)
        inside.append(e)
        pairs.append(s / r)
    session.close()
    result = {
        "model": model,
        "server_s": statistics.median(served),
        "engine_in_server_s": statistics.median(inside),
        "raw_s": statistics.median(raw),
        "ratio": statistics.median(served) / statistics.median(raw),
        "paired": statistics.median(pairs),
    }
    print(f"\n== (b) {model}: {size}x{size}, {steps} steps, {rounds} alternating rounds ==")
    print(f"through the server (POST -> 'completed' event) median {result['server_s'] * 1000:8.1f} ms")
    print(f"  of which Engine.run inside the worker         {result['engine_in_server_s'] * 1000:8.1f} ms")
    print(f"Engine.run in this process               median {result['raw_s'] * 1000:8.1f} ms")
    print(f"ratio (medians) {result['ratio']:.3f}x   (paired: {result['paired']:.3f}x)   goal <= 1.05 on the demo")
    return result


def install_full(server: ServerProcess, workdir: Path) -> str:
    from bench_overhead import build_full_sd15

    t0 = time.perf_counter()
    folder = build_full_sd15(workdir / "sd15-random")
    job = requests.post(server.url + f"{API}/models/install", json={"source": str(folder), "name": "sd15 random"}, timeout=30).json()
    deadline = time.monotonic() + 600
    while (state := requests.get(server.url + f"{API}/models/install/{job['job_id']}", timeout=30).json())["status"] == "started":
        assert time.monotonic() < deadline, "install did not finish"
        time.sleep(0.5)
    assert state["status"] == "completed", state
    print(f"\nfull-size SD1.5 (random weights) built and installed through the server in {time.perf_counter() - t0:.1f} s")
    return state["model_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--load-job-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="also compare on a full-size random SD1.5 (slow, ~10 GB RAM)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--workdir", default=None, help="where the data root goes (default: a temporary folder)")
    args = parser.parse_args()

    from invoke_core.quiet import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        t0 = time.perf_counter()
        server = ServerProcess(root)
        print(f"server up on {server.url} in {time.perf_counter() - t0:.1f} s (data: {root})")
        listener = None
        try:
            listener = Listener(server.url)
            session = requests.Session()
            t0 = time.perf_counter()
            for i in range(args.images):
                files = {"file": (f"{i}.png", small_png(i), "image/png")}
                response = session.post(server.url + f"{API}/images", files=files, timeout=30)
                response.raise_for_status()
            elapsed = time.perf_counter() - t0
            print(f"uploaded {args.images} 64x64 PNGs in {elapsed:.2f} s ({elapsed / max(1, args.images) * 1000:.1f} ms each)")
            session.close()

            if not args.skip_load:
                load_phase(server, listener, args.threads, args.load_seconds, args.load_job_size)

            from invoke_core.engine import Engine

            engine = Engine(root=root, device="cpu")  # the server's model files, loaded in this process
            overhead_phase(server, listener, engine, "demo", args.size, args.steps, args.rounds)
            if args.full:
                model_id = install_full(server, Path(tmp))
                engine.cache.clear()
                overhead_phase(server, listener, engine, model_id, args.size, args.steps, args.rounds)
        finally:
            if listener is not None:
                listener.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
