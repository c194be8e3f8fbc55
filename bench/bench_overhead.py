"""Overhead of invoke_core.run over a raw diffusers call, on the same model, in one process.

Runs the same txt2img job (same prompt, seed, scheduler, size, steps) alternately through
`Engine.run` and through a plain diffusers pipeline call sharing the same loaded modules, and prints
the median of each and their ratio (machines here are noisy: only ratios within one run mean much).
Models: the built-in demo model, and a full-size SD1.5-architecture model with random weights built
by this script from the shipped configs (use --skip-full to leave it out; it needs ~10 GB of RAM and
~4 GB of disk under --workdir).

With --control it also measures what one ControlNet costs over the same plain job (each job through
`Engine.run`, alternately with and without a control layer), as a ratio: on the demo with the demo
ControlNet, and on the full-size model with a full-size ControlNet made by `ControlNetModel.from_unet`.

With --lora it measures what a stack of two LoRAs (UNet and text-encoder attention, rank 4, built by
invoke_core.demo_lora) costs over the same plain job, as a ratio, on the demo and on the full-size model:
each LoRA job loads the adapters from the in-memory file cache, runs, and unloads them.

With --family sd3 it measures the SD 3.5 family instead: the tiny demo-sd3, then (unless --skip-full) a
random-weight SD 3.5 Medium-width model of reduced depth built here: the MMDiT at full width (24 heads
of 64, joint attention 4096 wide, pooled 2048, dual attention and RMS q/k norm as Medium has them) with
4 of its 24 blocks, the two CLIP text encoders at full width with 2 layers each, no T5 (T5-XXL's 4.7 B
parameters do not fit this machine's test budget; the pipeline then pads with zeros), the full 16-channel
VAE. Flow-matching Euler on both sides.

With --family flux it measures FLUX.1: the tiny demo-flux, then (unless --skip-full) a random-weight
FLUX.1-width model of reduced depth built here: the MMDiT at full width (24 heads of 128, 3072 wide,
T5 context 4096, pooled 768, guidance embedding, rope axes 16/56/56) with 2 of its 19 double blocks and
4 of its 38 single blocks, a CLIP-L-width text encoder of 2 layers, a T5 at T5-XXL width (4096, 64 heads,
d_ff 10240) with 2 of its 24 layers and prompts of 128 tokens (of 512), the full 16-channel VAE. Run it
with --size 128 --steps 2 on a CPU (each step is ~0.5 TFLOP there).

With --reference it measures what one reference layer costs over the same plain job: the demo IP-Adapter on
SD1.5; on FLUX.1 demo-flux-redux and demo-flux-ip-adapter, and (unless --skip-full) a random FLUX IP-Adapter
at the full-width model's widths with a tiny CLIP image encoder.

    python bench/bench_overhead.py [--rounds 5] [--size 256] [--steps 4] [--skip-full] [--control] [--lora] [--regions] [--reference] [--family sd1|sd3|flux]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from random_models import build_flux_width, build_full_sd15  # bench_server imports them from here too


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_full_controlnet(pipeline_folder: Path, dest: Path) -> Path:
    """A full-size SD1.5 ControlNet (ControlNetModel.from_unet: the real architecture, random weights)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(pipeline_folder / "unet", local_files_only=True)
    ControlNetModel.from_unet(unet).save_pretrained(dest, safe_serialization=True)
    return dest


def bench_pair(engine, plain, other, rounds: int) -> dict:
    """The same job with and without an addition, alternating: medians and their ratio."""
    engine.run(plain)
    engine.run(other)  # loads and warms both
    with_it, without, pair_ratios = [], [], []
    for i in range(rounds):
        order = (("plain", plain), ("other", other))
        if i % 2:
            order = order[::-1]
        times = {}
        for name, request in order:
            t0 = time.perf_counter()
            engine.run(request)
            times[name] = time.perf_counter() - t0
        without.append(times["plain"])
        with_it.append(times["other"])
        pair_ratios.append(times["other"] / times["plain"])
    return {
        "plain_median_s": statistics.median(without),
        "other_median_s": statistics.median(with_it),
        "ratio_of_medians": statistics.median(with_it) / statistics.median(without),
        "median_paired_ratio": statistics.median(pair_ratios),
    }


def bench_control(engine, model_id: str, controlnet_id: str, rounds: int, size: int, steps: int) -> dict:
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LayerKind

    params = GenerationParams(prompt="a lighthouse at dusk, detailed painting", model=model_id, steps=steps, seed=1234)
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    layer = Layer("ctl", LayerKind.CONTROL, 0, 0, pixels, control=ControlSettings(controlnet_id, preprocessor="canny"))
    plain = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    controlled = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (layer,), params))
    result = bench_pair(engine, plain, controlled, rounds)
    return {"model": model_id, "controlnet": controlnet_id, **result, "control_median_s": result["other_median_s"]}


