"""The SD 3.x MMDiT in Stability AI's layout (`sd3.5_large.safetensors`, `sd3.5_medium.safetensors`,
`sd3_medium.safetensors` and their fine-tunes; `model.diffusion_model.joint_blocks.N`), alone or with its
text encoders and VAE bundled (all-in-one files: those run with the base's, so one tokenizer set serves).

diffusers' converter reads the width from the file; the config is built here from the shapes.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ModelInstallError
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count

_MODULES = frozenset({"pos_embed", "x_embedder", "t_embedder", "y_embedder", "context_embedder", "joint_blocks", "final_layer"})
_MMDIT_HEAD = 64  # every released SD 3.x MMDiT's attention head width (hidden = 64 x depth)


class SD3TransformerFile(TransformerFile):
    model_class = "SD3Transformer2DModel"
    layout = "Stability AI"

    def is_transformer(self, shapes: Shapes) -> bool:
        return "x_embedder.proj.weight" in shapes and "joint_blocks.0.x_block.attn.qkv.weight" in shapes

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in _MODULES

    def kind(self, shapes: Shapes) -> str:
        channels = shapes["x_embedder.proj.weight"][1]
        if channels != 16:
            raise ModelInstallError(f"an SD 3.x transformer of {channels} input channels is not supported: install SD 3.5 Large, Medium or SD 3 Medium")
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        hidden, channels, patch, _ = shapes["x_embedder.proj.weight"]
        norm = shapes.get("joint_blocks.0.x_block.attn.ln_q.weight")
        base_hidden = base.get("num_attention_heads", 0) * base.get("attention_head_dim", 0)
        # the heads' width is in the file only with q/k norms (SD 3.5); otherwise the base's, or the MMDiT's 64
        head_dim = norm[0] if norm else base["attention_head_dim"] if base_hidden == hidden else _MMDIT_HEAD
        if hidden % head_dim:
            raise ModelInstallError(f"the file's transformer is {hidden} wide, not a whole number of {head_dim}-wide heads")
        layers = block_count(shapes, "joint_blocks.")
        positions = shapes["pos_embed"][1]
        return {
            "sample_size": base.get("sample_size", 128),
            "patch_size": patch,
            "in_channels": channels,
            "num_layers": layers,
            "attention_head_dim": head_dim,
            "num_attention_heads": hidden // head_dim,
            "joint_attention_dim": shapes["context_embedder.weight"][1],
            "caption_projection_dim": hidden,
            "pooled_projection_dim": shapes["y_embedder.mlp.0.weight"][1],
            "out_channels": shapes["final_layer.linear.weight"][0] // (patch * patch),
            "pos_embed_max_size": math.isqrt(positions),
            "dual_attention_layers": tuple(i for i in range(layers) if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in shapes),
            "qk_norm": "rms_norm" if norm else None,
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        clip_l = read_config("text_encoder/config.json") or {}
        clip_g = read_config("text_encoder_2/config.json") or {}
        t5 = read_config("text_encoder_3/config.json")
        vae = read_config("vae/config.json") or {}
        wrong = []
        pooled = shapes["y_embedder.mlp.0.weight"][1]
        clips = clip_l.get("projection_dim", 0) + clip_g.get("projection_dim", 0)
        if pooled != clips:
            wrong.append(f"CLIP projections {clips} wide together (the file's transformer takes {pooled})")
        joint = shapes["context_embedder.weight"][1]
        if t5 is not None and t5.get("d_model") != joint:
            wrong.append(f"T5 width {t5.get('d_model')} (the file's transformer takes {joint})")
        clip_hidden = clip_l.get("hidden_size", 0) + clip_g.get("hidden_size", 0)
        if t5 is None and clip_hidden > joint:
            wrong.append(f"CLIP hidden states {clip_hidden} wide together (the file's transformer takes {joint})")
        channels = shapes["x_embedder.proj.weight"][1]
        if vae.get("latent_channels") != channels:
            wrong.append(f"VAE latent channels {vae.get('latent_channels')} (the file's transformer takes {channels})")
        return wrong

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

        return convert_sd3_transformer_checkpoint_to_diffusers(dict(state))


TRANSFORMER_FILE = SD3TransformerFile()
