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


def build_sd3_demo(dest: Path, t5: bool = False) -> Path:
    """The demo folder; `t5`: with a small T5 (as wide as the transformer's text input, 64) that reads
    prompts past CLIP's 77 tokens, as the released models do."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from ..demo import _save_atomically, _text_encoder, _tokenizer, _vae
    from .flux_demo import _t5_encoder, _t5_tokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir))
        tokenizer_2 = _tokenizer(Path(tok_dir), pad_token="!")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pipe = StableDiffusion3Pipeline(
        transformer=_transformer(seed=11),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        # SD 3.x's latent scale and shift
        vae=_vae(12, 16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=32, seed=13),
        tokenizer=tokenizer,
        text_encoder_2=_text_encoder(len(tokenizer_2), bos, eos, hidden=32, projection=32, seed=14),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5_encoder(len(_t5_tokenizer()), seed=17, width=64) if t5 else None,
        tokenizer_3=_t5_tokenizer() if t5 else None,
    )
    _save_atomically(pipe, dest)
    return dest


def build_sd3_controlnet_demo(dest: Path, sd3_folder: Path, inpainting: bool = False) -> Path:
    """A tiny SD3 ControlNet (one joint block) derived from the demo's transformer; its zero-initialised
    output projections get random weights, so a control image visibly changes the result. `inpainting`:
    one extra input channel for the mask, as SD 3 inpainting ControlNets have."""
    import torch
    from diffusers import SD3ControlNetModel, SD3Transformer2DModel

    from ..demo import _save_atomically

    transformer = SD3Transformer2DModel.from_pretrained(sd3_folder / "transformer", local_files_only=True)
    torch.manual_seed(15)
    controlnet = SD3ControlNetModel.from_transformer(transformer, num_layers=1, num_extra_conditioning_channels=int(inpainting))
    torch.manual_seed(16)
    for block in controlnet.controlnet_blocks:
        block.reset_parameters()
    controlnet.pos_embed_input.proj.reset_parameters()
    _save_atomically(controlnet.eval(), dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_sd3_demo(dest)


def build_controlnet(dest: Path, demo_dir: Path) -> Path:
    main = demo_dir / "sd3"
    if not main.exists():
        build_sd3_demo(main)
    return build_sd3_controlnet_demo(dest, main)


def build_inpaint_controlnet(dest: Path, demo_dir: Path) -> Path:
    main = demo_dir / "sd3"
    if not main.exists():
        build_sd3_demo(main)
    return build_sd3_controlnet_demo(dest, main, inpainting=True)
