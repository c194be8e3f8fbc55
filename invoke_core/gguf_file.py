"""GGUF single files (llama.cpp's format; city96's and ComfyUI-GGUF's quantised transformers: Q8_0, Q5_K,
Q4_K, ...): read without loading their tensors, for the probe, and loaded by diffusers' GGUF quantiser,
which keeps the weights quantised and dequantises each layer's as it runs (`GGUFQuantizationConfig`).
No code runs from the file: it is tensors and typed metadata, like .safetensors."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelInstallError

MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def read_gguf_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor name -> shape (torch's order; GGUF stores the dimensions reversed), and name -> quantisation
    type ("Q8_0", "F16", ...). ModelInstallError for a file gguf cannot read."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except ImportError:
        raise ModelInstallError("GGUF files need the gguf package: pip install gguf") from None
    except Exception as exc:  # noqa: BLE001 (a malformed file raises what its bytes lead the reader to: say so, plainly)
        raise ModelInstallError(f"{Path(path).name} is not a readable GGUF file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    shapes = {t.name: tuple(int(d) for d in reversed(list(t.shape))) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    return shapes, types


def quantisation(types: dict[str, str]) -> str:
    """The file's quantisation for people: its most common quantised type ("Q8_0"), else "F16"/"F32"."""
    counts: dict[str, int] = {}
    for name in types.values():
        counts[name] = counts.get(name, 0) + 1
    quantised = {k: v for k, v in counts.items() if k not in ("F32", "F16", "BF16")}
    pool = quantised or counts
    return max(pool, key=pool.get) if pool else "unknown"
