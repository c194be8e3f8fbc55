"""The one interface a model family implements for the engine (invoke_core/engine.py).

The engine orchestrates a job (resolve the models, load them, build the task's pipeline, denoise with
progress and cancel, finish, metadata); everything that differs between families is asked of the
record's `Family`: which diffusers pipeline serves a task, how prompts (and region prompts) are
encoded, how regional attention and control inputs are applied, what a latent preview looks like,
and the family's defaults, size rule, schedulers and features (served to the web by the API).
"""

from __future__ import annotations

import functools
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from PIL import Image

    from ..types import ControlInput, ControlSettings, GenerationRequest, GenerationParams

@functools.lru_cache(maxsize=256)
def _read_config(path: str, _mtime: float) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def cached_config(path: Path) -> dict[str, Any]:
    """A model's JSON config, read again only when it changes; {} when missing or unreadable."""
    try:
        return _read_config(str(path), path.stat().st_mtime)
    except OSError:
        return {}


def controlnet_config(record: Any) -> dict[str, Any]:
    """A diffusers ControlNet record's config.json; {} for other records."""
    if record.kind != "controlnet" or record.format != "diffusers":
        return {}
    return cached_config(Path(record.path) / "config.json")


# What a family can do on the canvas; the web disables what the chosen model's family lacks.
FEATURES = ("negative_prompt", "weighted_prompts", "regions", "controlnet", "lora", "inpaint_model", "true_cfg", "reference")
TASKS = ("txt2img", "img2img", "inpaint")  # "inpaint" serves inpaint and outpaint


@dataclass(frozen=True)
class Defaults:
    steps: int
    cfg_scale: float
    scheduler: str
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "cfg_scale": self.cfg_scale, "scheduler": self.scheduler, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class DemoModel:
    """A built-in tiny model of a family (random weights), built in code the first time it is used."""

    id: str  # e.g. "demo-sd3"
    name: str
    folder: str  # under <root>/models/demo
    kind: str  # "main" | "inpaint" | "controlnet"
    build: Callable[[Path, Path], Path]  # (destination folder, the demo folder) -> the destination
    defaults: Defaults | None = None  # its own, where they are not the family's (known before it is built)


