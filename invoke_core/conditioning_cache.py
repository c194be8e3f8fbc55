"""Prompt conditioning kept between jobs.

An illustrator iterates on one prompt (inpaint, move the box, inpaint again) and live painting runs the same
prompt on every stroke: the text encoders' output is the same each time, so it is computed once (ComfyUI
likewise keeps a text-encode node's output while its input is unchanged). The entries live on the last text
encoder module itself, so they go when the model is evicted; only the newest entries of one device and
dtype are kept, and encoders carrying LoRA adapters (whose output depends on them) are never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import torch

ENTRIES = 32  # texts kept per model: a few MB of embeddings at most
_ATTR = "_invoke_canvas_conditioning"
T = TypeVar("T")


def shared(encoders: Sequence[Any], device: Any, dtype: Any) -> OrderedDict | None:
    """The cache of these encoders' conditioning at (device, dtype), or None where none may be kept (no
    encoder module, or adapters on one)."""
    encoders = [e for e in encoders if e is not None]
    holder = encoders[-1] if encoders else None
    if not isinstance(holder, torch.nn.Module) or any(getattr(e, "peft_config", None) for e in encoders):
        return None
    place = (str(device), str(dtype), tuple(id(e) for e in encoders))
    memo = holder.__dict__.get(_ATTR)
    if memo is None or memo[0] != place:  # moved to another device or dtype: the old tensors go
        memo = (place, OrderedDict())
        holder.__dict__[_ATTR] = memo
    return memo[1]


def get(memo: OrderedDict | None, key: Hashable, compute: Callable[[], T]) -> T:
    """`memo[key]`, computed (and kept, the oldest entry dropped past ENTRIES) when missing."""
    if memo is None:
        return compute()
    if key in memo:
        memo.move_to_end(key)
        return memo[key]
    value = memo[key] = compute()
    while len(memo) > ENTRIES:
        memo.popitem(last=False)
    return value
