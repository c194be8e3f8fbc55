"""The built-in demo models: tiny Stable-Diffusion-architecture models with random weights.

Built offline and deterministically (fixed seeds, fixed vocabulary) so the app and the tests run with
no download. They make noise-like pictures: they prove the pipeline works, not that it draws.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .clip_vocab import bytes_to_unicode

DEMO_LABEL = "random weights: install a real model for real images"

# Words the demo tokenizer knows as whole tokens; anything else falls back to single bytes.
_DEMO_WORDS = (
    "a an the of and in on at with to photo painting portrait landscape lighthouse dusk night day "
    "cat dog bird tree sky sea mountain city house red blue green yellow black white light dark "
    "beautiful detailed sharp blurry ugly bad quality art style"
).split()


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = [(ranks.get(p, len(ranks) + 1), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def write_demo_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """Write a small CLIP BPE vocabulary: all bytes, the demo words built up by merges, the specials."""
    alphabet = list(bytes_to_unicode().values())
    vocab: list[str] = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in _DEMO_WORDS:
        # Add merges until BPE (lowest rank first, as CLIP applies them) yields the whole word.
        while len(symbols := _bpe(word, ranks)) > 1:
            ranks[(symbols[0], symbols[1])] = len(ranks)
            merges.append(f"{symbols[0]} {symbols[1]}")
            vocab.append(symbols[0] + symbols[1])
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def _tokenizer(folder: Path, pad_token: str = "<|endoftext|>"):
    from transformers import CLIPTokenizer

    vocab_file, merges_file = write_demo_tokenizer_files(folder)
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77, pad_token=pad_token)


def _text_encoder(vocab_size: int, bos: int, eos: int, hidden: int, projection: int | None, seed: int, positions: int = 77):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=positions,  # HiDream's CLIPs read 128 tokens
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=projection or hidden,
        hidden_act="quick_gelu",
    )
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def _vae(seed: int, latent_channels: int = 4, **latent_format):
    """A tiny VAE; `latent_format`: the family's scaling (and shift) and quant convs (SD: 4 channels,
    0.18215; SD 3.x: 16 channels, its scale and shift, no quant convs)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    # Four levels keep SD's 8x latent scale; two would give 2x.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=64,
        **({"scaling_factor": 0.18215} | latent_format),
    ).eval()


def _unet(in_channels: int, cross_dim: int, seed: int, sdxl: bool = False):
    import torch
    from diffusers import UNet2DConditionModel

    extra = {}
    if sdxl:
        # SDXL conditions on pooled text embeds + 6 size/crop numbers through "text_time".
        extra = dict(
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=cross_dim // 2 + 6 * 8,
            transformer_layers_per_block=(1, 1),
            use_linear_projection=True,
        )
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D") if not sdxl else ("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D") if not sdxl else ("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=cross_dim,
        attention_head_dim=(2, 4) if sdxl else 8,
        norm_num_groups=8,
        **extra,
    ).eval()


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    # SD 1.x / SDXL noise schedule.
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        prediction_type="epsilon",
        timestep_spacing="leading",
    )


def _save_atomically(pipe_or_model, dest: Path) -> None:
    """Save to a temporary sibling then rename, so a crash never leaves half a model folder."""
    from .atomic import build_folder

    build_folder(dest, lambda tmp: pipe_or_model.save_pretrained(tmp, safe_serialization=True))


def build_sd15_demo(dest: Path, inpaint: bool = False) -> Path:
    """A tiny SD1.5-architecture pipeline folder (4- or 9-channel UNet) at `dest`."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(
        vae=_vae(seed=1),
        text_encoder=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=None, seed=2),
        tokenizer=tokenizer,
        unet=_unet(9 if inpaint else 4, cross_dim=32, seed=3),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    _save_atomically(pipe, dest)
    return dest


def build_sdxl_demo(dest: Path, inpaint: bool = False) -> Path:
    """A tiny SDXL-architecture pipeline folder (two text encoders) at `dest`."""
    from diffusers import StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir) / "1")
        tokenizer_2 = _tokenizer(Path(tok_dir) / "2", pad_token="!")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLPipeline
    pipe = cls(
        vae=_vae(seed=11),
        text_encoder=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=None, seed=12),
        text_encoder_2=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=32, seed=13),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=_unet(9 if inpaint else 4, cross_dim=64, seed=14, sdxl=True),
        scheduler=_scheduler(),
    )
    _save_atomically(pipe, dest)
    return dest


def build_controlnet_demo(dest: Path, sd15_folder: Path) -> Path:
    """A tiny ControlNet derived from the 4-channel UNet of a demo pipeline folder (SD1.5 or SDXL; a
    9-channel UNet cannot seed one).

    `from_unet` zero-initialises the output convolutions, as ControlNet training starts: such a ControlNet
    adds nothing. The demo gives them random weights, so a control image visibly changes the result.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(sd15_folder / "unet", local_files_only=True)
    torch.manual_seed(4)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32))
    torch.manual_seed(5)
    zero_convs = (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block)
    for conv in (*zero_convs, controlnet.controlnet_cond_embedding.conv_out):
        conv.reset_parameters()
    _save_atomically(controlnet.eval(), dest)
    return dest
