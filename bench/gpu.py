"""The GPU benchmark: one prepared run (under 9 minutes on an H100-class card) of raw diffusers, our
default path and our fast path (invoke_core/fast_path.py), and of each fast-path switch alone.

Models: full-size-architecture random-weight SD1.5 and SDXL, and FLUX.1 at full width with reduced
depth (bench/random_models.py), built on the card in bf16. Jobs: SD1.5 512 px 30 steps, SDXL 1024 px
30 steps, FLUX 1024 px 4 steps (CFG 7.5, 5 and 3.5 guidance). For each: it/s and seconds per image,
median of --rounds after a warm-up (the fast path's first job, which compiles, is reported apart),
the ratio to raw diffusers, and each switch's mean absolute pixel difference from our default path.
SD1.5 also runs end to end through the server (POST -> completed event) with the fast path on.

On a CPU, `--tiny` runs the same code on the tiny demo models (64 px, 2 steps, compile with the
"eager" backend): a check that the script works, not a measurement.

    python bench/gpu.py [--device cuda] [--rounds 3] [--only sd15,sdxl,flux] [--tiny] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import numpy as np

PROMPT = "a lighthouse at dusk, detailed painting"
CASES = {  # name: (size, steps, cfg)
    "sd15": (512, 30, 7.5),
    "sdxl": (1024, 30, 5.0),
    "flux": (1024, 4, 3.5),
}
SWITCHES_ALONE = ("channels_last", "fused_qkv", "compile", "cuda_graphs", "fp8")


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(name: str, work: Path, device: str, tiny: bool) -> Path:
    if tiny:
        from invoke_core import demo
        from invoke_core.families.flux_demo import build_main as build_flux_demo

        builders = {"sd15": demo.build_sd15_demo, "sdxl": demo.build_sdxl_demo, "flux": lambda d: build_flux_demo(d, work)}
        return builders[name](work / f"tiny-{name}")
    from random_models import build_flux_width, build_full_sd15, build_full_sdxl

    builders = {"sd15": build_full_sd15, "sdxl": build_full_sdxl, "flux": build_flux_width}
    return builders[name](work / name, dtype="bfloat16", device=device)


def raw_times(folder: Path, device: str, dtype: str, job: tuple, rounds: int) -> tuple[list[float], np.ndarray]:
    import torch
    from diffusers import DiffusionPipeline
    from job_child import raw_call_setup

    size, steps, cfg = job
    pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=getattr(torch, dtype), local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)

    def call():
        extra = raw_call_setup(pipe)
        return pipe(PROMPT, num_inference_steps=steps, guidance_scale=cfg, height=size, width=size,
                    generator=torch.Generator("cpu").manual_seed(1), output_type="np", **extra).images[0]

    call()
    times = []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        image = call()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times, (np.asarray(image) * 255).round().astype(np.uint8)


def engine_times(root: Path, folder: Path, device: str, dtype: str, fast: str, backend: str | None, job: tuple, rounds: int) -> dict:
    import torch

    from invoke_core.compile import compile_canvas
    from invoke_core.engine import Engine
    from invoke_core.model_install import install_model
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    size, steps, cfg = job
    engine = Engine(root=root, device=device, dtype=dtype, fast_path=fast, compile_backend=backend)
    record = next((r for r in engine.registry.list() if r.path == str(folder)), None) or install_model(engine.registry, str(folder))
    params = GenerationParams(prompt=PROMPT, model=record.id, steps=steps, seed=1, scheduler="euler", cfg_scale=cfg)
    request = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    t0 = time.perf_counter()
    first = engine.run(request)[0]
    sync(device)
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        result = engine.run(request)[0]
        sync(device)
        times.append(time.perf_counter() - t0)
    out = {"times": times, "first_s": first_s, "image": result.image, "switches": first.metadata.get("fast_path", [])}
    engine.cache.clear()
    del engine
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def server_times(root: Path, folder: Path, device: str, job: tuple, rounds: int) -> list[float]:
    """Through the real server with the fast path on: POST /canvas/jobs -> the completed event."""
    import requests

    from suite import ServerSide

    size, steps, cfg = job
    from invoke_core.model_install import install_model
    from invoke_core.model_records import ModelRegistry

    registry = ModelRegistry(root)
    record = next((r for r in registry.list() if r.path == str(folder)), None) or install_model(registry, str(folder))
    server = ServerSide(root, "--device", device, "--fast-path", "on")
    try:
        job_doc = {"model": record.id, "prompt": PROMPT, "seed": 1, "size": size, "steps": steps, "cfg": cfg}
        server.run(job_doc)
        server.run(job_doc)  # the first compiles; the second is warm
        return [server.run(job_doc)[0] for _ in range(rounds)]
    finally:
        server.close()
        requests.Session().close()


def summarise(name: str, label: str, times: list[float], steps: int, base: float | None) -> dict:
    median = statistics.median(times)
    return {
        "model": name, "path": label, "s_per_image": median, "min": min(times), "max": max(times),
        "it_per_s": steps / median, "speedup_vs_raw": (base / median) if base else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when present), cpu with --tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="sd15,sdxl,flux")
    parser.add_argument("--tiny", action="store_true", help="the demo models at 64 px: a CPU check of this script")
    parser.add_argument("--budget-s", type=float, default=480, help="skip the remaining switches-alone runs past this")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "gpu.json")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)

    import torch

    from invoke_core.quiet import quiet_libraries

    quiet_libraries()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.tiny:
        parser.error("no CUDA device: run with --tiny to check the script on the CPU")
    dtype = "float32" if device == "cpu" else "bfloat16"
    backend = "eager" if args.tiny else None  # inductor on the card; eager checks the wiring on a CPU in seconds
    card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU (tiny check)"
    print(f"device {device}: {card}, {dtype}", flush=True)
    started = time.perf_counter()
    rows, diffs = [], []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for name in args.only.split(","):
            job = (64, 2, CASES[name][2]) if args.tiny else CASES[name]
            size, steps, _ = job
            t0 = time.perf_counter()
            folder = build(name, work, device, args.tiny)
            print(f"\n{name}: built in {time.perf_counter() - t0:.1f} s; {size} px, {steps} steps", flush=True)
            raw, raw_image = raw_times(folder, device, dtype, job, args.rounds)
            base = statistics.median(raw)
            rows.append(summarise(name, "raw diffusers", raw, steps, base))
            default = engine_times(work / "root", folder, device, dtype, "off", None, job, args.rounds)
            rows.append(summarise(name, "ours, default path", default["times"], steps, base))
            fast = engine_times(work / "root", folder, device, dtype, "on", backend, job, args.rounds)
            rows.append(summarise(name, f"ours, fast path ({'+'.join(fast['switches'])})", fast["times"], steps, base))
            rows[-1]["first_job_s"] = fast["first_s"]
            diffs.append({"model": name, "switch": "all (on)", "mean_abs_diff": _diff(fast["image"], default["image"]),
                          "vs_raw_mean_abs_diff": _diff(default["image"], raw_image)})
            for switch in SWITCHES_ALONE:
                if time.perf_counter() - started > args.budget_s:
                    print(f"  (budget reached: {switch} alone skipped)", flush=True)
                    continue
                if switch == "fp8" and name != "flux":
                    continue
                if switch == "cuda_graphs" and not device.startswith("cuda"):
                    continue
                alone = engine_times(work / "root", folder, device, dtype, switch, backend, job, args.rounds)
                rows.append(summarise(name, f"ours, {switch} alone", alone["times"], steps, base))
                rows[-1]["first_job_s"] = alone["first_s"]
                diffs.append({"model": name, "switch": switch, "mean_abs_diff": _diff(alone["image"], default["image"])})
            if name == "sd15" and not args.tiny and time.perf_counter() - started < args.budget_s:
                served = server_times(work / "server-root", folder, device, job, args.rounds)
                rows.append(summarise(name, "end to end through the server, fast path", served, steps, base))
            for r in rows:
                if r["model"] == name:
                    print(f"  {r['path']:<58} {r['s_per_image']:8.3f} s/image {r['it_per_s']:8.2f} it/s"
                          f"  {r['speedup_vs_raw'] or 0:5.2f}x raw" + (f"  (first job {r['first_job_s']:.1f} s)" if "first_job_s" in r else ""), flush=True)
    for d in diffs:
        print(f"  {d['model']}: {d['switch']:<14} mean |pixel difference| vs our default path {d['mean_abs_diff']:.3f}"
              + (f"; default vs raw {d['vs_raw_mean_abs_diff']:.3f}" if "vs_raw_mean_abs_diff" in d else ""))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": device, "card": card, "dtype": dtype, "rows": rows, "diffs": diffs,
                                     "seconds": time.perf_counter() - started}, indent=1))
    print(f"\ngpu bench: {time.perf_counter() - started:.0f} s; JSON in {args.json}")
    return 0


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("nan")
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


if __name__ == "__main__":
    sys.exit(main())
