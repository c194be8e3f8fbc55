"""Stable Diffusion XL base (two CLIP text encoders, pooled embeddings, size conditioning)."""

from __future__ import annotations

from .base import Defaults
from .unet import UNetFamily

FAMILY = UNetFamily(
    name="sdxl",
    label="Stable Diffusion XL",
    defaults=Defaults(steps=30, cfg_scale=7.5, scheduler="euler", width=1024, height=1024),
    size_multiple=8,
    features=frozenset({"negative_prompt", "weighted_prompts", "regions", "controlnet", "lora", "inpaint_model", "reference"}),
    reference_model_kind="ip_adapter",
    pipelines={
        ("txt2img", False): "StableDiffusionXLPipeline",
        ("img2img", False): "StableDiffusionXLImg2ImgPipeline",
        ("inpaint", False): "StableDiffusionXLInpaintPipeline",
        ("txt2img", True): "StableDiffusionXLControlNetPipeline",
        ("img2img", True): "StableDiffusionXLControlNetImg2ImgPipeline",
        ("inpaint", True): "StableDiffusionXLControlNetInpaintPipeline",
    },
    single_file_pipelines={"main": "StableDiffusionXLPipeline", "inpaint": "StableDiffusionXLInpaintPipeline"},
    preview_weights=((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    preview_bias=(0.1084, -0.0175, -0.0011),
)
