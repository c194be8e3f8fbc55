"""Prompt weighting and long prompts with compel, for SD1.5 and SDXL.

Syntax (compel's): `(word)1.3`, `word++` / `word--` (x1.1 per sign), `("a", "b").blend(0.7, 0.3)`,
`("a", "b").and()`. Prompts longer than 77 tokens are encoded in 77-token chunks (not truncated); the positive
and negative conditioning are padded to the same length.

A prompt without any weighting syntax encodes exactly as the pipeline's own `encode_prompt` does, so plain
prompts give the same images as passing `prompt=` to the pipeline. An empty negative prompt on an SDXL model
with `force_zeros_for_empty_prompt` gives zero negative embeddings, as diffusers does.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from typing import Any, Sequence

import torch

from . import conditioning_cache
from .errors import InvalidCanvasError
from .prompt_syntax import check_syntax as _check_syntax
from .prompt_syntax import memoize_pyparsing, parsing, to_compel


@lru_cache(maxsize=1)
def _compel_parser():
    from compel.prompt_parser import PromptParser

    memoize_pyparsing()  # linear time on nested parentheses (see prompt_syntax)
    return PromptParser()


@lru_cache(maxsize=512)
def _parse(text: str):
    """compel's parse of a prompt, by compel's own classes (its builders check them). One parser kept and
    results cached: a fresh parser rebuilds its grammar on every prompt, which cost a regional job ~100 ms.
    Every prompt reaching here passed check_syntax (its length and nesting limits)."""
    with parsing():  # shared with prompt_syntax: one parse at a time, the collector paused
        return _compel_parser().parse_conjunction(text)


def _compel(pipe: Any, family: str, device: torch.device, dtype: torch.dtype):
    from compel import Compel, ReturnedEmbeddingsType

    common = dict(
        truncate_long_prompts=False,
        device=str(device),
        dtype_for_device_getter=lambda _device: dtype,
    )
    if family == "sdxl":
        tokenizers = [pipe.tokenizer, pipe.tokenizer_2]
        encoders = [pipe.text_encoder, pipe.text_encoder_2]
        # compel prints a deprecation notice for lists of encoders; keep the server log clean
        with contextlib.redirect_stdout(io.StringIO()):
            return Compel(
                tokenizer=tokenizers,
                text_encoder=encoders,
                returned_embeddings_type=ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED,
                requires_pooled=[False, True],
                **common,
            )
    return Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, **common)


def _execution_device(pipe: Any) -> torch.device:
    """Where the text encoder runs: its weights' device, unless accelerate's offload hooks move it
    (diffusers' `_execution_device` walks every component to say so: ~5 ms a job on the demo)."""
    encoder = getattr(pipe, "text_encoder", None)
    if isinstance(encoder, torch.nn.Module) and not hasattr(encoder, "_hf_hook"):
        for parameter in encoder.parameters():
            return parameter.device
    return pipe._execution_device


class PromptEncoder:
    """compel over one pipeline's tokenizers and text encoders: prompts -> conditioning tensors."""

    def __init__(self, pipe: Any, family: str):
        self.pipe, self.family = pipe, family
        self.device = _execution_device(pipe)
        if family == "sdxl":
            encoder = pipe.text_encoder_2 if pipe.text_encoder_2 is not None else pipe.text_encoder
            encoders = [pipe.text_encoder, pipe.text_encoder_2]
        else:
            encoder = pipe.text_encoder
            encoders = [pipe.text_encoder]
        self.dtype = encoder.dtype if encoder is not None else pipe.unet.dtype
        self._compel = None  # made on the first text not in the shared cache
        # text -> (embeds, pooled): a regional job encodes the main negative once per region slot otherwise
        self._memo: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._shared = conditioning_cache.shared(encoders, self.device, self.dtype)  # between jobs

    @property
    def compel(self):
        if self._compel is None:
            self._compel = _compel(self.pipe, self.family, self.device, self.dtype)
            if self.family == "sdxl" and not hasattr(self._compel.conditioning_provider, "empty_z"):
                # compel pads .and(), .blend() and long prompts with the empty prompt's embeddings; its two-encoder
                # provider lacks them
                with torch.inference_mode():
                    self._compel.conditioning_provider.empty_z = self.encode("")[0]
        return self._compel

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeds (1, tokens, dim), pooled (SDXL) or None); the same text is encoded once per encoder."""
        if text not in self._memo:
            self._memo[text] = conditioning_cache.get(self._shared, text, lambda: self._encode(text))
        return self._memo[text]

    def _encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        compel = self.compel
        text = to_compel(text)
        # compel's build_conditioning_tensor, minus its tokenization bookkeeping (which fails on a .blend() with
        # two encoders); SDXL's pooled embeds come from the prompt text, as compel does
        try:
            embeds, _options = compel.build_conditioning_tensor_for_conjunction(_parse(text))
            pooled = (
                compel.conditioning_provider.get_pooled_embeddings([text], device=compel.device)
                if self.family == "sdxl"
                else None
            )
        except Exception as error:  # the parser accepts it but compel cannot build it
            detail = " ".join(str(error).split()) or type(error).__name__
            raise InvalidCanvasError(f"cannot use the prompt {text[:60]!r}: {detail}") from None
        embeds = embeds.to(device=self.device, dtype=self.dtype)
        return embeds, None if pooled is None else pooled.to(device=self.device, dtype=self.dtype)

    def pair(self, prompt: str, negative_prompt: str, do_cfg: bool) -> dict[str, Any]:
        """Pipeline kwargs for one prompt pair; with CFG both sides padded to the same token count."""
        with torch.inference_mode():
            embeds, pooled = self.encode(prompt)
            result: dict[str, Any] = {"prompt_embeds": embeds}
            if self.family == "sdxl":
                result["pooled_prompt_embeds"] = pooled
            if not do_cfg:
                return result
            zero_negative = (
                self.family == "sdxl"
                and not negative_prompt
                and bool(self.pipe.config.get("force_zeros_for_empty_prompt", False))
            )
            if zero_negative:
                negative, negative_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
            else:
                negative, negative_pooled = self.encode(negative_prompt)
                embeds, negative = self.compel.pad_conditioning_tensors_to_same_length([embeds, negative])
                result["prompt_embeds"] = embeds
            result["negative_prompt_embeds"] = negative
            if self.family == "sdxl":
                result["negative_pooled_prompt_embeds"] = negative_pooled
        return result


def encode_prompts(pipe: Any, family: str, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
    """Pipeline kwargs: prompt_embeds, negative_prompt_embeds (with CFG) and for SDXL the pooled embeds.

    Raises InvalidCanvasError for malformed weighting syntax."""
    prompt, negative_prompt = prompt or "", negative_prompt or ""
    _check_syntax(prompt, "prompt")
    if do_cfg:
        _check_syntax(negative_prompt, "negative prompt")
    return PromptEncoder(pipe, family).pair(prompt, negative_prompt, do_cfg)


def encode_regional_prompts(
    pipe: Any,
    family: str,
    prompt: str,
    negative_prompt: str,
    regions: Sequence[tuple[str, str]],
    do_cfg: bool,
) -> tuple[dict[str, Any], list[int]]:
    """Pipeline kwargs with the main prompt's tokens followed by each region's along the token axis
    (prompt_embeds, negative_prompt_embeds, and for SDXL the pooled embeds of the main prompt), and the token
    count of each slot. Every slot is encoded with compel (weights, long prompts); a slot's positive and
    negative sides are padded to the same length, so both CFG branches share one layout.

    `regions`: (prompt, negative_prompt) per region; an empty region negative uses the main negative."""
    prompt, negative_prompt = prompt or "", negative_prompt or ""
    slots_text = [(prompt, negative_prompt)] + [(p or "", n or negative_prompt) for p, n in regions]
    for index, (text, negative) in enumerate(slots_text):
        what = "prompt" if index == 0 else f"prompt of region {index}"
        _check_syntax(text, what)
        if do_cfg:
            _check_syntax(negative, f"negative {what}")
    encoder = PromptEncoder(pipe, family)
    slots = [encoder.pair(text, negative, do_cfg) for text, negative in slots_text]
    result: dict[str, Any] = {"prompt_embeds": torch.cat([s["prompt_embeds"] for s in slots], dim=1)}
    if do_cfg:
        result["negative_prompt_embeds"] = torch.cat([s["negative_prompt_embeds"] for s in slots], dim=1)
    if family == "sdxl":
        result["pooled_prompt_embeds"] = slots[0]["pooled_prompt_embeds"]
        if do_cfg:
            result["negative_pooled_prompt_embeds"] = slots[0]["negative_pooled_prompt_embeds"]
    return result, [s["prompt_embeds"].shape[1] for s in slots]
