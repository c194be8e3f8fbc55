"""Pydantic models of the REST API: request bodies, query strings and responses."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from db.models import LANE_KEY_MAX

from .canvas_tiles import TILE_SIDE
from .live import is_live
from invoke_core.families.base import FEATURES
from invoke_core.limits import (
    BATCH_SIZE,
    BBOX_SIDE,
    CFG_SCALE,
    TRUE_CFG_SCALE,
    CONTROL_BEGIN,
    CONTROL_END,
    CONTROL_WEIGHT,
    LORA_WEIGHT,
    MASK_BLUR,
    MAX_LAYERS,
    MAX_LORAS,
    OPACITY,
    PROMPT_MAX_CHARS,
    REFERENCE_BEGIN,
    REFERENCE_END,
    REFERENCE_WEIGHT,
    REGION_STRENGTH,
    SCALE,
    SEARCH_MAX_CHARS,
    SEED,
    STEPS,
    STRENGTH,
    WEIGHT_STORAGES,
    Range,
)
from invoke_core.types import (
    CONTROL_MODE_LABELS,
    INFILL_LABELS,
    ControlSettings,
    GenerationParams,
    LayerKind,
    LoraSpec,
    ReferenceSettings,
    RegionPrompt,
)

from invoke_core import limits as core_limits  # noqa: E402 (upscaling's, beside the names above)
from invoke_core.types import HiresFix, UpscaleSettings  # noqa: E402

ID = Field(min_length=1, max_length=64)
INT64_MAX = 2**63 - 1  # SQLite integers: a larger id would overflow instead of being "not found"
ItemId = Annotated[int, Field(ge=1, le=INT64_MAX)]
Channel = Annotated[int, Field(ge=0, le=255)]
Name = Field(min_length=1, max_length=200)
IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
UI_MAX_BYTES = 512 * 1024  # front-end state beside a canvas document (the whole document is capped at 5 MB)
# a save's changed tiles (server/canvas_tiles.py): a 256x256 RGBA PNG is at most ~263 KB, ~350 KB in base64
TILE_PNG_B64_MAX = 360_000
MAX_TILES_PER_SAVE = 1024


def bounded(default: Any, allowed: Range, **extra: Any) -> Any:
    """A pydantic Field with `default` and the bounds of `allowed` (invoke_core.limits)."""
    low = {"gt": allowed.low} if allowed.low_open else {"ge": allowed.low}
    return Field(default, **low, le=allowed.high, **extra)


def default_of(cls: type, name: str) -> Any:
    """The default of a core dataclass field (invoke_core.types): the API's defaults are the core's."""
    value = cls.__dataclass_fields__[name].default
    return value.value if isinstance(value, enum.Enum) else value


# options as Literal types, in the order the UI lists them
InfillName = Literal[tuple(m.value for m in INFILL_LABELS)]  # type: ignore[valid-type]
ControlModeName = Literal[tuple(m.value for m in CONTROL_MODE_LABELS)]  # type: ignore[valid-type]
LayerKindName = Literal[tuple(k.value for k in LayerKind)]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str
    message: str
    detail: Any = None


# --- canvas document -------------------------------------------------------------------------------


class BBoxIn(Strict):
    x: int = Field(ge=-1_000_000, le=1_000_000)
    y: int = Field(ge=-1_000_000, le=1_000_000)
    width: int = bounded(..., BBOX_SIDE, description="a multiple of 8, at most the generation limit")
    height: int = bounded(..., BBOX_SIDE, description="a multiple of 8, at most the generation limit")


class RegionIn(Strict):
    prompt: str = Field(max_length=PROMPT_MAX_CHARS)
    negative_prompt: str = Field("", max_length=PROMPT_MAX_CHARS)
    strength: float = bounded(
        default_of(RegionPrompt, "strength"),
        REGION_STRENGTH,
        description="how far the region's prompt replaces the main prompt inside its mask (0: not at all, 1: fully)",
    )


class ControlIn(Strict):
    model: str = Field(min_length=1, max_length=200)
    preprocessor: str = Field(default_of(ControlSettings, "preprocessor"), max_length=50)
    weight: float = bounded(default_of(ControlSettings, "weight"), CONTROL_WEIGHT)
    begin: float = bounded(default_of(ControlSettings, "begin"), CONTROL_BEGIN)
    end: float = bounded(default_of(ControlSettings, "end"), CONTROL_END)
    mode: ControlModeName = Field(
        default_of(ControlSettings, "mode"), description="which matters more: balanced, the prompt, or the control image"
    )
    control_type: str | None = Field(
        default_of(ControlSettings, "control_type"), min_length=1, max_length=50,
        description="what the control image shows, for a Union ControlNet (its model's `control_types`); absent: by the preprocessor",
    )


class ReferenceIn(Strict):
    model: str | None = Field(
        default_of(ReferenceSettings, "model"), min_length=1, max_length=200,
        description="an installed IP-Adapter of the main model's family (SD 1.x, SDXL); absent: the family's default"
        " (FLUX.2 takes reference images itself: leave it absent)",
    )
    weight: float = bounded(default_of(ReferenceSettings, "weight"), REFERENCE_WEIGHT, description="how strongly it steers (0: not at all)")
    begin: float = bounded(default_of(ReferenceSettings, "begin"), REFERENCE_BEGIN, description="the fraction of the steps it starts at")
    end: float = bounded(default_of(ReferenceSettings, "end"), REFERENCE_END, description="the fraction of the steps it ends at (above begin)")


class LayerIn(Strict):
    """A layer of a saved canvas. `image_id` is absent for a layer with no pixels yet (an empty layer
    keeps its place, name and settings); `name`, `locked` and `color` are front-end state the worker
    ignores. The list order is the stacking order, bottom first."""

    id: str = Field(min_length=1, max_length=100)
    kind: LayerKindName
    x: int = Field(0, ge=-1_000_000, le=1_000_000)
    y: int = Field(0, ge=-1_000_000, le=1_000_000)
    image_id: str | None = Field(
        None,
        pattern=IMAGE_ID_PATTERN,
        description="an uploaded image asset (RGBA; for masks the alpha); absent for a layer with no pixels yet",
    )
    opacity: float = bounded(1.0, OPACITY)
    visible: bool = True
    region: RegionIn | None = None
    control: ControlIn | None = None
    reference: ReferenceIn | None = Field(None, description="a reference layer's settings (absent: the defaults)")
    name: str | None = Field(
        None, min_length=1, max_length=200, description="the layer's name in the UI (ignored by the worker)"
    )
    locked: bool = Field(False, description="locked against edits in the UI (ignored by the worker)")
    color: str | None = Field(
        None, pattern=r"^#[0-9a-fA-F]{6}$", description='mask or region tint, "#rrggbb" (ignored by the worker)'
    )


class JobLayerIn(LayerIn):
    """A layer of a job: it must have pixels (`image_id` required); leave empty layers out."""

    image_id: str = Field(pattern=IMAGE_ID_PATTERN, description="an uploaded image asset (RGBA; for masks the alpha)")

    @model_validator(mode="before")
    @classmethod
    def _has_pixels(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("image_id") is None:
            raise ValueError(
                f"layer {data.get('id')!r} has no image_id: a job needs every layer's pixels (leave empty layers out)"
            )
        return data


class LoraIn(Strict):
    model: str = Field(min_length=1, max_length=200, description="an installed LoRA of the main model's family")
    weight: float = bounded(default_of(LoraSpec, "weight"), LORA_WEIGHT)


class UpscaleIn(Strict):
    """An upscale job (invoke_core/upscale.py): the box's pixels through an upscaler, then an optional tiled refine."""

    model: str | None = Field(None, min_length=1, max_length=200, description="an installed upscaler; absent: the default one")
    scale: Literal[core_limits.UPSCALE_SCALES] = Field(  # type: ignore[valid-type]
        default_of(UpscaleSettings, "scale"), description="the result is the box's size times this, at the box's top-left corner"
    )
    refine_strength: float = bounded(
        default_of(UpscaleSettings, "refine_strength"), core_limits.REFINE_STRENGTH,
        description="above 0: an img2img pass of the job's model and prompt over overlapping tiles at this denoise strength",
    )
    tile_size: int | None = bounded(
        default_of(UpscaleSettings, "tile_size"), core_limits.UPSCALE_TILE, multiple_of=core_limits.BBOX_MULTIPLE,
        description="the refine's tile side; absent: the model family's default size",
    )
    tile_overlap: int = bounded(default_of(UpscaleSettings, "tile_overlap"), core_limits.UPSCALE_OVERLAP, description="pixels the refine's tiles overlap and blend over")


