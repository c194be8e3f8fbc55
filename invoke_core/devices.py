"""Choose the torch device and dtype: cuda or mps with half precision when present, else cpu float32."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidCanvasError

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "float32", "float16", "bfloat16"

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def choose_device(device: str | None = None, dtype: str | None = None) -> DeviceChoice:
    """Pick the best available device unless told; half precision on accelerators, float32 on the CPU."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise InvalidCanvasError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidCanvasError("device cuda requested but this torch build sees no CUDA GPU")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidCanvasError("device mps requested but it is not available")
    if dtype in (None, "", "auto"):
        if kind == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif kind == "mps":
            dtype = "float16"
        else:
            dtype = "float32"
    if dtype not in _DTYPES:
        raise InvalidCanvasError(f"unknown dtype {dtype!r}: use auto, float32, float16 or bfloat16")
    return DeviceChoice(device, _DTYPES[dtype])
