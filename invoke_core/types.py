"""Immutable types shared by compile and run: the canvas document and the generation request.

Pixel arrays are numpy uint8 (RGBA HxWx4 for layers, RGB HxWx3 for images); masks are float32 HxW in
[0, 1] where 1 means "repaint". Arrays are made read-only on construction so a frozen value stays frozen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from .errors import InvalidCanvasError


def _enum(cls: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(m.value for m in cls)
        raise InvalidCanvasError(f"unknown {what} {value!r}: choose one of {valid}") from None


def _frozen(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class Bounds(NamedTuple):
    """A rectangle in canvas pixels; x, y is the top-left corner."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


class LayerKind(str, enum.Enum):
    RASTER = "raster"
    INPAINT_MASK = "inpaint_mask"
    REGIONAL_GUIDANCE = "regional_guidance"
    CONTROL = "control"
    REFERENCE = "reference"  # its pixels go in as a reference image (IP-Adapter, FLUX.2), not into the init image


class Mode(str, enum.Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    EDIT = "edit"  # an instruction-editing model's job: the pixels under the box are the reference


class ControlMode(str, enum.Enum):
    """Balance between the prompt and a control layer (A1111/Invoke "control mode")."""

    BALANCED = "balanced"  # ControlNet residuals at full weight on both CFG branches
    PROMPT = "prompt"  # "my prompt is more important": residuals fade from 0.1x (shallow) to 1x (middle)
    CONTROL = "control"  # "ControlNet is more important": diffusers guess_mode (fading, conditional branch only)


class InfillMethod(str, enum.Enum):
    TELEA = "telea"
    NAVIER_STOKES = "navier_stokes"
    TILE = "tile"
    COLOR = "color"
    PATCHMATCH = "patchmatch"


# what the UI shows for each (published by GET /api/v1/config), in the order it lists them
CONTROL_MODE_LABELS: dict[ControlMode, str] = {
    ControlMode.BALANCED: "Balanced",
    ControlMode.PROMPT: "Prompt matters more",
    ControlMode.CONTROL: "Control matters more",
}
INFILL_LABELS: dict[InfillMethod, str] = {
    InfillMethod.PATCHMATCH: "PatchMatch",
    InfillMethod.TELEA: "Telea (OpenCV)",
    InfillMethod.NAVIER_STOKES: "Navier-Stokes (OpenCV)",
    InfillMethod.TILE: "Tile",
    InfillMethod.COLOR: "Solid colour",
}
assert set(CONTROL_MODE_LABELS) == set(ControlMode) and set(INFILL_LABELS) == set(InfillMethod)


DEFAULT_REGION_STRENGTH = 0.8


@dataclass(frozen=True)
class RegionPrompt:
    """The prompts a regional-guidance layer carries. `strength` in [0, 1]: how far the region's prompt
    replaces the main prompt inside its mask (0: the main prompt keeps full weight there; 1: only the region's
    prompt where the mask is fully painted). The region's own tokens never reach outside its mask."""

    prompt: str
    negative_prompt: str = ""
    strength: float = DEFAULT_REGION_STRENGTH


@dataclass(frozen=True)
class ControlSettings:
    """How a control layer steers generation: which ControlNet, which preprocessor turns the layer's
    pixels into its control map, how strongly (weight) and over which fraction of the steps (begin, end)."""

    model: str
    preprocessor: str = "none"
    weight: float = 1.0
    begin: float = 0.0
    end: float = 1.0
    mode: ControlMode = ControlMode.BALANCED
    # what the control image shows, for a ControlNet that takes several kinds (a FLUX.1 Union ControlNet:
    # canny, depth, ...); None: told by the preprocessor (canny, tile, blur) where it can be
    control_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _enum(ControlMode, self.mode, "control mode"))


@dataclass(frozen=True)
class ReferenceSettings:
    """How a reference layer steers generation: how strongly (weight; 0 adds nothing) over which fraction of
    the steps (begin, end, as a control layer's), and with which adapter (`model`: an installed IP-Adapter for
    SD 1.x/SDXL, None for the family's default; families whose models take reference images themselves,
    FLUX.2, take none)."""

    model: str | None = None
    weight: float = 1.0
    begin: float = 0.0
    end: float = 1.0


