"""How a model's denoiser weights are kept in memory (a per-model option, limits.WEIGHT_STORAGES):

- "native": as loaded, in the job's dtype.
- "fp8": e4m3, each layer cast to the job's dtype as it runs (diffusers' layerwise casting); any device.
- "nf4" / "int8": quantised by bitsandbytes as the denoiser loads (`BitsAndBytesConfig` through
  diffusers' `PipelineQuantizationConfig`), computing in the job's dtype; a CUDA card only, where
  bitsandbytes runs its kernels (diffusers refuses to quantise with it elsewhere).

Text encoders, the VAE and ControlNets stay native: the denoiser is the weight that decides the fit.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .errors import UnsupportedError
from .limits import CUDA_WEIGHT_STORAGES

DENOISERS = ("unet", "transformer")

# bytes a weight takes stored; nf4: 4 bits and a float scale per 64 weights, about 4.5 bits
_BYTES_PER_WEIGHT = {"fp8": 1.0, "int8": 1.0, "nf4": 0.5625}
_BNB_MIN = "0.48"  # 8-bit weights move between RAM and VRAM (`.to`) from this release on


def stored_bytes(loaded: int, float_size: int, storage: str) -> int:
    """What a denoiser of `loaded` bytes at `float_size` bytes a weight takes stored as `storage`."""
    per_weight = _BYTES_PER_WEIGHT.get(storage)
    return loaded if per_weight is None else int(loaded // float_size * per_weight)


def unusable_reason(storage: str, device: str) -> str | None:
    """Why `storage` cannot run on `device` ("cpu", "cuda:0"), or None where it can."""
    if storage not in CUDA_WEIGHT_STORAGES:
        return None
    if not device.startswith("cuda"):
        return f"{storage} weights need a CUDA card (bitsandbytes quantises there); this server runs on the {device}: use native or fp8"
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"{storage} weights need the bitsandbytes package: pip install 'bitsandbytes>={_BNB_MIN}', or use native or fp8"
    return None


def check_usable(storage: str, device: str) -> None:
    reason = unusable_reason(storage, device)
    if reason:
        raise UnsupportedError(reason)


def quantization_config(storage: str, names: list[str], dtype: Any) -> Any | None:
    """The `quantization_config` that loads the denoisers among `names` (pipeline component names) as
    `storage` (nf4 or int8), computing in `dtype`; None when there is nothing to quantise on load."""
    denoisers = [n for n in names if n in DENOISERS]
    if storage not in CUDA_WEIGHT_STORAGES or not denoisers:
        return None
    from diffusers import BitsAndBytesConfig
    from diffusers.quantizers import PipelineQuantizationConfig

    if storage == "nf4":
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return PipelineQuantizationConfig(quant_mapping={name: config for name in denoisers})


def store_fp8(module: Any, compute_dtype: Any) -> None:
    """A loaded denoiser's weights in fp8 (e4m3), each layer cast to `compute_dtype` as it runs (diffusers'
    layerwise casting keeps norms and embeddings as they are)."""
    import torch

    module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