def bench_regions(engine, model_id: str, rounds: int, size: int, steps: int) -> dict:
    """Two regional-guidance layers (left and right halves, their own prompts) over the plain job."""
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind, RegionPrompt

    params = GenerationParams(prompt="a harbour at dusk, detailed painting", model=model_id, steps=steps, seed=1234)
    layers = []
    for index, (prompt, cols) in enumerate((("a red lighthouse", slice(0, size // 2)), ("a stormy sea", slice(size // 2, size)))):
        pixels = np.zeros((size, size, 4), np.uint8)
        pixels[:, cols, 3] = 255
        layers.append(Layer(f"region-{index}", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt)))
    plain = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    regional = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), tuple(layers), params))
    return {"model": model_id, **bench_pair(engine, plain, regional, rounds)}


def bench_reference(engine, model_id: str, reference_id: str, rounds: int, size: int, steps: int) -> dict:
    """One reference layer (its picture beside the box, weight 1, every step) through `reference_id` (an
    IP-Adapter, a FLUX Redux) over the plain job."""
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind, ReferenceSettings

    params = GenerationParams(prompt="a harbour at dusk, detailed painting", model=model_id, steps=steps, seed=1234)
    pixels = np.random.default_rng(3).integers(0, 256, (size, size, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    layer = Layer("ref", LayerKind.REFERENCE, size, 0, pixels, reference=ReferenceSettings(model=reference_id))
    plain = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    referenced = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (layer,), params))
    return {"model": model_id, "reference": reference_id, **bench_pair(engine, plain, referenced, rounds)}


def report_reference(result: dict) -> None:
    print(f"\n== one reference layer ({result['reference']}) on {result['model']} ==")
    print(f"plain job median         {result['plain_median_s'] * 1000:9.1f} ms")
    print(f"with the reference       {result['other_median_s'] * 1000:9.1f} ms")
    print(f"ratio (medians)          {result['ratio_of_medians']:9.3f}x   (paired: {result['median_paired_ratio']:.3f}x)")


def install_flux_ip_adapter(engine, flux_folder: Path, dest: Path) -> str:
    """A random FLUX IP-Adapter for `flux_folder` (its widths) and a CLIP image encoder it reads, installed."""
    from invoke_core.families.flux_demo import build_ip_adapter_file
    from invoke_core.ip_adapter_demo import build_image_encoder_demo
    from invoke_core.model_install import install_model

    build_image_encoder_demo(dest / "image_encoder")  # found beside the adapter and installed with it
    return install_model(engine.registry, str(build_ip_adapter_file(dest / "ip-adapter.safetensors", flux_folder))).id


def report_regions(result: dict) -> None:
    print(f"\n== two regional prompts on {result['model']} ==")
    print(f"plain job median         {result['plain_median_s'] * 1000:9.1f} ms")
    print(f"with 2 regions median    {result['other_median_s'] * 1000:9.1f} ms")
    print(f"ratio (medians)          {result['ratio_of_medians']:9.3f}x   (paired: {result['median_paired_ratio']:.3f}x)")


