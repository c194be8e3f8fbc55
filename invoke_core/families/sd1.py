"""Stable Diffusion 1.x (and 2.x-shaped checkpoints the probe accepts as sd-1)."""

from __future__ import annotations

from .base import Defaults
from .unet import UNetFamily

FAMILY = UNetFamily(
    name="sd-1",
    label="Stable Diffusion 1.x",
    defaults=Defaults(steps=30, cfg_scale=7.5, scheduler="euler", width=512, height=512),
    size_multiple=8,
    features=frozenset({"negative_prompt", "weighted_prompts", "regions", "controlnet", "lora", "inpaint_model", "reference"}),
    reference_model_kind="ip_adapter",
    pipelines={
        ("txt2img", False): "StableDiffusionPipeline",
        ("img2img", False): "StableDiffusionImg2ImgPipeline",
        ("inpaint", False): "StableDiffusionInpaintPipeline",
        # one or more ControlNets (the 4-channel ControlNet also drives a 9-channel inpaint UNet)
        ("txt2img", True): "StableDiffusionControlNetPipeline",
        ("img2img", True): "StableDiffusionControlNetImg2ImgPipeline",
        ("inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    },
    single_file_pipelines={"main": "StableDiffusionPipeline", "inpaint": "StableDiffusionInpaintPipeline"},
    extras={"safety_checker": None, "requires_safety_checker": False},
    # least-squares fits of latent channels to RGB, as several SD front ends use: enough to show composition
    preview_weights=((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
    preview_bias=(0.0, 0.0, 0.0),
)
