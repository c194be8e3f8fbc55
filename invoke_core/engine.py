"""Run a GenerationRequest on the right diffusers pipeline and paste the result back into the bbox.

The Engine holds what outlives a job (data root, model registry, model cache, device); `run` is one job.
The engine only orchestrates (resolve, load, build the task's pipeline, denoise with progress and
cancel, finish, metadata); what differs between model families is asked of the record's family
(invoke_core/families).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image

from . import __version__, families, masks
from .devices import DeviceChoice, choose_device
from .errors import GenerationCancelled, InvalidCanvasError, OutOfMemoryError, UnsupportedError
from .limits import VAE_TILING_AREA, VAE_TILING_MODES
from .model_cache import ModelCache
from .offload import offloaded
from .model_records import CONTROL_KINDS, GENERATING_KINDS, ModelRecord, ModelRegistry, check_edit_request
from .root import resolve_root
from .schedulers import make_scheduler
from .types import (
    CancelCheck,
    ControlInput,
    ControlMode,
    GenerationRequest,
    GenerationResult,
    Mode,
    Progress,
    ProgressCallback,
    ReferenceInput,
)

def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


class Engine:
    """Long-lived generation state. One job at a time per engine (one worker per device)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        device: str | None = None,
        dtype: str | None = None,
        ram_cache_gb: float | None = None,
        vram_cache_gb: float | None = None,
        compile_backend: str | None = None,
        fast_path: str | None = "auto",
        vae_tiling: str = "auto",
        offload: str = "auto",
        registry: ModelRegistry | None = None,
    ):
        """`registry`: the one the server shares (a database-backed one for remote workers); by default the
        JSON registry under the root. `fast_path`: invoke_core/fast_path.py's setting ("auto": on for CUDA);
        `compile_backend` turns its torch.compile on with that backend ("eager" checks the wiring on a CPU)."""
        from . import allocator
        from .quiet import quiet_libraries

        allocator.tune()  # before the first job's buffers (the CLI tunes earlier, before its threads)
        quiet_libraries()  # diffusers and transformers load with the engine: keep their chatter off the terminal
        self.root: Path = resolve_root(root)
        self.registry = registry if registry is not None else ModelRegistry(self.root)
        self.device: DeviceChoice = choose_device(device, dtype)
        ram = int(ram_cache_gb * (1 << 30)) if ram_cache_gb is not None else _physical_memory() // 2
        vram = int(vram_cache_gb * (1 << 30)) if vram_cache_gb is not None else _default_vram_budget(self.device)
        self.cache = ModelCache(self.root / "models" / ".cache", ram_budget_bytes=ram, vram_budget_bytes=vram, offload=offload)
        from .fast_path import FastPathRunner, parse_fast_path

        self.fast_path = FastPathRunner(parse_fast_path(fast_path, self.device.device, compile_backend), self.cache.cache_dir, self.device.device)
        self.cache.on_drop = self.fast_path.forget
        from .offload import choose_offload

        choose_offload(offload, "cpu", 0, 0)  # an unknown mode is an error now, not at the first job
        self.cache.weights = lambda record: self.registry.options(record.id)["weights"]
        if vae_tiling not in VAE_TILING_MODES:
            raise UnsupportedError(f"VAE tiling {vae_tiling!r}: use one of {', '.join(VAE_TILING_MODES)}")
        self.vae_tiling = vae_tiling
        # called before every denoiser forward while set (tests inject a failure there: an out-of-memory)
        self.denoiser_hook: Callable[[], None] | None = None
        self._job_lock = threading.Lock()  # pipelines and the device are used by one job at a time
        from .lora import LoraStacks

        self.lora_stacks = LoraStacks()  # the LoRA stack a cached pipeline keeps between jobs

    def resolve_model(self, model_id: str | None) -> ModelRecord:
        record = self.registry.get(model_id or self.registry.default_model_id("main"))
        if record.kind not in GENERATING_KINDS:
            raise InvalidCanvasError(f"model {record.id!r} is a {record.kind} model; choose a main, inpaint or edit model")
        if record.family not in families.NAMES:
            raise UnsupportedError(
                f"model {record.id!r} is of family {record.family!r}; supported: {', '.join(families.NAMES)}"
            )
        return record

    def resolve_controlnets(self, controls: tuple[ControlInput, ...], main: ModelRecord, strength: float = 1.0) -> list[ModelRecord]:
        """The ControlNet record of each control, checked against the main model's family and each other
        (`strength`: the job's, which some ControlNets need at 1)."""
        from .compile import validate_control_settings

        records = []
        for number, control in enumerate(controls, 1):
            settings = control.settings
            validate_control_settings(settings, f"control {number}")
            record = self.registry.get(settings.model)
            if record.kind not in CONTROL_KINDS:
                raise InvalidCanvasError(
                    f"model {record.id!r} is a {record.kind} model, not a ControlNet:"
                    f" choose a controlnet or control_lora model for control {number}"
                )
            if record.family != main.family:
                raise InvalidCanvasError(
                    f"ControlNet {record.id!r} is for {record.family}, the model {main.id!r} is {main.family}:"
                    f" choose a {main.family} ControlNet"
                )
            families.get(main.family).control_type(settings, record, f"control {number}")
            records.append(record)
        families.get(main.family).check_controls([c.settings for c in controls], records, strength)
        modes = [c.settings.mode for c in controls]
        if ControlMode.CONTROL in modes and set(modes) != {ControlMode.CONTROL}:
            raise UnsupportedError(
                "control mode 'control' acts on the whole job: set it on every control layer or on none"
            )
        for record in records:
            used = {m for m, r in zip(modes, records) if r.id == record.id}
            if ControlMode.PROMPT in used and len(used) > 1:
                raise UnsupportedError(
                    f"ControlNet {record.id!r} is used with different control modes: use one mode for it"
                )
        return records

    def run(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        is_cancelled: CancelCheck | None = None,
    ) -> list[GenerationResult]:
        from . import upscale  # upscale jobs and hires fix
        from .lora import job_loras  # LoRA stacks: put on (or kept) before the job; a job without gets the base

        request = upscale.job_request(request)
        params = request.params
        record = self.resolve_model(params.model)
        check_edit_request(params.edit, record, self.registry.list())
        upscale.check_models(params, record, self.registry.list(), lambda: self.registry.default_model_id(upscale.UPSCALER_KIND))
        families.get(record.family).check_job(
            scheduler=params.scheduler,
            size=request.size,
            regions=bool(request.regions),
            controls=bool(request.controls),
            loras=bool(params.loras),
            true_cfg=params.true_cfg_scale > 1,
            references=bool(request.references),
            negative=bool(params.negative_prompt) or any(r.negative_prompt for r in request.regions),
        )
        control_records = self.resolve_controlnets(request.controls, record, params.strength)
        # the job's components stay pinned in the cache until it ends
        with self._job_lock, self.cache.job(), job_loras(self, request, control_records) as add_lora_metadata:
            if upscale.applies(request):  # its passes are jobs of `_run` (invoke_core/upscale.py)
                return add_lora_metadata(upscale.run(self, request, record, control_records, on_progress, is_cancelled))
            return add_lora_metadata(self._run(request, record, control_records, on_progress, is_cancelled))

    def _run(
        self,
        request: GenerationRequest,
        record: ModelRecord,
        control_records: list[ModelRecord],
        on_progress: ProgressCallback | None,
        is_cancelled: CancelCheck | None,
    ) -> list[GenerationResult]:
        started = time.perf_counter()
        params = request.params
        if is_cancelled and is_cancelled():
            raise GenerationCancelled("cancelled before start")

        family = families.get(record.family)
        loaded = self.cache.get(record, self.device)
        # a Control LoRA is no module of its own: it is an adapter on the transformer (invoke_core/lora.py)
        controlnets = [self.cache.get(r, self.device).model for r in control_records if r.kind == "controlnet"]
        # each reference layer's models (an IP-Adapter and its image encoder; none where the family takes
        # reference images itself), loaded and pinned like the rest
        reference_records = family.reference_models(
            [r.settings for r in request.references], self.registry, record,
            names=[f"reference layer {r.layer_id!r}" if r.layer_id else f"reference {n}" for n, r in enumerate(request.references, 1)],
            regions=bool(request.regions),
        )
        reference_models = [tuple((r, self.cache.get(r, self.device).model) for r in records) for records in reference_records]
        load_seconds = time.perf_counter() - started
        control_lora = any(r.kind == "control_lora" for r in control_records)
        pipe, task = self.pipeline_for(loaded.model, record, request.mode, controlnets, control_lora=control_lora)
        family.configure_pipeline(pipe, request.size)
        tiling = _set_vae_tiling(pipe, self.vae_tiling, request.size)
        inputs = _pipeline_inputs(request, record, task)
        if task == "edit":
            # a reference layer is a picture to edit too (invoke_core/families/edit_references.py)
            if inputs["image"] is None and not family.edit_from_empty_box and not request.references:
                raise UnsupportedError(
                    f"{family.label} edit models edit the picture under the box, and the box is empty: paint or place"
                    f" a picture under it or on a reference layer, or choose a {family.label} model for text to image"
                )
            inputs = {k: v for k, v in inputs.items() if _takes(pipe, k)}  # Kontext's sizing arguments
        # a task without a native pipeline: the generic flow-matching path over the text-to-image one
        flow = task in family.flow_tasks and not control_records
        if task == "img2img" and _takes(pipe, "width"):
            # Pipelines that take a size (Flux) would otherwise resize the init image to their default.
            inputs.update(width=request.size[0], height=request.size[1])
        extra_meta: dict[str, Any] = {"vae_tiling": True} if tiling else {}
        if loaded.offload != "none":
            extra_meta["offload"] = loaded.offload
        if request.controls:
            inputs = family.control_inputs(request, task, control_records, inputs)
            extra_meta["controls"] = _control_metadata(family, request.controls, control_records)
        if request.references:
            extra_meta["references"] = _reference_metadata(request.references, reference_records)

        prompt_args: dict[str, Any] = {"prompt": params.prompt, "negative_prompt": params.negative_prompt or None}
        processor = None
        if request.regions:
            prompt_args, processor, extra_meta["regions"] = _regional_setup(family, pipe, request)
        if processor is None:
            # A plain job (or one whose regions all folded into the main prompt): the family's prompt
            # encoding (weighting syntax, long prompts).
            do_cfg = family.uses_cfg(pipe, params)
            prompt_args = family.encode_prompts(pipe, prompt_args["prompt"], prompt_args["negative_prompt"], do_cfg)

        # the fast path's fused and compiled modules only where nothing job-specific sits on the denoiser
        plain = processor is None and not params.loras and not request.references and loaded.offload == "none"
        results = []
        with _out_of_memory(self.device, request.size, tiling), \
                self.fast_path.job(pipe, plain, (*request.size, params.batch_size, bool(controlnets))) as fast, \
                family.references(pipe, request, reference_models, family.uses_cfg(pipe, params)) as references, \
                offloaded(pipe, loaded.offload, self.device.torch_device), \
                _before_denoiser(pipe, self.denoiser_hook), \
                family.control_modes(controlnets, request.controls), family.attention(pipe, controlnets, processor):
            if fast.get("switches"):
                extra_meta["fast_path"] = fast["switches"]
            if fast.get("compiling") and on_progress is not None:
                on_progress(Progress(0, 0, params.steps, phase="compiling"))  # the UI says why the first step is late
            for index in range(params.batch_size):
                seed = (params.seed + index) % (1 << 32)
                item_started = time.perf_counter()
                generated = self._denoise(
                    pipe, family, request, inputs, seed, index, on_progress, is_cancelled, prompt_args, flow, references
                )
                image = _finish(request, generated)
                timings = {
                    "load": round(load_seconds, 4) if index == 0 else 0.0,
                    "denoise": round(time.perf_counter() - item_started, 4),
                    "total": round(time.perf_counter() - started, 4),
                }
                metadata = _metadata(request, record, self.device, seed, index, timings) | extra_meta
                if task == "edit" and request.init_image is not None:
                    metadata["mode"] = Mode.EDIT.value
                results.append(GenerationResult(image=image, seed=seed, metadata=metadata))
        return results

    def pipeline_for(
        self, base: Any, record: ModelRecord, mode: Mode, controlnets: list[Any] = (), control_lora: bool = False
    ) -> tuple[Any, str]:
        """The diffusers pipeline of the job's task, sharing the loaded model's modules; and the task.
        `control_lora`: the job's control layer runs a Control LoRA (the family's control pipelines)."""
        import diffusers

        # A 9-channel inpainting UNet runs every mode through the inpaint pipeline (full mask for txt2img);
        # an edit model (FLUX.1 Kontext) every mode through its edit pipeline.
        if record.kind in ("inpaint", "edit"):
            task = record.kind
        else:
            task = families.get(record.family).task_for({Mode.TXT2IMG: "txt2img", Mode.IMG2IMG: "img2img"}.get(mode, "inpaint"))
        family = families.get(record.family)
        if control_lora:
            name = family.control_lora_pipelines.get(task) if record.kind == "main" else None
            if name is None:
                raise UnsupportedError(f"{family.label} {record.kind} models cannot run {task} with a Control LoRA")
            cls = getattr(diffusers, name)
        else:
            own = None if controlnets else family.loaded_pipeline_class(type(base).__name__, record.kind)
            cls = getattr(diffusers, own or family.control_pipeline_class(task, list(controlnets), record.kind))
        # Share the loaded modules with a pipeline of the task's class. Like `from_pipe`, minus its
        # `.to(dtype)` pass over every module, its warnings and its re-enabled progress bar.
        expected, optional = cls._get_signature_keys(cls)
        kwargs = {k: v for k, v in base.components.items() if k in expected}
        kwargs.update({k: base.config[k] for k in optional if k in base.config})
        if controlnets:
            # Several ControlNets: diffusers wraps the list in a MultiControlNetModel.
            kwargs["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
        pipe = cls(**kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe, task

    def _denoise(
        self, pipe, family, request, inputs, seed, index, on_progress, is_cancelled, prompt_args, flow=False, references=None
    ) -> np.ndarray:
        import torch

        params = request.params
        if is_cancelled and is_cancelled():
            raise GenerationCancelled(f"cancelled before batch item {index + 1}")
        # One scheduler per job: schedulers keep state and are not thread-safe.
        config = family.scheduler_config(pipe.scheduler.config)
        pipe.scheduler = make_scheduler(params.scheduler, config, seed, family.sampling)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        blend = None
        if flow:
            from .flow_tasks import flow_start

            start = flow_start(pipe, family, inputs, params.steps, generator)
            inputs, blend = start.call_args, start.blend
        # the call's prompt arguments and inputs as one set of keywords (no name reaches the pipeline twice); a
        # reference may add inputs or replace prompt arguments (FLUX Redux: its image tokens after the prompt's)
        call = prompt_args | inputs
        if references is not None:  # after the flow start, which reads `image` as the picture to repaint
            call = references.inputs(call)

        def on_step_end(p, step, timestep, callback_kwargs):
            if is_cancelled and is_cancelled():
                # Raising leaves the denoising loop at once and skips the VAE decode of a half-done image.
                raise GenerationCancelled(f"cancelled at step {step + 1} of {p.num_timesteps}")
            if blend is not None:
                callback_kwargs["latents"] = blend(p, callback_kwargs["latents"])
            if references is not None:
                references.step_end(step + 1)  # a reference's step range (invoke_core/ip_adapter_run.py)
            if on_progress is not None:
                latents = callback_kwargs["latents"]
                on_progress(Progress(index, step + 1, p.num_timesteps, lambda: family.preview(latents, request.size)))
            return callback_kwargs

        # Anything a pipeline draws without our generator (the VAE sample of an SD3 control image) comes
        # from the global RNG: seeded per job, and restored afterwards.
        devices = [torch.device(self.device.device).index or 0] if self.device.device.startswith("cuda") else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            output = pipe(
                num_inference_steps=params.steps,
                **family.guidance_args(pipe, params),
                generator=generator,
                output_type="np",
                callback_on_step_end=on_step_end,
                **call,
            )
        return (np.asarray(output.images[0]) * 255).round().clip(0, 255).astype(np.uint8)


def _set_vae_tiling(pipe: Any, mode: str, size: tuple[int, int]) -> bool:
    """Tile the VAE for this job (`mode` "on", or "auto" above VAE_TILING_AREA), else not: its VAE may be
    shared with other models and jobs. Whether it tiles."""
    vae = getattr(pipe, "vae", None)
    on = mode == "on" or (mode == "auto" and size[0] * size[1] > VAE_TILING_AREA)
    if not hasattr(vae, "enable_tiling"):
        return False
    if on and getattr(vae, "tile_sample_min_size", _MIN_TILE) < _MIN_TILE and hasattr(vae, "tile_latent_min_size"):
        # tiles of at least 512 px (diffusers takes the config's sample size, which a small VAE sets low):
        # a few dozen tiles for a 2048 px box, not thousands
        factor = vae.tile_sample_min_size // max(1, vae.tile_latent_min_size)
        vae.tile_sample_min_size, vae.tile_latent_min_size = _MIN_TILE, _MIN_TILE // max(1, factor)
    vae.enable_tiling() if on else vae.disable_tiling()
    return on


_MIN_TILE = 512


@contextmanager
def _before_denoiser(pipe: Any, hook: Callable[[], None] | None):
    """`hook` called before each forward of the pipeline's UNet or transformer, while the job runs."""
    if hook is None:
        yield
        return
    denoiser = getattr(pipe, "unet", None)
    if denoiser is None:  # (not `or`: a compiled module has no truth value)
        denoiser = getattr(pipe, "transformer", None)
    if denoiser is None:
        yield
        return
    handle = denoiser.register_forward_pre_hook(lambda _module, _args: hook())
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _out_of_memory(device: DeviceChoice, size: tuple[int, int], tiling: bool):
    """A device out of memory during the job: the memory it held let go, and an error that names what to
    change (the worker fails the item and takes the next one)."""
    import gc

    import torch

    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc).lower():
            raise
        del exc
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        width, height = size
        tiles = "" if tiling else ", turn VAE tiling on (--vae-tiling on)"
        raise OutOfMemoryError(
            f"out of memory on {device.device} generating {width}x{height}: make the box smaller or lower the scale{tiles},"
            " lower the model cache's budget (--vram-cache-gb, --ram-cache-gb) so fewer models stay loaded, or use a"
            " smaller or quantised model"
        ) from None


def _takes(pipe: Any, argument: str) -> bool:
    import inspect

    return argument in inspect.signature(pipe.__call__).parameters


def _default_vram_budget(device: DeviceChoice) -> int:
    if device.device.startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device.device)).total_memory
        return int(total * 0.75)
    return 16 << 30


