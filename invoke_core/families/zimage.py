"""Z-Image (Turbo and base; Tongyi-MAI): a single-stream transformer over [image, caption] tokens after
separate noise and caption refiners, a Qwen3 text encoder (its second-to-last layer's states of the
chat-templated prompt, unpadded), FLUX.1's 16-channel VAE, flow matching.

Text to image, image to image, inpaint and outpaint on diffusers' Z-Image pipelines. Its CFG scale is the
pipeline's: `pos + scale * (pos - neg)`, so 0 is off (Turbo, distilled: 9 steps) and base runs about 4;
Z-Image ControlNets (Fun Controlnet Union: one at a time, over every step) on text to image and, the
Union 2.x ones that take the mask and the masked image, on inpaint and outpaint (from noise: strength 1);
LoRA stacks in diffusers' layout. No regional prompts yet: its attention takes only a padding mask.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import zimage_demo, zimage_file
from .base import Defaults, DemoModel, Family
from .sd3 import rough_rgb

_MAX_TOKENS = 512  # the pipeline's prompt length, in Qwen tokens
_LORA_KEY = re.compile(r"(^|\.)(layers|noise_refiner|context_refiner)\.\d+\.(attention|feed_forward|adaLN_modulation)\.")
_LATENTS = 16

# Turbo (its model card): 9 steps (8 transformer calls), CFG off; base: 50 steps, CFG 4
TURBO = Defaults(steps=9, cfg_scale=0.0, scheduler="euler", width=1024, height=1024)
BASE = Defaults(steps=50, cfg_scale=4.0, scheduler="euler", width=1024, height=1024)


@dataclass(frozen=True)
class ZImageFamily(Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        if not str(index.get("_class_name", "")).startswith("ZImage"):
            return None
        from ..errors import ModelInstallError

        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "ZImageTransformer2DModel":
            raise ModelInstallError("a Z-Image pipeline folder without transformer/config.json: the folder is incomplete")
        if transformer.get("siglip_feat_dim"):
            raise ModelInstallError("Z-Image Omni (image references through SigLIP) is not supported yet: install Z-Image or Z-Image Turbo")
        return "main"

    def model_defaults(self, record: Any) -> Defaults | None:
        """Turbo's for a model whose name or folder says Turbo (its files are base's architecture)."""
        declared = super().model_defaults(record)
        if declared:
            return declared
        return TURBO if "turbo" in f"{record.name} {Path(record.path).name}".lower() else None

    def claims_controlnet(self, config: dict[str, Any]) -> bool:
        return config.get("_class_name") == "ZImageControlNetModel"

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        from . import transformer_lora as tl

        return tl.is_lora(shapes) and (any(_LORA_KEY.search(k) for k in shapes) or "z-image" in tl.declared(metadata))

    def check_controls(self, settings: list[Any], records: list[Any], strength: float) -> None:
        """One ControlNet at a time, over every step (the pipelines take neither a list nor begin and end)."""
        from ..errors import UnsupportedError

        super().check_controls(settings, records, strength)
        if len(records) > 1:
            raise UnsupportedError(f"{self.label} ControlNets run one at a time: hide the other control layers")
        for s in settings:
            if (s.begin, s.end) != (0.0, 1.0):
                raise UnsupportedError(f"{self.label} ControlNets act over every step: set begin 0 and end 1")

    def control_pipeline_class(self, task: str, controlnets: list[Any], kind: str = "main") -> str:
        from ..errors import UnsupportedError

        if controlnets and task == "inpaint" and controlnets[0].config.control_in_dim == _LATENTS:
            raise UnsupportedError(
                f"this {self.label} ControlNet steers text to image only (it takes no mask): use a Union 2.x"
                " ControlNet to inpaint and outpaint with control"
            )
        return super().control_pipeline_class(task, controlnets, kind)

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 0  # the pipeline's: `pos + scale * (pos - neg)`

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding: the chat-templated prompt through Qwen3, its padding dropped
        return {"prompt": prompt, "negative_prompt": negative_prompt if do_cfg else None, "max_sequence_length": _MAX_TOKENS}

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return contextlib.nullcontext()

    def control_inputs(self, request: Any, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        from ..errors import UnsupportedError
        from .sd3 import transformer_control_inputs

        (image,) = transformer_control_inputs(self.label, request, images_only=True)  # one: check_controls
        (control,) = request.controls
        if task == "inpaint":
            if request.params.strength < 1:
                raise UnsupportedError(
                    f"{self.label} ControlNet inpainting repaints the masked area from noise: set strength to 1"
                )
            inputs = {k: v for k, v in inputs.items() if k != "strength"}  # its pipeline has none
        return inputs | {"control_image": image, "controlnet_conditioning_scale": float(control.settings.weight)}

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        return rough_rgb(np.asarray(latents[0].detach().float().cpu().numpy()))


FAMILY = ZImageFamily(
    name="z-image",
    label="Z-Image",
    defaults=BASE,
    size_multiple=16,  # 8x VAE and 2x2 patches
    sampling="flow-sigmas",  # its pipelines pass their own sigmas and resolution shift
    features=frozenset({"negative_prompt", "controlnet", "lora"}),
    pipelines={
        ("txt2img", False): "ZImagePipeline",
        ("img2img", False): "ZImageImg2ImgPipeline",
        ("inpaint", False): "ZImageInpaintPipeline",
        ("txt2img", True): "ZImageControlNetPipeline",
        ("inpaint", True): "ZImageControlNetInpaintPipeline",  # Union 2.x ControlNets; none for img2img
    },
    controlnet_class="ZImageControlNetModel",
    transformer_file=zimage_file.TRANSFORMER_FILE,
    demos=(
        DemoModel("demo-zimage", "Demo Z-Image Turbo (tiny)", "zimage", "main", zimage_demo.build_main, TURBO),
        DemoModel("demo-zimage-controlnet", "Demo Z-Image ControlNet (tiny)", "zimage-controlnet", "controlnet", zimage_demo.build_controlnet),
    ),
)
