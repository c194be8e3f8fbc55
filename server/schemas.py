"""Pydantic models of the REST API: request bodies, query strings and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID = Field(min_length=1, max_length=64)
INT64_MAX = 2**63 - 1  # SQLite integers: a larger id would overflow instead of being "not found"
ItemId = Annotated[int, Field(ge=1, le=INT64_MAX)]
Channel = Annotated[int, Field(ge=0, le=255)]
Name = Field(min_length=1, max_length=200)


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
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)


class RegionIn(Strict):
    prompt: str = Field(max_length=10_000)
    negative_prompt: str = Field("", max_length=10_000)


class ControlIn(Strict):
    model: str = Field(min_length=1, max_length=200)
    preprocessor: str = Field("none", max_length=50)
    weight: float = Field(1.0, ge=0, le=2)
    begin: float = Field(0.0, ge=0, le=1)
    end: float = Field(1.0, ge=0, le=1)


class LayerIn(Strict):
    id: str = Field(min_length=1, max_length=100)
    kind: Literal["raster", "inpaint_mask", "regional_guidance", "control"]
    x: int = Field(0, ge=-1_000_000, le=1_000_000)
    y: int = Field(0, ge=-1_000_000, le=1_000_000)
    image_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="an uploaded image asset (RGBA; for masks the alpha)")
    opacity: float = Field(1.0, ge=0, le=1)
    visible: bool = True
    region: RegionIn | None = None
    control: ControlIn | None = None


class ParamsIn(Strict):
    prompt: str = Field("", max_length=10_000)
    negative_prompt: str = Field("", max_length=10_000)
    model: str | None = Field(None, max_length=200)
    steps: int = Field(30, ge=1, le=500)
    cfg_scale: float = Field(7.5, ge=0, le=50)
    scheduler: str = Field("euler", max_length=50)
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="random when absent")
    batch_size: int = Field(1, ge=1, le=64)
    strength: float = Field(0.75, gt=0, le=1)
    mask_blur: int = Field(8, ge=0, le=256)
    infill: Literal["patchmatch", "telea", "navier_stokes", "tile", "color"] = "patchmatch"
    infill_color: tuple[Channel, Channel, Channel] = (127, 127, 127)
    scale: float = Field(1.0, ge=0.25, le=4)


class CanvasDocumentIn(Strict):
    bbox: BBoxIn
    layers: list[LayerIn] = Field(default_factory=list, max_length=200)
    params: ParamsIn


class JobIn(Strict):
    document: CanvasDocumentIn | None = None
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


class ModelInstallIn(Strict):
    source: str = Field(min_length=1, max_length=4096, description="a local path (diffusers folder or .safetensors)")
    name: str | None = Field(None, min_length=1, max_length=200)
    config: str | None = Field(None, max_length=4096)


class ModelInstallOut(BaseModel):
    job_id: str
    status: str


class CacheOut(BaseModel):
    loaded: list[str]
    ram_used: int
    vram_used: int
    loads: int
    hits: int
    evictions: int


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
    search: str | None = Field(None, max_length=500)
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


class CanvasSaveIn(Strict):
    name: str | None = Field(None, max_length=1000)
    document: dict[str, Any]
    canvas_id: str | None = Field(None, max_length=64)
    autosave: bool = True

    @model_validator(mode="after")
    def _named_when_new(self) -> CanvasSaveIn:
        if self.canvas_id is None and self.name is None:
            raise ValueError("a new canvas needs a name (name may be left out when saving to a canvas_id)")
        return self


class CanvasOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    current_version: int
    version_count: int | None = None


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
