"""The tiny Qwen-Image-architecture demo models (`demo-qwen`, `demo-qwen-controlnet`, `demo-qwen-edit`): random
weights, built in code in seconds, the tokenizer too (families/qwen_tokenizer.py, whose vocabulary holds the
pipelines' prompt templates as whole words, so the system prefix they drop is the same 34 tokens, 64 for
Qwen-Image-Edit's). The edit model's Qwen2-VL processor sees the picture at 56x56 px (4 vision tokens). A small
Qwen2.5-VL (its language model reads the prompt; its vision tower is there as in the released encoder), an
MMDiT of two dual-stream blocks over [text, image] tokens, Qwen-Image's causal 3D VAE (16 channels, its
per-channel latent mean and deviation), flow matching with the resolution shift; a ControlNet of one
block derived from the transformer."""

from __future__ import annotations

from pathlib import Path

_WIDTH = 32  # the language model's


def _text_encoder(vocab_size: int, seed: int):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .qwen_tokenizer import SPECIALS

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size, "hidden_size": _WIDTH, "intermediate_size": 2 * _WIDTH, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
        },
        vision_config={
            "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": _WIDTH,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "fullatt_block_indexes": [0],
            "window_size": 112,
        },
        image_token_id=vocab_size - len(SPECIALS) + SPECIALS.index("<|image_pad|>"),
        vision_start_token_id=vocab_size - len(SPECIALS) + SPECIALS.index("<|vision_start|>"),
        vision_end_token_id=vocab_size - len(SPECIALS) + SPECIALS.index("<|vision_end|>"),
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=vocab_size - len(SPECIALS) + SPECIALS.index("<|im_end|>"),
    )
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _vae(seed: int):
    import torch
    from diffusers import AutoencoderKLQwenImage

    torch.manual_seed(seed)
    # Four levels keep the 8x latent scale; Qwen-Image's per-channel latent statistics (its defaults)
    return AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[]).eval()


def _transformer(seed: int):
    import torch
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(seed)
    return QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=_WIDTH, axes_dims_rope=(2, 2, 4),
    ).eval()


def build_qwenimage_demo(dest: Path) -> Path:
    from diffusers import QwenImagePipeline

    from ..demo import _save_atomically
    from .qwen_tokenizer import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    pipe = QwenImagePipeline(
        transformer=_transformer(seed=71),
        scheduler=_scheduler(),
        vae=_vae(72),
        text_encoder=_text_encoder(len(tokenizer), seed=73),
        tokenizer=tokenizer,
    )
    _save_atomically(pipe, dest)
    return dest


def _scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # Qwen-Image's schedule: the shift grows with the image's token count, exponentially
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
        base_image_seq_len=256, max_image_seq_len=8192, time_shift_type="exponential",
    )


# the words of Qwen-Image-Edit's template (and "(", "'s", "),", as Qwen's vocabulary has them): its system
# prefix is the 64 tokens the pipeline drops
EDIT_TEMPLATE_WORDS = (
    *"Describe the key features of the input image color shape size texture objects background then explain how user"
    " text instruction should alter or modify Generate a new that meets requirements while maintaining consistency"
    " with original where appropriate".split(),
    "(", "'s", "),",
)


def build_qwenimage_edit_demo(dest: Path) -> Path:
    from diffusers import QwenImageEditPipeline
    from transformers import Qwen2VLImageProcessor

    from ..demo import _save_atomically
    from .qwen_processor import PictureProcessor
    from .qwen_tokenizer import qwen_tokenizer

    tokenizer = qwen_tokenizer(extra_words=EDIT_TEMPLATE_WORDS)
    pictures = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2)
    pipe = QwenImageEditPipeline(
        transformer=_transformer(seed=81),
        scheduler=_scheduler(),
        vae=_vae(82),
        text_encoder=_text_encoder(len(tokenizer), seed=83),
        tokenizer=tokenizer,
        processor=PictureProcessor(image_processor=pictures, tokenizer=tokenizer, chat_template=tokenizer.chat_template),
    )
    pipe.register_to_config(processor=("transformers", "Qwen2VLProcessor"))  # as the released folders name it
    _save_atomically(pipe, dest)
    return dest


def build_qwenimage_controlnet_demo(dest: Path, qwen_folder: Path, inpainting: bool = False) -> Path:
    """One block derived from the demo's transformer (InstantX's Qwen-Image ControlNet layout), its
    zero-initialised output projections random, so a control image visibly steers. `inpainting`: an
    inpainting ControlNet's (InstantX Qwen-Image-ControlNet-Inpainting: the mask's packed channels too)."""
    import torch
    from diffusers import QwenImageControlNetModel, QwenImageTransformer2DModel

    from ..demo import _save_atomically

    transformer = QwenImageTransformer2DModel.from_pretrained(qwen_folder / "transformer", local_files_only=True)
    torch.manual_seed(74)
    controlnet = QwenImageControlNetModel.from_transformer(
        transformer, num_layers=1, attention_head_dim=8, num_attention_heads=2, extra_condition_channels=4 if inpainting else 0
    )
    torch.manual_seed(75)
    for block in controlnet.controlnet_blocks:
        torch.nn.init.normal_(block.weight, std=0.5)
    torch.nn.init.normal_(controlnet.controlnet_x_embedder.weight, std=0.5)
    _save_atomically(controlnet.eval(), dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_qwenimage_demo(dest)


def build_controlnet(dest: Path, demo_dir: Path) -> Path:
    main = demo_dir / "qwen"
    if not main.exists():
        build_qwenimage_demo(main)
    return build_qwenimage_controlnet_demo(dest, main)


def build_edit(dest: Path, demo_dir: Path) -> Path:
    return build_qwenimage_edit_demo(dest)