def _pipeline_inputs(request: GenerationRequest, record: ModelRecord, task: str) -> dict[str, Any]:
    """Images and sizes for the pipeline call, at the generation size."""
    width, height = request.size
    params = request.params
    if task == "txt2img":
        return {"width": width, "height": height}
    if task == "edit":  # the reference at the generation size (not the pipeline's preferred resolutions)
        init = None if request.init_image is None else Image.fromarray(masks.resize_image(np.asarray(request.init_image), (width, height)))
        # max_area: Kontext otherwise rescales every job to a megapixel
        return {"image": init, "width": width, "height": height, "max_area": width * height, "_auto_resize": False}
    if request.mode == Mode.TXT2IMG:  # 9-channel model: repaint everything from pure noise
        init = Image.new("RGB", (width, height), (127, 127, 127))
        mask = Image.new("L", (width, height), 255)
        return {"image": init, "mask_image": mask, "strength": 1.0, "width": width, "height": height}
    init = Image.fromarray(masks.resize_image(np.asarray(request.init_image), (width, height)))
    if task == "img2img":
        return {"image": init, "strength": params.strength}
    if request.mode == Mode.IMG2IMG:  # 9-channel model doing img2img: the whole bbox is repainted
        mask_array = np.ones((height, width), dtype=np.float32)
    else:
        mask_array = masks.resize_mask(masks.pipeline_mask(np.asarray(request.mask), params.mask_blur), (width, height))
    mask = Image.fromarray(((mask_array > 0) * 255).astype(np.uint8), mode="L")
    return {"image": init, "mask_image": mask, "strength": params.strength, "width": width, "height": height}


