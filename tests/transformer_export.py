"""Test helper: a diffusers transformer written as one `.safetensors` file in the layout the weights are
distributed in (Black Forest Labs' for FLUX.1, Stability AI's for SD 3.x, lodestones' for Chroma, NextDiT's
for Z-Image; HiDream-I1's and Qwen-Image's are diffusers' own): the inverse of the conversion on load,
every tensor mapped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from invoke_core.families import flux_file


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def flux_to_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers FluxTransformer2DModel tensors -> BFL tensors."""
    inverse_top = {v: k for k, v in flux_file._TOP.items()}
    inverse_double = {v: k for k, v in flux_file._DOUBLE.items()}
    inverse_single = {v: k for k, v in flux_file._SINGLE.items()}
    out: dict[str, torch.Tensor] = {}
    fused: dict[tuple[str, tuple[str, ...]], dict[str, torch.Tensor]] = {}
    for key, t in state.items():
        module, _, param = key.rpartition(".")
        head, _, rest = module.partition(".")
        if head in ("transformer_blocks", "single_transformer_blocks"):
            index, _, inner = rest.partition(".")
            double = head == "transformer_blocks"
            prefix = f"{'double_blocks' if double else 'single_blocks'}.{index}."
            names = inverse_double if double else inverse_single
            if inner in names:
                out[prefix + names[inner] + "." + ("scale" if names[inner].endswith("_norm") else param)] = t
                continue
            parts = flux_file._DOUBLE_QKV if double else {"linear1": flux_file._SINGLE_LINEAR1}
            name, group = next((n, g) for n, g in parts.items() if inner in g)
            fused.setdefault((f"{prefix}{name}.{param}", group), {})[inner] = t
        elif module == "norm_out.linear":
            out[f"{flux_file._FINAL_NORM}.{param}"] = _swap_halves(t)
        else:
            out[f"{inverse_top[module]}.{param}"] = t
    for (key, group), pieces in fused.items():
        out[key] = torch.cat([pieces[name] for name in group], dim=0)
    return {k: v.contiguous() for k, v in out.items()}


def sd3_to_sai(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers SD3Transformer2DModel tensors -> Stability AI MMDiT tensors."""
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    top = {
        "pos_embed.proj": "x_embedder.proj",
        "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
        "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
        "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
        "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
        "context_embedder": "context_embedder",
        "proj_out": "final_layer.linear",
    }
    block = {
        "attn.to_out.0": "x_block.attn.proj",
        "attn.to_add_out": "context_block.attn.proj",
        "attn.norm_q": "x_block.attn.ln_q",
        "attn.norm_k": "x_block.attn.ln_k",
        "attn.norm_added_q": "context_block.attn.ln_q",
        "attn.norm_added_k": "context_block.attn.ln_k",
        "attn2.to_out.0": "x_block.attn2.proj",
        "attn2.norm_q": "x_block.attn2.ln_q",
        "attn2.norm_k": "x_block.attn2.ln_k",
        "norm1.linear": "x_block.adaLN_modulation.1",
        "norm1_context.linear": "context_block.adaLN_modulation.1",
        "ff.net.0.proj": "x_block.mlp.fc1",
        "ff.net.2": "x_block.mlp.fc2",
        "ff_context.net.0.proj": "context_block.mlp.fc1",
        "ff_context.net.2": "context_block.mlp.fc2",
    }
    qkv = {
        "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
        "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    }
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if key == "pos_embed.pos_embed":
            out["pos_embed"] = t
            continue
        module, _, param = key.rpartition(".")
        if module == "norm_out.linear":
            out[f"final_layer.adaLN_modulation.1.{param}"] = _swap_halves(t)
        elif module in top:
            out[f"{top[module]}.{param}"] = t
        elif module.startswith("transformer_blocks."):
            _, index, inner = module.split(".", 2)
            prefix = f"joint_blocks.{index}."
            if inner in block:
                last_context = inner == "norm1_context.linear" and int(index) == layers - 1
                out[prefix + block[inner] + "." + param] = _swap_halves(t) if last_context else t
            else:
                fused = next(f for f, group in qkv.items() if inner in group)
                name = f"{prefix}{fused}.{param}"
                if name not in out:
                    out[name] = torch.cat([state[f"transformer_blocks.{index}.{p}.{param}"] for p in qkv[fused]], dim=0)
        else:
            raise KeyError(key)
    return {k: v.contiguous() for k, v in out.items()}


def chroma_to_lodestones(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ChromaTransformer2DModel tensors -> lodestones' Chroma tensors: FLUX.1's blocks in BFL's
    names, the approximator's MLPs `in_layer`/`out_layer` and its norms' `scale`."""
    approximator = "distilled_guidance_layer."
    out = flux_to_bfl({k: v for k, v in state.items() if not k.startswith(approximator)})
    for key, t in state.items():
        if key.startswith(approximator):
            key = key.replace(".linear_1.", ".in_layer.").replace(".linear_2.", ".out_layer.")
            out[key[: -len("weight")] + "scale" if ".norms." in key else key] = t
    return out


def zimage_to_nextdit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ZImageTransformer2DModel tensors -> NextDiT (ComfyUI's Z-Image) tensors: q/k/v fused."""
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            out[key.replace(".to_q.", ".qkv.")] = torch.cat([t, *(state[key.replace(".to_q.", p)] for p in (".to_k.", ".to_v."))])
            continue
        key = key.replace("all_x_embedder.2-1.", "x_embedder.").replace("all_final_layer.2-1.", "final_layer.")
        key = key.replace(".attention.to_out.0.", ".attention.out.").replace(".attention.norm_q.", ".attention.q_norm.")
        out[key.replace(".attention.norm_k.", ".attention.k_norm.")] = t
    return out


def _same(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(state)


LAYOUTS = {"bfl": flux_to_bfl, "sai": sd3_to_sai, "lodestones": chroma_to_lodestones, "nextdit": zimage_to_nextdit, "diffusers": _same}


def transformer_state(folder: Path) -> dict[str, torch.Tensor]:
    """The diffusers tensors of a pipeline folder's transformer."""
    state = {}
    for file in sorted((Path(folder) / "transformer").glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


def export_transformer(folder: Path, dest: Path, layout: str, prefix: str = "", extra: dict | None = None) -> Path:
    """The transformer of the diffusers pipeline folder as one file (`layout`: one of LAYOUTS), keys under
    `prefix` ("model.diffusion_model." as some tools save them); `extra` tensors (a bundled encoder) added."""
    converted = LAYOUTS[layout](transformer_state(folder))
    save_file({prefix + k: v.contiguous() for k, v in converted.items()} | (extra or {}), str(dest))
    return dest