def bench_lora(engine, model_id: str, lora_ids: list[str], rounds: int, size: int, steps: int) -> dict:
    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams, LoraSpec

    def request(loras=()):
        params = GenerationParams(
            prompt="a lighthouse at dusk, detailed painting", model=model_id, steps=steps, seed=1234, loras=loras
        )
        return compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))

    plain = request()
    stacked = request(tuple(LoraSpec(lid, w) for lid, w in zip(lora_ids, (0.8, 0.5))))
    reference = engine.run(plain)[0].image
    first = time.perf_counter()
    engine.run(stacked)  # reads the LoRA files once
    first = time.perf_counter() - first
    with_l, without, pair_ratios, apply_s = [], [], [], []
    for i in range(rounds):
        order = (("plain", plain), ("lora", stacked))
        if i % 2:
            order = order[::-1]
        times = {}
        for name, req in order:
            t0 = time.perf_counter()
            result = engine.run(req)[0]
            times[name] = time.perf_counter() - t0
            if name == "lora":
                apply_s.append(result.metadata["timings"]["lora"])
        without.append(times["plain"])
        with_l.append(times["lora"])
        pair_ratios.append(times["lora"] / times["plain"])
    # Iterating on a style: the next job keeps the stack and only re-weights it (LoraStacks). Each round: a
    # plain job (which unloads), the stack (loads), the stack at other weights (kept): kept / plain.
    reweighted = request(tuple(LoraSpec(lid, w) for lid, w in zip(lora_ids, (0.6, 0.4))))
    kept, kept_plain, kept_ratios = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        engine.run(plain)
        plain_s = time.perf_counter() - t0
        engine.run(stacked)
        t0 = time.perf_counter()
        engine.run(reweighted)
        kept_s = time.perf_counter() - t0
        kept.append(kept_s)
        kept_plain.append(plain_s)
        kept_ratios.append(kept_s / plain_s)
    return {
        "model": model_id,
        "loras": lora_ids,
        "kept_median_s": statistics.median(kept),
        "kept_ratio_of_medians": statistics.median(kept) / statistics.median(kept_plain),
        "kept_paired_ratio": statistics.median(kept_ratios),
        "plain_median_s": statistics.median(without),
        "lora_median_s": statistics.median(with_l),
        "ratio_of_medians": statistics.median(with_l) / statistics.median(without),
        "median_paired_ratio": statistics.median(pair_ratios),
        "load_median_s": statistics.median(apply_s),
        "first_lora_job_s": first,
        "plain_after_equal": bool(np.array_equal(engine.run(plain)[0].image, reference)),
    }


def report_lora(result: dict) -> None:
    print(f"\n== two LoRAs ({', '.join(result['loras'])}) on {result['model']} ==")
    print(f"plain job median         {result['plain_median_s'] * 1000:9.1f} ms")
    print(f"with 2 LoRAs median      {result['lora_median_s'] * 1000:9.1f} ms   (after a plain job: loaded again;"
          f" first, reading the files: {result['first_lora_job_s'] * 1000:.1f} ms)")
    print(f"  of which load+set      {result['load_median_s'] * 1000:9.1f} ms   (metadata timings.lora)")
    print(f"ratio (medians)          {result['ratio_of_medians']:9.3f}x   (paired: {result['median_paired_ratio']:.3f}x)")
    print(f"plain job after: same pixels as before the LoRA jobs: {result['plain_after_equal']}")
    print(f"next job, same LoRAs re-weighted (stack kept): {result['kept_median_s'] * 1000:.1f} ms,"
          f" {result['kept_ratio_of_medians']:.3f}x a plain job (paired: {result['kept_paired_ratio']:.3f}x)")


def install_loras(engine, model_folder: Path, dest: Path, scale: float = 1.0) -> list[str]:
    from invoke_core.demo_lora import build_lora
    from invoke_core.model_install import install_model

    return [
        install_model(engine.registry, str(build_lora(model_folder, dest / f"{fmt}.safetensors", seed, fmt, scale=scale))).id
        for seed, fmt in ((1, "peft"), (2, "kohya"))
    ]


def report_control(result: dict) -> None:
    print(f"\n== one ControlNet ({result['controlnet']}) on {result['model']} ==")
    print(f"plain job median         {result['plain_median_s'] * 1000:9.1f} ms")
    print(f"with ControlNet median   {result['control_median_s'] * 1000:9.1f} ms")
    print(f"ratio (medians)          {result['ratio_of_medians']:9.3f}x   (paired: {result['median_paired_ratio']:.3f}x)")