class HiresFixIn(Strict):
    """Hires fix of a text-to-image job: generate at the generation size / scale, upscale, refine by img2img."""

    scale: float = bounded(default_of(HiresFix, "scale"), core_limits.HIRES_SCALE, description="the first pass at the generation size divided by this")
    strength: float = bounded(default_of(HiresFix, "strength"), core_limits.HIRES_STRENGTH, description="the refine's denoise strength")
    upscaler: str | None = Field(None, min_length=1, max_length=200, description="an installed upscaler; absent: a plain Lanczos resize")


class ParamsIn(Strict):
    prompt: str = Field("", max_length=PROMPT_MAX_CHARS)
    negative_prompt: str = Field("", max_length=PROMPT_MAX_CHARS)
    model: str | None = Field(None, max_length=200)
    steps: int = bounded(default_of(GenerationParams, "steps"), STEPS)
    cfg_scale: float = bounded(default_of(GenerationParams, "cfg_scale"), CFG_SCALE)
    true_cfg_scale: float = bounded(
        default_of(GenerationParams, "true_cfg_scale"), TRUE_CFG_SCALE,
        description="FLUX.1: classifier-free guidance with the negative prompt, besides the distilled guidance (1: off)",
    )
    scheduler: str = Field(default_of(GenerationParams, "scheduler"), max_length=50)
    seed: int | None = bounded(None, SEED, description="random when absent")
    batch_size: int = bounded(default_of(GenerationParams, "batch_size"), BATCH_SIZE)
    strength: float = bounded(default_of(GenerationParams, "strength"), STRENGTH)
    mask_blur: int = bounded(default_of(GenerationParams, "mask_blur"), MASK_BLUR)
    infill: InfillName = default_of(GenerationParams, "infill")
    infill_color: tuple[Channel, Channel, Channel] = default_of(GenerationParams, "infill_color")
    scale: float = bounded(default_of(GenerationParams, "scale"), SCALE)
    loras: list[LoraIn] = Field(default_factory=list, max_length=MAX_LORAS, description="LoRAs applied in order, each at its weight")
    edit: bool = Field(
        default_of(GenerationParams, "edit"),
        description="ask for an instruction edit of the pixels under the box: needs an edit model (FLUX.1 Kontext)",
    )
    upscale: UpscaleIn | None = Field(None, description="set: an upscale job of the box's pixels instead of a generation")
    hires_fix: HiresFixIn | None = Field(None, description="set: text-to-image in two passes (other modes run as usual)")


