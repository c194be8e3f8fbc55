"""The tiny Chroma-architecture demo model (`demo-chroma`): random weights, built in code in seconds, its
T5 tokenizer too. Chroma is FLUX.1 schnell rebuilt: one T5 text encoder (no CLIP), the modulation of every
block from a small "distilled guidance" approximator instead of per-block projections, a 16-channel VAE
with packed 2x2 latents, flow matching with the resolution shift, real CFG with a negative prompt."""

from __future__ import annotations

from pathlib import Path


def _transformer(seed: int):
    import torch
    from diffusers import ChromaTransformer2DModel

    torch.manual_seed(seed)
    return ChromaTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,  # the T5's width
        axes_dims_rope=(2, 2, 4),
        approximator_num_channels=16,
        approximator_hidden_dim=32,
        approximator_layers=1,
    ).eval()


def build_chroma_demo(dest: Path) -> Path:
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

    from ..demo import _save_atomically, _vae
    from .flux_demo import _t5_encoder, _t5_tokenizer

    tokenizer = _t5_tokenizer()
    pipe = ChromaPipeline(
        transformer=_transformer(seed=51),
        # FLUX.1's schedule: the shift grows with the image's token count
        scheduler=FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        ),
        vae=_vae(52, 16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=_t5_encoder(len(tokenizer), seed=53),
        tokenizer=tokenizer,
    )
    _save_atomically(pipe, dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_chroma_demo(dest)
