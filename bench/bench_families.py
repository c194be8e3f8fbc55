"""Per-family cost on the tiny demo models: peak RSS of a process that runs one family's jobs, our engine's
text-to-image time against the family's raw diffusers pipeline (same call, same process, alternating), and
the generic flow-matching path's inpaint against FLUX.1's native inpaint pipeline.

Each family runs in a process of its own, so its peak RSS is its own (`ru_maxrss`). Ratios, not seconds:
these machines are noisy.

    python bench/bench_families.py [--rounds 5] [--size 64] [--steps 4] [--families demo-flux,demo-qwen]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMOS = ("demo-sd3", "demo-flux", "demo-flux2", "demo-flux2-dev", "demo-chroma", "demo-hidream", "demo-zimage", "demo-qwen")


def _one_family(model: str, rounds: int, size: int, steps: int, root: str) -> dict:
    """In this process: time raw pipeline vs engine for txt2img; peak RSS at the end."""
    import resource

    import numpy as np
    import torch

    from invoke_core import families
    from invoke_core.compile import compile_canvas
    from invoke_core.engine import Engine
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind

    engine = Engine(root=root, device="cpu")
    record = engine.resolve_model(model)
    family = families.get(record.family)
    defaults = family.model_defaults(record) or family.defaults
    params = GenerationParams(prompt="a lighthouse at dusk", model=model, steps=steps, seed=3, cfg_scale=defaults.cfg_scale)
    document = CanvasDocument(Bounds(0, 0, size, size), (), params)
    request = compile_canvas(document)
    engine.run(request)  # load and warm up
    base = engine.cache.get(record, engine.device).model
    from invoke_core.types import Mode

    raw, _task = engine.pipeline_for(base, record, Mode.TXT2IMG)
    family.configure_pipeline(raw, (size, size))  # HiDream's would rescale to a megapixel otherwise
    prompt_args = family.encode_prompts(raw, params.prompt, None, family.uses_cfg(raw, params))

    def raw_call():
        with torch.inference_mode():
            raw(**prompt_args, num_inference_steps=steps, **family.guidance_args(raw, params), width=size, height=size,
                generator=torch.Generator().manual_seed(3), output_type="np")

    raw_call()
    ours, theirs = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        raw_call()
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine.run(request)
        ours.append(time.perf_counter() - t)
    result = {
        "model": model,
        "family": record.family,
        "engine_over_raw_median": statistics.median(ours) / statistics.median(theirs),
        "engine_over_raw_paired": statistics.median(o / r for o, r in zip(ours, theirs)),
    }
    if record.family == "flux":
        result |= _generic_vs_native(raw, family, rounds, size, steps)
    # an inpaint job too (the generic path for HiDream and Chroma), before reading the peak
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.integers(0, 255, (size, size, 3), dtype=np.uint8), np.full((size, size, 1), 255, np.uint8)], axis=2)
    mask = np.zeros((size, size, 4), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4, 3] = 255
    layers = (Layer("img", LayerKind.RASTER, 0, 0, pixels), Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask))
    engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, size, size), layers, params)))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _generic_vs_native(pipe, family, rounds: int, size: int, steps: int) -> dict:
    import numpy as np
    import torch
    from diffusers import FluxInpaintPipeline
    from PIL import Image

    from invoke_core.flow_tasks import flow_start

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask_array = np.zeros((size, size), np.uint8)
    mask_array[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    inputs = {"image": image, "mask_image": Image.fromarray(mask_array), "strength": 0.8, "width": size, "height": size}
    native = FluxInpaintPipeline(**pipe.components)
    native.set_progress_bar_config(disable=True)
    common = {"prompt": "a cat", "num_inference_steps": steps, "guidance_scale": 3.5, "output_type": "np"}

    def generic():
        g = torch.Generator().manual_seed(1)
        start = flow_start(pipe, family, inputs, steps, g)

        def blend(p, i, t, kw):
            kw["latents"] = start.blend(p, kw["latents"])
            return kw

        return pipe(**common, **start.call_args, generator=g, callback_on_step_end=blend).images[0]

    def nat():
        return native(**common, **inputs, generator=torch.Generator().manual_seed(1)).images[0]

    same = float(np.abs(generic() - nat()).max())
    ours, theirs = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        nat()
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        generic()
        ours.append(time.perf_counter() - t)
    return {"generic_over_native_inpaint": statistics.median(ours) / statistics.median(theirs), "generic_vs_native_max_diff": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--families", default=",".join(DEMOS), help="demo model ids, comma-separated")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        from invoke_core.quiet import quiet_libraries

        quiet_libraries()
        print(json.dumps(_one_family(args.child, args.rounds, args.size, args.steps, args.root)))
        return 0
    with tempfile.TemporaryDirectory() as root:
        print(f"{'model':14} {'family':11} {'engine/raw':>10} {'paired':>7} {'peak RSS':>9}  generic/native inpaint")
        for model in args.families.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--child", model, "--root", root, "--rounds", str(args.rounds),
                 "--size", str(args.size), "--steps", str(args.steps)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            extra = (f"  {r['generic_over_native_inpaint']:.3f}x (max pixel diff {r['generic_vs_native_max_diff']:.3g})"
                     if "generic_over_native_inpaint" in r else "")
            print(f"{r['model']:14} {r['family']:11} {r['engine_over_raw_median']:9.3f}x {r['engine_over_raw_paired']:6.3f}x"
                  f" {r['peak_rss_mb']:7.0f} MB{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
