"""HiDream-I1 (Full, Dev, Fast): a sparse mixture-of-experts transformer of dual- and single-stream blocks,
four text encoders (two long CLIPs for the pooled prompt, a T5 and a Llama 3.1 whose layers feed the
blocks one by one), FLUX.1's 16-channel VAE, flow matching with a fixed shift.

Text to image on diffusers' HiDreamImagePipeline, kept at the generation size (it would rescale every job
to its own sample area); diffusers has no HiDream image to image or inpaint pipeline, so those run on the
generic flow-matching path over the text-to-image one (invoke_core/flow_tasks.py). Full runs
classifier-free guidance with a negative prompt; Dev and Fast are guidance-distilled (CFG scale 1). LoRA
stacks in diffusers' layout (`pipe.load_lora_weights`). No regional prompts and no ControlNets yet.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from . import hidream_demo, hidream_file
from .base import Defaults, DemoModel, Family, cached_config
from .sd3 import rough_rgb

_MAX_TOKENS = 128  # the pipeline's prompt length in every encoder (its default)
_PATCH = 16  # 8x VAE and 2x2 patches
_MAX_PATCHES = 128 * 128 // 4  # HiDream-I1's transformer (max_resolution 128x128 latents): 1024x1024 px

# Full: 50 steps, CFG 5 (its UniPC scheduler shifts by 3); Dev: 28 steps, Fast: 16, both distilled (CFG off)
FULL = Defaults(steps=50, cfg_scale=5.0, scheduler="euler", width=1024, height=1024)
DEV = Defaults(steps=28, cfg_scale=1.0, scheduler="euler", width=1024, height=1024)
FAST = Defaults(steps=16, cfg_scale=1.0, scheduler="euler", width=1024, height=1024)


_VARIANTS = {"full": FULL, "dev": DEV, "fast": FAST}
_VARIANT = re.compile(r"(?<![a-z])(full|dev|fast)(?![a-z])")  # in a file's name: hidream_i1_dev_bf16


def _scheduler(folder: str | Path) -> dict[str, Any]:
    return cached_config(Path(folder) / "scheduler" / "scheduler_config.json")


@dataclass(frozen=True)
class HiDreamFamily(Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        if index.get("_class_name") != "HiDreamImagePipeline":
            return None
        from ..errors import ModelInstallError

        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "HiDreamImageTransformer2DModel":
            raise ModelInstallError("a HiDream pipeline folder without transformer/config.json: the folder is incomplete")
        if not all(isinstance(index.get(f"text_encoder_{n}"), list) and index[f"text_encoder_{n}"][0] for n in (3, 4)):
            raise ModelInstallError(
                "a HiDream-I1 folder without its T5 (text_encoder_3) or Llama (text_encoder_4): install the whole folder"
            )
        return "main"

    def model_defaults(self, record: Any) -> Defaults | None:
        """Full's, Dev's or Fast's, told by the scheduler the folder ships (Full: UniPC; Dev: Euler shifted
        by 6; Fast: by 3). A transformer file (the three have the same shapes): its name's, else its base's."""
        declared = super().model_defaults(record)
        if declared:
            return declared
        folder = record.path
        if record.format != "diffusers":
            if record.kind != "main" or not record.config_path:
                return None
            named = _VARIANT.search(f"{record.name} {Path(record.path).name}".lower())
            if named:
                return _VARIANTS[named.group(1)]
            folder = record.config_path
        scheduler = _scheduler(folder)
        if scheduler.get("_class_name") == "UniPCMultistepScheduler":
            return FULL
        return DEV if float(scheduler.get("shift", 3.0)) >= 6.0 else FAST

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        from . import transformer_lora as tl

        return tl.is_lora(shapes) and (
            any("double_stream_blocks." in k or "single_stream_blocks." in k for k in shapes) or "hidream" in tl.declared(metadata)
        )

    def check_job(self, *, size: tuple[int, int], **features: Any) -> None:
        super().check_job(size=size, **features)
        width, height = size
        if (width // _PATCH) * (height // _PATCH) > _MAX_PATCHES:
            from ..errors import InvalidCanvasError

            raise InvalidCanvasError(
                f"generation size {width}x{height} is more than {self.label} models generate"
                f" ({_MAX_PATCHES * _PATCH * _PATCH // 1_000_000:.0f} megapixel, such as 1024x1024): lower the box's scale"
            )

    def configure_pipeline(self, pipe: Any, size: tuple[int, int]) -> None:
        """The pipeline rescales every job to its sample area `(default_sample_size * 8)^2`: set it to the
        generation size's (a hair above, so its floor to the patch grid keeps the size)."""
        width, height = size
        patches = (width // _PATCH) * (height // _PATCH)
        if patches > pipe.transformer.max_seq:
            from ..errors import InvalidCanvasError

            raise InvalidCanvasError(
                f"generation size {width}x{height} is {patches} patches; this model's transformer takes at most"
                f" {pipe.transformer.max_seq}: lower the box's scale"
            )
        pipe.default_sample_size = math.sqrt(width * height) / pipe.vae_scale_factor * (1 + 1e-6)

    def scheduler_config(self, config: Any) -> Any:
        """Full ships a flow UniPC scheduler (`flow_shift`); our flow Euler reads the shift as `shift`."""
        if config.get("_class_name") == "UniPCMultistepScheduler" and "flow_shift" in config:
            return {**config, "shift": config["flow_shift"]}
        return config

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 1

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding: both CLIPs pooled, T5 and every Llama layer, 128 tokens each
        return {"prompt": prompt, "negative_prompt": negative_prompt if do_cfg else None, "max_sequence_length": _MAX_TOKENS}

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return contextlib.nullcontext()

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def flow_mu(self, pipe: Any, size: tuple[int, int], steps: int) -> float | None:
        # the pipeline's shift is the transformer's largest sequence's, whatever the size (schedulers that
        # shift dynamically use it; HiDream's own shift by a fixed factor)
        from diffusers.pipelines.hidream_image.pipeline_hidream_image import calculate_shift

        return calculate_shift(pipe.transformer.max_seq)

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        return rough_rgb(latents[0].detach().float().cpu().numpy())


FAMILY = HiDreamFamily(
    name="hidream",
    label="HiDream-I1",
    defaults=FULL,
    size_multiple=_PATCH,
    sampling="flow-sigmas",  # the pipeline passes the shift `mu`; the generic path passes sigmas
    features=frozenset({"negative_prompt", "lora"}),
    pipelines={("txt2img", False): "HiDreamImagePipeline"},
    flow_tasks=frozenset({"img2img", "inpaint"}),
    transformer_file=hidream_file.TRANSFORMER_FILE,
    demos=(DemoModel("demo-hidream", "Demo HiDream-I1 (tiny)", "hidream", "main", hidream_demo.build_main, FAST),),
)
