"""Build small random LoRA files for a Stable Diffusion 1.x or SDXL pipeline folder (tests, benchmarks, demos).

`build_lora(model_folder, dest, seed, fmt)` injects peft LoRA layers (random A and B, so the LoRA
visibly changes the output) into the folder's UNet attention projections and its text encoder's, and
saves them as one `.safetensors` file:

- fmt="peft": diffusers' layout (`unet.<module>.lora_A.weight`, `text_encoder.<module>.lora_B.weight`),
  written by `StableDiffusionPipeline.save_lora_weights`;
- fmt="kohya": the same weights under kohya names (`lora_unet_<module_with_underscores>.lora_down.weight`,
  `.lora_up.weight`, `.alpha`; text encoder `lora_te_text_model_...`, SDXL's two `lora_te1_` / `lora_te2_`),
  which diffusers converts on load.

An SDXL folder (one with `text_encoder_2`) gets LoRA layers in both text encoders, saved with
`StableDiffusionXLPipeline.save_lora_weights`.

`lora_alpha` equals the rank (scale 1) and kohya's `.alpha` says the same, so both formats of one seed
give the same image. The header declares the family (`modelspec.architecture`, `ss_base_model_version`):
the probe reads it when the shapes do not tell, as for the demo's 32-wide text embedding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
SD1_METADATA = {"format": "pt", "modelspec.architecture": "stable-diffusion-v1/lora", "ss_base_model_version": "sd_v1"}
SDXL_METADATA = {
    "format": "pt",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    "ss_base_model_version": "sdxl_base_v1-0",
}


def build_lora(
    model_folder: Path,
    dest: Path,
    seed: int = 0,
    fmt: str = "peft",
    rank: int = 4,
    text_encoder: bool = True,
    scale: float = 1.0,
) -> Path:
    """Write a random LoRA for the SD1 or SDXL pipeline folder `model_folder` to `dest` (a .safetensors file).
    `scale` multiplies the random up-projections (a full-size UNet needs a small one to stay sane)."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if fmt not in ("peft", "kohya"):
        raise ValueError(f"fmt must be 'peft' or 'kohya', got {fmt!r}")
    model_folder = Path(model_folder)
    sdxl = (model_folder / "text_encoder_2").is_dir()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(model_folder / "unet", local_files_only=True)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(UNET_TARGETS), init_lora_weights=False))
    layers = {"unet_lora_layers": get_peft_model_state_dict(unet)}
    if text_encoder:
        encoders = [("text_encoder", CLIPTextModel)] + ([("text_encoder_2", CLIPTextModelWithProjection)] if sdxl else [])
        for folder, cls in encoders:
            encoder = cls.from_pretrained(model_folder / folder, local_files_only=True)
            # peft directly: transformers' own add_adapter asks for a newer peft than diffusers does.
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(TEXT_TARGETS), init_lora_weights=False)
            inject_adapter_in_model(config, encoder)
            layers[f"{folder}_lora_layers"] = get_peft_model_state_dict(encoder)
    if scale != 1.0:
        for state in layers.values():
            for key in state:
                if "lora_B" in key:
                    state[key] = state[key] * scale
    with tempfile.TemporaryDirectory() as tmp:
        (StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline).save_lora_weights(tmp, **layers)
        state = load_file(str(Path(tmp) / "pytorch_lora_weights.safetensors"))
    if fmt == "kohya":
        state = to_kohya(state)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest), metadata=SDXL_METADATA if sdxl else SD1_METADATA)
    return dest


def to_kohya(state: dict) -> dict:
    """diffusers/peft SD1 or SDXL LoRA keys -> kohya keys (with `.alpha` = rank, i.e. scale 1)."""
    import torch

    out = {}
    for key, tensor in state.items():
        component, rest = key.split(".", 1)
        module, part = rest.rsplit(".lora_", 1)
        if component == "unet":
            name = "lora_unet_" + module.replace(".", "_")
        elif component in ("text_encoder", "text_encoder_2"):
            module = module if module.startswith("text_model.") else "text_model." + module  # transformers 5
            sdxl = any(k.startswith("text_encoder_2.") for k in state)
            prefix = {"text_encoder": "lora_te1_" if sdxl else "lora_te_", "text_encoder_2": "lora_te2_"}[component]
            name = prefix + module.replace(".", "_")
        else:
            raise ValueError(f"unexpected LoRA key {key!r}")
        if part.startswith("A"):
            out[name + ".lora_down.weight"] = tensor
            out[name + ".alpha"] = torch.tensor(float(tensor.shape[0]))
        else:
            out[name + ".lora_up.weight"] = tensor
    return out
