"""Qwen-Image (Alibaba Qwen): an MMDiT of dual-stream blocks over [text, image] tokens, Qwen2.5-VL as the
text encoder (its last layer's states of the templated prompt, the template's system prefix dropped),
its own causal 3D VAE with per-channel latent statistics, packed 2x2 latents, flow matching with an
exponential resolution shift.

Text to image, image to image, inpaint and outpaint on diffusers' Qwen-Image pipelines; the CFG scale is
the pipeline's `true_cfg_scale` (a negative branch, " " when the negative prompt is empty, as Qwen's
examples); Qwen-Image ControlNets (QwenImageControlNetModel, one at a time) on text to image;
inpainting ControlNets (InstantX Qwen-Image-ControlNet-Inpainting: `extra_condition_channels` in the
config) on inpaint and outpaint, conditioned on the canvas under the box and the mask, alone and from
noise (strength 1); LoRA stacks in diffusers' layout. Qwen-Image-Edit models (kind edit: Edit, and Edit
Plus 2509/2511 through their own pipeline) run edit jobs as FLUX.1 Kontext does: the pixels under the box
are the picture to edit (Qwen2.5-VL sees it, its VAE latents join the image tokens at a megapixel, as the
model was trained), the prompt an instruction, a mask keeps the edit inside it; an empty box is refused.
Reference layers on edit models: more pictures to edit from, after the one under the box (Edit Plus reads
them as its picture list, Edit side by side in one: families/edit_references.py); Qwen-Image takes none.
Not yet: regional prompts (its attention processor takes only the text padding mask).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from . import inpainting_controlnet, qwenimage_demo, qwenimage_file
from .base import Defaults, DemoModel, Family, controlnet_config

_MAX_TOKENS = 512
# Qwen-Image-Edit folders: each runs every task through its own pipeline (Edit Plus takes several pictures)
_EDIT_PIPELINES = ("QwenImageEditPipeline", "QwenImageEditPlusPipeline")


def is_inpainting_controlnet(record: Any) -> bool:
    extra = controlnet_config(record).get("extra_condition_channels")
    return isinstance(extra, int) and extra > 0


@dataclass(frozen=True)
class QwenImageFamily(Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("QwenImage"):
            return None
        from ..errors import ModelInstallError

        if cls not in ("QwenImagePipeline", *_EDIT_PIPELINES):
            raise ModelInstallError(f"{cls} models (Qwen-Image-Layered) are not supported yet: install Qwen-Image or Qwen-Image-Edit")
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "QwenImageTransformer2DModel":
            raise ModelInstallError("a Qwen-Image pipeline folder without transformer/config.json: the folder is incomplete")
        if cls in _EDIT_PIPELINES:
            if not read_config("processor/preprocessor_config.json"):
                raise ModelInstallError(f"a {cls} folder without processor/preprocessor_config.json: the folder is incomplete")
            return "edit"
        return "main"

    def load_extras(self, kind: str, path: str | Path | None = None) -> dict[str, Any]:
        """An edit model's processor, built from its parts (families/qwen_processor.py)."""
        if kind != "edit" or path is None:
            return {}
        from .qwen_processor import load_processor

        return {"processor": load_processor(Path(path))}

    def loaded_pipeline_class(self, loaded: str, kind: str) -> str | None:
        return loaded if kind == "edit" and loaded in _EDIT_PIPELINES else None

    def claims_controlnet(self, config: dict[str, Any]) -> bool:
        return config.get("_class_name") == "QwenImageControlNetModel"

    def reference_kinds(self, record: Any) -> tuple[str, ...] | None:
        """Edit models take reference layers as pictures to edit from; Qwen-Image itself takes none."""
        return () if record.kind == "edit" else None

    def reference_inputs(self, pipe: Any, request: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """The picture under the box and the reference layers' (families/edit_references.py): Edit Plus reads
        them as its list of pictures, Edit side by side in one."""
        from .edit_references import pictures, side_by_side

        images = pictures(inputs.get("image"), request.references, request.size, self.size_multiple)
        plus = type(pipe).__name__ == "QwenImageEditPlusPipeline"
        return inputs | {"image": images if plus else side_by_side(images, self.size_multiple)}

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """Its blocks' keys (`transformer_blocks.N.img_mlp`, `txt_mlp`, `img_mod`) or its header."""
        from . import transformer_lora as tl

        return tl.is_lora(shapes) and (
            any(part in k for k in shapes for part in (".img_mlp.", ".txt_mlp.", ".img_mod.", ".txt_mod."))
            or "qwen-image" in tl.declared(metadata)
        )

    def check_controls(self, settings: list[Any], records: list[Any], strength: float) -> None:
        """One ControlNet at a time (diffusers' QwenImageMultiControlNetModel takes one)."""
        from ..errors import UnsupportedError

        super().check_controls(settings, records, strength)
        if len(records) > 1 and not any(is_inpainting_controlnet(r) for r in records):
            raise UnsupportedError(f"{self.label} ControlNets run one at a time: hide the other control layers")
        inpainting_controlnet.check(settings, records, strength, is_inpainting_controlnet)

    def control_pipeline_class(self, task: str, controlnets: list[Any], kind: str = "main") -> str:
        inpainting = any(getattr(c.config, "extra_condition_channels", 0) for c in controlnets)
        inpainting_controlnet.check_task(self.label, task, controlnets, inpainting, "InstantX Qwen-Image-ControlNet-Inpainting")
        return super().control_pipeline_class(task, controlnets, kind)

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 1

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline runs its negative branch only when it has a negative prompt: " " for none
        return {"prompt": prompt, "negative_prompt": (negative_prompt or " ") if do_cfg else None, "max_sequence_length": _MAX_TOKENS}

    def guidance_args(self, pipe: Any, params: Any) -> dict[str, Any]:
        return {"true_cfg_scale": params.cfg_scale}  # its `guidance_scale` is for guidance-distilled models

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return contextlib.nullcontext()

    def control_inputs(self, request: Any, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        from .sd3 import transformer_control_inputs

        if task != "inpaint":
            return inputs | transformer_control_inputs(self.label, request)
        return inpainting_controlnet.call_inputs(self.label, request, inputs)

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def pack_latents(self, pipe: Any, latents: Any) -> Any:
        b, c, h, w = latents.shape
        return pipe._pack_latents(latents, b, c, h, w)

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        from .flux import FAMILY as FLUX

        return FLUX.preview(latents, size)  # the same 2x2 packing of 16 channels


FAMILY = QwenImageFamily(
    name="qwen-image",
    label="Qwen-Image",
    # Qwen-Image's model card: 50 steps, true CFG 4
    defaults=Defaults(steps=50, cfg_scale=4.0, scheduler="euler", width=1024, height=1024),
    size_multiple=16,  # 8x VAE and 2x2 packed patches
    sampling="flow-sigmas",  # its pipelines pass their own sigmas and resolution shift
    # references: its edit models only (`reference_kinds`)
    features=frozenset({"negative_prompt", "controlnet", "lora", "reference"}),
    no_reference_hint="choose a Qwen-Image-Edit model, or hide the reference layers",
    pipelines={
        ("txt2img", False): "QwenImagePipeline",
        ("img2img", False): "QwenImageImg2ImgPipeline",
        ("inpaint", False): "QwenImageInpaintPipeline",
        ("txt2img", True): "QwenImageControlNetPipeline",
        ("inpaint", True): "QwenImageControlNetInpaintPipeline",  # an inpainting ControlNet; none for img2img
    },
    kind_pipelines={("edit", False): "QwenImageEditPipeline"},
    edit_from_empty_box=False,  # its pipelines need a picture to edit
    controlnet_class="QwenImageControlNetModel",
    transformer_file=qwenimage_file.TRANSFORMER_FILE,
    demos=(
        DemoModel("demo-qwen", "Demo Qwen-Image (tiny)", "qwen", "main", qwenimage_demo.build_main),
        DemoModel("demo-qwen-controlnet", "Demo Qwen-Image ControlNet (tiny)", "qwen-controlnet", "controlnet", qwenimage_demo.build_controlnet),
        DemoModel("demo-qwen-edit", "Demo Qwen-Image-Edit (tiny)", "qwen-edit", "edit", qwenimage_demo.build_edit),
    ),
)
