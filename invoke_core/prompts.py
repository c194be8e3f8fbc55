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
import re
from typing import Any

import torch

from .errors import InvalidCanvasError


_OPERATOR = re.compile(r"\)\s*\.\s*(blend|and)\s*\(")


def _unescaped(text: str, chars: str) -> list[str]:
    """The characters of `chars` in `text` that are not escaped with a backslash, in order."""
    found, escaped = [], False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in chars:
            found.append(char)
    return found


def _check_syntax(text: str, what: str) -> None:
    """Raise InvalidCanvasError for weighting syntax compel would silently read as plain words."""
    from compel import Compel
    from compel.prompt_parser import Blend

    depth = 0
    for char in _unescaped(text, "()"):
        depth += 1 if char == "(" else -1
        if depth < 0:
            break
    if depth != 0:
        raise InvalidCanvasError(
            f"cannot parse the {what}: unbalanced parentheses (write \\( or \\) for a literal parenthesis)"
        )
    operator = _OPERATOR.search(text)
    if operator and len(_unescaped(text, '"')) % 2:
        raise InvalidCanvasError(f"cannot parse the {what}: unbalanced double quotes in .{operator.group(1)}()")
    try:
        conjunction = Compel.parse_prompt_string(text)
    except Exception as error:  # pyparsing.ParseException, compel's ParsingException and the like
        detail = " ".join(str(error).split()) or type(error).__name__
        raise InvalidCanvasError(f"cannot parse the {what}: {detail}") from None
    if operator and len(conjunction.prompts) < 2 and not any(isinstance(p, Blend) for p in conjunction.prompts):
        raise InvalidCanvasError(
            f"cannot parse the {what}: malformed .{operator.group(1)}(); write it like"
            ' ("a red fox", "a forest").blend(0.7, 0.3) or ("a red fox", "a forest").and()'
        )


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


def encode_prompts(pipe: Any, family: str, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
    """Pipeline kwargs: prompt_embeds, negative_prompt_embeds (with CFG) and for SDXL the pooled embeds.

    Raises InvalidCanvasError for malformed weighting syntax."""
    prompt = prompt or ""
    negative_prompt = negative_prompt or ""
    _check_syntax(prompt, "prompt")
    if do_cfg:
        _check_syntax(negative_prompt, "negative prompt")

    device = pipe._execution_device
    if family == "sdxl":
        encoder = pipe.text_encoder_2 if pipe.text_encoder_2 is not None else pipe.text_encoder
    else:
        encoder = pipe.text_encoder
    dtype = encoder.dtype if encoder is not None else pipe.unet.dtype
    compel = _compel(pipe, family, device, dtype)

    def encode(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        # compel's build_conditioning_tensor, minus its tokenization bookkeeping (which fails on a .blend() with
        # two encoders); SDXL's pooled embeds come from the prompt text, as compel does
        try:
            embeds, _options = compel.build_conditioning_tensor_for_conjunction(compel.parse_prompt_string(text))
            pooled = compel.conditioning_provider.get_pooled_embeddings([text], device=compel.device) if family == "sdxl" else None
        except Exception as error:  # the parser accepts it but compel cannot build it
            detail = " ".join(str(error).split()) or type(error).__name__
            raise InvalidCanvasError(f"cannot use the prompt {text[:60]!r}: {detail}") from None
        embeds = embeds.to(device=device, dtype=dtype)
        return embeds, None if pooled is None else pooled.to(device=device, dtype=dtype)

    if family == "sdxl" and not hasattr(compel.conditioning_provider, "empty_z"):
        # compel pads .and(), .blend() and long prompts with the empty prompt's embeddings; its two-encoder
        # provider lacks them
        with torch.inference_mode():
            compel.conditioning_provider.empty_z = encode("")[0]

    with torch.inference_mode():
        embeds, pooled = encode(prompt)
        result: dict[str, Any] = {"prompt_embeds": embeds}
        if family == "sdxl":
            result["pooled_prompt_embeds"] = pooled
        if not do_cfg:
            return result
        zero_negative = (
            family == "sdxl" and not negative_prompt and bool(pipe.config.get("force_zeros_for_empty_prompt", False))
        )
        if zero_negative:
            negative, negative_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
        else:
            negative, negative_pooled = encode(negative_prompt)
            embeds, negative = compel.pad_conditioning_tensors_to_same_length([embeds, negative])
            result["prompt_embeds"] = embeds
        result["negative_prompt_embeds"] = negative
        if family == "sdxl":
            result["negative_pooled_prompt_embeds"] = negative_pooled
    return result