@dataclass(frozen=True, eq=False)
class Layer:
    """One canvas layer. `pixels` is RGBA uint8; for mask and region layers the alpha is the coverage."""

    id: str
    kind: LayerKind
    x: int
    y: int
    pixels: np.ndarray
    opacity: float = 1.0
    visible: bool = True
    region: RegionPrompt | None = None
    control: ControlSettings | None = None
    reference: ReferenceSettings | None = None  # a reference layer's (None: the defaults)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(LayerKind, self.kind, "layer kind"))
        object.__setattr__(self, "pixels", _frozen(self.pixels))

    @property
    def bounds(self) -> Bounds:
        h, w = self.pixels.shape[:2]
        return Bounds(self.x, self.y, w, h)


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA of a stack: an installed LoRA model id and its weight (see invoke_core.lora)."""

    model: str
    weight: float = 1.0


@dataclass(frozen=True)
class UpscaleSettings:
    """An upscale job (invoke_core/upscale.py): the box's pixels through an upscaler to `scale` times the box,
    then, with `refine_strength` above 0, an img2img pass of the job's model and prompt over overlapping
    tiles of `tile_size` (None: the family's default size) blended over `tile_overlap` pixels."""

    model: str | None = None  # an installed upscaler; None: the default one
    scale: int = 2  # 2 or 4
    refine_strength: float = 0.0  # 0: the upscaler alone
    tile_size: int | None = None
    tile_overlap: int = 64


@dataclass(frozen=True)
class HiresFix:
    """A text-to-image job in two passes: the first at the generation size / `scale`, upscaled (an upscaler
    model, or a plain Lanczos resize with `upscaler` None) to the generation size, refined by img2img at
    `strength`. Other modes run as usual."""

    scale: float = 2.0
    strength: float = 0.45
    upscaler: str | None = None


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    negative_prompt: str = ""
    model: str | None = None  # None: the default model
    steps: int = 30
    cfg_scale: float = 7.5
    scheduler: str = "euler"
    seed: int = 0
    batch_size: int = 1
    strength: float = 0.75  # denoise strength for img2img, inpaint and outpaint
    mask_blur: int = 8  # pixels; 0 keeps the mask edge hard
    infill: InfillMethod = InfillMethod.PATCHMATCH
    infill_color: tuple[int, int, int] = (127, 127, 127)
    scale: float = 1.0  # generate at bbox size * scale (rounded to multiples of 8), paste back at bbox size
    loras: tuple[LoraSpec, ...] = ()  # applied in order, each at its weight; () = the base model alone
    # ask for an instruction edit (the pixels under the box the reference, the prompt an instruction): the
    # job needs an edit model (FLUX.1 Kontext), whose jobs are edits either way
    edit: bool = False
    # classifier-free guidance of a guidance-distilled family (FLUX.1), besides its distilled guidance
    # (`cfg_scale` there): above 1 the negative prompt runs as a second branch, at about twice the time
    true_cfg_scale: float = 1.0
    upscale: UpscaleSettings | None = None  # set: an upscale job of the box's pixels (invoke_core/upscale.py)
    hires_fix: HiresFix | None = None  # set: text-to-image in two passes (invoke_core/upscale.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "infill", _enum(InfillMethod, self.infill, "infill method"))
        if isinstance(self.loras, list):
            object.__setattr__(self, "loras", tuple(self.loras))
        for name, cls in (("upscale", UpscaleSettings), ("hires_fix", HiresFix)):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, cls(**getattr(self, name)))


@dataclass(frozen=True, eq=False)
class CanvasDocument:
    """What the illustrator has on the canvas: the bbox, the layers bottom to top, the settings."""

    bbox: Bounds
    layers: tuple[Layer, ...]
    params: GenerationParams

    def __post_init__(self) -> None:
        object.__setattr__(self, "bbox", Bounds(*self.bbox))
        object.__setattr__(self, "layers", tuple(self.layers))


@dataclass(frozen=True, eq=False)
class RegionInput:
    """A regional prompt, its mask clipped to the bbox (HxW float32, 1 = inside the region).
    `layer_id` names the layer it came from (metadata, messages); None for a request built by hand."""

    mask: np.ndarray
    prompt: str
    negative_prompt: str = ""
    layer_id: str | None = None
    strength: float = DEFAULT_REGION_STRENGTH  # see RegionPrompt

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _frozen(self.mask))


@dataclass(frozen=True, eq=False)
class ControlInput:
    """A control image cropped to the bbox (HxWx3 uint8) and how to apply it. `layer_id` names the layer it
    came from (metadata, messages); None for a request built by hand."""

    image: np.ndarray
    settings: ControlSettings
    layer_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen(self.image))


@dataclass(frozen=True, eq=False)
class ReferenceInput:
    """A reference layer's picture (HxWx3 uint8, its painted part over white): the family's reference image
    input steers the job with it. `layer_id` names the layer (metadata, messages). `mask`: where it applies
    (HxW float32 at bbox size, 1 = applies), for a reference layer lying over regional-guidance layers (the
    union of their masks; `regions` their layer ids); None: the whole box."""

    image: np.ndarray
    layer_id: str | None = None
    settings: ReferenceSettings = ReferenceSettings()
    mask: np.ndarray | None = None
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen(self.image))
        object.__setattr__(self, "mask", _frozen(self.mask))
        object.__setattr__(self, "regions", tuple(self.regions))


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """Everything a generation needs, at bbox size.

    - `init_image`: RGB, the composite of the visible raster layers inside the bbox, with the
      transparent part pre-filled by the infill method (None for txt2img).
    - `original`: RGBA composite before infill; paste-back restores its opaque pixels.
    - `mask`: repaint mask, 1 = repaint, unblurred (None for txt2img and img2img).
    - `size`: (width, height) the model generates at; equals the bbox size unless params.scale != 1.
    """

    mode: Mode
    params: GenerationParams
    bbox: Bounds
    size: tuple[int, int]
    init_image: np.ndarray | None = None
    original: np.ndarray | None = None
    mask: np.ndarray | None = None
    regions: tuple[RegionInput, ...] = ()
    controls: tuple[ControlInput, ...] = ()
    references: tuple[ReferenceInput, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _enum(Mode, self.mode, "mode"))
        for name in ("init_image", "original", "mask"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "controls", tuple(self.controls))
        object.__setattr__(self, "references", tuple(self.references))


@dataclass(frozen=True)
class Progress:
    """One denoising step done. `preview` is a small RGB PIL image of the current latents (or None),
    made only when read: a listener that throttles its events pays for the previews it sends, and on
    a GPU the copy to the host (a sync) happens only then, not at every step."""

    item: int  # index within the batch
    step: int  # 1-based
    total: int
    render_preview: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    phase: str | None = None  # "compiling": step 0 of a job whose size the fast path compiles first

    @property
    def preview(self) -> Any:
        return None if self.render_preview is None else self.render_preview()


@dataclass(frozen=True, eq=False)
class GenerationResult:
    """One finished image: RGB uint8 at bbox size, pasted back, with the metadata to reproduce it."""

    image: np.ndarray
    seed: int
    metadata: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]
