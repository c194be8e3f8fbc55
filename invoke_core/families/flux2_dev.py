"""FLUX.2 [dev] (32B): FLUX.2's MMDiT and VAE (families/flux2.py) with a Mistral Small 3.1 text encoder (its
layers 10, 20 and 30 side by side), guidance-distilled: the guidance goes in as an embedding, there is no
negative branch.

Text to image on Flux2Pipeline, reference layers as its reference images (up to 10, on every task); image
to image, inpaint and outpaint on the generic flow-matching path over it (invoke_core/flow_tasks.py:
diffusers has no FLUX.2 [dev] image-to-image or inpaint pipeline), its latents patchified 2x2 and
normalised by the VAE's batch-norm statistics as its pipeline does; regional prompts as Klein's (an
attention mask over [text, image, references] in every block); LoRA stacks, told from Klein's by their
width (6144) or their header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import flux2_demo, flux2_file
from .base import Defaults, DemoModel, Family
from .flux2 import _LORA_MARKERS, Flux2Family

_WIDTH = 6144  # its blocks' (Klein's are 3072 and 4096)


@dataclass(frozen=True)
class Flux2DevFamily(Flux2Family):
    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        if index.get("_class_name") != "Flux2Pipeline":
            return None
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "Flux2Transformer2DModel":
            from ..errors import ModelInstallError

            raise ModelInstallError("a FLUX.2 pipeline folder without transformer/config.json: the folder is incomplete")
        return "main"

    def model_defaults(self, record: Any) -> Defaults | None:
        return Family.model_defaults(self, record)  # one kind of model: no distilled/base split

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        from . import transformer_lora as tl

        said = tl.declared(metadata)
        if not tl.is_lora(shapes):
            return False
        return ("dev" in said and any(f in said for f in ("flux.2", "flux-2", "flux2"))) or (
            any(m in k for k in shapes for m in _LORA_MARKERS) and tl.transformer_width(shapes) == _WIDTH
        )

    def task_for(self, task: str) -> str:
        return task

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        return False  # guidance-distilled

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        return {"prompt": prompt, "max_sequence_length": self._max_tokens(pipe)}

    def guidance_args(self, pipe: Any, params: Any) -> dict[str, Any]:
        return {"guidance_scale": params.cfg_scale}

    def pack_latents(self, pipe: Any, latents: Any) -> Any:
        return pipe._pack_latents(pipe._patchify_latents(latents))  # (B, tokens, 128)

    def start_latents(self, pipe: Any, latents: Any) -> Any:
        return pipe._patchify_latents(latents)  # its pipeline packs them itself

    def normalise_latents(self, pipe: Any, latents: Any) -> Any:
        """Its pipelines' normalisation: per patchified channel, by the VAE's batch-norm statistics."""
        import torch

        patches = pipe._patchify_latents(latents)
        bn = pipe.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(patches.device, patches.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps).to(patches.device, patches.dtype)
        return pipe._unpatchify_latents((patches - mean) / std)

    def flow_mu(self, pipe: Any, size: tuple[int, int], steps: int) -> float | None:
        from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

        width, height = size
        return compute_empirical_mu(image_seq_len=(height // 16) * (width // 16), num_steps=steps)


FAMILY = Flux2DevFamily(
    name="flux2-dev",
    label="FLUX.2 [dev]",
    # its model card: 50 steps, guidance 4
    defaults=Defaults(steps=50, cfg_scale=4.0, scheduler="euler", width=1024, height=1024),
    size_multiple=16,  # 8x VAE and 2x2 patches
    sampling="flow-sigmas",  # its pipeline passes its own sigmas and shift
    features=frozenset({"regions", "lora", "reference"}),
    pipelines={("txt2img", False): "Flux2Pipeline"},
    flow_tasks=frozenset({"img2img", "inpaint"}),
    transformer_file=flux2_file.DEV,
    guidance_label="Guidance",  # distilled: an input of the model, not CFG's two branches
    demos=(DemoModel("demo-flux2-dev", "Demo FLUX.2 [dev] (tiny)", "flux2-dev", "main", flux2_demo.build_dev),),
)
