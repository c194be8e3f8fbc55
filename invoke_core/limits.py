"""What the app accepts, in one place: the API schema (server/schemas.py), the canvas compiler's checks
(invoke_core/compile.py), recall (db/png_metadata.py, which drops recorded values outside these ranges)
and the web's fields (published by GET /api/v1/config, server/routes/config.py) all read them from here."""

from __future__ import annotations

from typing import NamedTuple


class Range(NamedTuple):
    low: float
    high: float
    low_open: bool = False  # True: `low` itself is outside
    step: float | None = None  # the granularity a field offers (1 for integers; the UI's increment otherwise)

    def holds(self, value: float) -> bool:
        return (self.low < value if self.low_open else self.low <= value) and value <= self.high


MAX_GENERATION_SIDE = 4096  # pixels a side the model generates at (bbox x scale)
# VAE tiling "auto": on above this many generated pixels (the VAE's attention and activations grow with the
# area; diffusers' tiles are 512 px for SD, with overlap blended)
VAE_TILING_AREA = 1536 * 1536
VAE_TILING_MODES = ("auto", "on", "off")
# how a model's denoiser weights are stored in memory (invoke_core/weight_storage.py): as loaded; fp8 (e4m3),
# each layer cast to the compute dtype as it runs: half the memory of bf16; bitsandbytes nf4 (about a
# quarter of bf16) or int8 (half), on a CUDA card only
WEIGHT_STORAGES = ("native", "fp8", "nf4", "int8")
CUDA_WEIGHT_STORAGES = ("nf4", "int8")
BBOX_MULTIPLE = 8  # bbox sides (and generation sizes) are multiples of this

STEPS = Range(1, 500, step=1)
CFG_SCALE = Range(0, 50, step=0.5)
# true CFG of a guidance-distilled family (FLUX.1): 1 is off (one branch); above, a negative branch too
TRUE_CFG_SCALE = Range(1, 20, step=0.5)
SEED = Range(0, 2**32 - 1, step=1)
STRENGTH = Range(0, 1, low_open=True, step=0.01)  # denoise strength; 0 would change nothing
BATCH_SIZE = Range(1, 64, step=1)
MASK_BLUR = Range(0, 256, step=1)
SCALE = Range(0.25, 4, step=0.05)
SCALE_CHOICES = (0.5, 0.75, 1.0, 1.5, 2.0)  # the scales the UI offers (all inside SCALE)
# the bbox's width and height: a side over the generation limit can never be generated at any scale >= 1
BBOX_SIDE = Range(0, MAX_GENERATION_SIDE, low_open=True, step=BBOX_MULTIPLE)

LORA_WEIGHT = Range(-2, 2, step=0.05)
MAX_LORAS = 10  # LoRAs per job
REGION_STRENGTH = Range(0, 1, step=0.05)  # how far a region's prompt replaces the main prompt in its mask
CONTROL_WEIGHT = Range(0, 2, step=0.05)
CONTROL_BEGIN = Range(0, 1, step=0.05)  # fractions of the steps; begin < end (see compile)
CONTROL_END = Range(0, 1, step=0.05)
OPACITY = Range(0, 1, step=0.01)

PROMPT_MAX_CHARS = 10_000
SEARCH_MAX_CHARS = 500
MAX_LAYERS = 200
MAX_REFERENCES = 10  # reference layers per job (FLUX.2 takes up to 10 reference images)
REFERENCE_WEIGHT = Range(0, 2, step=0.05)  # a reference layer's weight (an IP-Adapter's scale); 0 adds nothing
REFERENCE_BEGIN = Range(0, 1, step=0.05)  # fractions of the steps, as a control layer's; begin < end
REFERENCE_END = Range(0, 1, step=0.05)
DEFAULT_BBOX_SIDE = 512  # a new canvas's box (a multiple of BBOX_MULTIPLE inside BBOX_SIDE)

# upscaling (invoke_core/upscale.py): an upscale job's factor, its refine's denoise strength (0: none), the
# refine's tiles (a side, and their overlap), and the largest result a side (it is refined tile by tile)
UPSCALE_SCALES = (2, 4)
REFINE_STRENGTH = Range(0, 1, step=0.05)
UPSCALE_TILE = Range(64, 2048, step=BBOX_MULTIPLE)
UPSCALE_OVERLAP = Range(0, 512, step=BBOX_MULTIPLE)
MAX_UPSCALE_SIDE = 8192
# hires fix: the first pass at the generation size / this factor, refined at this denoise strength
HIRES_SCALE = Range(1, 4, low_open=True, step=0.25)
HIRES_STRENGTH = Range(0, 1, low_open=True, step=0.05)
HIRES_SCALE_CHOICES = (1.5, 2.0)
