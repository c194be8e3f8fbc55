"""Full-size-architecture models with random weights, built here, offline, for the benchmarks.

SD1.5 and SDXL from the configs the package ships (invoke_core/configs: the real architectures), FLUX.1
at full width and reduced depth (24 heads of 128, 3072 wide, T5 context 4096, 2 of its 19 double blocks
and 4 of its 38 single blocks; a CLIP-L-width text encoder of 2 layers; a T5 at T5-XXL width with 2 of
its 24 layers and 128-token prompts; the full 16-channel VAE). `device` builds the modules there (a
GPU initialises billions of parameters in a second); `dtype` is what is saved.
"""

from __future__ import annotations

from pathlib import Path


def _save(pipe, dest: Path, dtype: str) -> Path:
    import torch

    pipe.to(dtype=getattr(torch, dtype))
    pipe.save_pretrained(dest, safe_serialization=True)
    return dest


def build_full_sd15(dest: Path, dtype: str = "float32", device: str = "cpu") -> Path:
    return _build_shipped("sd-1", dest, dtype, device)


def build_full_sdxl(dest: Path, dtype: str = "float32", device: str = "cpu") -> Path:
    return _build_shipped("sdxl", dest, dtype, device)


def _build_shipped(family: str, dest: Path, dtype: str, device: str) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from invoke_core.clip_vocab import load_clip_tokenizer
    from invoke_core.single_file import shipped_config_dir

    cfg = shipped_config_dir(family, "main")
    torch.manual_seed(0)
    tokenizers = dest.parent / "tokenizer-cache"
    with torch.device(device):
        parts = {
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_json_file(cfg / "text_encoder" / "config.json")),
            "tokenizer": load_clip_tokenizer(tokenizers),
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet")),
            "scheduler": EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(cfg / "scheduler")),
        }
        if family == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig.from_json_file(cfg / "text_encoder_2" / "config.json"))
            parts["tokenizer_2"] = load_clip_tokenizer(tokenizers, pad_token="!")
            pipe = StableDiffusionXLPipeline(**parts)
        else:
            pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return _save(pipe, dest, dtype)


def build_flux_width(dest: Path, dtype: str = "float32", device: str = "cpu") -> Path:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from invoke_core.demo import _tokenizer
    from invoke_core.families.flux_demo import _t5_tokenizer

    torch.manual_seed(0)
    tokenizer = _tokenizer(dest.parent / (dest.name + "-tokenizer"))
    tokenizer_2 = _t5_tokenizer(max_tokens=128)
    with torch.device(device):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, norm_num_groups=32,
            sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=2, num_attention_heads=12,
                max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.eos_token_id, hidden_act="quick_gelu",
            )
        )
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer_2), d_model=4096, d_kv=64, d_ff=10240, num_layers=2, num_heads=64,
                feed_forward_proj="gated-gelu", is_encoder_decoder=False, pad_token_id=0, eos_token_id=1,
            )
        )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
    )
    pipe = FluxPipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer,
        text_encoder_2=t5, tokenizer_2=tokenizer_2,
    )
    return _save(pipe, dest, dtype)