class CanvasDocumentIn(Strict):
    """A canvas document as saved (`POST /canvas`): layers may be empty (no `image_id`), and `ui` holds
    free-form front-end state (staging area, random-seed toggle, selected board...)."""

    bbox: BBoxIn
    layers: list[LayerIn] = Field(default_factory=list, max_length=MAX_LAYERS)
    params: ParamsIn
    ui: dict[str, Any] | None = Field(
        None,
        description=f"free-form front-end state (a JSON object of at most {UI_MAX_BYTES} bytes); ignored by the worker",
    )

    @field_validator("ui")
    @classmethod
    def _ui_bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"ui is not valid JSON: {exc}") from None
        size = len(text.encode("utf-8"))
        if size > UI_MAX_BYTES:
            raise ValueError(f"ui is {size} bytes of JSON; the limit is {UI_MAX_BYTES}")
        return value


class JobDocumentIn(CanvasDocumentIn):
    """A canvas document to generate from: like a saved one, but every layer has pixels (`image_id`)."""

    layers: list[JobLayerIn] = Field(default_factory=list, max_length=MAX_LAYERS)

    @classmethod
    def from_saved(cls, document: dict[str, Any]) -> JobDocumentIn:
        """A saved canvas as a job: its empty layers (no pixels, so nothing to contribute) left out."""
        saved = CanvasDocumentIn.model_validate(document)
        return cls.model_validate(
            saved.model_copy(
                update={"layers": [layer for layer in saved.layers if layer.image_id is not None]}
            ).model_dump()
        )


