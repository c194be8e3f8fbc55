"""The tiny SD 3.5-architecture demo model (`demo-sd3`): random weights, built in code in seconds,
tokenizers too. Two CLIP text encoders with projections and no T5 (`text_encoder_3=None`, as a model
installed without its T5 runs), an MMDiT of two joint blocks, a 16-channel VAE, flow matching."""

from __future__ import annotations

import tempfile
from pathlib import Path


def _transformer(seed: int):
    import torch
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        # the two CLIPs' hidden states side by side (32 + 32); no T5, whose width this would be
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,  # the two CLIPs' pooled projections (32 + 32)
        out_channels=16,
        pos_embed_max_size=64,
    ).eval()


def _vae(seed: int):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # SD's 8x latent scale
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=1.5305,  # SD 3.x's latent scale and shift
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()


def build_sd3_demo(dest: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from ..demo import _save_atomically, _text_encoder, _tokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir))
        tokenizer_2 = _tokenizer(Path(tok_dir), pad_token="!")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pipe = StableDiffusion3Pipeline(
        transformer=_transformer(seed=11),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=_vae(seed=12),
        text_encoder=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=32, seed=13),
        tokenizer=tokenizer,
        text_encoder_2=_text_encoder(len(tokenizer_2), bos, eos, hidden=32, projection=32, seed=14),
        tokenizer_2=tokenizer_2,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    _save_atomically(pipe, dest)
    return dest
