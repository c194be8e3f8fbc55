"""The tiny FLUX.2-architecture demo models: random weights, built in code in seconds, the tokenizers too.

- `demo-flux2` (FLUX.2 [klein] base): a small Qwen3 causal LM (families/qwen_tokenizer.py) whose layers 9,
  18 and 27 side by side are the prompt's states (as Klein reads its Qwen3), an MMDiT of one double and one
  single block without guidance embedding; CFG as the base (undistilled) Klein models run it.
- `demo-flux2-dev` (FLUX.2 [dev]): a small Mistral 3 (its language model of 30 layers read at 10, 20 and
  30, a Pixtral vision tower as in the released encoder; families/mistral_tokenizer.py), an MMDiT with
  guidance embedding (dev is guidance-distilled), wider than Klein's demo (24, where Klein's is 16).

Both: FLUX.2's VAE (32 channels, 2x2 patchified to 128 and normalised by its batch norm's running
statistics), flow matching with FLUX.2's empirical shift."""

from __future__ import annotations

from pathlib import Path

_QWEN_WIDTH = 16
_QWEN_LAYERS = 27  # Klein reads hidden states 9, 18 and 27


def _qwen3(vocab_size: int, seed: int):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=_QWEN_WIDTH, intermediate_size=2 * _QWEN_WIDTH, num_hidden_layers=_QWEN_LAYERS,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config).eval()


_MISTRAL_WIDTH = 16
_MISTRAL_LAYERS = 30  # dev reads hidden states 10, 20 and 30


def _mistral3(tokenizer, seed: int):
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    config = Mistral3Config(
        text_config={
            "model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": _MISTRAL_WIDTH, "intermediate_size": 2 * _MISTRAL_WIDTH,
            "num_hidden_layers": _MISTRAL_LAYERS, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
            "max_position_embeddings": 1024, "sliding_window": None,
        },
        vision_config={
            "model_type": "pixtral", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "head_dim": 8, "image_size": 64, "patch_size": 16,
        },
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=2,
    )
    torch.manual_seed(seed)
    return Mistral3ForConditionalGeneration(config).eval()


def _transformer(seed: int, heads: int = 2, text_width: int = 3 * _QWEN_WIDTH, guidance: bool = False):
    import torch
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(seed)
    return Flux2Transformer2DModel(
        patch_size=1, in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=heads,
        joint_attention_dim=text_width, timestep_guidance_channels=16, mlp_ratio=2.0, axes_dims_rope=(2, 2, 2, 2),
        guidance_embeds=guidance,
    ).eval()


def _vae(seed: int):
    import torch
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(seed)
    vae = AutoencoderKLFlux2(
        block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=32, norm_num_groups=4, sample_size=64,
    ).eval()
    with torch.no_grad():  # running statistics of its own (a trained VAE's are measured on data)
        vae.bn.running_mean.normal_(0.0, 0.1)
        vae.bn.running_var.uniform_(0.5, 1.5)
    return vae


def build_flux2_demo(dest: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline

    from ..demo import _save_atomically
    from .qwen_tokenizer import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    pipe = Flux2KleinPipeline(
        transformer=_transformer(seed=81),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True),
        vae=_vae(82),
        text_encoder=_qwen3(len(tokenizer), seed=83),
        tokenizer=tokenizer,
        is_distilled=False,
    )
    _save_atomically(pipe, dest)
    return dest


def build_flux2_dev_demo(dest: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline

    from ..demo import _save_atomically
    from .mistral_tokenizer import mistral_tokenizer

    tokenizer = mistral_tokenizer()
    pipe = Flux2Pipeline(
        transformer=_transformer(seed=91, heads=3, text_width=3 * _MISTRAL_WIDTH, guidance=True),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True),
        vae=_vae(92),
        text_encoder=_mistral3(tokenizer, seed=93),
        tokenizer=tokenizer,
    )
    _save_atomically(pipe, dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_flux2_demo(dest)


def build_dev(dest: Path, demo_dir: Path) -> Path:
    return build_flux2_dev_demo(dest)