class JobIn(Strict):
    document: JobDocumentIn | None = None
    canvas_id: str | None = Field(None, max_length=64)
    version: int | None = Field(None, ge=1, le=INT64_MAX)
    board_id: str | None = Field(None, max_length=64)
    priority: int = Field(0, ge=-100, le=100)

    @model_validator(mode="after")
    def _one_source(self) -> JobIn:
        if (self.document is None) == (self.canvas_id is None):
            raise ValueError("give either an inline document or a saved canvas_id, not both or neither")
        return self


class JobOut(BaseModel):
    batch_id: str
    item_ids: list[int]
    generation_ids: list[str]
    seeds: list[int]


class LiveJobIn(Strict):
    """A live-painting job (server/live.py): the canvas document with the model's live settings; one image."""

    document: JobDocumentIn
    client: str | None = Field(
        None, min_length=1, max_length=LANE_KEY_MAX, pattern=r"^[A-Za-z0-9_-]+$",
        description="the client's live lane (a browser tab's key): a job supersedes only its own client's; absent: the shared lane",
    )


class LiveJobOut(BaseModel):
    item_id: int
    generation_id: str
    seed: int
    superseded: list[int] = Field(description="older live items this one replaced: pending ones canceled, running ones stopping")


class LiveKeepIn(Strict):
    board_id: str | None = Field(None, max_length=64, description="the board to file it in (absent: uncategorised)")


# --- queue ------------------------------------------------------------------------------------------


class QueueItemOut(BaseModel):
    id: int
    status: str
    priority: int
    batch_id: str
    position: int
    generation_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None
    attempts: int = 0  # runs since queued (or retried)
    worker: str | None = None  # the worker that holds it, or last held it ("embedded": this server)
    heartbeat_at: datetime | None = None  # its holder's last sign of life
    live: bool = Field(False, description="a live-painting item (its priority is the live lane's)")

    @model_validator(mode="after")
    def _lane(self) -> QueueItemOut:
        self.live = is_live(self.priority)
        return self


class QueueAttemptOut(BaseModel):
    id: int
    worker: str
    status: str  # in_progress, completed, failed (WorkerLost: its worker died), canceled, requeued
    started_at: datetime
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None


class WorkerOut(BaseModel):
    name: str
    device: str | None = None
    loaded: list[str] = []
    item_id: int | None = None
    seen: float | None = None  # Unix time of its last heartbeat


class QueueListQuery(Strict):
    status: Literal["pending", "in_progress", "completed", "failed", "canceled"] | None = None
    limit: int = Field(100, ge=1, le=1000)
    after_id: int | None = Field(None, ge=0, le=INT64_MAX)


class QueueStatusOut(BaseModel):
    paused: bool
    counts: dict[str, int]
    current_item_id: int | None


class IdsIn(Strict):
    ids: list[ItemId] = Field(min_length=1, max_length=1000)


class CountOut(BaseModel):
    count: int


# --- config ---------------------------------------------------------------------------------------------


class NumberLimitOut(BaseModel):
    min: int | float
    max: int | float
    exclusive_min: bool = Field(description="true: `min` itself is refused (the smallest accepted is above it)")
    step: int | float | None = Field(description="the increment a field offers (1 for integers)")
    integer: bool
    default: int | float | None = Field(description="the value used when absent; null: none (a seed: random)")


class OptionOut(BaseModel):
    name: str = Field(description="the value to send")
    label: str = Field(description="what to show")


class PreprocessorOut(OptionOut):
    options: dict[str, float] = Field(description="the preprocessor's options and their defaults")


class FamilyDefaultsOut(BaseModel):
    steps: int
    cfg_scale: float
    scheduler: str
    width: int
    height: int


WeightStorage = Literal[WEIGHT_STORAGES]  # type: ignore[valid-type]


class FamilyOut(BaseModel):
    """A model family as invoke_core.families describes it: what the web offers for its models."""

    label: str
    size_multiple: int = Field(description="generation sizes are multiples of this")
    defaults: FamilyDefaultsOut
    features: list[str] = Field(description=f"what its models can do, of: {', '.join(FEATURES)}")
    schedulers: list[str] = Field(description="the scheduler names valid for its models (of `schedulers`)")
    guidance_label: str = Field(description="what `cfg_scale` is for its models: 'CFG scale', or distilled guidance")
    edit_from_empty_box: bool = Field(
        description="whether its edit models run an empty box as text to image (FLUX.1 Kontext); else it is refused (Qwen-Image-Edit)"
    )
    reference_model_kind: str | None = Field(
        None, description="the model kind a reference layer chooses, with a weight and step range (SD 1.x, SDXL: ip_adapter; FLUX.1: redux, weight only, every step);"
        " null: its models take reference images themselves, at full weight (FLUX.2)"
    )


