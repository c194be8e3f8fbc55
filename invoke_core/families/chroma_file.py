"""The Chroma transformer in lodestones' layout (`chroma-unlocked-v50.safetensors`, the Chroma1-HD, Base and
Flash files, ComfyUI's the same, bare or under `model.diffusion_model.`): FLUX.1's double and single blocks
in Black Forest Labs' names, without their modulation, which comes from one small network for all blocks
(`distilled_guidance_layer`, the approximator); no time, guidance or CLIP embedders.

Converted here rather than by diffusers' converter, which assumes the released width (3072) where it splits
the single blocks' fused projection: the blocks go through FLUX.1's conversion (the width read from the
file), the approximator's few tensors are renamed here.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelInstallError
from . import flux_file
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count, mismatches, rope_axes

_APPROXIMATOR = "distilled_guidance_layer."
_MODULES = frozenset({"img_in", "txt_in", "double_blocks", "single_blocks", "final_layer", "distilled_guidance_layer"})
_LAYER = {"in_layer": "linear_1", "out_layer": "linear_2"}  # its MLPs: lodestones -> diffusers
_LATENT = 64  # 16 VAE channels packed 2x2


def _approximator(key: str, tensor: Any) -> tuple[str, Any]:
    head, _, rest = key[len(_APPROXIMATOR):].partition(".")
    if head in ("in_proj", "out_proj"):
        return key, tensor
    index, _, rest = rest.partition(".")
    module, _, param = rest.partition(".")
    if head == "layers" and module in _LAYER:
        return f"{_APPROXIMATOR}layers.{index}.{_LAYER[module]}.{param}", tensor
    if head == "norms" and rest == "scale":  # its RMSNorms' `scale` is diffusers' `weight`
        return f"{_APPROXIMATOR}norms.{index}.weight", tensor
    raise ModelInstallError(f"a Chroma file with an unknown tensor {key}")


def convert(state: dict[str, Any]) -> dict[str, Any]:
    """lodestones' tensors -> diffusers ChromaTransformer2DModel tensors (pure; every tensor mapped or an error)."""
    blocks = {k: v for k, v in state.items() if not k.startswith(_APPROXIMATOR)}
    out = flux_file.convert(blocks, label="Chroma")
    out.update(_approximator(k, v) for k, v in state.items() if k.startswith(_APPROXIMATOR))
    return out


class ChromaTransformerFile(TransformerFile):
    model_class = "ChromaTransformer2DModel"
    layout = "lodestones"

    def is_transformer(self, shapes: Shapes) -> bool:
        return "img_in.weight" in shapes and "double_blocks.0.img_attn.qkv.weight" in shapes and f"{_APPROXIMATOR}in_proj.weight" in shapes

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in _MODULES

    def kind(self, shapes: Shapes) -> str:
        channels = shapes["img_in.weight"][1]
        if channels != _LATENT:
            raise ModelInstallError(
                f"a Chroma transformer of {channels} input channels is not supported: install Chroma1-HD, Base or Flash"
            )
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        inner, channels = shapes["img_in.weight"]
        head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
        hidden, approximator_in = shapes[f"{_APPROXIMATOR}in_proj.weight"]
        return {
            "patch_size": 1,
            "in_channels": channels,
            "out_channels": shapes["final_layer.linear.weight"][0],
            "num_layers": block_count(shapes, "double_blocks."),
            "num_single_layers": block_count(shapes, "single_blocks."),
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "axes_dims_rope": rope_axes(base, "axes_dims_rope", head_dim, (16, 56, 56)),
            "approximator_num_channels": approximator_in,
            "approximator_hidden_dim": hidden,
            "approximator_layers": block_count(shapes, f"{_APPROXIMATOR}layers."),
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        t5 = read_config("text_encoder/config.json") or {}
        vae = read_config("vae/config.json") or {}
        rope = (read_config("transformer/config.json") or {}).get("axes_dims_rope") or ()
        return mismatches([
            ("T5 width", shapes["txt_in.weight"][1], t5.get("d_model")),
            ("latent channels (x4 packed)", shapes["final_layer.linear.weight"][0], 4 * vae.get("latent_channels", 0)),
            ("attention head width", shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0], sum(rope) or None),
        ])

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        return convert(state)


TRANSFORMER_FILE = ChromaTransformerFile()
