"""The Stable Diffusion families (SD 1.x, SDXL): a UNet with cross-attention to CLIP text embeddings.

Prompts through compel (invoke_core/prompts.py), regions through the UNet's cross-attention processors
(invoke_core/attention.py), ControlNet residuals into the UNet, reference layers through IP-Adapters
(invoke_core/ip_adapter.py, ip_adapter_run.py), previews from the 4 latent channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .. import masks
from ..types import ControlInput, ControlMode, GenerationParams, GenerationRequest
from .base import Family


@dataclass(frozen=True)
class UNetFamily(Family):
    # least-squares fit of the 4 latent channels to RGB: (4, 3) weights and (3,) bias
    preview_weights: tuple[tuple[float, float, float], ...] = ()
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # single-file checkpoints: kind ("main" | "inpaint") -> diffusers pipeline class name
    single_file_pipelines: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # from_pretrained keyword arguments

    def load_extras(self, kind: str, path: Any = None) -> dict[str, Any]:
        return dict(self.extras) if kind != "controlnet" else {}

    def uses_cfg(self, pipe: Any, params: GenerationParams) -> bool:
        # an LCM-style UNet (guidance embedded in the timestep) has no negative branch
        return params.cfg_scale > 1 and pipe.unet.config.time_cond_proj_dim is None

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        from ..prompts import encode_prompts

        return encode_prompts(pipe, self.name, prompt, negative_prompt, do_cfg)

    def regional(self, pipe: Any, request: GenerationRequest, plan: Any) -> tuple[dict[str, Any], Any]:
        import torch

        from ..attention import RegionalAttnProcessor
        from ..prompts import encode_regional_prompts

        do_cfg = self.uses_cfg(pipe, request.params)
        with torch.inference_mode():
            prompt_args, tokens = encode_regional_prompts(
                pipe,
                self.name,
                plan.prompt,
                plan.negative_prompt,
                [(r.prompt, r.negative_prompt) for r in plan.regions],
                do_cfg,
            )
        width, height = request.size
        region_masks = np.stack([masks.resize_mask(np.asarray(r.mask), (width, height)) for r in plan.regions])
        scale = pipe.vae_scale_factor
        strengths = [r.strength for r in plan.regions]
        return prompt_args, RegionalAttnProcessor(region_masks, tokens, (height // scale, width // scale), strengths)

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        from ..attention import regional_attention

        return regional_attention([pipe.unet, *controlnets], processor)

    def reference_models(
        self, settings: list[Any], registry: Any, main: Any, build: bool = True, names: list[str] | None = None,
        regions: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Each reference layer's IP-Adapter and the image encoder it reads (invoke_core/ip_adapter.py)."""
        from ..ip_adapter import resolve_adapters

        return resolve_adapters(registry, settings, main, self.label, build, names) if settings else []

    def references(self, pipe: Any, request: GenerationRequest, models: list[tuple[Any, ...]], do_cfg: bool):
        """The reference layers' IP-Adapters on the UNet for the job (invoke_core/ip_adapter_run.py)."""
        if not request.references:
            return super().references(pipe, request, models, do_cfg)
        from ..ip_adapter_run import ip_adapter_references

        adapters = [(adapter, weights, encoder) for ((adapter, weights), (_record, encoder)) in models]
        return ip_adapter_references(pipe, request, adapters, do_cfg)

    def control_inputs(self, request: GenerationRequest, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Control maps at the generation size and how to apply them, as the ControlNet pipelines take them."""
        from ..preprocess import preprocess

        size = request.size
        images = [
            Image.fromarray(preprocess(masks.resize_image(np.asarray(c.image), size), c.settings.preprocessor))
            for c in request.controls
        ]
        settings = [c.settings for c in request.controls]

        def one_or_list(values: list) -> Any:
            return values[0] if len(values) == 1 else values

        return inputs | {
            "image" if task == "txt2img" else "control_image": one_or_list(images),
            "controlnet_conditioning_scale": one_or_list([float(s.weight) for s in settings]),
            "control_guidance_start": one_or_list([float(s.begin) for s in settings]),
            "control_guidance_end": one_or_list([float(s.end) for s in settings]),
            # the engine allows "control" on every control or on none
            "guess_mode": settings[0].mode is ControlMode.CONTROL,
        }

    def control_modes(self, controlnets: list[Any], controls: tuple[ControlInput, ...]):
        return _PromptModeFade(controlnets, controls)

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        """A small preview (latent resolution: 1/8 of the generation size) from a torch latent batch,
        mixed on the latents' device: only the small RGB bytes cross to the host."""
        import torch

        first = latents[0, :4].detach().float()
        weights = torch.tensor(self.preview_weights, dtype=torch.float32, device=first.device)
        bias = torch.tensor(self.preview_bias, dtype=torch.float32, device=first.device)
        rgb = torch.einsum("chw,cr->hwr", first, weights) + bias
        return Image.fromarray(((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy())

    def latents_to_rgb(self, latents: np.ndarray) -> np.ndarray:
        """(4, h, w) float latents -> (h, w, 3) uint8."""
        weights = np.asarray(self.preview_weights, dtype=np.float32)
        bias = np.asarray(self.preview_bias, dtype=np.float32)
        rgb = np.einsum("chw,cr->hwr", latents[:4].astype(np.float32), weights) + bias
        return np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)


class _PromptModeFade:
    """While a job runs, ControlNets of controls in "prompt" mode fade their residuals from 0.1x at the
    shallowest block to 1x at the middle block (the scales of diffusers' guess_mode, on both CFG branches)."""

    def __init__(self, controlnets: list[Any], controls: tuple[ControlInput, ...]):
        self.modules = {id(m): m for m, c in zip(controlnets, controls) if c.settings.mode is ControlMode.PROMPT}
        self.handles: list[Any] = []

    @staticmethod
    def _fade(module, args, output):
        down, mid = output[0], output[1]
        n = len(down) + 1
        faded = [sample * 10 ** (-1 + i / (n - 1)) for i, sample in enumerate(down)]
        if isinstance(output, tuple):
            return faded, mid
        return type(output)(down_block_res_samples=faded, mid_block_res_sample=mid)

    def __enter__(self):
        self.handles = [m.register_forward_hook(self._fade) for m in self.modules.values()]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False
