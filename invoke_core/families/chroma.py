"""Chroma (Chroma1-HD, Base, Flash; lodestones' FLUX.1-schnell derivative): FLUX.1's double and single
blocks with joint attention over [text, image] tokens, one T5 text encoder (no CLIP), every block's
modulation from a small approximator, FLUX.1's 16-channel VAE with packed 2x2 latents, flow matching with
the resolution shift, real classifier-free guidance with a negative prompt.

Text to image and image to image on diffusers' Chroma pipelines; inpaint and outpaint on the generic
flow-matching path over the text-to-image one (invoke_core/flow_tasks.py: ChromaInpaintPipeline of
diffusers 0.42 reads a `guidance_embeds` Chroma's config does not have). Regional prompts as a bias on
the joint attention added to the text padding mask the pipeline passes every block (families/
joint_attention.py `region_bias`, token order [text, image]); LoRA stacks in diffusers' layout.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from . import chroma_demo, chroma_file
from .base import Defaults, DemoModel, Family

_T5_MAX = 512  # Chroma's prompt length, in T5 tokens


class ChromaRegionalProcessor:
    """Flux's attention processor with the region bias added to the padding mask the Chroma blocks pass
    (the outer product of the [text, image] keep mask: padding past the first pad token is masked)."""

    def __init__(self, bias: Any):
        from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

        self._bias = bias  # (S, S), S = all text slots + image tokens
        self._base = FluxAttnProcessor()
        self._cache: dict[tuple, Any] = {}

    def bias(self, dtype: Any, device: Any) -> Any:
        key = (dtype, str(device))
        if key not in self._cache:
            self._cache[key] = self._bias.to(device=device, dtype=dtype)[None, None]
        return self._cache[key]

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None, image_rotary_emb: Any = None):
        bias = self.bias(hidden_states.dtype, hidden_states.device)
        if attention_mask is not None:
            bias = bias.masked_fill(~attention_mask.bool(), float("-inf"))
        return self._base(attn, hidden_states, encoder_hidden_states, attention_mask=bias, image_rotary_emb=image_rotary_emb)


@contextlib.contextmanager
def _regional_processors(transformer: Any, processor: ChromaRegionalProcessor | None):
    if processor is None:
        yield
        return
    before = dict(transformer.attn_processors)
    transformer.set_attn_processor(processor)
    try:
        yield
    finally:
        transformer.set_attn_processor(before)


@dataclass(frozen=True)
class ChromaFamily(Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        if not str(index.get("_class_name", "")).startswith("Chroma"):
            return None
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "ChromaTransformer2DModel":
            from ..errors import ModelInstallError

            raise ModelInstallError("a Chroma pipeline folder without transformer/config.json: the folder is incomplete")
        return "main"

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """Its keys are FLUX.1's: a Chroma LoRA is told by its approximator's keys or its header (others go
        to FLUX.1)."""
        from . import transformer_lora as tl

        return tl.is_lora(shapes) and (
            any("distilled_guidance_layer" in k for k in shapes) or "chroma" in tl.declared(metadata)
        )

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return params.cfg_scale > 1

    def _max_tokens(self, pipe: Any) -> int:
        return min(_T5_MAX, int(getattr(pipe.tokenizer, "model_max_length", _T5_MAX)))

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding: T5 with its padding mask, the negative prompt ("" when none) with CFG
        return {"prompt": prompt, "negative_prompt": (negative_prompt or "") if do_cfg else None, "max_sequence_length": self._max_tokens(pipe)}

    def regional(self, pipe: Any, request: Any, plan: Any) -> tuple[dict[str, Any], Any]:
        """The T5 tokens of [main | region 1 | ...] side by side, each slot with its padding mask; the
        negative branch the same slots (a region's holds its own negative prompt, or the main one)."""
        import torch

        from .. import masks
        from .joint_attention import region_bias

        do_cfg = self.uses_cfg(pipe, request.params)
        main_negative = plan.negative_prompt or ""
        slots = [(plan.prompt, main_negative)] + [(r.prompt, r.negative_prompt or main_negative) for r in plan.regions]
        embeds, keep, neg_embeds, neg_keep = [], [], [], []
        with torch.inference_mode():
            for text, avoid in slots:
                e, _ids, m, ne, _nids, nm = pipe.encode_prompt(
                    prompt=text, negative_prompt=avoid, do_classifier_free_guidance=do_cfg, max_sequence_length=self._max_tokens(pipe)
                )
                embeds.append(e)
                keep.append(m)
                neg_embeds.append(ne)
                neg_keep.append(nm)
        width, height = request.size
        region_masks = np.stack([masks.resize_mask(np.asarray(r.mask), (width, height)) for r in plan.regions])
        patch = pipe.vae_scale_factor * 2  # 8x VAE, 2x2 packing
        bias = region_bias(
            region_masks, [e.shape[1] for e in embeds], (height // patch, width // patch),
            [r.strength for r in plan.regions], text_first=True,
        )
        args = {"prompt_embeds": torch.cat(embeds, dim=1), "prompt_attention_mask": torch.cat(keep, dim=1)}
        if do_cfg:
            args |= {"negative_prompt_embeds": torch.cat(neg_embeds, dim=1), "negative_prompt_attention_mask": torch.cat(neg_keep, dim=1)}
        return args, ChromaRegionalProcessor(bias)

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return _regional_processors(pipe.transformer, processor)

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def pack_latents(self, pipe: Any, latents: Any) -> Any:
        from .flux import FAMILY as FLUX

        return FLUX.pack_latents(pipe, latents)  # FLUX.1's 2x2 packing

    def flow_mu(self, pipe: Any, size: tuple[int, int], steps: int) -> float | None:
        from .flux import FAMILY as FLUX

        return FLUX.flow_mu(pipe, size, steps)  # FLUX.1's resolution shift, as its pipelines compute it

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        from .flux import FAMILY as FLUX

        return FLUX.preview(latents, size)


FAMILY = ChromaFamily(
    name="chroma",
    label="Chroma",
    # Chroma1-HD's model card: 40 steps, CFG 3
    defaults=Defaults(steps=40, cfg_scale=3.0, scheduler="euler", width=1024, height=1024),
    size_multiple=16,  # 8x VAE and 2x2 packed patches
    sampling="flow-sigmas",  # its pipelines pass their own sigmas and resolution shift
    features=frozenset({"negative_prompt", "regions", "lora"}),
    pipelines={("txt2img", False): "ChromaPipeline", ("img2img", False): "ChromaImg2ImgPipeline"},
    flow_tasks=frozenset({"inpaint"}),
    transformer_file=chroma_file.TRANSFORMER_FILE,
    demos=(DemoModel("demo-chroma", "Demo Chroma (tiny)", "chroma", "main", chroma_demo.build_main),),
)
