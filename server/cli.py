"""`invoke-canvas`: the command line. User mistakes print one line and exit non-zero, never a traceback.

It glues the parts together (invoke_core for generation and models, db for the doctor), so it lives
with the server, the app's shell; invoke_core itself imports neither.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import os
import secrets
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from invoke_core.limits import VAE_TILING_MODES
from invoke_core.masks import coverage_from_mask_image
from invoke_core.offload import OFFLOAD_MODES
from invoke_core.quiet import quiet_environment

EXIT_USER_ERROR = 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the subcommand they override; absent, the top-level value stands.
    parser.add_argument("--root", default=argparse.SUPPRESS, help="data folder (default: $INVOKE_CANVAS_ROOT or ~/invoke-canvas)")
    parser.add_argument("--device", default=argparse.SUPPRESS, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default=argparse.SUPPRESS, help="auto (default), float32, float16 or bfloat16")


def _add_scale(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--database-url", default=default, metavar="URL",
        help="a PostgreSQL server (postgresql+psycopg://user@host/db) instead of the SQLite file under the data folder",
    )
    parser.add_argument(
        "--broker", default=default, metavar="URL",
        help="Redis (redis://host:6379/0): jobs run on `invoke-canvas worker` processes, the web tier under gunicorn",
    )
    parser.add_argument(
        "--assets", default=default, metavar="URL",
        help="images in an S3-compatible bucket (s3://bucket/prefix; endpoint and keys from AWS_* variables) instead of the data folder",
    )


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default=argparse.SUPPRESS, metavar="URL",
        help="the shared PostgreSQL of a scale-out setup (default: $INVOKE_CANVAS_DATABASE_URL, else the data folder's SQLite)",
    )


def _database_url(args) -> str | None:
    return getattr(args, "database_url", None) or os.environ.get("INVOKE_CANVAS_DATABASE_URL") or None


def _registry(root: Path, database_url: str | None):
    """The registry the server uses: the data folder's JSON, or the shared database's (and that database)."""
    from invoke_core.model_records import JsonRecordStore, ModelRegistry

    if database_url is None:
        return ModelRegistry(root), None
    from db.model_store import DatabaseRecordStore
    from db.session import Database

    db = Database(root, url=database_url)
    return ModelRegistry(root, DatabaseRecordStore(db, import_from=JsonRecordStore(root / "models"))), db


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invoke-canvas",
        description="Local canvas image generation studio. With no command: start the server on http://127.0.0.1:9090.",
    )
    parser.add_argument("--root", help="data folder (default: $INVOKE_CANVAS_ROOT or ~/invoke-canvas)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; others need a token)")
    parser.add_argument("--port", type=int, default=None, help="port (default 9090)")
    parser.add_argument("--token", default=None, help="access token (generated and printed when listening beyond loopback)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default=None, help="auto (default), float32, float16 or bfloat16")
    parser.add_argument("--ram-cache-gb", type=float, default=None, help="model cache budget in RAM")
    parser.add_argument("--vram-cache-gb", type=float, default=None, help="model cache budget in GPU memory")
    parser.add_argument("--compile", default=None, help="torch.compile the denoiser and VAE decoder with this backend (the fast path's compile switch, on any device)")
    parser.add_argument("--fast-path", default=None, help="GPU fast path: auto (default: on for CUDA), on, off, or switches: channels_last,fused_qkv,compile,cuda_graphs,fp8")
    parser.add_argument("--offload", default=None, choices=OFFLOAD_MODES, help="a model over the VRAM budget: auto (default), none, model, group or sequential")
    parser.add_argument("--vae-tiling", default=None, choices=VAE_TILING_MODES, help="tile the VAE: auto (default: above 1536x1536), on or off")
    _add_scale(parser, None)
    sub = parser.add_subparsers(dest="command")

    gen = sub.add_parser("generate", help="generate an image from the command line")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative", default="")
    gen.add_argument("--model", default=None, help="model id (default: the first installed model, else the demo)")
    gen.add_argument("--steps", type=int, default=30)
    gen.add_argument("--cfg", type=float, default=7.5, help="CFG scale (FLUX.1: its distilled guidance)")
    gen.add_argument(
        "--true-cfg", type=float, default=1.0, help="FLUX.1: classifier-free guidance with --negative, besides the distilled guidance (1: off)"
    )
    gen.add_argument("--scheduler", default="euler")
    gen.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    gen.add_argument("--width", type=int, default=None)
    gen.add_argument("--height", type=int, default=None)
    gen.add_argument("--init", default=None, help="initial image (img2img; transparent or smaller than the size: outpaint)")
    gen.add_argument("--mask", default=None, help="inpaint mask, same size as --init, white = repaint")
    gen.add_argument("--strength", type=float, default=0.75, help="denoise strength for img2img/inpaint/outpaint")
    gen.add_argument("--infill", default="patchmatch", help="telea, navier_stokes, tile, color or patchmatch")
    gen.add_argument("--mask-blur", type=int, default=8)
    gen.add_argument(
        "--edit", action="store_true", help="an instruction edit of --init (the prompt says what to change): needs an edit model (FLUX.1 Kontext)"
    )
    gen.add_argument("--batch", type=int, default=1)
    gen.add_argument(
        "--lora", action="append", default=[], metavar="ID[:WEIGHT]", help="an installed LoRA and its weight (default 1); repeat for a stack"
    )
    gen.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="IMAGE",
        help="a control image (as big as the output, placed at its top-left); repeat for several",
    )
    gen.add_argument("--control-model", default=None, help="ControlNet id for --control (default: the family's default)")
    gen.add_argument("--preprocessor", default="none", help="for --control: none, canny, soft_edge, lineart, scribble, ...")
    gen.add_argument("--control-weight", type=float, default=1.0)
    gen.add_argument(
        "--region",
        action="append",
        nargs=2,
        default=[],
        metavar=("MASK", "PROMPT"),
        help="a regional prompt: a mask image (white = the region) and its prompt; repeat for several, lowest first",
    )
    gen.add_argument("--region-strength", type=float, default=0.8, help="for --region: 0 to 1 (default 0.8)")
    gen.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="IMAGE",
        help="a reference image that steers the job (SD 1.x/SDXL: through an IP-Adapter; FLUX.1: through FLUX Redux; FLUX.2: its reference images); repeat for several",
    )
    gen.add_argument(
        "--reference-weight",
        action="append",
        type=float,
        default=[],
        metavar="W",
        help="for --reference: 0 to 2 (default 1); once for all of them, or once per --reference in order",
    )
    gen.add_argument("--reference-model", default=None, metavar="ID", help="for --reference: the IP-Adapter or FLUX Redux (default: the family's first)")
    gen.add_argument("--out", required=True, help="output PNG; a batch writes NAME.png, NAME-2.png, ...")
    from .cli_upscale import add_hires_arguments, add_upscale_parser

    add_hires_arguments(gen)
    _add_common(gen)
    add_upscale_parser(sub, _add_common)

    models = sub.add_parser("models", help="list, install or remove models")
    msub = models.add_subparsers(dest="models_command", required=True)
    lst = msub.add_parser("list")
    _add_database(lst)
    _add_common(lst)
    inst = msub.add_parser("install", help="install a diffusers folder or a .safetensors file by path")
    inst.add_argument("path")
    inst.add_argument("--name", default=None)
    inst.add_argument("--config", default=None, help="diffusers config folder for a non-standard single file")
    inst.add_argument(
        "--base", default=None, metavar="ID",
        help="for a FLUX.1 or SD 3.x transformer file: the installed diffusers model whose text encoders and VAE it runs with",
    )
    _add_database(inst)
    _add_common(inst)
    scan = msub.add_parser("scan", help="find and register in place every model under a folder (A1111/Forge, ComfyUI, InvokeAI layouts)")
    scan.add_argument("path")
    _add_database(scan)
    _add_common(scan)
    rem = msub.add_parser("remove")
    rem.add_argument("id")
    _add_database(rem)
    _add_common(rem)

    doctor = sub.add_parser("doctor", help="check the installation and the data folder")
    doctor.add_argument("--repair", action="store_true", help="fix what was found (nothing of yours is deleted)")
    doctor.add_argument(
        "--min-age", type=float, default=60.0, help="leave image files younger than this many seconds alone (an upload in flight)"
    )
    _add_database(doctor)
    doctor.add_argument("--assets", default=argparse.SUPPRESS, metavar="URL", help="the s3://bucket/prefix the images are in (default: $INVOKE_CANVAS_ASSETS_URL, else the data folder)")
    _add_common(doctor)

    worker = sub.add_parser(
        "worker", help="run jobs from the shared queue on one device (with --database-url and --broker, on any machine)"
    )
    worker.add_argument("--name", default=None, help="how the queue names this worker (default: host-device-pid)")
    worker.add_argument("--lease", type=float, default=None, help="seconds without a heartbeat before another worker takes its job (default 15)")
    _add_scale(worker, argparse.SUPPRESS)
    _add_common(worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Nothing is fetched at run time; only `models install REPO/ID` may go online.
    if not (args.command == "models" and getattr(args, "models_command", "") == "install"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_environment()  # the engine quiets the libraries when it loads them
    from invoke_core import allocator
    from invoke_core.errors import InvokeCoreError

    allocator.tune()  # before any thread: the queue worker's then share the main heap (invoke_core/allocator.py)

    try:
        if args.command is None:
            return _serve(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "upscale":
            from .cli_upscale import run_upscale

            return run_upscale(args, _engine, _read_rgba)
        if args.command == "models":
            return _models(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "worker":
            return _worker(args)
    except InvokeCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _serve(args) -> int:
    from server.config import ConfigError
    from server.serve import serve

    overrides = {
        "root": args.root,
        "host": args.host,
        "port": args.port,
        "token": args.token,
        "device": args.device,
        "dtype": args.dtype,
        "ram_cache_gb": args.ram_cache_gb,
        "vram_cache_gb": args.vram_cache_gb,
        "compile": args.compile,
        "fast_path": args.fast_path,
        "vae_tiling": args.vae_tiling,
        "offload": args.offload,
        "database_url": args.database_url,
        "broker_url": args.broker,
        "assets_url": args.assets,
    }
    try:
        return serve(overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _worker(args) -> int:
    from server.config import ConfigError, load_config

    overrides = {
        "root": args.root, "device": args.device, "dtype": args.dtype, "ram_cache_gb": args.ram_cache_gb,
        "vram_cache_gb": args.vram_cache_gb, "compile": args.compile, "fast_path": args.fast_path, "vae_tiling": args.vae_tiling,
        "offload": args.offload, "database_url": args.database_url, "broker_url": args.broker,
        "assets_url": args.assets, "lease_seconds": args.lease,
    }
    try:
        cfg = load_config(overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not cfg.distributed:
        print("error: a worker needs the shared queue: give --database-url postgresql+psycopg://... and --broker redis://...", file=sys.stderr)
        return EXIT_USER_ERROR
    from server.scale.worker_process import RemoteWorker
    from server.serve import configure_logging

    configure_logging()

    return RemoteWorker(cfg, args.name).serve()


def _engine(args):
    from invoke_core.engine import Engine

    return Engine(
        root=args.root, device=args.device, dtype=args.dtype, vae_tiling=args.vae_tiling or "auto", offload=args.offload or "auto",
        compile_backend=args.compile, fast_path=args.fast_path or "auto",
    )


def _read_rgba(path: str, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from invoke_core.errors import InvalidImageError

    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGBA"))
    except FileNotFoundError:
        raise InvalidImageError(f"{what} {path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidImageError(f"{what} {path} is not a readable image ({exc})") from None


def _lora_specs(values: list[str]) -> tuple:
    from invoke_core.errors import InvalidCanvasError
    from invoke_core.types import LoraSpec

    specs = []
    for value in values:
        model, sep, weight = value.rpartition(":") if ":" in value else (value, "", "")
        try:
            specs.append(LoraSpec(model, float(weight)) if sep else LoraSpec(value, 1.0))
        except ValueError:
            raise InvalidCanvasError(f"--lora {value}: write ID or ID:WEIGHT, e.g. ink-style:0.7") from None
    return tuple(specs)


def build_document(args, family: str, control_model: str | None = None):
    """CLI arguments -> CanvasDocument: init at the top-left of the bbox, mask as an inpaint-mask layer,
    regions and control images as their layers at the top-left too."""
    from invoke_core.errors import InvalidImageError

    from .cli_upscale import hires_from_args
    from invoke_core.types import (
        Bounds,
        CanvasDocument,
        ControlSettings,
        GenerationParams,
        Layer,
        LayerKind,
        RegionPrompt,
    )

    layers = []
    default_side = 1024 if family == "sdxl" else 512
    width, height = args.width, args.height
    if args.init:
        init = _read_rgba(args.init, "init image")
        layers.append(Layer("init", LayerKind.RASTER, 0, 0, init))
        width = width or init.shape[1]
        height = height or init.shape[0]
        if args.mask:
            mask = _read_rgba(args.mask, "mask")
            if mask.shape[:2] != init.shape[:2]:
                raise InvalidImageError(
                    f"mask is {mask.shape[1]}x{mask.shape[0]} but the init image is {init.shape[1]}x{init.shape[0]}: they must match"
                )
            layers.append(Layer("mask", LayerKind.INPAINT_MASK, 0, 0, coverage_from_mask_image(mask)))
    elif args.mask:
        raise InvalidImageError("--mask needs --init: the image to inpaint")
    width, height = width or default_side, height or default_side
    for number, (mask_path, prompt) in enumerate(args.region, 1):
        mask = _read_rgba(mask_path, f"region {number} mask")
        region = RegionPrompt(prompt, "", args.region_strength)
        layers.append(Layer(f"region-{number}", LayerKind.REGIONAL_GUIDANCE, 0, 0, coverage_from_mask_image(mask), region=region))
    for number, image_path in enumerate(args.control, 1):
        image = _read_rgba(image_path, f"control image {number}")
        settings = ControlSettings(control_model, args.preprocessor, args.control_weight)
        layers.append(Layer(f"control-{number}", LayerKind.CONTROL, 0, 0, image, control=settings))
    layers.extend(_reference_layers(args, width))
    params = GenerationParams(
        prompt=args.prompt,
        negative_prompt=args.negative,
        model=args.model,
        steps=args.steps,
        cfg_scale=args.cfg,
        true_cfg_scale=args.true_cfg,
        scheduler=args.scheduler,
        seed=args.seed,
        batch_size=args.batch,
        strength=args.strength,
        mask_blur=args.mask_blur,
        infill=args.infill,
        loras=_lora_specs(args.lora),
        edit=args.edit,
        hires_fix=hires_from_args(args),
    )
    return CanvasDocument(Bounds(0, 0, width, height), tuple(layers), params)


def _reference_layers(args, width: int) -> list:
    """--reference images as reference layers, beside the box (over no region: they steer the whole box)."""
    from invoke_core.errors import InvalidCanvasError
    from invoke_core.types import Layer, LayerKind, ReferenceSettings

    references = getattr(args, "reference", None) or []
    weights = getattr(args, "reference_weight", None) or []
    if weights and not references:
        raise InvalidCanvasError("--reference-weight needs --reference: the image it weighs")
    if len(weights) not in (0, 1, len(references)):
        raise InvalidCanvasError(
            f"{len(weights)} --reference-weight for {len(references)} --reference: give one for all, or one per reference"
        )
    layers = []
    for number, image_path in enumerate(references, 1):
        image = _read_rgba(image_path, f"reference image {number}")
        weight = weights[0] if len(weights) == 1 else weights[number - 1] if weights else 1.0
        settings = ReferenceSettings(getattr(args, "reference_model", None), weight)
        layers.append(Layer(f"reference-{number}", LayerKind.REFERENCE, width + 16, 0, image, reference=settings))
    return layers


def _generate(args) -> int:
    from tqdm import tqdm

    from invoke_core.compile import compile_canvas
    from invoke_core.errors import InvalidCanvasError
    from invoke_core.lora import resolve_loras
    from invoke_core.metadata import write_png

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InvalidCanvasError(f"--out {args.out}: the output must be a .png file")
    if args.seed is None:
        args.seed = secrets.randbelow(1 << 32)
    engine = _engine(args)
    record = engine.resolve_model(args.model)
    control_model = args.control_model
    if args.control and control_model is None:
        control_model = next(
            (r.id for r in engine.registry.list() if r.kind == "controlnet" and r.family == record.family and not r.builtin),
            "demo-controlnet" if record.family == "sd-1" else None,
        )
        if control_model is None:
            raise InvalidCanvasError(f"--control: no {record.family} ControlNet is installed; install one or name it with --control-model")
    request = compile_canvas(build_document(args, record.family, control_model))
    resolve_loras(engine.registry, request.params.loras, record)  # a wrong LoRA is an error before any output
    if request.references:  # so is a wrong reference model (an IP-Adapter the family's models cannot take)
        from invoke_core import families

        families.get(record.family).reference_models(
            [r.settings for r in request.references], engine.registry, record,
            names=[f"reference layer {r.layer_id!r}" for r in request.references], regions=bool(request.regions),
        )
    if record.builtin:
        print(f"model: {record.name} ({record.description})", file=sys.stderr)

    bar = tqdm(total=None, unit="step", desc=request.mode.value, file=sys.stderr, disable=None)

    def on_progress(progress) -> None:
        if bar.total is None:
            bar.total = progress.total * request.params.batch_size
        bar.update(1)

    try:
        results = engine.run(request, on_progress=on_progress)
    finally:
        bar.close()
    for index, result in enumerate(results):
        path = out if index == 0 else out.with_name(f"{out.stem}-{index + 1}{out.suffix}")
        write_png(path, result.image, result.metadata)
        print(f"{path} (seed {result.seed}, {request.mode.value}, {result.image.shape[1]}x{result.image.shape[0]})")
    return 0


def _models(args) -> int:
    from db.session import DatabaseUrlError, protected_paths
    from invoke_core.model_install import install_model
    from invoke_core.root import resolve_root

    root = resolve_root(args.root)
    try:
        registry, _db = _registry(root, _database_url(args))
    except DatabaseUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.models_command == "list":
        for r in registry.list():
            label = f"  [{r.description}]" if r.description else ""
            print(f"{r.id:24} {r.family:5} {r.kind:10} {r.format:11} {r.name}{label}")
        return 0
    if args.models_command == "scan":
        from invoke_core.model_scan import scan

        found = scan(registry, args.path, forbidden=protected_paths(root))
        for r in found.installed:
            print(f"installed {r.id} ({r.family} {r.kind}, {r.format}) from {r.path}")
        for path, why in found.skipped:
            print(f"skipped {path}: {why}")
        for r in found.missing:
            print(f"missing files: {r.id} at {r.path} (moved? `invoke-canvas models remove {r.id}` or install it again)")
        print(f"{len(found.installed)} model(s) registered in place, {len(found.already)} already installed, {len(found.skipped)} skipped")
        return 0
    if args.models_command == "install":
        record = install_model(
            registry, args.path, name=args.name, config=args.config, forbidden=protected_paths(root), base=args.base
        )
        with_base = f"; {record.description}" if record.description else ""
        print(f"installed {record.id} ({record.family} {record.kind}, {record.format}, {record.size / 1e6:.1f} MB{with_base})")
        return 0
    record = registry.remove(args.id)
    print(f"removed {record.id} (files left in place at {record.path})")
    return 0


def _print_device(args) -> None:
    import torch

    from invoke_core.devices import choose_device

    device = choose_device(args.device, args.dtype)
    print(f"torch {torch.__version__}; device {device.device} ({device.dtype})")


def _doctor(args) -> int:
    """Report (and with --repair fix) models with missing files and images out of step with their rows.

    Exit code 0 when everything was in order, 1 when something was wrong (even if repaired). The storage
    checks come first and import no torch; the device line last (torch loads only for it).
    """
    from db import doctor
    from db.assets import open_store
    from db.errors import InvalidInput, StorageError
    from db.root_lock import RootInUse, RootLock
    from db.session import Database, DatabaseUrlError
    from invoke_core.root import resolve_root

    root = resolve_root(args.root)
    database_url = _database_url(args)
    assets_url = getattr(args, "assets", None) or os.environ.get("INVOKE_CANVAS_ASSETS_URL") or None
    try:
        store = open_store(root, assets_url)
        registry, shared_db = _registry(root, database_url)
    except (DatabaseUrlError, InvalidInput, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    # A running server owns the database: look without writing (read-only connections never checkpoint or
    # delete its WAL), and leave repairs to it (it adopts orphan files at start) or to a run after it stops.
    # A shared database (scale-out) is a server's to keep in order: no lock; --min-age spares files in flight.
    try:
        lock = RootLock.acquire(root) if shared_db is None else None
    except RootInUse as exc:
        if args.repair:
            print(f"error: {exc}; stop it before `doctor --repair` (the server repairs orphaned files itself at start)", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"{exc}: checking the image store read-only")
        lock = None
    print(f"data root: {root}")
    problems = 0
    print(f"database: {'PostgreSQL (shared)' if shared_db is not None else 'SQLite under the data root'}")
    for r in registry.list():
        if r.builtin:
            state = "built" if Path(r.path).exists() else "built on first use"
        elif Path(r.path).exists():
            state = "ok"
        else:
            state = "MISSING FILES (reinstall or `invoke-canvas models remove`)"
            problems += 1
        print(f"model {r.id}: {state}")

    db = shared_db if shared_db is not None else Database(root, read_only=lock is None)
    print(f"images: {assets_url or root / 'images'}")
    # A young file may be an upload between its file and its row (the server may be running).
    report = doctor.check(db, store, min_age_s=args.min_age)
    findings = {
        "image rows without files": report.rows_without_files,
        "image files without rows": report.files_without_rows,
        "missing thumbnails": report.missing_thumbnails,
        "thumbnails without images": report.orphan_thumbnails,
        "leftover temporary files": report.temp_files,
    }
    for label, items in findings.items():
        if items:
            problems += len(items)
            shown = ", ".join(str(i) for i in list(items)[:5]) + (" ..." if len(items) > 5 else "")
            print(f"{label}: {len(items)} ({shown})")
    if args.repair and not report.ok:
        result = doctor.repair(db, store, report)
        done = {k.replace("_", " "): (v if isinstance(v, int) else len(v)) for k, v in asdict(result).items()}
        print("repaired: " + (", ".join(f"{k} {n}" for k, n in done.items() if n) or "nothing"))
        for error in result.errors:
            print(f"could not repair: {error}")
    db.dispose()
    if lock is not None:
        lock.release()
    _print_device(args)
    if not problems:
        print("no problems found")
        return 0
    print(f"{problems} problem(s) found" + ("" if args.repair else "; run `invoke-canvas doctor --repair` to fix the image store"))
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
