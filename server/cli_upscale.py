"""`invoke-canvas upscale` and the hires-fix options of `invoke-canvas generate` (server/cli.py wires them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np


def add_upscale_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    up = sub.add_parser(
        "upscale", help="upscale an image with an upscaler model (x2 or x4), optionally refined by a tiled img2img pass"
    )
    up.add_argument("image", metavar="IN.png", help="the image to upscale (PNG, JPEG or WebP)")
    up.add_argument("--scale", type=int, default=2, help="2 or 4 (default 2)")
    up.add_argument("--model", default=None, help="upscaler id (default: the first installed upscaler, else the demo)")
    up.add_argument(
        "--refine", type=float, default=0.0, metavar="STRENGTH",
        help="denoise strength of an img2img refine over overlapping tiles with --refine-model and --prompt (default 0: none)",
    )
    up.add_argument("--refine-model", default=None, metavar="ID", help="the model that refines (default: the first installed model, else the demo)")
    up.add_argument("--prompt", default="", help="the refine's prompt")
    up.add_argument("--negative", default="")
    up.add_argument("--steps", type=int, default=30, help="the refine's steps (it runs about steps x strength of them)")
    up.add_argument("--cfg", type=float, default=7.5)
    up.add_argument("--scheduler", default="euler")
    up.add_argument("--seed", type=int, default=None, help="the refine's seed (default: random, printed)")
    up.add_argument("--tile", type=int, default=None, metavar="PX", help="the refine's tile side (default: the model family's size)")
    up.add_argument("--tile-overlap", type=int, default=64, metavar="PX")
    up.add_argument("--out", required=True, help="output PNG")
    add_common(up)


def add_hires_arguments(gen: argparse.ArgumentParser) -> None:
    gen.add_argument(
        "--hires-fix", type=float, default=None, metavar="SCALE",
        help="text to image in two passes: first at the size / SCALE (e.g. 2), upscaled, refined by img2img",
    )
    gen.add_argument("--hires-strength", type=float, default=0.45, help="for --hires-fix: the refine's denoise strength (default 0.45)")
    gen.add_argument("--hires-upscaler", default=None, metavar="ID", help="for --hires-fix: an upscaler model (default: a plain resize)")


def hires_from_args(args: Any) -> Any:
    """The HiresFix of `generate`'s arguments, or None."""
    from invoke_core.types import HiresFix

    if getattr(args, "hires_fix", None) is None:
        return None
    return HiresFix(scale=args.hires_fix, strength=args.hires_strength, upscaler=args.hires_upscaler)


def run_upscale(args: Any, make_engine: Callable[[Any], Any], read_rgba: Callable[[str, str], np.ndarray]) -> int:
    import secrets

    from tqdm import tqdm

    from invoke_core.compile import compile_canvas
    from invoke_core.errors import InvalidCanvasError
    from invoke_core.limits import BBOX_MULTIPLE
    from invoke_core.metadata import write_png
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind, UpscaleSettings

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InvalidCanvasError(f"--out {args.out}: the output must be a .png file")
    pixels = read_rgba(args.image, "input image")
    h, w = pixels.shape[:2]
    # the box's sides are multiples of 8: the edge pixels repeated to there, cropped off the result
    m = BBOX_MULTIPLE
    padded = np.pad(pixels, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 32)
    upscale = UpscaleSettings(model=args.model, scale=args.scale, refine_strength=args.refine, tile_size=args.tile, tile_overlap=args.tile_overlap)
    params = GenerationParams(
        prompt=args.prompt, negative_prompt=args.negative, model=args.refine_model, steps=args.steps, cfg_scale=args.cfg,
        scheduler=args.scheduler, seed=seed, upscale=upscale,
    )
    document = CanvasDocument(Bounds(0, 0, padded.shape[1], padded.shape[0]), (Layer("image", LayerKind.RASTER, 0, 0, padded),), params)
    request = compile_canvas(document)  # a bad scale, strength or tile is refused before the engine loads
    engine = make_engine(args)
    up_id = args.model or engine.registry.default_model_id("upscaler")
    record = engine.registry.get(up_id) if any(r.id == up_id for r in engine.registry.list()) else None
    if record is not None and record.builtin:
        print(f"upscaler: {record.name} ({record.description})", file=sys.stderr)
    bar = tqdm(total=None, unit="step", desc="upscale", file=sys.stderr, disable=None)

    def on_progress(progress) -> None:
        bar.total = progress.total
        bar.n = progress.step
        bar.refresh()

    try:
        result = engine.run(request, on_progress=on_progress)[0]
    finally:
        bar.close()
    image = np.asarray(result.image)[: h * args.scale, : w * args.scale]
    meta = {**result.metadata, "width": image.shape[1], "height": image.shape[0], "source": Path(args.image).name}
    write_png(out, image, meta)
    refine = f", refined at {args.refine:g} (seed {result.seed})" if args.refine > 0 else ""
    print(f"{out} ({image.shape[1]}x{image.shape[0]}, x{args.scale} with {result.metadata['upscale']['model']['id']}{refine})")
    return 0
