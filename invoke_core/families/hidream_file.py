"""The HiDream-I1 transformer alone (`hidream_i1_full_fp16.safetensors`, `hidream_i1_dev_bf16.safetensors`,
`hidream_i1_fast_bf16.safetensors` as ComfyUI distributes them, and fine-tunes): HiDream-ai's module names,
which diffusers kept, bare or under `model.diffusion_model.`; diffusers' converter only strips that prefix,
so the tensors load as they are.

Its attention's q/k norms span the whole width: the heads' width is not in the file. It is the base's where
the widths agree, else HiDream-I1's 128. The experts the router picks per token are not in the file either
(the base's).
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelInstallError
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count, mismatches, rope_axes

_MODULES = frozenset({
    "t_embedder", "p_embedder", "x_embedder", "double_stream_blocks", "single_stream_blocks", "final_layer", "caption_projection",
})
_HEAD = 128  # HiDream-I1's attention head width
_EXPERTS = "double_stream_blocks.0.block.ff_i.experts."


def _patch(base: dict[str, Any]) -> int:
    return int(base.get("patch_size") or 2)


def _blocks(shapes: Shapes) -> tuple[int, int]:
    return block_count(shapes, "double_stream_blocks."), block_count(shapes, "single_stream_blocks.")


def _caption_widths(shapes: Shapes) -> tuple[int, int]:
    """(T5, Llama) widths: a Llama projection for every block, then the T5's."""
    last = block_count(shapes, "caption_projection.") - 1
    return shapes[f"caption_projection.{last}.linear.weight"][1], shapes["caption_projection.0.linear.weight"][1]


class HiDreamTransformerFile(TransformerFile):
    model_class = "HiDreamImageTransformer2DModel"
    layout = "HiDream-ai"

    def is_transformer(self, shapes: Shapes) -> bool:
        return "x_embedder.proj.weight" in shapes and "double_stream_blocks.0.block.adaLN_modulation.1.weight" in shapes

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in _MODULES

    def kind(self, shapes: Shapes) -> str:
        double, single = _blocks(shapes)
        projections = block_count(shapes, "caption_projection.")
        if projections != double + single + 1:
            raise ModelInstallError(
                f"a HiDream-I1 file with {projections} caption projections for {double + single} blocks (one each and the T5's)"
            )
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        inner, patched = shapes["x_embedder.proj.weight"]
        patch = _patch(base)
        same_width = base.get("num_attention_heads", 0) * base.get("attention_head_dim", 0) == inner
        head_dim = base["attention_head_dim"] if same_width else _HEAD
        if inner % head_dim or patched % (patch * patch):
            raise ModelInstallError(
                f"the file's transformer ({inner} wide, {patched} inputs) is not {head_dim}-wide heads over {patch}x{patch} patches"
            )
        double, single = _blocks(shapes)
        t5, llama = _caption_widths(shapes)
        return {
            "patch_size": patch,
            "in_channels": patched // (patch * patch),
            "out_channels": shapes["final_layer.linear.weight"][0] // (patch * patch),
            "num_layers": double,
            "num_single_layers": single,
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "caption_channels": [t5, llama],
            "text_emb_dim": shapes["p_embedder.pooled_embedder.linear_1.weight"][1],
            "num_routed_experts": block_count(shapes, _EXPERTS),
            "num_activated_experts": base.get("num_activated_experts", 2),
            "axes_dims_rope": rope_axes(base, "axes_dims_rope", head_dim, (64, 32, 32)),
            "max_resolution": base.get("max_resolution", (128, 128)),
            "llama_layers": base.get("llama_layers") or [],
            "force_inference_output": base.get("force_inference_output", False),
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        clips = [read_config(f"{name}/config.json") or {} for name in ("text_encoder", "text_encoder_2")]
        t5 = read_config("text_encoder_3/config.json") or {}
        llama = read_config("text_encoder_4/config.json") or {}
        vae = read_config("vae/config.json") or {}
        base = read_config("transformer/config.json") or {}
        patch = _patch(base)
        t5_width, llama_width = _caption_widths(shapes)
        pooled = sum(c.get("projection_dim", 0) for c in clips)
        wrong = mismatches([
            ("CLIP projections together", shapes["p_embedder.pooled_embedder.linear_1.weight"][1], pooled),
            ("T5 width", t5_width, t5.get("d_model")),
            ("Llama width", llama_width, llama.get("hidden_size")),
            ("VAE latent channels", shapes["x_embedder.proj.weight"][1] // (patch * patch), vae.get("latent_channels")),
            # the base says which Llama layer feeds each block
            ("Llama layers for the blocks", sum(_blocks(shapes)), len(base.get("llama_layers") or ())),
        ])
        experts, picked = block_count(shapes, _EXPERTS), base.get("num_activated_experts", 2)
        if experts and picked > experts:
            wrong.append(f"{picked} experts picked per token (the file's transformer has {experts})")
        return wrong

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        return state  # HiDream-ai's names are diffusers' (the prefix is stripped on reading)


TRANSFORMER_FILE = HiDreamTransformerFile()
