"""Load models and keep them loaded: an LRU cache keyed by (model, device, dtype) with a memory budget.

A second job on a loaded model loads nothing. Models on the CPU count against the RAM budget, models on
an accelerator against the VRAM budget; the least recently used are dropped first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .devices import DeviceChoice
from .errors import ModelInstallError
from .model_records import ModelRecord


@dataclass
class LoadedModel:
    record: ModelRecord
    device: DeviceChoice
    model: Any  # a diffusers pipeline, or a ControlNetModel
    size_bytes: int
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class CacheStats:
    loads: int
    hits: int
    evictions: int
    ram_used: int
    vram_used: int
    loaded: tuple[str, ...]


def _module_bytes(model: Any) -> int:
    import torch

    modules = model.components.values() if hasattr(model, "components") else [model]
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in module.parameters())
            total += sum(t.numel() * t.element_size() for t in module.buffers())
    return total


def load_model(record: ModelRecord, device: DeviceChoice, cache_dir: Path, compile_backend: str | None = None) -> Any:
    """Read a model from disk onto the device, offline. Pickle files never reach here (refused at install).

    `compile_backend` ("inductor" on a GPU; "eager" only checks the wiring) wraps the UNet in
    torch.compile: the first job pays the compilation, later jobs of the same size run faster.
    """
    import diffusers

    dtype = device.torch_dtype
    path = Path(record.path)
    if not path.exists():
        raise ModelInstallError(f"model {record.id!r}: its files are gone from {path}; reinstall or remove it")
    try:
        if record.format == "single-file":
            from .model_probe import ModelInfo
            from .single_file import load_single_file

            info = ModelInfo(family=record.family, kind=record.kind, format=record.format)
            config_dir = Path(record.config_path) if record.config_path else None
            model = load_single_file(path, info, dtype, config_dir=config_dir, cache_dir=cache_dir)
        elif record.kind == "controlnet":
            from . import families

            cls = getattr(diffusers, families.get(record.family).controlnet_class)
            model = cls.from_pretrained(path, dtype=dtype, local_files_only=True)
        else:
            from . import families

            extra = families.get(record.family).load_extras(record.kind, path)
            model = diffusers.DiffusionPipeline.from_pretrained(
                path, dtype=dtype, local_files_only=True, use_safetensors=True, **extra
            )
    except ModelInstallError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelInstallError(f"model {record.id!r} could not be loaded from {path}: {first}") from exc
    model.to(device.torch_device)
    if hasattr(model, "set_progress_bar_config"):
        model.set_progress_bar_config(disable=True)
    unet = getattr(model, "unet", None)
    if unet is not None and device.device.startswith("cuda"):
        import torch

        unet.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    if unet is not None and compile_backend:
        import torch

        model.unet = torch.compile(unet, backend=compile_backend)
    return model


class ModelCache:
    def __init__(
        self,
        cache_dir: Path,
        ram_budget_bytes: int = 8 << 30,
        vram_budget_bytes: int = 16 << 30,
        compile_backend: str | None = None,
    ):
        self.cache_dir = cache_dir
        self.compile_backend = compile_backend
        # Told (model id, "started" | "finished", seconds) around each load from disk.
        self.on_load: Callable[[str, str, float | None], None] | None = None
        self.ram_budget = ram_budget_bytes
        self.vram_budget = vram_budget_bytes
        self._entries: OrderedDict[tuple[str, str, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._loads = self._hits = self._evictions = 0

    @staticmethod
    def _key(record: ModelRecord, device: DeviceChoice) -> tuple[str, str, str, str]:
        # The hash is part of the key so a reinstalled model under the same id is loaded afresh.
        return (record.id, record.hash, device.device, device.dtype)

    def get(self, record: ModelRecord, device: DeviceChoice) -> LoadedModel:
        key = self._key(record, device)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.last_used = time.monotonic()
                self._hits += 1
                return entry
            if self.on_load:
                self.on_load(record.id, "started", None)
            started = time.perf_counter()
            model = load_model(record, device, self.cache_dir, self.compile_backend)
            entry = LoadedModel(record, device, model, _module_bytes(model), time.perf_counter() - started)
            if self.on_load:
                self.on_load(record.id, "finished", entry.load_seconds)
            self._entries[key] = entry
            self._loads += 1
            self._evict(keep=key)
            return entry

    def _used(self, on_accelerator: bool) -> int:
        return sum(e.size_bytes for e in self._entries.values() if (e.device.device != "cpu") == on_accelerator)

    def _evict(self, keep: tuple[str, str, str, str]) -> None:
        freed_accelerator = False
        for on_accelerator, budget in ((False, self.ram_budget), (True, self.vram_budget)):
            for key in list(self._entries):  # oldest first
                if self._used(on_accelerator) <= budget:
                    break
                if key == keep or (self._entries[key].device.device != "cpu") != on_accelerator:
                    continue
                del self._entries[key]
                self._evictions += 1
                freed_accelerator |= on_accelerator
        if freed_accelerator:
            import torch

            torch.cuda.empty_cache()

    def drop(self, model_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == model_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                loads=self._loads,
                hits=self._hits,
                evictions=self._evictions,
                ram_used=self._used(False),
                vram_used=self._used(True),
                loaded=tuple(k[0] for k in self._entries),
            )
