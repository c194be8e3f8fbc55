"""Regional prompts for transformer families with joint attention (SD 3.x, Flux.1): the image tokens and
the text tokens of [main | region 1 | ... | region N] attend in one softmax, so a region is a bias on that
joint attention. Token order: [image, text] in SD 3.x, whose diffusers processor (JointAttnProcessor2_0)
takes an attention mask and ignores it, so JointRegionalAttnProcessor is that one with the bias added;
[text, image] in Flux.1, whose processor passes `joint_attention_kwargs["attention_mask"]` to SDPA in the
double and single blocks, so the bias alone (`region_bias`) is enough there.

The bias, from each region's mask area-resized to the patch grid, m_i in [0, 1] (the same rules as
the UNet families' cross-attention bias, invoke_core/attention.py):

- image -> region i's text: log(m_i): zero attention from image tokens outside the region;
- image -> main text: log(1 - min(1, sum_i strength_i * m_i));
- image -> image: unbiased;
- a prompt's text -> text: its own slot only (prompts do not mix);
- region i's text -> image: log(m_i) (it reads only its own region, after arXiv 2411.02395); the main
  prompt's text reads the whole image.

Every row keeps finite scores (its own slot, or the image), so no softmax row is all -inf.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def region_bias(
    masks: np.ndarray, tokens: Sequence[int], grid: tuple[int, int], strengths: Sequence[float], text_first: bool = False
) -> torch.Tensor:
    """The (S, S) additive bias over the joint tokens (S = image tokens + all text tokens), from the
    region masks (N, H, W) in [0, 1], the text tokens per slot (main first), the patch grid (h, w)."""
    masks_t = torch.as_tensor(np.asarray(masks, dtype=np.float32))
    if masks_t.ndim != 3 or len(tokens) != masks_t.shape[0] + 1 or len(strengths) != masks_t.shape[0]:
        raise ValueError(f"{masks_t.shape[0]} masks need {masks_t.shape[0] + 1} token counts and as many strengths")
    m = F.adaptive_avg_pool2d(masks_t[:, None], (int(grid[0]), int(grid[1]))).flatten(1).clamp(0, 1)  # (N, I)
    strength = torch.tensor([float(s) for s in strengths], dtype=torch.float32)
    n_img, n_txt = m.shape[1], sum(int(t) for t in tokens)
    image = slice(n_txt, n_txt + n_img) if text_first else slice(0, n_img)
    text = slice(0, n_txt) if text_first else slice(n_img, n_img + n_txt)
    bias = torch.zeros(n_img + n_txt, n_img + n_txt)
    cover = (strength[:, None] * m).sum(0).clamp(max=1)
    start = text.start
    for slot, count in enumerate(int(t) for t in tokens):
        cols = slice(start, start + count)
        bias[image, cols] = (torch.log1p(-cover) if slot == 0 else torch.log(m[slot - 1]))[:, None]
        bias[cols, text] = float("-inf")
        bias[cols, cols] = 0.0
        if slot > 0:
            bias[cols, image] = torch.log(m[slot - 1])[None, :]
        start += count
    return bias


class JointRegionalAttnProcessor:
    """`masks` (N, H, W) in [0, 1] at generation size; `tokens`: text tokens per slot, main first;
    `grid`: (h, w) of the image tokens (the patch grid). With `record` a list, the attention
    probabilities of every call are computed explicitly and appended ({"probs": (B, heads, Q, K)}; a
    test mode)."""

    def __init__(
        self,
        masks: np.ndarray,
        tokens: Sequence[int],
        grid: tuple[int, int],
        strengths: Sequence[float],
        record: list | None = None,
    ):
        self.tokens = [int(t) for t in tokens]
        self.grid = (int(grid[0]), int(grid[1]))
        self.image_tokens = self.grid[0] * self.grid[1]
        self.record = record
        self._bias = region_bias(masks, self.tokens, self.grid, strengths)
        self._cache: dict[tuple, torch.Tensor] = {}

    def bias(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, str(device))
        if key not in self._cache:
            self._cache[key] = self._bias.to(device=device, dtype=dtype)
        return self._cache[key]

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None, attention_mask=None, *args, **kwargs):
        n_txt = sum(self.tokens)
        if encoder_hidden_states is None or encoder_hidden_states.shape[1] != n_txt or hidden_states.shape[1] != self.image_tokens:
            from diffusers.models.attention_processor import JointAttnProcessor2_0

            return JointAttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        batch_size = hidden_states.shape[0]
        heads = attn.heads

        def split(x: torch.Tensor, head_dim: int) -> torch.Tensor:
            return x.view(batch_size, -1, heads, head_dim).transpose(1, 2)

        key = attn.to_k(hidden_states)
        head_dim = key.shape[-1] // heads
        query, key, value = split(attn.to_q(hidden_states), head_dim), split(key, head_dim), split(attn.to_v(hidden_states), head_dim)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        c_query = split(attn.add_q_proj(encoder_hidden_states), head_dim)
        c_key = split(attn.add_k_proj(encoder_hidden_states), head_dim)
        c_value = split(attn.add_v_proj(encoder_hidden_states), head_dim)
        if attn.norm_added_q is not None:
            c_query = attn.norm_added_q(c_query)
        if attn.norm_added_k is not None:
            c_key = attn.norm_added_k(c_key)
        query = torch.cat([query, c_query], dim=2)  # [image, text]
        key = torch.cat([key, c_key], dim=2)
        value = torch.cat([value, c_value], dim=2)

        bias = self.bias(query.dtype, query.device)[None, None]
        if self.record is None:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0, is_causal=False)
        else:
            scores = query @ key.transpose(-1, -2) * (head_dim**-0.5) + bias
            probs = scores.float().softmax(dim=-1).to(query.dtype)
            self.record.append({"probs": probs.detach().float().cpu()})
            out = probs @ value
        out = out.transpose(1, 2).reshape(batch_size, -1, heads * head_dim).to(query.dtype)
        image, text = out[:, : self.image_tokens], out[:, self.image_tokens :]
        if not attn.context_pre_only:
            text = attn.to_add_out(text)
        image = attn.to_out[1](attn.to_out[0](image))
        return image, text


@contextmanager
def joint_regional_attention(transformer: Any, processor: JointRegionalAttnProcessor | None) -> Iterator[None]:
    """For one job: `processor` on the joint attention of every transformer block (`...attn`, not the
    image-only `attn2` of dual-attention blocks); the previous processors put back afterwards."""
    if processor is None:
        yield
        return
    before = dict(transformer.attn_processors)
    transformer.set_attn_processor(
        {name: processor if name.endswith(".attn.processor") else proc for name, proc in before.items()}
    )
    try:
        yield
    finally:
        transformer.set_attn_processor(before)