def _regional_setup(family: families.Family, pipe: Any, request: GenerationRequest) -> tuple[dict[str, Any], Any, dict]:
    """Apply the region rules; return the prompt arguments of the pipeline call, the attention processor
    (None when no region is left: the job runs as a plain one, with the effective prompts) and the metadata."""
    from .regions import plan_regions

    params = request.params
    plan = plan_regions(request.regions, params.prompt, params.negative_prompt)
    bbox = request.bbox
    meta: dict[str, Any] = {
        "effective_prompt": plan.prompt,
        "effective_negative_prompt": plan.negative_prompt,
        "items": [],
    }
    for region, fate in zip(request.regions, plan.fates):
        bounds = fate["bounds"]
        meta["items"].append(
            {
                "layer_id": region.layer_id,
                "prompt": region.prompt,
                "negative_prompt": region.negative_prompt,
                "strength": region.strength,
                "use": fate["use"],  # region, main (collapsed into the main prompt) or dropped
                "coverage": round(fate["coverage"], 6),  # of the bbox, after higher regions subtracted
                # canvas pixels, of the mask after subtraction
                "bbox": None if bounds is None else [bbox.x + bounds[0], bbox.y + bounds[1], bounds[2], bounds[3]],
            }
        )
    if not plan.regions:
        return {"prompt": plan.prompt, "negative_prompt": plan.negative_prompt or None}, None, meta
    prompt_args, processor = family.regional(pipe, request, plan)
    return prompt_args, processor, meta


