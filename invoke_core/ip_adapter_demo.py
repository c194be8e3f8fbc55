"""Tiny IP-Adapters and a tiny CLIP image encoder with random weights, built offline and deterministically.

`build_image_encoder_demo` writes a CLIPVisionModelWithProjection folder (32 px pictures, 8 px patches);
`build_ip_adapter` writes an IP-Adapter `.safetensors` file for a Stable Diffusion 1.x or SDXL pipeline folder,
in the layout h94/IP-Adapter ships (what diffusers' `load_ip_adapter` reads: `image_proj.*`,
`ip_adapter.<n>.to_k_ip.weight`), for the plain ("base"), "plus" or "full_face" variant. The projection's
weights are diffusers' own modules (ImageProjection, IPAdapterPlusImageProjection, IPAdapterFullImageProjection)
at their default initialisation, written under the original names; the builder converts them back with
diffusers' converter and checks they come out equal. The built-in demos (`demo-image-encoder`,
`demo-ip-adapter`) are these for the SD 1.5 demo. Random weights: they prove the path, not a likeness.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import build_folder
from .ip_adapter import ADAPTER_FILE

ENCODER = dict(
    hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, projection_dim=40
)
_METADATA = {"sd-1": "stable-diffusion-v1/ip-adapter", "sdxl": "stable-diffusion-xl-v1-base/ip-adapter"}


def build_image_encoder_demo(dest: Path, seed: int = 21) -> Path:
    """A tiny CLIPVisionModelWithProjection folder at `dest` (config.json, model.safetensors)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .demo import _save_atomically

    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**ENCODER, hidden_act="quick_gelu")).eval()
    _save_atomically(model, Path(dest))
    return Path(dest)


def _plus_to_original(key: str) -> str:
    """diffusers' IPAdapterPlusImageProjection name -> the original Resampler's (the inverse of diffusers'
    `_convert_ip_adapter_image_proj_to_diffusers`); to_k and to_v are joined into to_kv by the caller."""
    parts = key.split(".")
    if parts[0] != "layers":
        return key
    i, rest = parts[1], ".".join(parts[2:])
    table = {
        "ln0.": "0.norm1.", "ln1.": "0.norm2.", "attn.to_q.": "0.to_q.", "attn.to_out.0.": "0.to_out.",
        "ff.0.": "1.0.", "ff.1.net.0.proj.": "1.1.", "ff.1.net.2.": "1.3.",
    }
    for ours, theirs in table.items():
        if rest.startswith(ours):
            return f"layers.{i}.{theirs}{rest[len(ours):]}"
    raise KeyError(key)


def _image_projection(variant: str, cross: int, seed: int) -> tuple[dict, object]:
    """(original-layout state dict, the diffusers module) of a random image projection."""
    import torch
    from diffusers.models.embeddings import IPAdapterFullImageProjection, IPAdapterPlusImageProjection, ImageProjection

    torch.manual_seed(seed)
    if variant == "base":
        module = ImageProjection(cross_attention_dim=cross, image_embed_dim=ENCODER["projection_dim"], num_image_text_embeds=4)
        return {k.replace("image_embeds", "proj"): v for k, v in module.state_dict().items()}, module
    if variant == "full_face":
        module = IPAdapterFullImageProjection(image_embed_dim=ENCODER["hidden_size"], cross_attention_dim=cross)
        names = {"ff.net.0.proj": "proj.0", "ff.net.2": "proj.2", "norm": "proj.3"}
        out = {}
        for key, value in module.state_dict().items():
            prefix, _, leaf = key.rpartition(".")
            out[f"{names[prefix]}.{leaf}"] = value
        return out, module
    if variant == "plus":
        # heads = to_q width // 64 in diffusers' converter: one head of 64
        module = IPAdapterPlusImageProjection(
            embed_dims=ENCODER["hidden_size"], output_dims=cross, hidden_dims=64, heads=1, dim_head=64, num_queries=4
        )
        state = module.state_dict()
        out = {}
        for key, value in state.items():
            if ".attn.to_k." in key:
                base = key.replace(".attn.to_k.", ".0.to_kv.")
                out[base] = torch.cat([value, state[key.replace(".to_k.", ".to_v.")]], dim=0)
            elif ".attn.to_v." not in key:
                out[_plus_to_original(key)] = value
        return out, module
    raise ValueError(f"variant must be base, plus or full_face, got {variant!r}")


def build_ip_adapter(dest: Path, model_folder: Path, variant: str = "base", seed: int = 0, family: str | None = None) -> Path:
    """An IP-Adapter .safetensors file at `dest` for the SD 1.x or SDXL pipeline folder `model_folder` (its
    UNet's cross-attention layers), reading the demo image encoder's widths (ENCODER)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    model_folder, dest = Path(model_folder), Path(dest)
    family = family or ("sdxl" if (model_folder / "text_encoder_2").is_dir() else "sd-1")
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(model_folder / "unet"))
    cross = unet.config.cross_attention_dim
    image_proj, module = _image_projection(variant, cross, seed)
    # diffusers' converter must read back exactly these weights
    converted = unet._convert_ip_adapter_image_proj_to_diffusers(image_proj, low_cpu_mem_usage=False)
    assert type(converted) is type(module) and all(
        torch.equal(a, b) for a, b in zip(converted.state_dict().values(), module.state_dict().values())
    ), "the IP-Adapter layout does not convert back"
    tensors = {f"image_proj.{k}": v.contiguous() for k, v in image_proj.items()}
    torch.manual_seed(seed + 1)
    key_id = 1
    for name in unet.attn_processors:  # diffusers numbers the cross-attention layers 1, 3, 5, ...
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        for proj in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{proj}.weight"] = torch.nn.Linear(cross, hidden, bias=False).weight.detach().contiguous()
        key_id += 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", "modelspec.architecture": _METADATA[family]})
    tmp.replace(dest)
    return dest


def build_ip_adapter_demo(dest: Path, demo_base: Path) -> Path:
    """The built-in `demo-ip-adapter`: a folder holding a plain IP-Adapter for the SD 1.5 demo (built first
    when missing) that reads the demo image encoder."""
    from .demo import build_sd15_demo

    sd15 = demo_base / "sd15"
    if not sd15.exists():
        build_sd15_demo(sd15)
    return build_folder(dest, lambda tmp: build_ip_adapter(tmp / ADAPTER_FILE, sd15, "base", seed=23, family="sd-1"))
