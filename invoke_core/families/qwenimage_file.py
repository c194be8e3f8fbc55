"""The Qwen-Image transformer alone (`qwen_image_bf16.safetensors`, `qwen_image_fp8_e4m3fn.safetensors` as
ComfyUI distributes them, and fine-tunes): diffusers' module names, which Qwen released and ComfyUI's model
uses, bare or under `model.diffusion_model.`; diffusers' converter is the identity.

Qwen-Image-Edit's transformer has the same shapes: a file runs as a text-to-image (main) model, so its base
is a Qwen-Image folder, not an Edit one (whose pipeline would take a picture it is never given).
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelInstallError
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count, mismatches, rope_axes

_MODULES = frozenset({"img_in", "txt_norm", "txt_in", "time_text_embed", "transformer_blocks", "norm_out", "proj_out"})
_LATENT = 64  # 16 VAE channels packed 2x2
_HEAD_NORM = "transformer_blocks.0.attn.norm_q.weight"


class QwenImageTransformerFile(TransformerFile):
    model_class = "QwenImageTransformer2DModel"
    layout = "diffusers"

    def is_transformer(self, shapes: Shapes) -> bool:
        # Qwen-Image 2.1 (no per-block modulation) too, to refuse it by name
        return "img_in.weight" in shapes and ("transformer_blocks.0.img_mod.1.weight" in shapes or "txt_in.text_norm.weight" in shapes)

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in _MODULES

    def kind(self, shapes: Shapes) -> str:
        if "txt_in.text_norm.weight" in shapes:
            raise ModelInstallError("Qwen-Image 2.1 transformer files are not supported yet: install Qwen-Image")
        if "time_text_embed.addition_t_embedding.weight" in shapes:
            raise ModelInstallError("Qwen-Image-Layered transformer files are not supported yet: install Qwen-Image")
        channels = shapes["img_in.weight"][1]
        if channels != _LATENT:
            raise ModelInstallError(f"a Qwen-Image transformer of {channels} input channels is not supported: install Qwen-Image")
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        inner, channels = shapes["img_in.weight"]
        head_dim = shapes[_HEAD_NORM][0]
        patch = int(base.get("patch_size") or 2)
        return {
            "patch_size": patch,
            "in_channels": channels,
            "out_channels": shapes["proj_out.weight"][0] // (patch * patch),
            "num_layers": block_count(shapes, "transformer_blocks."),
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "axes_dims_rope": rope_axes(base, "axes_dims_rope", head_dim, (16, 56, 56)),
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        pipeline = (read_config("model_index.json") or {}).get("_class_name")
        if pipeline != "QwenImagePipeline":
            return [f"a {pipeline} folder (a transformer file runs on a QwenImagePipeline folder)"]
        encoder = read_config("text_encoder/config.json") or {}
        width = (encoder.get("text_config") or {}).get("hidden_size") or encoder.get("hidden_size")
        vae = read_config("vae/config.json") or {}
        rope = (read_config("transformer/config.json") or {}).get("axes_dims_rope") or ()
        return mismatches([
            ("Qwen2.5-VL width", shapes["txt_in.weight"][1], width),
            ("latent channels (x4 packed)", shapes["img_in.weight"][1], 4 * vae.get("z_dim", 0)),
            ("attention head width", shapes[_HEAD_NORM][0], sum(rope) or None),
        ])

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        return state  # diffusers' names (the prefix is stripped on reading)


TRANSFORMER_FILE = QwenImageTransformerFile()
