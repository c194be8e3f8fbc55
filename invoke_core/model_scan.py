"""Models where people already keep them: find every model under a folder (an A1111/Forge `models/`,
ComfyUI's `models/`, InvokeAI's models folder, or any tree of them) and register each in place, no copy.

Layout-agnostic: the probe (invoke_core.model_probe) decides each candidate's family and kind, so
`models/Stable-diffusion`, `models/checkpoints`, `models/Lora`, `models/loras`, `models/ControlNet`,
`models/diffusion_models` and InvokeAI's `sd-1/main/...` are all found the same way. Candidates: diffusers
folders (a `model_index.json`, or a `config.json` beside diffusers weights) and `.safetensors` / `.gguf`
files. Pickle checkpoints (`.ckpt`, `.pt`, `.bin`, `.pth`) are listed as skipped, never opened. A file that
needs an installed base model (a transformer alone) is tried again after the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelInstallError
from .model_install import install_model
from .model_records import ModelRecord, ModelRegistry
from .safe_paths import Forbidden, as_forbidden

WEIGHT_SUFFIXES = (".safetensors", ".gguf")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_ENTRIES = 200_000  # a scan reads at most this many directory entries (a mistaken `/` ends, not hangs)
SKIP_DIRS = {".git", ".cache", "__pycache__", "node_modules", ".venv", ".locks"}


@dataclass
class ScanResult:
    installed: list[ModelRecord] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # paths installed before (as these model ids)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    missing: list[ModelRecord] = field(default_factory=list)  # installed models whose files are gone


def _is_diffusers_folder(path: Path) -> bool:
    if (path / "model_index.json").is_file():
        return True
    return (path / "config.json").is_file() and any(
        (path / name).is_file() for name in ("diffusion_pytorch_model.safetensors", "model.safetensors")
    )


def candidates(folder: Path) -> Iterator[Path]:
    """Diffusers folders (not descended into) and weight files under `folder`, in a stable order; pickle
    files too (the caller skips them). Symlinked folders are not followed (no loops, no escapes)."""
    seen = 0
    stack = [folder]
    while stack:
        current = stack.pop()
        if _is_diffusers_folder(current):
            yield current
            continue
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                return
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    subdirs.append(Path(entry.path))
            elif entry.name.lower().endswith(WEIGHT_SUFFIXES + PICKLE_SUFFIXES) and not entry.name.startswith("."):
                yield Path(entry.path)
        stack.extend(reversed(subdirs))


def missing_models(registry: ModelRegistry) -> list[ModelRecord]:
    """Installed (not built-in) models whose files are not where they were installed from (moved, an
    unmounted drive): reported, never fatal, never removed by a scan."""
    return [r for r in registry.list() if not r.builtin and not Path(r.path).exists()]


def scan(registry: ModelRegistry, folder: str | Path, forbidden: Forbidden | Sequence[Path] | None = None) -> ScanResult:
    """Register every model found under `folder` that is not installed yet."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ModelInstallError(f"no folder at {folder}")
    guard = as_forbidden(forbidden)
    guard.check(root, shown=str(folder))
    result = ScanResult(missing=missing_models(registry))
    known = {Path(r.path): r.id for r in registry.list() if not r.builtin}
    later: list[Path] = []
    for path in candidates(root.resolve()):
        if path in known:
            result.already.append(f"{path} ({known[path]})")
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES and not _maybe_upscaler(path):
            result.skipped.append((str(path), "a pickle checkpoint: never loaded (convert it to .safetensors)"))
            continue
        try:
            result.installed.append(install_model(registry, str(path), forbidden=guard))
        except ModelInstallError as exc:
            if _needs_base(str(exc)):
                later.append(path)
            else:
                result.skipped.append((str(path), str(exc)))
    for path in later:  # transformer files alone: their base may have been found meanwhile
        try:
            result.installed.append(install_model(registry, str(path), forbidden=guard))
        except ModelInstallError as exc:
            result.skipped.append((str(path), str(exc)))
    return result


def _maybe_upscaler(path: Path) -> bool:
    """A .pth / .pt small enough to be an upscaler (A1111's ESRGAN folders, ComfyUI's upscale_models): tried
    through torch's weights-only loader (invoke_core/upscalers.py), refused when it holds anything else."""
    from .upscalers import PICKLE_UPSCALER_SUFFIXES

    try:
        return path.suffix.lower() in PICKLE_UPSCALER_SUFFIXES and path.stat().st_size <= UPSCALER_SCAN_BYTES
    except OSError:
        return False


UPSCALER_SCAN_BYTES = 512 << 20  # the largest upscalers (HAT-L, DAT) are a few hundred MB


def _needs_base(message: str) -> bool:
    return "text encoders" in message or "--base" in message or "base model" in message
