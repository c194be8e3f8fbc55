"""Stable Diffusion 3.x (3.5 Large, Large Turbo, Medium; SD3 Medium): an MMDiT with joint attention over
[image, text] tokens, two CLIP text encoders and an optional T5, a 16-channel VAE, flow matching.

Text to image, image to image, inpaint and outpaint on diffusers' StableDiffusion3 pipelines, prompts as
the pipeline encodes them (a model installed without its T5 runs with `text_encoder_3=None`), regional
prompts through a bias on the joint attention (families/joint_attention.py), SD3 ControlNets on text to
image and SD3 inpainting ControlNets on inpaint and outpaint; LoRA stacks (diffusers/peft files,
families/transformer_lora.py).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import inpainting_controlnet, sd3_demo, sd3_file
from .base import Defaults, DemoModel, Family, controlnet_config

_OPTIONAL_T5 = ("text_encoder_3", "tokenizer_3")
_INPAINTING_EXAMPLE = "alimama-creative SD3-Controlnet-Inpainting"


def is_inpainting_controlnet(record: Any) -> bool:
    """An SD 3 inpainting ControlNet conditions on the masked image's latents plus the mask: one channel
    more than the latents (`extra_conditioning_channels`)."""
    extra = controlnet_config(record).get("extra_conditioning_channels")
    return isinstance(extra, int) and extra > 0


def transformer_control_inputs(label: str, request: Any, images_only: bool = False) -> Any:
    """Control maps at the generation size, as the SD 3 and Flux ControlNet pipelines take them (the maps
    alone, a list, with `images_only`)."""
    from .. import masks
    from ..errors import UnsupportedError
    from ..preprocess import preprocess
    from ..types import ControlMode

    settings = [c.settings for c in request.controls]
    if any(s.mode is not ControlMode.BALANCED for s in settings):
        raise UnsupportedError(f"{label} ControlNets have no control modes: use balanced")
    images = [
        Image.fromarray(preprocess(masks.resize_image(np.asarray(c.image), request.size), c.settings.preprocessor))
        for c in request.controls
    ]
    if images_only:
        return images

    def one_or_list(values: list) -> Any:
        return values[0] if len(values) == 1 else values

    return {
        "control_image": one_or_list(images),
        "controlnet_conditioning_scale": one_or_list([float(s.weight) for s in settings]),
        "control_guidance_start": one_or_list([float(s.begin) for s in settings]),
        "control_guidance_end": one_or_list([float(s.end) for s in settings]),
    }


def rough_rgb(latents: np.ndarray) -> Image.Image:
    """A rough preview of 16-channel latents (C, h, w): three fixed mixes (channel means by thirds), no VAE."""
    groups = np.array_split(latents[:16], 3)
    rgb = np.stack([g.mean(axis=0) for g in groups], axis=-1)
    return Image.fromarray(np.clip((rgb * 0.8 + 1.0) * 127.5, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class SD3Family(Family):
    def load_extras(self, kind: str, path: str | Path | None = None) -> dict[str, Any]:
        """A folder without its T5 (model_index.json names none) loads with `text_encoder_3=None`."""
        if path is None:
            return {}
        try:
            index = json.loads((Path(path) / "model_index.json").read_text())
        except (OSError, ValueError):
            return {}
        missing = {name: None for name in _OPTIONAL_T5 if not (isinstance(index.get(name), list) and index[name][0])}
        return missing

    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        if not str(index.get("_class_name", "")).startswith("StableDiffusion3"):
            return None
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "SD3Transformer2DModel":
            from ..errors import ModelInstallError

            raise ModelInstallError("an SD 3 pipeline folder without transformer/config.json: the folder is incomplete")
        return "main"  # SD 3.x inpaints with its text-to-image transformer

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 1

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding: CLIP (77 tokens) and, when installed, T5 for what is longer.
        return {"prompt": prompt, "negative_prompt": negative_prompt if do_cfg else None}

    def regional(self, pipe: Any, request: Any, plan: Any) -> tuple[dict[str, Any], Any]:
        """The text of [main | region 1 | ...] side by side along the tokens (each slot as the pipeline
        encodes a prompt: CLIP, then T5 or its zeros), pooled embeddings from the main prompt; a region's
        negative slot holds its own negative prompt, or the main one."""
        import torch

        from .. import masks
        from .joint_attention import JointRegionalAttnProcessor

        do_cfg = self.uses_cfg(pipe, request.params)
        main_negative = plan.negative_prompt or ""
        slots = [(plan.prompt, main_negative)] + [(r.prompt, r.negative_prompt or main_negative) for r in plan.regions]
        positive, negative = [], []
        pooled = negative_pooled = None
        with torch.inference_mode():
            for index, (text, avoid) in enumerate(slots):
                embeds, neg_embeds, pool, neg_pool = pipe.encode_prompt(
                    prompt=text, prompt_2=None, prompt_3=None, negative_prompt=avoid, do_classifier_free_guidance=do_cfg
                )
                positive.append(embeds)
                negative.append(neg_embeds)
                if index == 0:
                    pooled, negative_pooled = pool, neg_pool
        args: dict[str, Any] = {"prompt_embeds": torch.cat(positive, dim=1), "pooled_prompt_embeds": pooled}
        if do_cfg:
            args.update(negative_prompt_embeds=torch.cat(negative, dim=1), negative_pooled_prompt_embeds=negative_pooled)
        width, height = request.size
        region_masks = np.stack([masks.resize_mask(np.asarray(r.mask), (width, height)) for r in plan.regions])
        patch = pipe.vae_scale_factor * pipe.transformer.config.patch_size
        processor = JointRegionalAttnProcessor(
            region_masks, [e.shape[1] for e in positive], (height // patch, width // patch), [r.strength for r in plan.regions]
        )
        return args, processor

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        from .joint_attention import joint_regional_attention

        return joint_regional_attention(pipe.transformer, processor)

    def claims_controlnet(self, config: dict[str, Any]) -> bool:
        return config.get("_class_name") == "SD3ControlNetModel"

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """The diffusers/peft layout (`transformer.transformer_blocks.N...`), told from a Flux LoRA by its
        width (1536 Medium, 2432 Large) or its header."""
        from . import transformer_lora as tl

        if not tl.is_lora(shapes) or tl.flux_markers(shapes):
            return False
        if not any(k.startswith("transformer.transformer_blocks.") for k in shapes):
            return False
        said = tl.declared(metadata)
        return tl.transformer_width(shapes) in tl.SD3_WIDTHS or any(s in said for s in ("stable-diffusion-v3", "stable-diffusion-3", "sd3"))

    def check_controls(self, settings: list[Any], records: list[Any], strength: float) -> None:
        super().check_controls(settings, records, strength)
        inpainting_controlnet.check(settings, records, strength, is_inpainting_controlnet)

    def control_pipeline_class(self, task: str, controlnets: list[Any], kind: str = "main") -> str:
        inpainting = any(getattr(c.config, "extra_conditioning_channels", 0) for c in controlnets)
        inpainting_controlnet.check_task(self.label, task, controlnets, inpainting, _INPAINTING_EXAMPLE)
        return super().control_pipeline_class(task, controlnets, kind)

    def control_inputs(self, request: Any, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        if task != "inpaint":
            return inputs | transformer_control_inputs(self.label, request)
        return inpainting_controlnet.call_inputs(self.label, request, inputs)

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        return rough_rgb(latents[0].detach().float().cpu().numpy())

FAMILY = SD3Family(
    name="sd-3",
    label="Stable Diffusion 3.5",
    defaults=Defaults(steps=28, cfg_scale=4.5, scheduler="euler", width=1024, height=1024),
    size_multiple=16,  # 8x VAE and 2x2 patches
    sampling="flow",
    features=frozenset({"negative_prompt", "regions", "controlnet", "lora"}),
    pipelines={
        ("txt2img", False): "StableDiffusion3Pipeline",
        ("img2img", False): "StableDiffusion3Img2ImgPipeline",
        ("inpaint", False): "StableDiffusion3InpaintPipeline",
        ("txt2img", True): "StableDiffusion3ControlNetPipeline",
        # an inpainting ControlNet (control_pipeline_class); diffusers has no SD 3 ControlNet img2img
        ("inpaint", True): "StableDiffusion3ControlNetInpaintingPipeline",
    },
    controlnet_class="SD3ControlNetModel",
    transformer_file=sd3_file.TRANSFORMER_FILE,
    demos=(
        DemoModel("demo-sd3", "Demo SD 3.5 (tiny)", "sd3", "main", sd3_demo.build_main),
        DemoModel("demo-sd3-controlnet", "Demo SD 3.5 ControlNet (tiny)", "sd3-controlnet", "controlnet", sd3_demo.build_controlnet),
        DemoModel(
            "demo-sd3-inpaint-controlnet",
            "Demo SD 3.5 inpainting ControlNet (tiny)",
            "sd3-inpaint-controlnet",
            "controlnet",
            sd3_demo.build_inpaint_controlnet,
        ),
    ),
)
