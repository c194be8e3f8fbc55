"""The speed suite: one command, one table, one JSON file.

Every figure is the median of repeated runs with their min and max, and its ratio to a baseline
measured in the same run, alternating with it (these machines are noisy; only such ratios mean much).

  families   per family, one txt2img job three ways, each in a process of its own, in rotating order:
             through the server (POST /canvas/jobs -> its `completed` event on a Socket.IO client),
             `invoke_core` (Engine.run in bench/job_child.py) and raw diffusers (the same model
             folder, DiffusionPipeline in bench/job_child.py, as a user's script would run it);
             baseline: raw diffusers. The tiny demo of each family on the seam, then a full-size
             random-weight SD1.5 and a full-width, reduced-depth FLUX.1 (bench/bench_overhead.py's
             builders). Also raw diffusers with our heap settings (invoke_core/allocator.py), which
             shows where the server's lead over raw diffusers comes from. Beside each wall-clock ratio,
             the ratio of CPU seconds per job (the server's from /proc, all its threads): the work
             done, which this noisy machine's neighbours do not change.
  cache      the second job on a cached model, and jobs switching between two models kept loaded:
             seconds spent loading (from each job's recorded timings) and model loads seen
  canvas     compile_canvas of 20 layers for boxes of 512 to 4096 px, the layers spread over a canvas
             the size of the box and over one 16x wider: time grows with the box, not the canvas
  gallery    the image list's first page, a deep page and a search at 1k and 100k images
  events     Socket.IO progress latency: a step's end in the worker (the event's `at`) to the
             event at a client, against the step's own duration
  profile    one server-path job under pyinstrument: the share outside the diffusers pipeline call,
             and the preview's cost against a step

    python bench/suite.py [--quick] [--json bench/results/suite.json] [--only families,cache,...]

--quick leaves out the full-size models (a minute or two instead of ~8).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np
import requests

API = "/api/v1"
PROMPT = "a lighthouse at dusk, detailed painting"
SECTIONS = ("families", "cache", "canvas", "gallery", "events", "profile")
# model cache budget of the server and invoke_core sides: one full-size model at a time (the next one evicts
# it), as the raw side holds one, so the sides' memory fits the machine
RAM_CACHE_GB = 8
# the tiny demo of each family on the seam (SDXL's is built here; it has no built-in demo id)
DEMOS = ("demo", "sdxl", "demo-sd3", "demo-flux", "demo-flux2", "demo-chroma", "demo-hidream", "demo-zimage", "demo-qwen")


@dataclass
class Row:
    section: str
    case: str
    unit: str
    median: float
    min: float
    max: float
    baseline: str = ""
    baseline_median: float | None = None
    ratio: float | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)


def row(section: str, case: str, unit: str, values: list[float], baseline: str = "", base: list[float] | None = None, note: str = "") -> Row:
    median = statistics.median(values)
    base_median = statistics.median(base) if base else None
    return Row(
        section, case, unit, median, min(values), max(values), baseline, base_median,
        (median / base_median) if base_median else None, note, [round(v, 6) for v in values],
    )


# --- the three sides of a job ---------------------------------------------------------------------


class Child:
    """bench/job_child.py: raw diffusers or invoke_core in its own process."""

    def __init__(self, name: str, *args: str):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "job_child.py"), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        self._ask(None)

    def _ask(self, message: dict | None) -> dict:
        if message is not None:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench child {self.name} exited ({self.proc.poll()})")
        return json.loads(line)

    def load(self, model: str) -> None:
        reply = self._ask({"load": model})
        if "error" in reply:
            raise RuntimeError(reply["error"])

    def run(self, job: dict) -> tuple[float, dict]:
        t0 = time.perf_counter()
        reply = self._ask(job)
        seconds = time.perf_counter() - t0
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return seconds, reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(30)


class ServerSide:
    """The real server (tests/server_process.py) and a Socket.IO listener (bench_server.Listener)."""

    name = "server"

    def __init__(self, root: Path, *extra: str):
        from bench_server import Listener
        from server_process import ServerProcess

        self.server = ServerProcess(root, None, *extra)  # `extra` CLI options come after its --device cpu
        self.url = self.server.url
        self.listener = Listener(self.url)
        self.session = requests.Session()
        self.loads: list[dict] = []
        self.listener.client.on("model_load", lambda data: self.loads.append(data))
        self.steps: list[tuple[float, dict]] = []
        self.listener.client.on("generation_progress", self._progress)

    def _progress(self, data: dict) -> None:
        self.steps.append((time.time(), data))
        self.listener._progress(data)

    def document(self, job: dict) -> dict:
        size = job["size"]
        return {
            "bbox": {"x": 0, "y": 0, "width": size, "height": size},
            "layers": [],
            "params": {
                "prompt": job["prompt"], "model": job["model"], "steps": job["steps"], "seed": job["seed"],
                "scheduler": "euler", "cfg_scale": job["cfg"],
            },
        }

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (all its threads), from /proc (Linux)."""
        try:
            fields = Path(f"/proc/{self.server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def run(self, job: dict) -> tuple[float, dict]:
        cpu = self.cpu_seconds()
        t0 = time.perf_counter()
        response = self.session.post(self.url + f"{API}/canvas/jobs", json={"document": self.document(job)}, timeout=60)
        response.raise_for_status()
        queued = response.json()
        t1, data = self.listener.wait_finished(queued["item_ids"][0], timeout=900)
        if data["status"] != "completed":
            raise RuntimeError(f"server job {data['status']}: {data.get('error_message')}")
        generation = self.session.get(self.url + f"{API}/history/{queued['generation_ids'][0]}", timeout=30).json()
        return t1 - t0, {"timings": generation["timings"], "image_ids": data.get("image_ids", []), "cpu_s": self.cpu_seconds() - cpu}

    def digest(self, image_id: str) -> str:
        from PIL import Image

        record = self.session.get(self.url + f"{API}/images/{image_id}", timeout=30).json()
        content = self.session.get(self.url + record["url"], timeout=30).content
        with Image.open(io.BytesIO(content)) as img:
            return hashlib.sha256(np.ascontiguousarray(np.asarray(img.convert("RGB")))).hexdigest()

    def keep_loaded(self, model_id: str, keep: bool = True) -> None:
        self.session.patch(self.url + f"{API}/models/{model_id}", json={"keep_loaded": keep}, timeout=30).raise_for_status()

    def close(self) -> None:
        self.listener.close()
        self.server.stop()


def rotate(sides: list, job: dict, rounds: int) -> dict[str, list[tuple[float, dict]]]:
    """Every side runs the job once per round, the order rotating round by round."""
    out: dict[str, list[tuple[float, dict]]] = {s.name: [] for s in sides}
    for i in range(rounds):
        for side in sides[i % len(sides):] + sides[: i % len(sides)]:
            out[side.name].append(side.run(job))
    return out


# --- sections ---------------------------------------------------------------------------------------


def prepare_models(root: Path, work: Path, quick: bool, only: str = "") -> dict[str, tuple[str, str, dict]]:
    """Model id -> (id, folder, job) for every family case; demos built, full-size models installed.
    `only`: comma-separated model id prefixes ("full": the full-size models); empty for all."""
    wanted = [w for w in only.split(",") if w]
    chosen = lambda name: not wanted or any(name.startswith(w) for w in wanted)  # noqa: E731
    from random_models import build_flux_width, build_full_sd15

    from invoke_core.demo import build_sdxl_demo
    from invoke_core.model_install import install_model
    from invoke_core.model_records import ModelRegistry

    registry = ModelRegistry(root)
    small = {"size": 128, "steps": 4, "cfg": 7.5}
    cases: dict[str, tuple[str, str, dict]] = {}
    for demo in DEMOS:
        if not chosen(demo):
            continue
        if demo == "sdxl":
            record = install_model(registry, str(build_sdxl_demo(work / "demo-sdxl")), name="Demo SDXL (tiny, suite)")
        else:
            record = registry.ensure_demo_built(demo)
        cases[record.id] = (record.id, record.path, small)
    if not quick and chosen("full"):
        t0 = time.perf_counter()
        sd15 = install_model(registry, str(_built(build_full_sd15, work / "sd15-full")), name="SD1.5 full-size (random)")
        flux = install_model(registry, str(_built(build_flux_width, work / "flux-width")), name="FLUX.1 full-width 2+4 blocks (random)")
        print(f"full-size models built in {time.perf_counter() - t0:.0f} s", flush=True)
        cases[sd15.id] = (sd15.id, sd15.path, {"size": 128, "steps": 4, "cfg": 7.5})
        cases[flux.id] = (flux.id, flux.path, {"size": 128, "steps": 2, "cfg": 3.5})
    return cases


def _built(builder, dest: Path) -> Path:
    """`builder(dest)` in a process of its own: the gigabytes a full-size model takes to build go back to the
    system when it ends, not into this process's heap beside the sides being timed."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(builder, (dest,))


def families_section(server: ServerSide, root: Path, cases: dict, rounds_small: int, rounds_full: int) -> list[Row]:
    raw = Child("raw", "raw")
    tuned = Child("raw+heap", "raw", "--tuned-heap")
    core = Child("core", "core", "--root", str(root), "--ram-cache-gb", str(RAM_CACHE_GB))
    rows: list[Row] = []
    heap_done = False
    try:
        for model_id, folder, shape in cases.values():
            full = not model_id.startswith("demo")
            job = {"model": model_id, "prompt": PROMPT, "seed": 1234, **shape}
            raw_job = {**job, "model": folder}
            # raw + our heap settings for the first full-size model only: four copies of a full model would
            # not fit a 24 GB machine beside each other, and its page-cache thrash would time nothing but that
            sides = [server, core, raw, tuned] if full and not heap_done else [server, core, raw]
            heap_done |= full
            try:
                for child, name in ((raw, folder), (tuned, folder), (core, model_id)):
                    if child in sides:
                        child.load(name)
                warm = {s.name: s.run(raw_job if s in (raw, tuned) else job)[1] for s in sides}
            except RuntimeError as exc:
                print(f"  {model_id}: skipped ({exc})", flush=True)
                rows.append(Row("families", model_id, "s", float("nan"), float("nan"), float("nan"), note=f"skipped: {exc}"))
                continue
            rounds = rounds_full if full else rounds_small
            times: dict[str, list[float]] = {s.name: [] for s in sides}
            cpu: dict[str, list[float]] = {s.name: [] for s in sides}  # CPU seconds per job: the work, less the noise
            loads: list[float] = []
            for i in range(rounds):
                for side in sides[i % len(sides):] + sides[: i % len(sides)]:
                    seconds, reply = side.run(raw_job if side in (raw, tuned) else job)
                    times[side.name].append(seconds)
                    cpu[side.name].append(reply.get("cpu_s", float("nan")))
                    if side is server:
                        loads.append(reply["timings"]["load"])
            same_core = warm["core"]["digest"] == warm["raw"]["digest"]
            same_server = server.digest(warm["server"]["image_ids"][0]) == warm["core"]["digest"]
            pixels = f"pixels: core {'=' if same_core else '!='} raw, server {'=' if same_server else '!='} core"
            label = f"{model_id} {shape['size']}px {shape['steps']} steps"
            def paired(side: str) -> str:
                wall = statistics.median(a / b for a, b in zip(times[side], times["raw"]))
                work = statistics.median(cpu[side]) / statistics.median(cpu["raw"])
                return f"paired ratio {wall:.3f}, CPU time ratio {work:.3f}"

            rows.append(row("families", f"{label}: server", "s", times["server"], "raw diffusers", times["raw"], f"{paired('server')}; {pixels}"))
            rows.append(row("families", f"{label}: invoke_core", "s", times["core"], "raw diffusers", times["raw"], paired("core")))
            delta = [s - r for s, r in zip(times["server"], times["raw"])]
            rows.append(row("families", f"{label}: server - raw", "ms", [d * 1000 for d in delta], note="paired by round"))
            if tuned in sides:
                rows.append(row("families", f"{label}: raw + our heap settings", "s", times["raw+heap"], "raw diffusers", times["raw"]))
                faults = (warm["raw"]["page_faults"], warm["core"]["page_faults"])
                rows[-1].note = f"page faults in a warm job: raw {faults[0]:,}, invoke_core {faults[1]:,}"
            rows.append(row("cache", f"{label}: second and later jobs, load", "s", loads, note="timings.load of each job"))
            print(f"  {label}: server {statistics.median(times['server']):.3f} s, raw {statistics.median(times['raw']):.3f} s", flush=True)
    finally:
        for child in (raw, tuned, core):
            child.close()
    return rows


def cache_section(server: ServerSide, a: str, b: str, rounds: int) -> list[Row]:
    """Two models kept loaded: jobs alternate between them; seconds loading and loads seen."""
    for model in (a, b):
        server.keep_loaded(model)
    job = {"prompt": PROMPT, "seed": 1, "size": 128, "steps": 4, "cfg": 7.5}
    for model in (a, b):
        server.run({**job, "model": model})
    before = len([e for e in server.loads if e.get("status") == "started"])
    load_s, job_s = [], []
    for i in range(rounds * 2):
        seconds, reply = server.run({**job, "model": (a, b)[i % 2]})
        job_s.append(seconds)
        load_s.append(reply["timings"]["load"])
    loads = len([e for e in server.loads if e.get("status") == "started"]) - before
    for model in (a, b):
        server.keep_loaded(model, False)
    return [
        row("cache", f"switch {a} <-> {b} (both kept loaded): load", "s", load_s, note=f"model loads during the switches: {loads}"),
        row("cache", f"switch {a} <-> {b}: job", "s", job_s),
    ]


def canvas_section(rounds: int) -> list[Row]:
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind

    rows = []
    rng = np.random.default_rng(0)
    for box in (512, 1024, 2048, 4096):
        side = min(box, 1024)  # 20 layers of up to 1024 px, each overlapping the box
        pixels = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
        pixels[..., 3] = 255
        per: dict[str, list[float]] = {}
        for spread in (1, 16):  # the layers over a canvas the box's size, then over one 16x wider
            layers = []
            for i in range(20):
                kind = LayerKind.INPAINT_MASK if i == 19 else LayerKind.RASTER
                # half the layers in the box, half off towards the canvas's far corners (still touching the box)
                x = (i * 97) % max(1, box - side + 1) if i % 2 else -((i * 131) % max(1, box * spread)) - side + 64
                y = (i * 53) % max(1, box - side + 1) if i % 2 else box * (spread - 1) * (i % 3) // 2
                layers.append(Layer(f"l{i}", kind, int(x), int(min(y, box - 64)), pixels))
            params = GenerationParams(prompt="x", model="demo", steps=4, seed=1)
            document = CanvasDocument(Bounds(0, 0, box, box), tuple(layers), params)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                compile_canvas(document)
                times.append(time.perf_counter() - t0)
            per[str(spread)] = times
        rows.append(row("canvas", f"compile 20 layers, box {box}px, canvas 16x wider", "s", per["16"], "canvas the box's size", per["1"]))
    base = rows[0].median
    for r in rows:
        side = int(r.case.split("box ")[1].split("px")[0])
        r.note = f"{r.median / base:.1f}x the 512 box (area {side * side / 512**2:.0f}x)"
    return rows


def gallery_section(runs: int, work: Path) -> list[Row]:
    from bench_db import measure, prepare

    prepared = {n: prepare(n, 50, work / f"gallery-{n}") for n in (1000, 100_000)}
    times = measure(prepared, runs)
    for db, _ in prepared.values():
        db.dispose()
    return [
        row("gallery", f"{key} page of 50 at 100k images", "ms", times[100_000][key], "1k images", times[1000][key])
        for key in ("first", "deep", "search")
    ]


def events_section(server: ServerSide, steps: int) -> list[Row]:
    server.steps.clear()
    job = {"model": "demo", "prompt": PROMPT, "seed": 3, "size": 64, "steps": steps, "cfg": 7.5}
    seconds, _ = server.run(job)
    delays = [(seen - data["at"]) * 1000 for seen, data in server.steps if data.get("at")]
    step_ms = seconds / steps * 1000
    return [row("events", f"progress event latency ({len(delays)} events, demo {steps} steps)", "ms", delays,
                "one step", [step_ms], "step end in the worker -> the event at a Socket.IO client")]


def profile_section(server: ServerSide, root: Path, cases: dict) -> list[Row]:
    """pyinstrument over one job on the server's code path (run_job -> Engine.run) in this process:
    the time outside the diffusers pipeline call; and a preview's cost against a step."""
    from pyinstrument import Profiler

    from invoke_core.compile import compile_canvas
    from invoke_core.engine import Engine
    from invoke_core import families
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    rows = []
    engine = Engine(root=root, device="cpu")
    for model_id, _, shape in list(cases.values())[:1] + [v for k, v in cases.items() if not k.startswith("demo")][:1]:
        params = GenerationParams(prompt=PROMPT, model=model_id, steps=shape["steps"], seed=1, scheduler="euler", cfg_scale=shape["cfg"])
        request = compile_canvas(CanvasDocument(Bounds(0, 0, shape["size"], shape["size"]), (), params))
        engine.run(request)
        profiler = Profiler(interval=0.001)
        seen = []
        t0 = time.perf_counter()
        with profiler:
            engine.run(request, on_progress=seen.append)
        total = time.perf_counter() - t0
        inside = _frame_seconds(profiler.last_session, "__call__", "pipeline_")
        rows.append(row("profile", f"{model_id}: time outside the pipeline call", "%", [100 * (total - inside) / total],
                        note=f"job {total:.3f} s under pyinstrument"))
        record = engine.registry.get(model_id)
        latents = seen[-1]
        step_s = total / shape["steps"]
        preview = []
        for _ in range(10):
            t1 = time.perf_counter()
            _ = latents.preview  # made on reading
            preview.append(time.perf_counter() - t1)
        # the server makes a preview for at most ~10 events a second (EventBus), not every step
        share = [100 * p * min(1.0, 0.1 / step_s) / step_s for p in preview]
        rows.append(row("profile", f"{model_id}: preview per step", "% of a step", share,
                        note=f"{families.get(record.family).label}: one preview {statistics.median(preview) * 1000:.2f} ms, a step {step_s * 1000:.0f} ms"))
    return rows


def _frame_seconds(session, function: str, file_part: str) -> float:
    """Seconds in the outermost frames named `function` in a file whose path contains `file_part`."""
    def walk(frame) -> float:
        if frame.function == function and file_part in (frame.file_path or ""):
            return frame.time
        return sum(walk(child) for child in frame.children)

    return walk(session.root_frame())


# --- output -----------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print(f"\n{'section':<9} {'case':<66} {'median':>10} {'min':>10} {'max':>10} {'ratio':>7}  baseline / note")
    for r in rows:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        figures = " ".join(f"{v:>10.4g}" for v in (r.median, r.min, r.max))
        base = f"vs {r.baseline} ({r.baseline_median:.4g} {r.unit})" if r.baseline else ""
        print(f"{r.section:<9} {r.case[:66]:<66} {figures} {ratio:>7}  {r.unit}; {base}{'; ' if base and r.note else ''}{r.note}")


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the full-size models")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "suite.json")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per family case (full-size: this minus 1)")
    parser.add_argument("--cases", default="", help="families: only the cases whose model id starts with one of these (comma-separated; 'full' for the full-size ones)")
    parser.add_argument("--workdir", default=None, help="where models and data go (default: a temporary folder)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")

    from invoke_core.quiet import quiet_libraries

    quiet_libraries()
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        needs_server = only & {"families", "cache", "events", "profile"}
        cases = prepare_models(root, work, args.quick or "families" not in only, args.cases) if needs_server else {}
        server = ServerSide(root, "--ram-cache-gb", str(RAM_CACHE_GB)) if needs_server else None
        try:
            if "families" in only:
                rows += families_section(server, root, cases, args.rounds, max(2, args.rounds - 1))
            if "cache" in only:
                rows += cache_section(server, "demo", "demo-flux", 3)
            if "events" in only:
                rows += events_section(server, 60)
            if "profile" in only:
                rows += profile_section(server, root, cases)
        finally:
            if server is not None:
                server.close()
        if "canvas" in only:
            rows += canvas_section(3)
        if "gallery" in only:
            rows += gallery_section(11, work)
    print_table(rows)
    elapsed = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "seconds": elapsed, "rows": [asdict(r) for r in rows]}, indent=1, allow_nan=True))
    print(f"\nsuite: {len(rows)} figures in {elapsed:.0f} s; JSON in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
