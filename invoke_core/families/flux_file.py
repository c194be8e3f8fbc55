"""The FLUX.1 transformer in Black Forest Labs' layout (`flux1-dev.safetensors`, `flux1-schnell.safetensors`,
`flux1-fill-dev.safetensors` and their fine-tunes): `double_blocks.N`, `single_blocks.N`, fused q/k/v.

Converted here rather than by diffusers' converter, which assumes the released width (3072) where it splits
the single blocks' fused projection; the width is read from the file.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelInstallError
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count, mismatches, rope_axes

_FILL_CHANNELS = 384
_CONTROL_CHANNELS = 128  # FLUX.1 Canny/Depth: the control image's latents beside the noise

# top-level modules: BFL -> diffusers (each with .weight and .bias)
_TOP = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.norm.query_norm": "attn.norm_q",
    "img_attn.norm.key_norm": "attn.norm_k",
    "txt_attn.norm.query_norm": "attn.norm_added_q",
    "txt_attn.norm.key_norm": "attn.norm_added_k",
}
_DOUBLE_QKV = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE = {
    "modulation.lin": "norm.linear",
    "linear2": "proj_out",
    "norm.query_norm": "attn.norm_q",
    "norm.key_norm": "attn.norm_k",
}
_SINGLE_LINEAR1 = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_FINAL_NORM = "final_layer.adaLN_modulation.1"


def _param(name: str) -> str:
    return "weight" if name == "scale" else name  # the RMSNorms' `scale` is diffusers' `weight`


def convert(state: dict[str, Any], label: str = "FLUX.1") -> dict[str, Any]:
    """BFL tensors -> diffusers FluxTransformer2DModel tensors (pure; every tensor mapped or an error). Chroma's
    blocks are these without their modulation (`label` names the family in the error)."""
    import torch

    inner = state["img_in.weight"].shape[0]
    out: dict[str, Any] = {}
    for key, tensor in state.items():
        head, _, rest = key.partition(".")
        if head in ("double_blocks", "single_blocks"):
            index, _, rest = rest.partition(".")
            double = head == "double_blocks"
            prefix = f"{'transformer_blocks' if double else 'single_transformer_blocks'}.{index}."
            renames = _DOUBLE if double else _SINGLE
        else:
            prefix, renames, rest = "", _TOP, key
        module, _, param = rest.rpartition(".")
        if module in renames:
            out[f"{prefix}{renames[module]}.{_param(param)}"] = tensor
        elif prefix.startswith("transformer_blocks") and module in _DOUBLE_QKV:
            for name, part in zip(_DOUBLE_QKV[module], torch.chunk(tensor, 3, dim=0)):
                out[f"{prefix}{name}.{param}"] = part
        elif prefix.startswith("single") and module == "linear1":
            sizes = (inner, inner, inner, tensor.shape[0] - 3 * inner)
            for name, part in zip(_SINGLE_LINEAR1, torch.split(tensor, sizes, dim=0)):
                out[f"{prefix}{name}.{param}"] = part
        elif not prefix and module == _FINAL_NORM:
            shift, scale = tensor.chunk(2, dim=0)  # BFL's order; diffusers' AdaLayerNormContinuous: scale first
            out[f"norm_out.linear.{param}"] = torch.cat([scale, shift], dim=0)
        else:
            raise ModelInstallError(f"a {label} file with an unknown tensor {key}")
    return out


class FluxTransformerFile(TransformerFile):
    model_class = "FluxTransformer2DModel"
    layout = "Black Forest Labs"

    def is_transformer(self, shapes: Shapes) -> bool:
        # the time embedder: Chroma's blocks have the same names, but its modulation comes from an approximator
        # and not FLUX.2's (its blocks share one modulation: families/flux2_file.py)
        return (
            "img_in.weight" in shapes and "double_blocks.0.img_attn.qkv.weight" in shapes and "time_in.in_layer.weight" in shapes
            and "double_stream_modulation_img.lin.weight" not in shapes
        )

    def owns(self, key: str) -> bool:
        head = key.split(".", 1)[0]
        return head in ("double_blocks", "single_blocks", "final_layer") or key.rpartition(".")[0] in _TOP

    def kind(self, shapes: Shapes) -> str:
        channels = shapes["img_in.weight"][1]
        if channels == 64:
            return "main"
        if channels == _FILL_CHANNELS:
            return "inpaint"  # FLUX.1 Fill
        what = "FLUX.1 Canny/Depth control models" if channels == _CONTROL_CHANNELS else f"a FLUX.1 transformer of {channels} input channels"
        raise ModelInstallError(f"{what} are not supported yet: install FLUX.1 dev, schnell or Fill (Canny/Depth: their Control LoRA)")

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        inner = shapes["img_in.weight"][0]
        head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
        axes = rope_axes(base, "axes_dims_rope", head_dim, (16, 56, 56))
        return {
            "patch_size": 1,
            "in_channels": shapes["img_in.weight"][1],
            "out_channels": shapes["final_layer.linear.weight"][0],
            "num_layers": block_count(shapes, "double_blocks."),
            "num_single_layers": block_count(shapes, "single_blocks."),
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "pooled_projection_dim": shapes["vector_in.in_layer.weight"][1],
            "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
            "axes_dims_rope": axes,
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        t5 = read_config("text_encoder_2/config.json") or {}
        clip = read_config("text_encoder/config.json") or {}
        vae = read_config("vae/config.json") or {}
        rope = (read_config("transformer/config.json") or {}).get("axes_dims_rope") or ()
        facts = [
            ("T5 width", shapes["txt_in.weight"][1], t5.get("d_model")),
            ("CLIP width", shapes["vector_in.in_layer.weight"][1], clip.get("hidden_size")),
            ("latent channels (x4 packed)", shapes["final_layer.linear.weight"][0], 4 * vae.get("latent_channels", 0)),
            ("attention head width", shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0], sum(rope) or None),
        ]
        return mismatches(facts)

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        return convert(state)


TRANSFORMER_FILE = FluxTransformerFile()
