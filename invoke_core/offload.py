"""Running a model larger than the VRAM budget: its weights stay in RAM and stream to the card as the job
needs them, through diffusers' own hooks.

- "model": each component moves to the card while it runs (`enable_model_cpu_offload`): the text encoders
  run and leave, then the denoiser, then the VAE; the speed of "none" when the denoiser alone fits.
- "group": the components' blocks stream to the card in groups, the next group copied on a CUDA stream
  while the current one computes (`apply_group_offloading`, block level, with a stream): for a denoiser
  that does not fit on its own.
- "sequential": one layer at a time (`enable_sequential_cpu_offload`): the least memory, the slowest.
- "auto" picks from the model's size against the budget; on the CPU nothing is offloaded ("none").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OFFLOAD_MODES = ("auto", "none", "model", "group", "sequential")


def choose_offload(mode: str, device: str, model_bytes: int, vram_bytes: int, denoiser_bytes: int | None = None) -> str:
    """The offload a job runs with: `mode` unless "auto"; "none" on the CPU. Auto: "none" when the model
    fits `vram_bytes` (the budget, or the free memory if less), "model" when its largest component (the
    denoiser) fits, else "group"."""
    if mode not in OFFLOAD_MODES:
        from .errors import UnsupportedError

        raise UnsupportedError(f"offload {mode!r}: use one of {', '.join(OFFLOAD_MODES)}")
    if not device.startswith("cuda"):
        return "none"  # (model and group offload need an accelerator to move weights to)
    if mode != "auto":
        return mode
    if model_bytes <= vram_bytes:
        return "none"
    return "model" if (denoiser_bytes or model_bytes) <= vram_bytes * 0.9 else "group"


@contextmanager
def offloaded(pipe: Any, mode: str, device: Any) -> Iterator[None]:
    """While the job runs: `pipe` (its weights in RAM) run with the offload `mode`; the hooks come off after,
    so the cached components are plain modules again for the next job."""
    if mode == "none":
        yield
        return
    import torch

    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif mode == "group":
        from diffusers.hooks import apply_group_offloading

        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                apply_group_offloading(
                    module, onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
                    num_blocks_per_group=1, use_stream=True,
                )
    try:
        yield
    finally:
        _remove_hooks(pipe)


def _remove_hooks(pipe: Any) -> None:
    import torch

    if hasattr(pipe, "remove_all_hooks"):
        pipe.remove_all_hooks()
    from diffusers.hooks import HookRegistry

    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            for sub in module.modules():
                registry = getattr(sub, "_diffusers_hook", None)
                if isinstance(registry, HookRegistry):
                    for name in list(registry.hooks):
                        registry.remove_hook(name, recurse=False)
            module.to("cpu")
