"""LoRA files of the transformer families (SD 3.x, FLUX.1, FLUX.2, Chroma, HiDream-I1, Z-Image, Qwen-Image): telling them apart by their keys and widths,
and building small random ones for tests and benchmarks.

Loading is diffusers' (`pipe.load_lora_weights`, see invoke_core/lora.py): for Flux it takes the
diffusers/peft layout, kohya's (`lora_unet_double_blocks_...`) and XLabs' (`double_blocks.N.processor...`)
and converts them; for SD 3.x the diffusers/peft layout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

_WEIGHT = re.compile(r"(lora_A|lora_B|lora_down|lora_up|lora\d?\.(down|up)|lora_\d\.(down|up))\.weight$")
_TO_K_DOWN = re.compile(r"transformer_blocks\.\d+\.attn\.to_k\.(lora_A|lora_down|lora\.down)\.weight$")

# Real models' hidden widths, which a LoRA's down projections have as their input
FLUX_WIDTHS = frozenset({3072})
SD3_WIDTHS = frozenset({1536, 2432})  # SD 3 / 3.5 Medium, SD 3.5 Large

METADATA = {
    "flux": {"format": "pt", "modelspec.architecture": "flux-1-dev/lora"},
    "sd-3": {"format": "pt", "modelspec.architecture": "stable-diffusion-v3-medium/lora"},
    "hidream": {"format": "pt", "modelspec.architecture": "hidream-i1/lora"},
    "chroma": {"format": "pt", "modelspec.architecture": "chroma/lora"},
    "z-image": {"format": "pt", "modelspec.architecture": "z-image/lora"},
    "qwen-image": {"format": "pt", "modelspec.architecture": "qwen-image/lora"},
    "flux2": {"format": "pt", "modelspec.architecture": "flux-2-klein/lora"},
    "flux2-dev": {"format": "pt", "modelspec.architecture": "flux-2-dev/lora"},
}
# the attention projections a test LoRA adapts, per family (HiDream's output projection is one Linear)
_TARGETS = {"flux": ["to_q", "to_k", "to_v", "to_out.0"], "sd-3": ["to_q", "to_k", "to_v", "to_out.0"], "hidream": ["to_q", "to_k", "to_v", "to_out"], "chroma": ["to_q", "to_k", "to_v", "to_out.0"],
            "z-image": ["to_q", "to_k", "to_v", "to_out.0"], "qwen-image": ["to_q", "to_k", "to_v", "to_out.0", "img_mlp.net.2"],
            "flux2": ["to_q", "to_k", "to_v", "to_out.0", "to_qkv_mlp_proj"], "flux2-dev": ["to_q", "to_k", "to_v", "to_out.0", "to_qkv_mlp_proj"]}


def is_lora(shapes: Mapping[str, tuple[int, ...]]) -> bool:
    return any(_WEIGHT.search(k) for k in shapes)


def transformer_width(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The hidden width a diffusers-layout transformer LoRA was trained on (its to_k down projection's input)."""
    for key, shape in shapes.items():
        if _TO_K_DOWN.search(key) and len(shape) == 2:
            return int(shape[1])
    return None


def declared(metadata: Mapping[str, str]) -> str:
    """What the header says the LoRA is for (`modelspec.architecture`, kohya's `ss_base_model_version`)."""
    return f"{metadata.get('modelspec.architecture', '')} {metadata.get('ss_base_model_version', '')}".lower()


def flux_markers(keys) -> bool:
    """Keys only a Flux LoRA has: single blocks (diffusers, kohya, XLabs, BFL layouts) or BFL double blocks."""
    return any(
        "single_transformer_blocks" in k
        or k.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_", "double_blocks.", "single_blocks."))
        or k.startswith(("diffusion_model.double_blocks.", "diffusion_model.single_blocks."))
        for k in keys
    )


_INPUT_DOWN = re.compile(r"(^|\.)(x_embedder|img_in)\.(lora_A|lora_down)\.weight$")


def input_channels(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The input channels a LoRA's patch embedding takes, where it has one: a FLUX.1 Control LoRA (Canny,
    Depth) widens it from 64 to 128, the control image's latents beside the noise."""
    for key, shape in shapes.items():
        if _INPUT_DOWN.search(key) and len(shape) == 2:
            return int(shape[1])
    return None


def build_control_lora(model_folder: Path, dest: Path, seed: int = 0, rank: int = 4) -> Path:
    """A random FLUX.1 Control LoRA in diffusers' layout for the pipeline folder `model_folder`: a patch
    embedding that takes twice the channels (noise and control latents), and attention projections."""
    import json

    import torch
    from safetensors.torch import save_file

    config = json.loads((Path(model_folder) / "transformer" / "config.json").read_text())
    inner = config["num_attention_heads"] * config["attention_head_dim"]
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.1

    state = {
        "transformer.x_embedder.lora_A.weight": rand(rank, 2 * config["in_channels"]),
        "transformer.x_embedder.lora_B.weight": rand(inner, rank),
    }
    for block in range(config["num_layers"]):
        for proj in ("to_q", "to_k", "to_v"):
            state[f"transformer.transformer_blocks.{block}.attn.{proj}.lora_A.weight"] = rand(rank, inner)
            state[f"transformer.transformer_blocks.{block}.attn.{proj}.lora_B.weight"] = rand(inner, rank)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest), metadata={"format": "pt", "modelspec.architecture": "flux-1-dev/lora"})
    return dest


def build_transformer_lora(model_folder: Path, dest: Path, family: str, seed: int = 0, rank: int = 4) -> Path:
    """A random diffusers-layout LoRA (`transformer.<module>.lora_A/B.weight`) on the attention projections
    of the transformer of the pipeline folder `model_folder`, its header declaring `family`."""
    import torch
    from diffusers import (
        ChromaTransformer2DModel,
        Flux2Transformer2DModel,
        FluxTransformer2DModel,
        HiDreamImageTransformer2DModel,
        QwenImageTransformer2DModel,
        SD3Transformer2DModel,
        ZImageTransformer2DModel,
    )
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    cls = {"flux": FluxTransformer2DModel, "sd-3": SD3Transformer2DModel, "hidream": HiDreamImageTransformer2DModel, "chroma": ChromaTransformer2DModel,
           "z-image": ZImageTransformer2DModel, "qwen-image": QwenImageTransformer2DModel,
           "flux2": Flux2Transformer2DModel, "flux2-dev": Flux2Transformer2DModel}[family]
    transformer = cls.from_pretrained(Path(model_folder) / "transformer", local_files_only=True)
    torch.manual_seed(seed)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=_TARGETS[family], init_lora_weights=False))
    state = {f"transformer.{k}": v.contiguous() for k, v in get_peft_model_state_dict(transformer).items()}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest), metadata=METADATA[family])
    return dest