class ConfigOut(BaseModel):
    """What a job accepts, generated from the core's own definitions (invoke_core.limits and friends):
    a field built from these never accepts what the server refuses."""

    numbers: dict[str, NumberLimitOut] = Field(
        description="every numeric field: steps, cfg_scale, seed, batch_size, strength, mask_blur, scale,"
        " bbox_width, bbox_height, lora_weight, region_strength, control_weight, control_begin, control_end,"
        " reference_weight, reference_begin, reference_end, opacity, upscale_refine_strength, hires_scale, hires_strength"
    )
    prompt_max_chars: int
    max_loras: int = Field(description="LoRAs per job")
    max_layers: int
    max_generation_side: int = Field(description="pixels a side the model generates at (bbox x scale)")
    bbox_multiple: int = Field(description="bbox sides are multiples of this")
    scale_choices: list[float] = Field(description="the scales the UI offers")
    upscale_scales: list[int] = Field(description="the factors an upscale job takes")
    hires_scale_choices: list[float] = Field(description="the hires-fix first-pass divisors the UI offers")
    schedulers: list[OptionOut]
    preprocessors: list[PreprocessorOut]
    infill_methods: list[OptionOut]
    control_modes: list[OptionOut]
    defaults: dict[str, Any] = Field(
        description="the other defaults of a job: params (ParamsIn), control (ControlIn), reference (ReferenceIn),"
        " upscale (UpscaleIn), hires_fix (HiresFixIn)"
    )
    families: dict[str, FamilyOut] = Field(
        description="each model family (a model's `family`): its label, size multiple, defaults and features"
    )
    live: LiveConfigOut | None = None


# --- health, models ------------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    device: str | None
    dtype: str | None
    queue: QueueStatusOut


class ModelOut(BaseModel):
    id: str
    name: str
    family: str
    kind: str
    format: str
    size: int
    hash: str
    source: str
    description: str
    builtin: bool
    label: str | None = Field(None, description="shown next to the name, e.g. the demo's 'random weights' warning")
    default: bool = Field(False, description="the model a job of its kind uses when it names none")
    defaults: FamilyDefaultsOut | None = Field(
        None, description="the model's own defaults where they are not its family's (FLUX.1 schnell: 4 steps)"
    )
    control_types: list[str] | None = Field(
        None, description="a Union ControlNet's kinds of control image (a control layer's `control_type`)"
    )
    live_defaults: LiveDefaultsOut | None = Field(
        None, description="its own live-painting settings where they are not its family's (LCM, Turbo, Lightning, schnell)"
    )
    keep_loaded: bool = Field(False, description="kept loaded while it fits, loaded at start (PATCH to change)")
    weights: WeightStorage = Field("native", description="how its denoiser's weights are stored in memory (PATCH to change)")
    memory_bytes: int | None = Field(None, description="about what it takes in memory loaded, with its weight storage")
    scale: int | None = Field(None, description="an upscaler's factor (2, 4)")
    reference_kinds: list[str] | None = Field(
        None, description="a main model's: the model kinds its reference layers choose, the first the default (SD 1.x, SDXL:"
        " ip_adapter; FLUX.1: redux, ip_adapter); [] where it takes the pictures itself (FLUX.2, edit models); null where it takes none"
    )


class ModelPatchIn(Strict):
    keep_loaded: bool | None = Field(None, description="keep the model loaded (loaded now, at every start, evicted last)")
    weights: WeightStorage | None = Field(None, description="native; fp8: its denoiser in fp8, cast per layer as it runs; nf4 or int8 (bitsandbytes, CUDA only)")

    @model_validator(mode="after")
    def _something(self) -> "ModelPatchIn":
        if self.keep_loaded is None and self.weights is None:
            raise ValueError("give keep_loaded or weights")
        return self


class ModelInstallIn(Strict):
    source: str = Field(min_length=1, max_length=4096, description="a local path (diffusers folder, .safetensors or .gguf)")
    name: str | None = Field(None, min_length=1, max_length=200)
    config: str | None = Field(None, max_length=4096)
    base: str | None = Field(
        None, min_length=1, max_length=200,
        description="for a FLUX.1 or SD 3.x transformer file: the installed diffusers model whose text encoders and VAE it runs with",
    )