def _control_metadata(family: families.Family, controls: tuple[ControlInput, ...], records: list[ModelRecord]) -> list[dict[str, Any]]:
    types = [family.control_type(c.settings, r, f"control {n}") for n, (c, r) in enumerate(zip(controls, records), 1)]
    return [
        {
            "model": {"id": r.id, "name": r.name, "hash": r.hash, "family": r.family},
            "preprocessor": c.settings.preprocessor,
            "weight": c.settings.weight,
            "begin": c.settings.begin,
            "end": c.settings.end,
            "mode": c.settings.mode.value,
            **({"control_type": t} if t else {}),
            "layer_id": c.layer_id,
        }
        for c, r, t in zip(controls, records, types)
    ]


def _reference_metadata(references: tuple[ReferenceInput, ...], records: list[tuple[ModelRecord, ...]]) -> list[dict[str, Any]]:
    """Each reference layer's picture size and settings, and the model it ran with (the first of its records:
    an IP-Adapter), for recall."""
    out = []
    for reference, models in zip(references, records):
        s = reference.settings
        item: dict[str, Any] = {"layer_id": reference.layer_id, "width": reference.image.shape[1], "height": reference.image.shape[0],
                                "weight": s.weight, "begin": s.begin, "end": s.end}
        if models:
            r = models[0]
            item["model"] = {"id": r.id, "name": r.name, "hash": r.hash, "family": r.family}
        if reference.regions:
            item["regions"] = list(reference.regions)  # the regional guidance layers it applies inside
        out.append(item)
    return out


