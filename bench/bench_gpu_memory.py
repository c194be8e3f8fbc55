"""The memory modes on a GPU: a reduced-depth, full-width random FLUX.1 (bench_overhead.build_flux_width:
2 double and 4 single blocks at 3072 wide, T5 at 4096 wide) and the full-size SD1.5 (bench_overhead's),
in bf16 at 1024x1024 (SD1.5 at 512): seconds per image and peak VRAM with offload none, model and group,
and the time a switch between the two costs when both are kept loaded (goal: 0 s of loading).

Needs CUDA (scripts/gpu_check.sh runs it on a lent GPU); prints one table and writes JSON.

    python bench/bench_gpu_memory.py [--steps 4] [--rounds 2] [--workdir DIR]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(engine, model: str, size: int, steps: int, rounds: int) -> dict:
    import torch

    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    params = GenerationParams(prompt="a lighthouse at dusk", model=model, steps=steps, seed=1, cfg_scale=3.5)
    request = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    engine.run(request)  # load, warm up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = engine.run(request)[0]
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return {"seconds": statistics.median(seconds), "peak_vram_gb": torch.cuda.max_memory_allocated() / 2**30,
            "offload": result.metadata.get("offload", "none")}


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 2
    from bench_overhead import build_flux_width, build_full_sd15

    from invoke_core.engine import Engine
    from invoke_core.model_install import install_model

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-gpu-memory-"))
    print(torch.cuda.get_device_name(), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GB")
    folders = {"flux": build_flux_width(work / "flux-width"), "sd15": build_full_sd15(work / "sd15-full")}
    out: dict = {"card": torch.cuda.get_device_name()}
    for mode in ("none", "model", "group"):
        engine = Engine(root=work / f"root-{mode}", device="cuda", dtype="bfloat16", offload=mode)
        ids = {name: install_model(engine.registry, str(folder), name=name).id for name, folder in folders.items()}
        out[mode] = {"flux": one(engine, ids["flux"], 1024, args.steps, args.rounds), "sd15": one(engine, ids["sd15"], 512, args.steps, args.rounds)}
        if mode == "none":  # both kept loaded: a switch loads nothing
            engine.cache.resident = set(ids.values())
            loads = engine.cache.stats().loads
            started = time.perf_counter()
            for name in ("flux", "sd15", "flux"):
                one(engine, ids[name], 512, 1, 1)
            out["switch"] = {"seconds_three_switches": time.perf_counter() - started, "loads": engine.cache.stats().loads - loads}
        del engine
        torch.cuda.empty_cache()
    for mode in ("none", "model", "group"):
        for name in ("flux", "sd15"):
            r = out[mode][name]
            print(f"{name:5} offload {mode:6} {r['seconds']:.2f} s/image  peak VRAM {r['peak_vram_gb']:.2f} GB")
    print(f"switch between two kept-loaded models: {out['switch']['loads']} loads")
    (work / "bench_gpu_memory.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
