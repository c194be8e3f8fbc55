"""The FLUX.2 transformer in Black Forest Labs' layout (`flux2-dev.safetensors`, `flux-2-klein-4b.safetensors`,
`flux-2-klein-9b.safetensors` and their fine-tunes): `double_blocks.N`, `single_blocks.N`, fused q/k/v, and
the modulation shared by all blocks (`double_stream_modulation_img`, ...), which FLUX.1's blocks carry each.

dev has a guidance embedder (`guidance_in`), Klein none: that is how the file says which of the two it is.
diffusers' converter maps the keys (it reads every size from the tensors); the config comes from the shapes.
"""

from __future__ import annotations

from typing import Any

from .transformer_file import ReadConfig, Shapes, TransformerFile, block_count

_TOP = ("img_in", "txt_in", "time_in", "guidance_in", "final_layer", "double_stream_modulation_img", "double_stream_modulation_txt", "single_stream_modulation")


class Flux2TransformerFile(TransformerFile):
    model_class = "Flux2Transformer2DModel"
    layout = "Black Forest Labs"

    def __init__(self, dev: bool) -> None:
        self.dev = dev

    def is_transformer(self, shapes: Shapes) -> bool:
        flux2 = "img_in.weight" in shapes and "double_stream_modulation_img.lin.weight" in shapes
        return flux2 and ("guidance_in.in_layer.weight" in shapes) == self.dev

    def owns(self, key: str) -> bool:
        return key.split(".", 1)[0] in ("double_blocks", "single_blocks", *_TOP)

    def kind(self, shapes: Shapes) -> str:
        return "main"

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        inner, channels = shapes["img_in.weight"]
        head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
        mlp_in = shapes["double_blocks.0.img_mlp.0.weight"][0]  # SwiGLU: gate and value side by side
        keep = {k: base[k] for k in ("axes_dims_rope", "rope_theta", "eps") if k in base}
        return keep | {
            "patch_size": 1,
            "in_channels": channels,
            "out_channels": shapes["final_layer.linear.weight"][0],
            "num_layers": block_count(shapes, "double_blocks."),
            "num_single_layers": block_count(shapes, "single_blocks."),
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "timestep_guidance_channels": shapes["time_in.in_layer.weight"][1],
            "mlp_ratio": mlp_in / 2 / inner,
            "guidance_embeds": self.dev,
        }

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        encoder = read_config("text_encoder/config.json") or {}
        width = (encoder.get("text_config") or encoder).get("hidden_size", 0)  # Mistral 3 nests its language model's
        vae = read_config("vae/config.json") or {}
        wrong = []
        pipeline = (read_config("model_index.json") or {}).get("_class_name")
        wanted = "Flux2Pipeline" if self.dev else "Flux2KleinPipeline"
        if pipeline != wanted:
            wrong.append(f"a {pipeline} folder (the file is FLUX.2 [{'dev' if self.dev else 'klein'}]'s: it runs on a {wanted} folder)")
        joint = shapes["txt_in.weight"][1]
        if 3 * width != joint:
            wrong.append(f"text encoder width {width} (the file's transformer reads three of its layers, {joint} wide)")
        channels = shapes["img_in.weight"][1]
        if 4 * vae.get("latent_channels", 0) != channels:
            wrong.append(f"VAE latent channels {vae.get('latent_channels')} (the file's transformer takes {channels // 4}, 2x2 patches)")
        return wrong

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

        return convert_flux2_transformer_checkpoint_to_diffusers(dict(state))


KLEIN = Flux2TransformerFile(dev=False)
DEV = Flux2TransformerFile(dev=True)
