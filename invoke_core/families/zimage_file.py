"""The Z-Image transformer alone (Turbo and base: `z_image_turbo_bf16.safetensors` as ComfyUI distributes them,
and fine-tunes), bare or under `model.diffusion_model.`: the original NextDiT names (`x_embedder`,
`final_layer`, fused `attention.qkv`, `q_norm`), which Lumina-Image 2.0 shares. Z-Image's are told by their
modulation: a bare Linear from a 256-wide time embedding (`adaLN_modulation.0`), where Lumina's is SiLU then
Linear (`adaLN_modulation.1`).

diffusers' converter reads every width and depth from the file. It names the patch embedder after Z-Image's
2x2 patches of one frame (`2-1`): the layout's, which the file does not spell out (its input is patch x
patch x channels), so the channels are the rest.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelInstallError
from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count, mismatches, rope_axes

_MODULES = frozenset({
    "x_embedder", "final_layer", "noise_refiner", "context_refiner", "layers", "t_embedder", "cap_embedder",
    "x_pad_token", "cap_pad_token", "norm_final", "siglip_embedder", "siglip_refiner", "siglip_pad_token",
})
_PATCH = 2  # the converter's `2-1`: 2x2 patches, one frame
_HEAD_NORM = "layers.0.attention.q_norm.weight"


class ZImageTransformerFile(TransformerFile):
    model_class = "ZImageTransformer2DModel"
    layout = "NextDiT"

    def is_transformer(self, shapes: Shapes) -> bool:
        return "x_embedder.weight" in shapes and "cap_embedder.1.weight" in shapes and "layers.0.adaLN_modulation.0.weight" in shapes

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in _MODULES

    def kind(self, shapes: Shapes) -> str:
        if any(k.startswith("siglip_") for k in shapes):
            raise ModelInstallError("Z-Image Omni (image references through SigLIP) is not supported yet: install Z-Image or Z-Image Turbo")
        dim = shapes["x_embedder.weight"][0]
        fused = shapes["layers.0.attention.qkv.weight"][0]
        if fused != 3 * dim or _HEAD_NORM not in shapes:
            raise ModelInstallError(
                f"a Z-Image transformer with {fused}-row q/k/v for its width {dim} (grouped or unnormed heads) is not supported"
            )
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        dim, patched = shapes["x_embedder.weight"]
        head_dim = shapes[_HEAD_NORM][0]
        heads = dim // head_dim
        return {
            "all_patch_size": [_PATCH],
            "all_f_patch_size": [1],
            "in_channels": patched // (_PATCH * _PATCH),
            "dim": dim,
            "n_layers": block_count(shapes, "layers."),
            "n_refiner_layers": block_count(shapes, "noise_refiner."),
            "n_heads": heads,
            "n_kv_heads": heads,
            "qk_norm": True,
            "cap_feat_dim": shapes["cap_embedder.1.weight"][1],
            "axes_dims": rope_axes(base, "axes_dims", head_dim, (32, 48, 48)),
            **{k: base[k] for k in ("norm_eps", "rope_theta", "t_scale", "axes_lens") if k in base},
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        qwen3 = read_config("text_encoder/config.json") or {}
        vae = read_config("vae/config.json") or {}
        rope = (read_config("transformer/config.json") or {}).get("axes_dims") or ()
        return mismatches([
            ("Qwen3 width", shapes["cap_embedder.1.weight"][1], qwen3.get("hidden_size")),
            ("latent channels (x4 patched)", shapes["x_embedder.weight"][1], _PATCH * _PATCH * vae.get("latent_channels", 0)),
            ("attention head width", shapes[_HEAD_NORM][0], sum(rope) or None),
        ])

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers

        return convert_z_image_transformer_checkpoint_to_diffusers(dict(state))


TRANSFORMER_FILE = ZImageTransformerFile()
