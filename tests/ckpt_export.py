"""Test helper: write a diffusers SD1.x / SDXL pipeline folder (or a ControlNet) as one original-layout
(LDM) `.safetensors` file, the inverse of diffusers' single-file conversion.

Layout written (what real single-file checkpoints use):
  model.diffusion_model.*                    UNet (input_blocks / middle_block / output_blocks)
  first_stage_model.*                        VAE (encoder.down.N.block.M / mid.block_1 / mid.attn_1 ...)
  cond_stage_model.transformer.text_model.*  SD1.x CLIP-L text encoder (HF layout)
  conditioner.embedders.0.transformer.text_model.*  SDXL CLIP-L (HF layout)
  conditioner.embedders.1.model.*            SDXL OpenCLIP bigG (fused qkv in_proj, text_projection as x @ P)
  control_model.*                            a ControlNet on its own
Every tensor is mapped (none dropped, none duplicated), so loading the file back gives the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_RESNET = {  # diffusers ResnetBlock2D (UNet) -> LDM ResBlock
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"expected one .safetensors file in {folder}, found {len(files)}")
    return load_file(str(files[0]))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _unet_prefix_map(config: dict, controlnet: bool = False) -> dict[str, str]:
    """diffusers module prefix -> LDM module prefix, for the blocks that exist in `config`."""
    per = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    up_types = config.get("up_block_types", ())
    m = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
        "class_embedding.linear_1": "label_emb.0.0",
        "class_embedding.linear_2": "label_emb.0.2",
        "mid_block.resnets.0": "middle_block.0",
        "mid_block.attentions.0": "middle_block.1",
        "mid_block.resnets.1": "middle_block.2",
    }
    for b in range(n_blocks):
        for j in range(per):
            i = 1 + b * (per + 1) + j
            m[f"down_blocks.{b}.resnets.{j}"] = f"input_blocks.{i}.0"
            m[f"down_blocks.{b}.attentions.{j}"] = f"input_blocks.{i}.1"
        m[f"down_blocks.{b}.downsamplers.0.conv"] = f"input_blocks.{1 + b * (per + 1) + per}.0.op"
    if controlnet:
        for i in range(1 + n_blocks * (per + 1)):
            m[f"controlnet_down_blocks.{i}"] = f"zero_convs.{i}.0"
        m["controlnet_mid_block"] = "middle_block_out.0"
        m["controlnet_cond_embedding.conv_in"] = "input_hint_block.0"
        m["controlnet_cond_embedding.conv_out"] = "input_hint_block.14"
        for j in range(2 * (len(config["conditioning_embedding_out_channels"]) - 1)):
            m[f"controlnet_cond_embedding.blocks.{j}"] = f"input_hint_block.{2 * (j + 1)}"
        return m
    m.update({"conv_norm_out": "out.0", "conv_out": "out.2"})
    for b in range(n_blocks):
        has_attention = up_types[b].startswith("CrossAttn")
        for j in range(per + 1):
            i = b * (per + 1) + j
            m[f"up_blocks.{b}.resnets.{j}"] = f"output_blocks.{i}.0"
            m[f"up_blocks.{b}.attentions.{j}"] = f"output_blocks.{i}.1"
        last = b * (per + 1) + per
        m[f"up_blocks.{b}.upsamplers.0.conv"] = f"output_blocks.{last}.{2 if has_attention else 1}.conv"
    return m


def _split_module(key: str, known: dict[str, str]) -> tuple[str, str]:
    """Longest known module prefix of `key` and the remainder."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in known:
            return prefix, ".".join(parts[n:])
    raise KeyError(f"no LDM name for {key}")


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict, controlnet: bool = False) -> dict[str, torch.Tensor]:
    prefix_map = _unet_prefix_map(config, controlnet=controlnet)
    out = {}
    for key, value in state.items():
        module, rest = _split_module(key, prefix_map)
        if ".resnets." in module:  # ResnetBlock2D sub-layers are renamed; attention blocks keep their names
            name, _, param = rest.partition(".")
            rest = f"{_RESNET[name]}.{param}"
        out[f"{prefix_map[module]}.{rest}"] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    n = len(config["block_out_channels"])
    m = {"encoder.conv_norm_out": "encoder.norm_out", "decoder.conv_norm_out": "decoder.norm_out"}
    for side in ("encoder", "decoder"):
        for k in range(2):
            m[f"{side}.mid_block.resnets.{k}"] = f"{side}.mid.block_{k + 1}"
        m[f"{side}.mid_block.attentions.0"] = f"{side}.mid.attn_1"
    for i in range(n):
        m[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = f"encoder.down.{i}.downsample.conv"
        m[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = f"decoder.up.{n - 1 - i}.upsample.conv"
        for j in range(config["layers_per_block"] + 1):
            m[f"encoder.down_blocks.{i}.resnets.{j}"] = f"encoder.down.{i}.block.{j}"
            m[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.up.{n - 1 - i}.block.{j}"
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in state.items():
        module, rest = _split_module(
            key,
            {
                **m,
                **{
                    k: k
                    for k in (
                        "encoder.conv_in",
                        "encoder.conv_out",
                        "decoder.conv_in",
                        "decoder.conv_out",
                        "quant_conv",
                        "post_quant_conv",
                    )
                },
            },
        )
        ldm = m.get(module, module)
        if module.endswith("attentions.0"):
            name, param = rest.rsplit(".", 1)
            rest = f"{attention[name]}.{param}"
            if value.ndim == 2 and name != "group_norm":  # LDM attention projections are 1x1 convolutions
                value = value[:, :, None, None]
        elif ".resnets." in module:
            rest = rest.replace("conv_shortcut", "nin_shortcut")
        out[f"{ldm}.{rest}"] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModel (flattened or not) -> the HF layout real checkpoints embed (text_model.*)."""
    return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}


def open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModelWithProjection -> OpenCLIP text tower names."""
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {
        "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": state.pop("final_layer_norm.weight"),
        "ln_final.bias": state.pop("final_layer_norm.bias"),
        "text_projection": state.pop("text_projection.weight").T.contiguous(),
    }
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")})
    rename = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    for n in layers:
        src, dst = f"encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for param in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{param}"] = torch.cat(
                [state.pop(f"{src}self_attn.{p}_proj.{param}") for p in "qkv"]
            )
            for old, new in rename.items():
                out[f"{dst}{new}.{param}"] = state.pop(f"{src}{old}.{param}")
    if state:
        raise KeyError(f"unmapped text encoder keys: {sorted(state)[:5]}")
    return out


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def export_pipeline_to_single_file(folder: Path, dest: Path) -> Path:
    """Write the SD1.x or SDXL diffusers pipeline at `folder` as one LDM-layout .safetensors at `dest`."""
    folder, dest = Path(folder), Path(dest)
    index = json.loads((folder / "model_index.json").read_text())
    sdxl = "XL" in index["_class_name"]
    unet_config = _config(folder / "unet")
    out = _prefixed("model.diffusion_model.", unet_to_ldm(_weights(folder / "unet"), unet_config))
    out |= _prefixed("first_stage_model.", vae_to_ldm(_weights(folder / "vae"), _config(folder / "vae")))
    if sdxl:
        out |= _prefixed("conditioner.embedders.0.transformer.", clip_to_ldm(_weights(folder / "text_encoder")))
        out |= _prefixed("conditioner.embedders.1.model.", open_clip_to_ldm(_weights(folder / "text_encoder_2")))
    else:
        out |= _prefixed("cond_stage_model.transformer.", clip_to_ldm(_weights(folder / "text_encoder")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, str(dest))
    return dest


def export_controlnet_to_single_file(folder: Path, dest: Path) -> Path:
    """Write the diffusers ControlNet at `folder` as an LDM-layout (control_model.*) .safetensors at `dest`."""
    state = unet_to_ldm(_weights(Path(folder)), _config(Path(folder)), controlnet=True)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in _prefixed("control_model.", state).items()}, str(dest))
    return Path(dest)
