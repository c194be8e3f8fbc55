"""Masked cross-attention for regional prompts.

The text conditioning of a regional job is the concatenation, along the token axis, of the main prompt's
tokens and each region's tokens: [main | region 1 | ... | region N], 77 tokens a slot or a multiple of 77 for
long prompts (SDXL's pooled embeds come from the main prompt). The negative side is laid
out the same way (a region's slot holds its own negative prompt, or the main negative when it has none),
so the two CFG branches have equal shapes and share one attention bias.

In every cross-attention layer (self-attention is untouched) the processor adds a bias to the attention
scores, computed at that layer's resolution from each region's mask area-resized (adaptive average pool)
to the layer's grid, m_i in [0, 1]:

- region i's tokens: log(m_i), so -inf (zero attention) wherever the downsampled mask is 0;
- the main prompt's tokens: log(1 - min(1, sum_i strength_i * m_i)): fully available where no region
  covers, biased down inside regions (a region of strength 0: no bias, strength 1: only the region's tokens
  inside a fully covered cell). Every query row keeps a finite score, so the softmax never sees a row of
  -inf: the main bias is -inf only where some m_i > 0.

The conditioning itself is built by `invoke_core.prompts.encode_regional_prompts` (compel: weights and long
prompts per slot, so a slot may hold 77, 154, ... tokens).

`regional_attention` installs the processor on the cross-attention layers of the UNet (and of ControlNets,
which see the same concatenated text) for one job and restores the previous processors afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_STRENGTH = 0.8


class RegionalAttnProcessor:
    """Cross-attention with a per-region token mask; `masks` (N, H, W) in [0, 1] at generation size.

    `tokens`: the number of text tokens per prompt slot, main first. `latent_size`: (h, w) of the UNet input;
    a layer's grid is found by halving it (rounding up, as a stride-2 conv does) until it matches the query
    length. With `record` set to a list, the attention probabilities of every call are computed explicitly
    and appended as {"size": (h, w), "probs": (B, heads, Q, K) float32 CPU} (a test mode; slower).
    """

    def __init__(
        self,
        masks: np.ndarray | torch.Tensor,
        tokens: Sequence[int],
        latent_size: tuple[int, int],
        strength: float | Sequence[float] = DEFAULT_STRENGTH,
        record: list | None = None,
    ):
        masks = torch.as_tensor(np.asarray(masks, dtype=np.float32))
        if masks.ndim != 3 or len(tokens) != masks.shape[0] + 1:
            raise ValueError(f"{masks.shape[0]} masks need {masks.shape[0] + 1} token counts, got {len(tokens)}")
        strengths = [float(strength)] * masks.shape[0] if np.isscalar(strength) else [float(s) for s in strength]
        if len(strengths) != masks.shape[0] or not all(0 <= s <= 1 for s in strengths):
            raise ValueError(f"need one strength in [0, 1] per region, got {strength!r}")
        self.masks = masks[:, None]  # (N, 1, H, W)
        self.tokens = [int(t) for t in tokens]
        self.total_tokens = sum(self.tokens)
        self.latent_size = (int(latent_size[0]), int(latent_size[1]))
        self.strengths = torch.tensor(strengths, dtype=torch.float32)
        self.record = record
        self._cache: dict[tuple, torch.Tensor] = {}

    def grid(self, query_length: int) -> tuple[int, int]:
        h, w = self.latent_size
        while h * w > query_length:
            h, w = -(-h // 2), -(-w // 2)
        if h * w != query_length:
            raise RuntimeError(f"cannot place {query_length} query positions on a grid of latents {self.latent_size}")
        return h, w

    def downsampled(self, size: tuple[int, int]) -> torch.Tensor:
        """(N, h*w): each region's mask area-resized to the grid."""
        if self.masks.shape[0] == 0:
            return torch.zeros((0, size[0] * size[1]))
        return F.adaptive_avg_pool2d(self.masks, size).flatten(1).clamp(0, 1)

    def bias(self, query_length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (query_length, dtype, str(device))
        if key not in self._cache:
            m = self.downsampled(self.grid(query_length))  # (N, Q) float32
            cover = (self.strengths[:, None] * m).sum(0).clamp(max=1)
            parts = [torch.log1p(-cover)[:, None].expand(query_length, self.tokens[0])]
            for i, count in enumerate(self.tokens[1:]):
                parts.append(torch.log(m[i])[:, None].expand(query_length, count))
            self._cache[key] = torch.cat(parts, dim=1).to(device=device, dtype=dtype)
        return self._cache[key]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is None or encoder_hidden_states.shape[1] != self.total_tokens:
            from diffusers.models.attention_processor import AttnProcessor2_0

            return AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return self.attend(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    def attend(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, temb=None, image_attention=None):
        """The masked cross-attention; `image_attention(query, batch_size, head_dim, grid)`, when given, adds
        an IP-Adapter's image attention (RegionalIPAdapterAttnProcessor) before the output projection."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = encoder_hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        bias = self.bias(query.shape[2], query.dtype, query.device)[None, None]  # (1, 1, Q, K)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            bias = bias + attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if self.record is None:
            hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0)
        else:
            scores = query @ key.transpose(-1, -2) * (head_dim**-0.5) + bias
            probs = scores.float().softmax(dim=-1).to(query.dtype)
            self.record.append({"size": self.grid(query.shape[2]), "probs": probs.detach().float().cpu()})
            hidden_states = probs @ value

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        if image_attention is not None:
            extra = image_attention(query, batch_size, head_dim, self.grid(query.shape[2]))
            if extra is not None:
                hidden_states = hidden_states + extra
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class RegionalIPAdapterAttnProcessor:
    """A cross-attention layer with regions and IP-Adapters: the regional processor's masked attention to the text
    tokens, plus the layer's IP-Adapter attention to each reference's image tokens (its diffusers
    IPAdapterAttnProcessor2_0: the same to_k_ip / to_v_ip, the same scales, set per step), each reference's
    `ip_adapter_masks` entry (its regions' mask, diffusers' IPAdapterMaskProcessor layout) area-resized to
    the layer's grid as the region masks are. Without the regional tokens (a ControlNet's text): the IP-Adapter
    processor alone."""

    def __init__(self, regional: RegionalAttnProcessor, ip: Any):
        self.regional, self.ip = regional, ip

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, scale=1.0, ip_adapter_masks=None):
        if not isinstance(encoder_hidden_states, tuple) or encoder_hidden_states[0].shape[1] != self.regional.total_tokens:
            return self.ip(attn, hidden_states, encoder_hidden_states, attention_mask, temb, ip_adapter_masks=ip_adapter_masks)
        text, images = encoder_hidden_states
        masks = list(ip_adapter_masks) if ip_adapter_masks is not None else [None] * len(self.ip.scale)
        if not len(masks) == len(self.ip.scale) == len(images):
            raise ValueError(f"{len(masks)} IP-Adapter masks for {len(self.ip.scale)} adapters and {len(images)} image embeddings")

        def image_attention(query, batch_size, head_dim, grid):
            out = None
            for states, weight, to_k, to_v, mask in zip(images, self.ip.scale, self.ip.to_k_ip, self.ip.to_v_ip, masks):
                if isinstance(weight, list):
                    raise ValueError("one IP-Adapter scale per reference, not per picture")
                if weight == 0:
                    continue  # as diffusers' processor: a scale of 0 adds nothing
                key = to_k(states).view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
                value = to_v(states).view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
                found = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0)
                found = found.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
                if mask is not None:  # (1, 1, H, W) at the generation size -> (1, Q, 1) on the layer's grid
                    m = F.adaptive_avg_pool2d(mask[:, :1].to(device=query.device, dtype=torch.float32), grid)
                    found = found * m.flatten(2).transpose(1, 2).to(query.dtype)
                out = weight * found if out is None else out + weight * found
            return out

        return self.regional.attend(attn, hidden_states, text, attention_mask, temb, image_attention)


def _is_ip_adapter(processor: Any) -> bool:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0

    return isinstance(processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0))


def cross_attention_names(model: Any) -> list[str]:
    """The processor keys (as in `model.attn_processors`) of the model's cross-attention layers."""
    return [f"{name}.processor" for name, module in model.named_modules() if getattr(module, "is_cross_attention", False)]


@contextmanager
def regional_attention(models: Sequence[Any], processor: RegionalAttnProcessor | None) -> Iterator[None]:
    """Install `processor` on the cross-attention layers of `models` (UNet, ControlNets) for the block;
    the previous processors (the very same objects) are put back afterwards. None: a no-op."""
    saved: list[tuple[Any, dict]] = []
    try:
        if processor is not None:
            for model in models:
                original = dict(model.attn_processors)
                saved.append((model, original))
                cross = set(cross_attention_names(model))
                # set_attn_processor pops from the dict it is given: always hand it a fresh one
                # a layer carrying a job's IP-Adapters (reference layers) keeps them beside the regions
                model.set_attn_processor({
                    k: ((RegionalIPAdapterAttnProcessor(processor, v) if _is_ip_adapter(v) else processor) if k in cross else v)
                    for k, v in original.items()
                })
        yield
    finally:
        for model, original in reversed(saved):
            model.set_attn_processor(dict(original))