def build_sd35_medium_width(dest: Path) -> Path:
    """A random-weight SD 3.5 Medium-width pipeline of reduced depth (see the module docstring)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from invoke_core.demo import _tokenizer

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=128, patch_size=2, in_channels=16, num_layers=4, attention_head_dim=64, num_attention_heads=24,
        joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
        pos_embed_max_size=384, dual_attention_layers=(0, 1, 2, 3), qk_norm="rms_norm",
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, norm_num_groups=32,
        sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False,
    )
    tmp = dest.parent / (dest.name + "-tokenizer")
    tokenizer = _tokenizer(tmp)
    tokenizer_2 = _tokenizer(tmp, pad_token="!")

    def clip(hidden: int, projection: int, heads: int):
        return CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=77, projection_dim=projection,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                hidden_act="gelu",
            )
        )

    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=clip(768, 768, 12), tokenizer=tokenizer, text_encoder_2=clip(1280, 1280, 20), tokenizer_2=tokenizer_2,
        text_encoder_3=None, tokenizer_3=None,
    )
    pipe.save_pretrained(dest, safe_serialization=True)
    return dest


def bench_model(engine, model_id: str, rounds: int, size: int, steps: int) -> dict:
    import torch

    from invoke_core.compile import compile_canvas
    from invoke_core.schedulers import make_scheduler
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    prompt, seed = "a lighthouse at dusk, detailed painting", 1234
    params = GenerationParams(prompt=prompt, model=model_id, steps=steps, seed=seed, scheduler="euler", cfg_scale=7.5)
    request = compile_canvas(CanvasDocument(Bounds(0, 0, size, size), (), params))
    record = engine.registry.get(model_id)
    from invoke_core import families

    sampling = families.get(record.family).sampling
    # the same prompt length on both sides (ours: the model's T5 length, up to 512)
    extra = {"max_sequence_length": min(512, engine_tokens(engine, record))} if record.family == "flux" else {}

    loads_before = engine.cache.stats().loads
    started = time.perf_counter()
    first = engine.run(request)[0]
    first_job = time.perf_counter() - started
    started = time.perf_counter()
    engine.run(request)
    second_job = time.perf_counter() - started
    loads_for_two_jobs = engine.cache.stats().loads - loads_before

    base = engine.cache.get(record, engine.device).model
    raw = type(base)(**base.components)  # a plain pipeline on the same modules
    raw.set_progress_bar_config(disable=True)

    def raw_call():
        raw.scheduler = make_scheduler("euler", base.scheduler.config, seed, sampling)
        return raw(
            prompt,
            num_inference_steps=steps,
            guidance_scale=7.5,
            height=size,
            width=size,
            generator=torch.Generator("cpu").manual_seed(seed),
            **extra,
        ).images[0]

    same_pixels = np.array_equal(np.asarray(raw_call()), first.image)
    ours, theirs, pair_ratios = [], [], []
    for i in range(rounds):
        order = (("raw", raw_call), ("invoke", lambda: engine.run(request)))
        if i % 2:
            order = order[::-1]
        times = {}
        for name, call in order:
            t0 = time.perf_counter()
            call()
            times[name] = time.perf_counter() - t0
        theirs.append(times["raw"])
        ours.append(times["invoke"])
        pair_ratios.append(times["invoke"] / times["raw"])
    return {
        "model": model_id,
        "raw_median_s": statistics.median(theirs),
        "invoke_median_s": statistics.median(ours),
        "ratio_of_medians": statistics.median(ours) / statistics.median(theirs),
        "median_paired_ratio": statistics.median(pair_ratios),
        "delta_ms": (statistics.median(ours) - statistics.median(theirs)) * 1000,
        "first_job_s": first_job,
        "second_job_s": second_job,
        "loads_for_two_jobs": loads_for_two_jobs,
        "same_pixels_as_raw": same_pixels,
    }


def report(result: dict) -> None:
    print(f"\n== {result['model']} ==")
    print(f"raw diffusers median     {result['raw_median_s'] * 1000:9.1f} ms")
    print(f"invoke_core.run median   {result['invoke_median_s'] * 1000:9.1f} ms")
    print(f"ratio (medians)          {result['ratio_of_medians']:9.3f}x   (paired: {result['median_paired_ratio']:.3f}x)")
    print(f"absolute overhead        {result['delta_ms']:+9.1f} ms")
    print(f"first job (with load)    {result['first_job_s'] * 1000:9.1f} ms")
    print(f"second job (cached)      {result['second_job_s'] * 1000:9.1f} ms   model loads for both jobs: {result['loads_for_two_jobs']}")
    print(f"same pixels as raw call  {result['same_pixels_as_raw']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--control", action="store_true", help="also measure one ControlNet over a plain job")
    parser.add_argument("--lora", action="store_true", help="also measure two LoRAs over a plain job")
    parser.add_argument("--regions", action="store_true", help="also measure two regional prompts over a plain job")
    parser.add_argument("--reference", action="store_true", help="also measure one reference layer (IP-Adapter; FLUX.1: Redux and IP-Adapter) over a plain job")
    parser.add_argument("--workdir", default=None, help="where to build models (default: a temporary folder)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: the device's)")
    parser.add_argument("--family", choices=["sd1", "sd3", "flux"], default="sd1", help="the model family to measure")
    args = parser.parse_args()

    from invoke_core.quiet import quiet_libraries

    quiet_libraries()
    from invoke_core.model_install import install_model
    from invoke_core.engine import Engine

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "root"
        engine = Engine(root=root, device=args.device, dtype=args.dtype)
        print(f"device {engine.device.device}, dtype {engine.device.dtype}")
        rss_before = peak_rss_mb()
        if args.family in ("sd3", "flux"):
            return bench_transformer_family(engine, args, Path(tmp), rss_before)
        t0 = time.perf_counter()
        engine.registry.ensure_demo_built("demo")
        print(f"demo model build: {time.perf_counter() - t0:.2f} s (first use, includes writing to disk)")
        demo = bench_model(engine, "demo", args.rounds, args.size, args.steps)
        report(demo)
        print(f"peak RSS after the demo runs: {peak_rss_mb():.0f} MB (before: {rss_before:.0f} MB, imports included)")
        if args.control:
            report_control(bench_control(engine, "demo", "demo-controlnet", args.rounds, args.size, args.steps))
        if args.regions:
            report_regions(bench_regions(engine, "demo", args.rounds, args.size, args.steps))
        if args.reference:
            report_reference(bench_reference(engine, "demo", "demo-ip-adapter", args.rounds, args.size, args.steps))
        if args.lora:
            demo_loras = install_loras(engine, Path(engine.registry.get("demo").path), Path(tmp) / "demo-loras")
            report_lora(bench_lora(engine, "demo", demo_loras, args.rounds, args.size, args.steps))
        if not args.skip_full:
            t0 = time.perf_counter()
            folder = build_full_sd15(Path(tmp) / "sd15-random")
            record = install_model(engine.registry, str(folder), name="sd15 random")
            print(f"\nfull-size SD1.5 (random weights) built and installed in {time.perf_counter() - t0:.1f} s")
            engine.cache.clear()
            report(bench_model(engine, record.id, args.rounds, args.size, args.steps))
            if args.control:
                t0 = time.perf_counter()
                cn_folder = build_full_controlnet(folder, Path(tmp) / "sd15-controlnet-random")
                cn = install_model(engine.registry, str(cn_folder), name="sd15 controlnet random")
                print(f"full-size ControlNet (random weights) built and installed in {time.perf_counter() - t0:.1f} s")
                report_control(bench_control(engine, record.id, cn.id, args.rounds, args.size, args.steps))
            if args.regions:
                report_regions(bench_regions(engine, record.id, args.rounds, args.size, args.steps))
            if args.lora:
                t0 = time.perf_counter()
                full_loras = install_loras(engine, folder, Path(tmp) / "full-loras", scale=0.05)
                print(f"two full-size LoRAs (rank 4, random) built and installed in {time.perf_counter() - t0:.1f} s")
                report_lora(bench_lora(engine, record.id, full_loras, args.rounds, args.size, args.steps))
            print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 0


def engine_tokens(engine, record) -> int:
    return int(engine.cache.get(record, engine.device).model.tokenizer_2.model_max_length)


def bench_transformer_family(engine, args, tmp: Path, rss_before: float) -> int:
    from invoke_core.model_install import install_model

    demo = {"sd3": "demo-sd3", "flux": "demo-flux"}[args.family]
    t0 = time.perf_counter()
    engine.registry.ensure_demo_built(demo)
    print(f"{demo} build: {time.perf_counter() - t0:.2f} s (first use, includes writing to disk)")
    report(bench_model(engine, demo, args.rounds, args.size, args.steps))
    print(f"peak RSS after the {demo} runs: {peak_rss_mb():.0f} MB (before: {rss_before:.0f} MB, imports included)")
    if args.regions:
        report_regions(bench_regions(engine, demo, args.rounds, args.size, args.steps))
    if args.reference and args.family == "flux":
        for reference_id in ("demo-flux-redux", "demo-flux-ip-adapter"):
            report_reference(bench_reference(engine, demo, reference_id, args.rounds, args.size, args.steps))
    if not args.skip_full:
        t0 = time.perf_counter()
        if args.family == "sd3":
            folder, what = build_sd35_medium_width(tmp / "sd35-medium-width"), "SD 3.5 Medium-width, 4 blocks"
        else:
            folder, what = build_flux_width(tmp / "flux-width"), "FLUX.1-width, 2 double + 4 single blocks"
        record = install_model(engine.registry, str(folder), name=f"{what} random")
        print(f"\n{what} (random weights) built and installed in {time.perf_counter() - t0:.1f} s")
        engine.cache.clear()
        report(bench_model(engine, record.id, args.rounds, args.size, args.steps))
        if args.regions:
            report_regions(bench_regions(engine, record.id, args.rounds, args.size, args.steps))
        if args.reference and args.family == "flux":
            adapter = install_flux_ip_adapter(engine, folder, tmp / "flux-ip-adapter")
            report_reference(bench_reference(engine, record.id, adapter, args.rounds, args.size, args.steps))
        print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
