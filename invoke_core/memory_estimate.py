"""What a model will take in memory once loaded, read from its .safetensors headers before loading it, and
what memory the machine has free: so a load that cannot fit is refused with a message, instead of the
operating system killing the worker half way (RAM) or the device failing part way (VRAM)."""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Iterable
from pathlib import Path

# bytes per element of each safetensors dtype
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def loaded_bytes(files: Iterable[Path], float_size: int) -> int:
    """The bytes these .safetensors files' tensors take once loaded with floats of `float_size` bytes (other
    tensors as stored). Unreadable headers count as their file's size."""
    total = 0
    for path in files:
        try:
            with open(path, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(length))
        except (OSError, ValueError, struct.error):
            total += Path(path).stat().st_size if Path(path).exists() else 0
            continue
        for key, info in header.items():
            if key == "__metadata__" or not isinstance(info, dict):
                continue
            dtype = info.get("dtype", "F32")
            size = float_size if dtype in _FLOATS else _SIZES.get(dtype, 4)
            total += math.prod(info.get("shape") or [1]) * size
    return total


def weight_files(path: Path, names: Iterable[str] | None = None) -> list[Path]:
    """The .safetensors files of a model: a single file, or a folder's (only its `names` subfolders)."""
    path = Path(path)
    if path.is_file():
        return [path]
    roots = [path / n for n in names] if names is not None else [path]
    return [f for root in roots if root.exists() for f in sorted(root.rglob("*.safetensors"))]


def available_memory(device: str) -> int:
    """Bytes the machine can still give: MemAvailable for the CPU, the device's free memory for CUDA."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not refuse


def model_memory(record, dtype: str, weights: str = "native") -> int | None:
    """About what a model takes loaded at `dtype` ("float32", "bfloat16"...) with its weight storage (fp8,
    int8: its denoiser a byte a weight; nf4 about half that); None where its files cannot be read."""
    float_size = 4 if dtype == "float32" else 2
    path = Path(record.path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _memory(str(path), stamp, float_size, weights)


@functools.lru_cache(maxsize=512)
def _memory(path: str, _stamp: int, float_size: int, weights: str) -> int:
    folder = Path(path)
    total = loaded_bytes(weight_files(folder), float_size)
    if weights != "native" and folder.is_dir():
        from .weight_storage import DENOISERS, stored_bytes

        denoiser = loaded_bytes(weight_files(folder, [n for n in DENOISERS if (folder / n).is_dir()]), float_size)
        total -= denoiser - stored_bytes(denoiser, float_size, weights)
    return total
