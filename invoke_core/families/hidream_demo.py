"""The tiny HiDream-I1-architecture demo model (`demo-hidream`): random weights, built in code in seconds,
tokenizers too. Its four text encoders as the released models have them: two CLIPs with projections
(their pooled embeddings side by side are the pooled prompt; 128 positions, as HiDream's long CLIPs
read them), a T5 and a Llama (a small BPE vocabulary of the demo words) whose every layer's hidden states
feed the transformer's blocks; a sparse-MoE transformer of one double and one single block, a 16-channel
VAE, flow matching with a fixed shift."""

from __future__ import annotations

import tempfile
from pathlib import Path

_LLAMA_WIDTH = 32
_T5_WIDTH = 32
_CLIP_PROJECTION = 16  # each CLIP's; the pooled prompt is both: 32


def llama_tokenizer(max_tokens: int = 128):
    """A byte-less Llama BPE of the demo words: '▁'-prefixed words merged from their characters, ASCII
    characters as the fallback (the released Llama 3.1 tokenizer is a 128k BPE)."""
    from transformers import LlamaTokenizer

    from ..demo import _DEMO_WORDS

    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3}
    for c in range(33, 127):
        vocab[chr(c)] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in _DEMO_WORDS:
        piece = "\u2581"
        for char in word:
            if piece + char not in vocab:
                merges.append((piece, char))
                vocab[piece + char] = len(vocab)
            piece += char
    return LlamaTokenizer(vocab=vocab, merges=merges, model_max_length=max_tokens, add_prefix_space=True, legacy=False)


def _llama(vocab_size: int, seed: int, layers: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=_LLAMA_WIDTH, intermediate_size=2 * _LLAMA_WIDTH, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def _transformer(seed: int):
    import torch
    from diffusers import HiDreamImageTransformer2DModel

    torch.manual_seed(seed)
    return HiDreamImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_channels=[_T5_WIDTH, _LLAMA_WIDTH],
        text_emb_dim=2 * _CLIP_PROJECTION,
        num_routed_experts=2,
        num_activated_experts=1,
        axes_dims_rope=(4, 2, 2),  # as HiDream-I1: they add up to the head width
        max_resolution=(64, 64),  # 1024 px: the largest latent the transformer's mask covers
        llama_layers=[0, 1],  # one Llama layer per block
    ).eval()


def build_hidream_demo(dest: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, HiDreamImagePipeline

    from ..demo import _save_atomically, _text_encoder, _tokenizer, _vae
    from .flux_demo import _t5_encoder, _t5_tokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir))
        tokenizer_2 = _tokenizer(Path(tok_dir))
    for t in (tokenizer, tokenizer_2):
        t.model_max_length = 128
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    tokenizer_3 = _t5_tokenizer(128)
    tokenizer_4 = llama_tokenizer()
    pipe = HiDreamImagePipeline(
        transformer=_transformer(seed=41),
        # HiDream-I1 Dev's and Fast's scheduler (Full's is UniPC with the same flow shift)
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        # FLUX.1's VAE, as HiDream ships it
        vae=_vae(42, 16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=_text_encoder(len(tokenizer), bos, eos, hidden=32, projection=_CLIP_PROJECTION, seed=43, positions=128),
        tokenizer=tokenizer,
        text_encoder_2=_text_encoder(len(tokenizer_2), bos, eos, hidden=32, projection=_CLIP_PROJECTION, seed=44, positions=128),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5_encoder(len(tokenizer_3), seed=45, width=_T5_WIDTH),
        tokenizer_3=tokenizer_3,
        text_encoder_4=_llama(len(tokenizer_4), seed=46, layers=2),
        tokenizer_4=tokenizer_4,
    )
    _save_atomically(pipe, dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_hidream_demo(dest)
