"""The tiny Z-Image-architecture demo models (`demo-zimage`, `demo-zimage-controlnet`): random weights,
built in code in seconds, the tokenizer too (families/qwen_tokenizer.py). A small Qwen3 text encoder (its
second-to-last layer's states of the chat-templated prompt are the caption), a single-stream transformer
of one layer after one noise and one caption refiner, FLUX.1's 16-channel VAE, flow matching with a fixed
shift; a ControlNet of one control layer that shares the transformer's embedders (as Z-Image's do)."""

from __future__ import annotations

from pathlib import Path

_QWEN_WIDTH = 32


def qwen3_encoder(vocab_size: int, seed: int, width: int = _QWEN_WIDTH):
    import torch
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=1024, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return Qwen3Model(config).eval()


def _transformer(seed: int):
    import torch
    from diffusers import ZImageTransformer2DModel

    torch.manual_seed(seed)
    return ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=1, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, cap_feat_dim=_QWEN_WIDTH, axes_dims=[4, 6, 6], axes_lens=[256, 128, 128],
    ).eval()


def build_zimage_demo(dest: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    from ..demo import _save_atomically, _vae
    from .qwen_tokenizer import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    pipe = ZImagePipeline(
        transformer=_transformer(seed=61),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),  # Z-Image Turbo's
        vae=_vae(62, 16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=qwen3_encoder(len(tokenizer), seed=63),
        tokenizer=tokenizer,
    )
    _save_atomically(pipe, dest)
    return dest


def build_zimage_controlnet_demo(dest: Path, inpaints: bool = True) -> Path:
    """A Z-Image ControlNet in Fun Controlnet Union 2.x's layout (which inpaints too: the control image's,
    the mask's and the masked image's latents in): control layers at the transformer's layer 0 and a
    control noise refiner, random output projections, so a control image visibly steers. `inpaints`
    False: the first Union's layout (the control image's latents only: text to image)."""
    import torch
    from diffusers import ZImageControlNetModel

    from ..demo import _save_atomically

    torch.manual_seed(64)
    controlnet = ZImageControlNetModel(
        control_layers_places=[0], control_refiner_layers_places=[0], control_in_dim=33 if inpaints else 16,  # Union 2.x: control, mask, masked image
        add_control_noise_refiner="control_noise_refiner", all_patch_size=(2,), all_f_patch_size=(1,), dim=32,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2,
    ).eval()
    torch.manual_seed(65)
    for name, module in controlnet.named_modules():
        if name.endswith("after_proj") and isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.5)  # zero-initialised when trained from scratch
    _save_atomically(controlnet, dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_zimage_demo(dest)


def build_controlnet(dest: Path, demo_dir: Path) -> Path:
    return build_zimage_controlnet_demo(dest)