class ModelScanIn(Strict):
    path: str = Field(min_length=1, max_length=4096, description="a folder: an A1111/Forge, ComfyUI or InvokeAI models folder, or any tree")


class ModelInstallOut(BaseModel):
    job_id: str
    status: str


class CacheComponentOut(BaseModel):
    """A cached component: a part of one or more models' pipelines (or a whole ControlNet or single file)."""

    name: str = Field(description="its name in the pipeline (text_encoder, unet, transformer, vae), or the model's kind")
    key: str = Field(description="its content hash, the device and dtype it is loaded for")
    tier: Literal["ram", "vram"]
    bytes: int
    idle_seconds: float = Field(description="since a job last used it")
    pinned: bool = Field(description="a running job uses it: it is not evicted")
    models: list[str] = Field(description="the model ids whose pipelines share it")


class LiveDefaultsOut(BaseModel):
    steps: int
    cfg_scale: float
    scheduler: str
    strength: float


class LiveConfigOut(BaseModel):
    """Live painting (server/live.py, invoke_core/live.py)."""

    families: dict[str, LiveDefaultsOut] = Field(
        description="each family's live settings; a model's or LoRA's own are its `live_defaults` (GET /models)"
    )
    debounce_ms: int = Field(description="how long after the last change the web queues a live job")
    seed: int = Field(description="the seed of a live job that names none")
    priority: int = Field(description="the live lane's queue priority (above any other job's)")


class WeightStorageOut(BaseModel):
    name: WeightStorage
    usable: bool
    reason: str | None = Field(None, description="why it cannot run here (nf4 and int8 need a CUDA card and bitsandbytes)")


class CacheOut(BaseModel):
    loaded: list[str] = Field(description="model ids, least recently used first")
    ram_used: int
    vram_used: int
    ram_budget: int = 0
    vram_budget: int = 0
    loads: int = Field(description="models loaded (a component or more read from disk)")
    hits: int = Field(description="jobs on a model already loaded")
    evictions: int = Field(description="components dropped")
    component_loads: int = 0
    offloads: int = Field(0, description="components moved from VRAM to RAM")
    components: list[CacheComponentOut] = []
    weight_storages: list[WeightStorageOut] = Field([], description="every weight storage, with whether this server's device runs it")


# --- boards ---------------------------------------------------------------------------------------------


class BoardOut(BaseModel):
    id: str
    name: str
    parent_id: str | None
    cover_image_id: str | None
    position: int
    archived: bool
    created_at: datetime
    updated_at: datetime
    image_count: int


class BoardNodeOut(BaseModel):
    board: BoardOut
    children: list[BoardNodeOut]


class BoardCreateIn(Strict):
    name: str = Field(max_length=1000)
    parent_id: str | None = Field(None, max_length=64)


class BoardPatchIn(Strict):
    """Only the fields sent change; parent_id null moves the board to the top level."""

    name: str | None = Field(None, max_length=1000)
    parent_id: str | None = Field(None, max_length=64)
    position: int | None = Field(None, ge=0, le=100_000)
    archived: bool | None = None
    cover_image_id: str | None = Field(None, max_length=64)


class BoardReorderIn(Strict):
    parent_id: str | None = Field(None, max_length=64)
    ordered_ids: list[str] = Field(max_length=10_000)


class BoardDeleteQuery(Strict):
    include_images: bool = False


class BoardTreeQuery(Strict):
    include_archived: bool = True


class BoardDeletionOut(BaseModel):
    board_ids: list[str]
    images_deleted: int
    images_uncategorised: int


# --- images ---------------------------------------------------------------------------------------------


class ImageOut(BaseModel):
    id: str
    file_name: str
    board_id: str | None
    width: int
    height: int
    file_size: int
    content_hash: str
    origin: str
    category: str
    starred: bool
    created_at: datetime
    prompt: str
    negative_prompt: str
    model_name: str | None
    generation_id: str | None
    url: str
    thumbnail_url: str


class ImagePageOut(BaseModel):
    items: list[ImageOut]
    next_cursor: str | None


