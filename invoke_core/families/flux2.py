"""FLUX.2 [klein] (4B and 9B, distilled and base): an MMDiT of double and single blocks with joint attention
over [text, image] tokens, a Qwen3 text encoder (three of its layers side by side), FLUX.2's 32-channel VAE
patchified 2x2 to 128 channels and normalised by its batch norm's statistics, flow matching with FLUX.2's
empirical shift.

Text to image on Flux2KleinPipeline; inpaint and outpaint on Flux2KleinInpaintPipeline; image to image on
the inpaint pipeline with the whole box masked (diffusers has no Klein image-to-image pipeline, and a full
mask is image to image). The distilled models run one branch (CFG 1, 4 steps); the base models CFG with a
negative prompt (its embeddings: the pipelines take no negative text). Regional prompts as an attention
mask in every double and single block (token order [text, image]; families/joint_attention.py), as
FLUX.1's; LoRA stacks in diffusers' layout. Reference layers go in as its reference images (their tokens
join the sequence after the image's): several on text to image, one on the inpaint pipeline (which takes
one besides the image under the box). FLUX.2 [dev] is its own family (families/flux2_dev.py), on these
helpers.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import flux2_demo, flux2_file
from .base import Defaults, DemoModel, Family
from .sd3 import rough_rgb

_MAX_TOKENS = 512
# the pipelines' rules for a reference image: they shrink a larger one to this area, refuse a smaller side
# or a narrower picture
_REFERENCE_AREA, _REFERENCE_SIDE, _REFERENCE_RATIO = 1024 * 1024, 64, 8
_PATCH = 16  # pixels per token: 8x VAE, 2x2 patches
_LORA_MARKERS = ("to_qkv_mlp_proj", ".ff.linear_in", ".ff_context.linear_in", "stream_modulation")

# Klein distilled (its model card): 4 steps, no CFG; base: 50 steps, CFG 4
DISTILLED = Defaults(steps=4, cfg_scale=1.0, scheduler="euler", width=1024, height=1024)
BASE = Defaults(steps=50, cfg_scale=4.0, scheduler="euler", width=1024, height=1024)


def _is_distilled(record: Any) -> bool | None:
    try:
        index = json.loads((Path(record.path) / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    return bool(index.get("is_distilled", False))


def reference_size(width: int, height: int) -> tuple[int, int]:
    """The size a reference image runs at, in whole tokens (so the pipelines keep it): a larger one shrunk
    to their area, a smaller one grown to their shortest side; one narrower than they take is an error."""
    if max(width, height) > _REFERENCE_RATIO * min(width, height):
        from ..errors import UnsupportedError

        raise UnsupportedError(
            f"a {width}x{height} reference picture is narrower than FLUX.2 takes (at most {_REFERENCE_RATIO}:1): crop it"
        )
    scale = min(max(1.0, _REFERENCE_SIDE / min(width, height)), (_REFERENCE_AREA / (width * height)) ** 0.5)
    return tuple(max(_REFERENCE_SIDE, int(side * scale) // _PATCH * _PATCH) for side in (width, height))


def _with_reference_tokens(bias: Any, text_tokens: int, main_tokens: int, reference_tokens: int) -> Any:
    """The bias over [text, image, references]: reference tokens follow the image's (the inpaint pipeline's
    image under the box, then the reference layers'). They attend and are attended without bias, and read
    only the main prompt's text (a region's text is for its own image tokens)."""
    import torch

    size = bias.shape[0] + reference_tokens
    full = torch.zeros(size, size, dtype=bias.dtype)
    full[: bias.shape[0], : bias.shape[0]] = bias
    full[bias.shape[0] :, main_tokens:text_tokens] = float("-inf")
    full[main_tokens:text_tokens, bias.shape[0] :] = float("-inf")  # a region's text reads its own region only
    return full


@dataclass(frozen=True)
class Flux2Family(Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("Flux2") or cls == "Flux2Pipeline":  # FLUX.2 [dev]: families/flux2_dev.py
            return None
        from ..errors import ModelInstallError

        if cls != "Flux2KleinPipeline":
            raise ModelInstallError(f"{cls} models are not supported yet: install FLUX.2 [klein] or [dev]")
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "Flux2Transformer2DModel":
            raise ModelInstallError("a FLUX.2 pipeline folder without transformer/config.json: the folder is incomplete")
        return "main"

    def model_defaults(self, record: Any) -> Defaults | None:
        """The distilled models' (4 steps, CFG 1) or the base ones' (`is_distilled` in model_index.json)."""
        declared = super().model_defaults(record)
        if declared or record.format != "diffusers":
            return declared
        distilled = _is_distilled(record)
        return None if distilled is None else DISTILLED if distilled else BASE

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """Its fused single-block projections, its feed-forward and modulation layers, or its header (its
        other keys are FLUX.1's)."""
        from . import transformer_lora as tl

        said = tl.declared(metadata)
        return tl.is_lora(shapes) and (
            any(m in k for k in shapes for m in _LORA_MARKERS) or "flux.2" in said or "flux-2" in said
        )

    def task_for(self, task: str) -> str:
        return "inpaint" if task == "img2img" else task  # a full mask: image to image

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 1 and not pipe.config.is_distilled

    def _max_tokens(self, pipe: Any) -> int:
        return min(_MAX_TOKENS, int(getattr(pipe.tokenizer, "model_max_length", _MAX_TOKENS)))

    def _embed(self, pipe: Any, text: str) -> Any:
        import torch

        with torch.inference_mode():
            return pipe.encode_prompt(prompt=text, max_sequence_length=self._max_tokens(pipe))[0]

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding; its negative branch encodes "", so a negative prompt goes in as embeddings
        args: dict[str, Any] = {"prompt": prompt, "max_sequence_length": self._max_tokens(pipe)}
        if do_cfg and negative_prompt:
            args["negative_prompt_embeds"] = self._embed(pipe, negative_prompt)
        return args

    def regional(self, pipe: Any, request: Any, plan: Any) -> tuple[dict[str, Any], Any]:
        """The Qwen3 states of [main | region 1 | ...] side by side (each padded to the same length), and
        the region bias (token order [text, image]) as the attention mask of every block, both branches."""
        import torch

        from .. import masks
        from .joint_attention import region_bias

        embeds = [self._embed(pipe, text) for text in [plan.prompt] + [r.prompt for r in plan.regions]]
        width, height = request.size
        region_masks = np.stack([masks.resize_mask(np.asarray(r.mask), (width, height)) for r in plan.regions])
        patch = pipe.vae_scale_factor * 2  # 8x VAE, 2x2 patches
        bias = region_bias(
            region_masks, [e.shape[1] for e in embeds], (height // patch, width // patch),
            [r.strength for r in plan.regions], text_first=True,
        )
        references = sum(w // _PATCH * (h // _PATCH) for w, h in (reference_size(r.image.shape[1], r.image.shape[0]) for r in request.references))
        if type(pipe).__name__ == self.pipelines.get(("inpaint", False)):
            references += (height // patch) * (width // patch)  # the image under the box
        if references:
            bias = _with_reference_tokens(bias, sum(e.shape[1] for e in embeds), embeds[0].shape[1], references)
        bias = bias.to(device=embeds[0].device, dtype=pipe.transformer.dtype)[None, None]
        args: dict[str, Any] = {"prompt_embeds": torch.cat(embeds, dim=1), "attention_kwargs": {"attention_mask": bias}}
        if self.uses_cfg(pipe, request.params):
            main = plan.negative_prompt or ""
            negatives = [self._embed(pipe, t) for t in [main] + [r.negative_prompt or main for r in plan.regions]]
            args["negative_prompt_embeds"] = torch.cat(negatives, dim=1)
        return args, bias  # the bias stands for the processor: FLUX.2's own one applies it

    def reference_inputs(self, pipe: Any, request: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        from .. import masks

        images = [
            Image.fromarray(masks.resize_image(np.asarray(r.image), reference_size(r.image.shape[1], r.image.shape[0])))
            for r in request.references
        ]
        if type(pipe).__name__ != self.pipelines.get(("inpaint", False)):
            return inputs | {"image": images}  # its text-to-image pipelines take them all
        if len(images) > 1:
            from ..errors import UnsupportedError

            raise UnsupportedError(
                f"{self.label} takes one reference layer when it repaints the canvas ({len(images)} are shown):"
                " hide the others, or generate in an empty box"
            )
        return inputs | {"image_reference": images[0]}

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return contextlib.nullcontext()  # the mask travels in the call's attention_kwargs

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        """Unpack the (B, tokens, 128) latents to the 32 VAE channels at 1/8 size, then the preview."""
        width, height = size
        h, w = height // 16, width // 16
        first = latents[0].detach().float().cpu().numpy()
        grid = first.reshape(h, w, 32, 2, 2).transpose(2, 0, 3, 1, 4).reshape(32, h * 2, w * 2)
        return rough_rgb(grid)


FAMILY = Flux2Family(
    name="flux2",
    label="FLUX.2 [klein]",
    defaults=DISTILLED,
    size_multiple=16,  # 8x VAE and 2x2 patches
    sampling="flow-sigmas",  # its pipelines pass their own sigmas and shift
    features=frozenset({"negative_prompt", "regions", "lora", "reference"}),
    pipelines={("txt2img", False): "Flux2KleinPipeline", ("inpaint", False): "Flux2KleinInpaintPipeline"},
    transformer_file=flux2_file.KLEIN,
    demos=(DemoModel("demo-flux2", "Demo FLUX.2 [klein] base (tiny)", "flux2", "main", flux2_demo.build_main, BASE),),
)