def _finish(request: GenerationRequest, generated: np.ndarray) -> np.ndarray:
    """Back to bbox size; inpaint and outpaint keep every pixel outside the (blurred) mask."""
    bbox = request.bbox
    image = masks.resize_image(generated, (bbox.width, bbox.height))
    if request.mode in (Mode.INPAINT, Mode.OUTPAINT):
        image = masks.paste_back(np.asarray(request.original), image, np.asarray(request.mask), request.params.mask_blur)
    return image


def _metadata(request, record: ModelRecord, device: DeviceChoice, seed: int, index: int, timings: dict) -> dict[str, Any]:
    p = request.params
    return {
        "app": "invoke-canvas",
        "version": __version__,
        "mode": request.mode.value,
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt,
        "model": {"id": record.id, "name": record.name, "hash": record.hash, "family": record.family, "kind": record.kind},
        "steps": p.steps,
        "cfg_scale": p.cfg_scale,
        **({"true_cfg_scale": p.true_cfg_scale} if p.true_cfg_scale > 1 else {}),
        "scheduler": p.scheduler,
        "seed": seed,
        "batch_index": index,
        "batch_size": p.batch_size,
        "base_seed": p.seed,
        "strength": p.strength,
        "mask_blur": p.mask_blur,
        "infill": p.infill.value,
        "scale": p.scale,
        "width": request.bbox.width,
        "height": request.bbox.height,
        "generation_size": list(request.size),
        "bbox": list(request.bbox),
        "device": device.device,
        "dtype": device.dtype,
        "timings": timings,
    }


_default_engine: Engine | None = None


def default_engine() -> Engine:
    global _default_engine
    if _default_engine is None:
        _default_engine = Engine()
    return _default_engine


def run(
    request: GenerationRequest,
    on_progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    *,
    engine: Engine | None = None,
) -> list[GenerationResult]:
    """Run one job; results are RGB arrays at bbox size with their metadata. Raises GenerationCancelled."""
    return (engine or default_engine()).run(request, on_progress, is_cancelled)