class ImageListQuery(Strict):
    board_id: str | None = Field(None, max_length=64, description='a board id, or "none" for uncategorised')
    include_sub_boards: bool = False
    starred: bool | None = None
    origin: Literal["generated", "uploaded", "canvas"] | None = None
    model_name: str | None = Field(None, max_length=200)
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = Field(None, max_length=SEARCH_MAX_CHARS)
    order: Literal["newest", "oldest"] = "newest"
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=500)


class ImagePatchIn(Strict):
    board_id: str | None = Field(None, max_length=64)
    starred: bool | None = None


class ImagesPatchIn(ImagePatchIn):
    ids: list[str] = Field(min_length=1, max_length=10_000)


class ImageIdsIn(Strict):
    ids: list[str] = Field(min_length=1, max_length=10_000)


class UploadForm(Strict):
    board_id: str | None = Field(None, max_length=64)
    category: Literal["general", "mask", "control", "layer"] = "general"


class DateCountOut(BaseModel):
    date: str
    count: int


class BoardCountOut(BaseModel):
    board_id: str | None
    count: int


# --- canvases and history ------------------------------------------------------------------------------


class TileIn(Strict):
    """A tile a browser changed since its last save: it REPLACES the layer's pixels in its rectangle."""

    layer_id: str = Field(min_length=1, max_length=100, description="a layer of the document")
    x: int = Field(ge=-1_000_000, le=1_000_000, description="canvas coordinates of the tile's top-left pixel")
    y: int = Field(ge=-1_000_000, le=1_000_000)
    width: int = Field(ge=1, le=TILE_SIDE)
    height: int = Field(ge=1, le=TILE_SIDE)
    png: str | None = Field(
        None,
        max_length=TILE_PNG_B64_MAX,
        description="the tile's RGBA pixels as a base64 PNG of width x height; absent: the tile was cleared",
    )


class CanvasSaveIn(Strict):
    name: str | None = Field(None, max_length=1000)
    document: CanvasDocumentIn = Field(description="layers reference image assets by id, never inline pixels")
    canvas_id: str | None = Field(None, max_length=64)
    autosave: bool = True
    create: bool = Field(
        False, description="a canvas_id naming no canvas yet creates it with that id (32 lowercase hex digits)"
    )
    base_version: int | None = Field(
        None,
        ge=0,
        le=INT64_MAX,
        description="the version this document was made from (0: none yet); if another browser saved since,"
        " its version is kept as a named copy (kept_copy) before this one is saved",
    )
    client: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the saving browser's id (stamped as ui.writer)"
    )
    tiles: list[TileIn] = Field(
        default_factory=list,
        max_length=MAX_TILES_PER_SAVE,
        description="tiles changed since the layer's image_id (a page closing sends these, not whole layers)",
    )

    @model_validator(mode="after")
    def _named_when_new(self) -> CanvasSaveIn:
        if self.canvas_id is None and self.name is None:
            raise ValueError("a new canvas needs a name (name may be left out when saving to a canvas_id)")
        return self


class CanvasRefOut(BaseModel):
    id: str
    name: str


class CanvasOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    current_version: int
    version_count: int | None = None
    kept_copy: CanvasRefOut | None = Field(
        None, description="another browser's version that this save would have replaced, kept as a new canvas"
    )


class CanvasLoadOut(BaseModel):
    canvas: CanvasOut
    document: dict[str, Any]


class CanvasLoadQuery(Strict):
    version: int | None = Field(None, ge=1, le=INT64_MAX)


class CanvasRenameIn(Strict):
    name: str = Field(max_length=1000)


class CanvasVersionOut(BaseModel):
    version: int
    autosave: bool
    created_at: datetime


class GenerationOut(BaseModel):
    id: str
    request: dict[str, Any]
    canvas_id: str | None
    canvas_version: int | None
    board_id: str | None
    model_id: str | None
    model_name: str | None
    model_hash: str | None
    seed: int | None
    mode: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, Any] | None
    error_type: str | None
    error_message: str | None
    image_ids: list[str]


class GenerationPageOut(BaseModel):
    items: list[GenerationOut]
    next_cursor: str | None


class HistoryQuery(Strict):
    board_id: str | None = Field(None, max_length=64)
    canvas_id: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=500)


class ImageHistoryOut(BaseModel):
    image_id: str
    generation: GenerationOut | None
    canvas_generations: list[GenerationOut]
