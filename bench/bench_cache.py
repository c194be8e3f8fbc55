"""The model cache: what a load costs against reading the same bytes, what a second job and a switch
between kept-loaded models cost (goal: nothing), and what sharing components saves.

1. Cold load of a full-size SD1.5 model with random weights (built here, fp16 on disk, fp32 in memory, as
   the released checkpoints are) through the cache, against reading its files to nowhere (`cat >
   /dev/null` of the same bytes, in Python, 1 MiB reads). The page cache is warm (the files were just
   written, and nothing here drops it: that needs root and a quiet machine); the first load also hashes
   the components once (kept beside the cache), so it is reported with and without that.
2. The second job's load time on the same model, and a switch between two models kept loaded (demo and
   demo-inpaint, alternating): the engine's own `timings.load`.
3. The RSS of a process that loads two tiny FLUX.1 models which ship the same CLIP, T5 and VAE files
   (demo-flux and a schnell built alike), sharing them, against one that loads each model's own.

    python bench/bench_cache.py [--rounds 5] [--skip-full] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def read_bytes(folder: Path) -> tuple[float, int]:
    started, total = time.perf_counter(), 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += len(chunk)
    return time.perf_counter() - started, total


def full_load(work: Path) -> dict:
    import torch
    from bench_overhead import build_full_sd15
    from diffusers import StableDiffusionPipeline

    from invoke_core.engine import Engine
    from invoke_core.model_install import install_model

    folder = work / "sd15-full"
    if not (folder / "model_index.json").exists():
        build_full_sd15(folder)
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)  # fp16 on disk
        del pipe
    engine = Engine(root=work / "root", device="cpu")
    record = install_model(engine.registry, str(folder), name="full sd15") if not any(r.path == str(folder) for r in engine.registry.list()) else next(r for r in engine.registry.list() if r.path == str(folder))
    read_s, size = read_bytes(folder)
    (work / "root" / "models" / ".cache" / "component-hashes.json").unlink(missing_ok=True)
    import gc

    started = time.perf_counter()
    engine.cache.get(record, engine.device)
    first = time.perf_counter() - started
    engine.cache.clear()  # each load below into memory the last one gave back
    gc.collect()
    loads, raws = [], []
    for _ in range(2):  # alternating: our load (a new start: the hashes known), then a raw from_pretrained
        fresh = Engine(root=work / "root", device="cpu")
        started = time.perf_counter()
        fresh.cache.get(record, fresh.device)
        loads.append(time.perf_counter() - started)
        del fresh
        gc.collect()
        started = time.perf_counter()
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        raws.append(time.perf_counter() - started)
        del pipe
        gc.collect()
    known, raw = min(loads), min(raws)
    return {"bytes": size, "read_s": read_s, "first_load_s": first, "load_s": known, "raw_from_pretrained_s": raw,
            "load_over_read": known / read_s, "load_over_raw": known / raw}


def jobs(rounds: int, root: Path) -> dict:
    from invoke_core.compile import compile_canvas
    from invoke_core.engine import Engine
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    engine = Engine(root=root, device="cpu")
    engine.cache.resident = {"demo", "demo-inpaint"}

    def run(model: str) -> float:
        params = GenerationParams(prompt="a lighthouse", model=model, steps=1, seed=1)
        return engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, 64, 64), (), params)))[0].metadata["timings"]["load"]

    first = run("demo")
    second = [run("demo") for _ in range(rounds)]
    run("demo-inpaint")
    switches = [run(m) for _ in range(rounds) for m in ("demo", "demo-inpaint")]
    return {"first_job_load_s": first, "second_job_load_s": statistics.median(second), "switch_load_s_max": max(switches),
            "loads": engine.cache.stats().loads}


def two_fluxes(share: bool, root: str) -> dict:
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=root, device="cpu")
    engine.cache.share_components = share
    folder = Path(root) / "schnell"
    if not (folder / "model_index.json").exists():
        build_flux_demo(folder, schnell=True)
    schnell = next((r for r in engine.registry.list() if r.path == str(folder)), None) or install_model(engine.registry, str(folder), name="schnell")
    from diffusers import FluxPipeline  # noqa: F401 (imported before the count: only the weights count)
    from transformers import CLIPTextModel, T5EncoderModel  # noqa: F401

    before = rss_mb()
    for record in (engine.resolve_model("demo-flux"), schnell):
        engine.cache.get(record, engine.device)
    stats = engine.cache.stats()
    return {"share": share, "rss_mb": rss_mb(), "rss_added_mb": rss_mb() - before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cache_bytes": stats.ram_used, "components": len(stats.components)}


def rss_mb() -> float:
    """The process's resident set now (VmRSS; ru_maxrss is a peak that a child inherits across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-full", action="store_true", help="leave out the full-size SD1.5 (~4 GB of disk, ~8 GB of RAM)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cache-"))
    if args.child:
        print(json.dumps(two_fluxes(args.child == "share", str(work / "flux-root"))))
        return 0
    out: dict = {}
    for mode in ("share", "own"):  # each in a process of its own (first: this one's peak stays small)
        done = subprocess.run([sys.executable, __file__, "--child", mode, "--workdir", str(work)], capture_output=True, text=True, check=True)
        out[f"flux_{mode}"] = json.loads(done.stdout.strip().splitlines()[-1])
    out["jobs"] = jobs(args.rounds, work / "jobs-root")
    if not args.skip_full:
        out["full_sd15"] = full_load(work)
    if "full_sd15" in out:
        f = out["full_sd15"]
        print(f"full SD1.5 ({f['bytes'] / 2**30:.2f} GiB fp16): read {f['read_s']:.2f} s, load {f['load_s']:.2f} s"
              f" ({f['load_over_read']:.2f}x the read; {f['load_over_raw']:.2f}x a raw from_pretrained of {f['raw_from_pretrained_s']:.2f} s),"
              f" first load with hashing {f['first_load_s']:.2f} s")
    j = out["jobs"]
    print(f"first job load {j['first_job_load_s']:.3f} s, second job {j['second_job_load_s']:.3f} s, switch between kept models max {j['switch_load_s_max']:.3f} s ({j['loads']} loads)")
    share, own = out["flux_share"], out["flux_own"]
    print(f"two tiny FLUX.1 sharing encoders: RSS {share['rss_mb']:.0f} MB (+{share['rss_added_mb']:.1f} MB for the two), cache"
          f" {share['cache_bytes'] / 2**20:.2f} MB in {share['components']} components; not sharing: RSS {own['rss_mb']:.0f} MB"
          f" (+{own['rss_added_mb']:.1f} MB), cache {own['cache_bytes'] / 2**20:.2f} MB in {own['components']}"
          f" ({own['cache_bytes'] / max(1, share['cache_bytes']):.2f}x the bytes)")
    (work / "bench_cache.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {work / 'bench_cache.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