@dataclass(frozen=True)
class Family:
    """A model family. Subclasses implement the hooks; the fields describe it (and go to the API)."""

    name: str  # the records' `family` value, e.g. "sd-1"
    label: str  # for people, e.g. "Stable Diffusion 1.x"
    defaults: Defaults
    size_multiple: int = 8  # generation sizes are multiples of this
    # "diffusion" (noise prediction), "flow" (flow matching) or "flow-sigmas" (flow matching whose pipelines
    # set the sigmas and the shift): its schedulers (invoke_core/schedulers.py)
    sampling: str = "diffusion"
    features: frozenset[str] = field(default_factory=frozenset)
    # (task, with ControlNet) -> diffusers pipeline class name
    pipelines: dict[tuple[str, bool], str] = field(default_factory=dict)
    # (record kind, with ControlNet) -> the pipeline class that runs every task of a model of that kind,
    # where it is not the task's own (FLUX.1 Fill: FluxFillPipeline)
    kind_pipelines: dict[tuple[str, bool], str] = field(default_factory=dict)
    controlnet_class: str = "ControlNetModel"  # its ControlNets' diffusers class
    demos: tuple[DemoModel, ...] = ()  # its built-in tiny models
    guidance_label: str = "CFG scale"  # what `cfg_scale` means for its models (Flux: distilled guidance)
    # its transformer alone as one .safetensors file (families/transformer_file.py), where it has such files
    transformer_file: Any = None
    # the control type a preprocessor's map is, for its Union ControlNets (`control_type`)
    preprocessor_control_types: dict[str, str] = field(default_factory=dict)
    # task -> the pipeline class of a job whose control layer runs a Control LoRA (FLUX.1 Canny/Depth)
    control_lora_pipelines: dict[str, str] = field(default_factory=dict)
    # the tasks ("img2img", "inpaint") it runs on the generic flow-matching path over its text-to-image
    # pipeline (invoke_core/flow_tasks.py), having no native pipeline for them (HiDream-I1)
    flow_tasks: frozenset[str] = frozenset()
    # whether its edit models run an empty box as text to image (FLUX.1 Kontext); else it is refused
    edit_from_empty_box: bool = True
    # the model kind a reference layer chooses (SD 1.x, SDXL: "ip_adapter"), with a weight and a step range;
    # None: its models take reference images themselves (FLUX.2), whole, at full weight
    reference_model_kind: str | None = None
    # what a job of one of its models without references is told to do with its reference layers
    no_reference_hint: str = "hide the reference layers"

    def task_for(self, task: str) -> str:
        """The task whose pipeline runs a canvas task ("img2img" -> "inpaint" with the whole box masked,
        for a family without an image-to-image pipeline: FLUX.2 [klein])."""
        return task

    def pipeline_class(self, task: str, control: bool, kind: str = "main") -> str:
        task = self.task_for(task)
        own = [(k, c) for (k, c) in self.kind_pipelines if k == kind]
        if not own and not control and task in self.flow_tasks:
            return self.pipelines[("txt2img", False)]
        try:
            return self.kind_pipelines[(kind, control)] if own else self.pipelines[(task, control)]
        except KeyError:
            from ..errors import UnsupportedError

            what = f"{task} with ControlNet" if control else task
            models = f"{self.label} {kind} models" if own else f"{self.label} models"
            raise UnsupportedError(f"{models} cannot run {what}") from None

    def loaded_pipeline_class(self, loaded: str, kind: str) -> str | None:
        """The pipeline class a model of `kind` that loaded as `loaded` runs every task through, where the
        folder's own class decides (Qwen-Image-Edit and Edit Plus); None: `pipeline_class`'s."""
        return None

    def control_pipeline_class(self, task: str, controlnets: list[Any], kind: str = "main") -> str:
        """The pipeline class of a task run with these loaded ControlNets (none: the task's own)."""
        return self.pipeline_class(task, bool(controlnets), kind)

    def check_controls(self, settings: list[ControlSettings], records: list[Any], strength: float) -> None:
        """Refuse control layers this family cannot run together (`settings`, `records`: each layer's), at
        enqueue (the API answers 422) and in the engine. Control LoRAs run alone, over every step."""
        from ..model_records import check_control_loras

        check_control_loras(settings, records)

    def describe(self) -> dict[str, Any]:
        """What the API serves about the family (GET /api/v1/config `families`)."""
        return {
            "label": self.label,
            "size_multiple": self.size_multiple,
            "defaults": self.defaults.as_dict(),
            "features": sorted(self.features),
            "schedulers": list(self.schedulers),
            "guidance_label": self.guidance_label,
            "edit_from_empty_box": self.edit_from_empty_box,
            "reference_model_kind": self.reference_model_kind,
        }

    @property
    def schedulers(self) -> tuple[str, ...]:
        from ..schedulers import scheduler_names

        return scheduler_names(self.sampling)

    def check_job(
        self,
        *,
        scheduler: str,
        size: tuple[int, int],
        regions: bool,
        controls: bool,
        loras: bool,
        true_cfg: bool = False,
        references: bool = False,
        negative: bool = False,
    ) -> None:
        """Refuse what this family cannot run, with a message naming the fix (the API answers 422).
        `negative`: the job has a negative prompt (its own or a region's)."""
        from ..errors import InvalidCanvasError, UnsupportedError
        from ..schedulers import check_scheduler_name

        models = f"{self.label} models"
        check_scheduler_name(scheduler, self.sampling, models)
        m = self.size_multiple
        for side, value in zip(("width", "height"), size):
            if value % m:
                below, above = value // m * m, value // m * m + m
                use = f"{below} or {above}" if below > 0 else f"{above}"
                raise InvalidCanvasError(
                    f"generation {side} {value} (box x scale) is not a multiple of {m}, which {models} need: use {use}"
                )
        for wanted, feature, what in (
            (regions, "regions", "regional prompts: hide the regional guidance layers"),
            (controls, "controlnet", "ControlNet: hide the control layers"),
            (loras, "lora", "LoRA: disable the LoRAs"),
            (true_cfg, "true_cfg", "true CFG (their CFG scale is classifier-free guidance already): set True CFG to 1"),
            (references, "reference", "reference images: hide the reference layers"),
            (negative, "negative_prompt", "negative prompts (they are guidance-distilled): clear the negative prompts"),
        ):
            if wanted and feature not in self.features:
                raise UnsupportedError(f"{models} have no {what}")

    # ---- hooks ------------------------------------------------------------------------------------------
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        """The kind ("main", "inpaint") of a diffusers pipeline folder of this family, or None when it is
        not one. `index`: its model_index.json; `read_config(relative path)`: a JSON file of the folder
        (None when absent). The SD1.x/SDXL probe (invoke_core/model_probe.py) runs when no family claims."""
        return None

    def model_defaults(self, record: Any) -> Defaults | None:
        """A model record's own defaults where they are not the family's (FLUX.1 schnell: 4 steps); None:
        the family's. Served with the model (GET /api/v1/models `defaults`). Here: a demo's declared ones."""
        if getattr(record, "builtin", False):
            return next((d.defaults for d in self.demos if d.id == record.id), None)
        return None

    def load_extras(self, kind: str, path: str | Path | None = None) -> dict[str, Any]:
        """Keyword arguments for loading the diffusers folder at `path` of this family (`from_pretrained`)."""
        return {}

    def claims_controlnet(self, config: dict[str, Any]) -> bool:
        """Whether a diffusers ControlNet folder (its config.json) is one of this family's."""
        return False

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """Whether a single .safetensors file (its tensor shapes and header metadata) is a LoRA of this
        family. The SD1.x/SDXL LoRA probe (invoke_core/model_probe.py) runs when no family claims."""
        return False

    def lora_kind(self, shapes: dict[str, tuple[int, ...]]) -> str:
        """The record kind of a LoRA this family claimed: "lora", or "control_lora" for one that conditions on
        a control image (run on a control layer through `control_lora_pipelines`)."""
        return "lora"

    def uses_cfg(self, pipe: Any, params: GenerationParams) -> bool:
        """Whether the job runs classifier-free guidance (a negative branch)."""
        raise NotImplementedError

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        """The pipeline call's prompt arguments (embeddings) for a plain job."""
        raise NotImplementedError

    def guidance_args(self, pipe: Any, params: GenerationParams) -> dict[str, Any]:
        """The pipeline call's guidance arguments (`guidance_scale`, and any of the family's own)."""
        return {"guidance_scale": params.cfg_scale}

    def regional(self, pipe: Any, request: GenerationRequest, plan: Any) -> tuple[dict[str, Any], Any]:
        """Prompt arguments and the attention processor of a job with regions left after the region rules
        (`plan` from invoke_core.regions.plan_regions)."""
        raise NotImplementedError

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any) -> AbstractContextManager[None]:
        """While the job runs: the regional processor installed (nothing when `processor` is None)."""
        raise NotImplementedError

    def control_inputs(self, request: GenerationRequest, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """The pipeline call's image inputs for a job with controls: the task's `inputs` (init image, mask,
        size) with the control arguments (`records`: each control's ControlNet record)."""
        raise NotImplementedError

    def reference_inputs(self, pipe: Any, request: GenerationRequest, inputs: dict[str, Any]) -> dict[str, Any]:
        """The call inputs of `pipe` (the one that runs: the text-to-image pipeline on the generic flow path)
        with the job's reference images (`request.references`), for a family with the "reference" feature
        (check_job refuses them elsewhere)."""
        raise NotImplementedError

    def reference_kinds(self, record: Any) -> tuple[str, ...] | None:
        """How a job with the main model `record` takes reference layers: the model kinds a layer may choose
        (the first is the one a layer without a model runs with: SD 1.x, SDXL "ip_adapter"), () where the model
        takes the pictures itself, whole (FLUX.2, edit models), None where it takes none (refused). Served with
        the model (GET /api/v1/models `reference_kinds`): the web offers what the chosen model takes."""
        if "reference" not in self.features:
            return None
        return (self.reference_model_kind,) if self.reference_model_kind else ()

    def reference_models(
        self, settings: list[Any], registry: Any, main: Any, build: bool = True, names: list[str] | None = None,
        regions: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The models each reference layer runs with (`settings`: their ReferenceSettings; `names`: how messages
        name them; `regions`: the job has regional prompts), checked against the main model `main`, at enqueue (`build` False: no demo is built) and in
        the engine: per layer a tuple of records the engine loads (ModelNotFoundError, InvalidCanvasError,
        UnsupportedError name the fix). Here: the family's models take reference images themselves (FLUX.2,
        edit models): no model, full weight, every step; none where `reference_kinds` says the model takes none."""
        from ..errors import UnsupportedError

        names = names or [f"reference {n}" for n in range(1, len(settings) + 1)]
        models = f"{self.label} models" if main.kind == "main" else f"{self.label} {main.kind} models"
        if settings and self.reference_kinds(main) is None:
            raise UnsupportedError(f"{models} take no reference images: {self.no_reference_hint}")
        for where, reference in zip(names, settings):
            if reference.model:
                raise UnsupportedError(f"{where}: {models} take reference images themselves: leave its model unset")
            if reference.weight != 1 or reference.begin != 0 or reference.end != 1:
                raise UnsupportedError(
                    f"{where}: {models} take a reference image whole, at every step: set its weight to 1, begin 0 and end 1"
                )
        return [() for _ in settings]

    def references(self, pipe: Any, request: GenerationRequest, models: list[tuple[Any, ...]], do_cfg: bool) -> AbstractContextManager[Any]:
        """While the job runs: its reference layers on `pipe` (`models`: per layer, (record, loaded module) of
        each record `reference_models` gave). Yields an object with `inputs(call) -> call` (per batch item, after
        the flow start; `call`: the prompt arguments and the task's inputs, which it may extend or replace) and `step_end(step)` (each finished step, 1-based). Here:
        `reference_inputs`; a reference over regional guidance layers is refused (its images join the whole
        box's attention)."""
        from contextlib import nullcontext

        from ..errors import UnsupportedError

        for reference in request.references:
            if reference.mask is not None:
                raise UnsupportedError(
                    f"{self.label} reference images steer the whole box: move reference layer {reference.layer_id!r}"
                    " off the regional guidance layers"
                )
        return nullcontext(_InputReferences(self, pipe, request))

    def control_types(self, record: Any) -> tuple[str, ...]:
        """The kinds of control image a ControlNet record takes when it takes several (a Union ControlNet),
        one chosen per control layer (`ControlSettings.control_type`); () for a ControlNet of one kind.
        Served with the model (GET /api/v1/models `control_types`)."""
        return ()

    def control_type(self, settings: ControlSettings, record: Any, where: str) -> str | None:
        """The control type a control layer runs with: its own, else its preprocessor's; InvalidCanvasError
        for one its ControlNet does not take, or none where it takes several. `where` names the layer."""
        from ..errors import InvalidCanvasError

        types = self.control_types(record)
        if not types:
            if settings.control_type is not None:
                raise InvalidCanvasError(f"{where}: ControlNet {record.id!r} takes one kind of control image: leave its control type unset")
            return None
        chosen = settings.control_type or self.preprocessor_control_types.get(settings.preprocessor)
        if chosen is None:
            raise InvalidCanvasError(
                f"{where}: ControlNet {record.id!r} is a Union ControlNet: choose what the control image shows"
                f" (control type: {', '.join(types)})"
            )
        if chosen not in types:
            raise InvalidCanvasError(f"{where}: control type {chosen!r} is not one of ControlNet {record.id!r}'s: {', '.join(types)}")
        return chosen

    def control_modes(self, controlnets: list[Any], controls: tuple[ControlInput, ...]) -> AbstractContextManager[None]:
        """While the job runs: the ControlNets adjusted for their control modes."""
        raise NotImplementedError

    def configure_pipeline(self, pipe: Any, size: tuple[int, int]) -> None:
        """Per-job settings of the task's pipeline before it runs at `size` (width, height): HiDream's
        keeps the generation size instead of rescaling to its own sample area."""

    def scheduler_config(self, config: Any) -> Any:
        """The model's scheduler config as the family's schedulers (invoke_core/schedulers.py) read it."""
        return config

    def pack_latents(self, pipe: Any, latents: Any) -> Any:
        """(B, C, h, w) latents in the layout its pipeline denoises (the generic flow path, flow_tasks.py)."""
        return latents

    def start_latents(self, pipe: Any, latents: Any) -> Any:
        """(B, C, h, w) latents as its text-to-image pipeline's `latents` argument takes them (FLUX.2's:
        patchified, not yet packed); the generic flow path starts from them."""
        return self.pack_latents(pipe, latents)

    def normalise_latents(self, pipe: Any, latents: Any) -> Any:
        """The VAE's (B, C, h, w) latents of an image in the space its transformer denoises."""
        config = pipe.vae.config
        return (latents - (getattr(config, "shift_factor", None) or 0.0)) * config.scaling_factor

    def flow_mu(self, pipe: Any, size: tuple[int, int], steps: int) -> float | None:
        """The resolution shift `mu` its pipeline gives a dynamically shifting scheduler at `size` and
        `steps` (the generic flow path starts at the shifted sigma); None where it has none."""
        return None

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        """A cheap preview of a step's latents (no VAE decode); `size`: the generation (width, height)."""
        raise NotImplementedError


class _InputReferences:
    """A family's reference images as inputs of its pipeline call (`Family.reference_inputs`)."""

    def __init__(self, family: Family, pipe: Any, request: GenerationRequest):
        self.family, self.pipe, self.request = family, pipe, request

    def inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self.family.reference_inputs(self.pipe, self.request, inputs) if self.request.references else inputs

    def step_end(self, step: int) -> None:
        pass
