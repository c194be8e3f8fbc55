"""Load models and keep them loaded, as components shared across models, within a RAM and a VRAM budget.

A diffusers pipeline folder is loaded component by component where it can be: each torch component (text
encoders, UNet or transformer, VAE) is cached under its content hash (invoke_core/component_hashes.py), so
a component several installed models ship (the T5 of FLUX.1 dev, schnell, Fill and Kontext) is loaded once
and shared, and the next model's first job reads only what differs. ControlNets, single files and
transformer files are one component each. A loaded model (`LoadedModel`) is its pipeline, assembled from
its components (diffusers reads its tokenizers and scheduler, which are small).

Two tiers: a component on an accelerator counts against the VRAM budget, on the CPU against the RAM
budget. Every component a job gets is pinned until the job ends (`ModelCache.job`); nothing pinned is
evicted, even over budget. When a model is loaded, the least recently used unpinned components go until
each tier fits: from VRAM to RAM (moved, and moved back when a job needs them), from RAM dropped. A second
job on a loaded model loads nothing. Resident models (`ModelCache.resident`: the "keep loaded" ones) are
evicted only when the others are gone and they still do not fit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .devices import DeviceChoice
from .errors import ModelInstallError, OutOfMemoryError
from .memory_estimate import available_memory, loaded_bytes, weight_files
from .model_records import GENERATING_KINDS, ModelRecord
from .weight_storage import DENOISERS, check_usable, quantization_config, store_fp8, stored_bytes


@dataclass
class Component:
    """A cached module: a pipeline component, or a whole model loaded as one."""

    key: str  # its content hash with the device and dtype it is loaded for
    name: str  # its name in the pipeline ("text_encoder_2", "transformer"), or the record's kind
    module: Any
    size_bytes: int
    load_seconds: float
    users: set[str] = field(default_factory=set)  # the models whose pipelines use it
    last_used: float = field(default_factory=time.monotonic)
    pins: int = 0  # jobs using it now

    @property
    def tier(self) -> str:
        return "ram" if _module_device(self.module) == "cpu" else "vram"


@dataclass
class LoadedModel:
    record: ModelRecord
    device: DeviceChoice
    model: Any  # a diffusers pipeline, or a ControlNetModel
    size_bytes: int
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)
    components: tuple[str, ...] = ()  # its components' keys
    loaded: tuple[str, ...] = ()  # the names of the components its load read from disk (not shared)
    offload: str = "none"  # how its jobs stream it to the device (invoke_core/offload.py); else it is there


@dataclass(frozen=True)
class ComponentStats:
    name: str
    key: str
    tier: str
    size_bytes: int
    last_used: float  # time.monotonic() of its last use
    pinned: bool
    models: tuple[str, ...]


@dataclass(frozen=True)
class CacheStats:
    loads: int  # models loaded (at least one component read from disk)
    hits: int  # jobs on a loaded model
    evictions: int  # components dropped
    ram_used: int
    vram_used: int
    loaded: tuple[str, ...]  # model ids, least recently used first
    components: tuple[ComponentStats, ...] = ()
    component_loads: int = 0  # components read from disk
    offloads: int = 0  # components moved from VRAM to RAM
    ram_budget: int = 0
    vram_budget: int = 0


def _module_bytes(model: Any) -> int:
    import torch

    modules = model.components.values() if hasattr(model, "components") else [model]
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in module.parameters())
            total += sum(t.numel() * t.element_size() for t in module.buffers())
    return total


def _module_device(module: Any) -> str:
    """Where a module's (or a pipeline's first module's) weights are: "cpu" or the accelerator."""
    import torch

    modules = module.components.values() if hasattr(module, "components") else [module]
    for m in modules:
        if isinstance(m, torch.nn.Module):
            for t in m.parameters():
                return "cpu" if t.device.type == "cpu" else str(t.device)
    return "cpu"


def load_model(
    record: ModelRecord, device: DeviceChoice, cache_dir: Path, shared: dict[str, Any] | None = None,
    quantization: Any | None = None,
) -> Any:
    """Read a model from disk onto the device, offline. Pickle files never reach here (refused at install).
    `shared`: components of a diffusers pipeline folder already loaded (by name), used instead of reading them.
    `quantization`: a pipeline folder's `quantization_config` (weight_storage.quantization_config).

    """
    import diffusers

    dtype = device.torch_dtype
    path = Path(record.path)
    if not path.exists():
        raise ModelInstallError(f"model {record.id!r}: its files are gone from {path}; reinstall or remove it")
    try:
        if record.kind == "upscaler":  # a spandrel model (invoke_core/upscalers.py), onto the device in its dtype
            from .upscalers import load_upscaler

            return load_upscaler(path, device)
        if record.kind in ("ip_adapter", "image_encoder"):  # a reference layer's (invoke_core/ip_adapter_run.py)
            from .ip_adapter_run import load_adapter, load_image_encoder

            model = (load_adapter if record.kind == "ip_adapter" else load_image_encoder)(path, dtype)
        elif record.format == "single-file":
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
            if quantization is not None:
                extra["quantization_config"] = quantization
            model = diffusers.DiffusionPipeline.from_pretrained(
                path, dtype=dtype, local_files_only=True, use_safetensors=True, **(shared or {}), **extra
            )
    except ModelInstallError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelInstallError(f"model {record.id!r} could not be loaded from {path}: {first}") from exc
    model.to(device.torch_device)
    if hasattr(model, "set_progress_bar_config"):
        model.set_progress_bar_config(disable=True)
    return model  # channels_last, fused projections, torch.compile: per job, invoke_core/fast_path.py


class ModelCache:
    def __init__(
        self,
        cache_dir: Path,
        ram_budget_bytes: int = 8 << 30,
        vram_budget_bytes: int = 16 << 30,
        share_components: bool = True,
        offload: str = "auto",
    ):
        self.cache_dir = cache_dir
        self.share_components = share_components  # False: every model loads its own (bench/bench_cache.py)
        self.offload = offload  # invoke_core/offload.py's modes: a model over the VRAM budget stays in RAM
        # Told (model id, "started" | "finished", seconds, components) around each load from disk;
        # `components`: [{"name", "bytes", "shared"}] once finished.
        self.on_load: Callable[..., None] | None = None
        self.on_drop: Callable[[Any], None] | None = None  # told each module it lets go (the fast path's graphs)
        self.ram_budget = ram_budget_bytes
        self.vram_budget = vram_budget_bytes
        self._models: OrderedDict[tuple[str, str, str, str, str], LoadedModel] = OrderedDict()
        self._components: OrderedDict[str, Component] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self._scope = threading.local()  # the pins of the job running on this thread
        self.resident: set[str] = set()  # model ids kept loaded while they fit
        # a model's weight storage (limits.WEIGHT_STORAGES), asked at each get (the engine's registry options)
        self.weights: Callable[[ModelRecord], str] = lambda record: "native"
        # free memory on a device ("cpu", "cuda:0"), asked before each load (a test sets its own)
        self.available_memory: Callable[[str], int] = available_memory
        self._loads = self._hits = self._evictions = self._component_loads = self._offloads = 0

    def _key(self, record: ModelRecord, device: DeviceChoice) -> tuple[str, str, str, str, str]:
        # The hash is part of the key so a reinstalled model under the same id is loaded afresh; the
        # storage, so a change of it loads the model again.
        return (record.id, record.hash, device.device, device.dtype, self.weights(record))

    # ---- jobs ---------------------------------------------------------------------------------------------
    @contextmanager
    def job(self) -> Iterator[None]:
        """While a job runs: every component it gets is pinned (never evicted), until it ends."""
        stack = self._scope.__dict__.setdefault("stack", [])
        pinned: list[str] = []
        stack.append(pinned)
        try:
            yield
        finally:
            stack.pop()
            with self._lock:
                for key in pinned:
                    if key in self._components:
                        self._components[key].pins -= 1

    def _pin(self, entry: LoadedModel) -> None:
        stack = getattr(self._scope, "stack", None)
        if not stack:
            return
        for key in entry.components:
            self._components[key].pins += 1
            stack[-1].append(key)

    # ---- get ----------------------------------------------------------------------------------------------
    def get(self, record: ModelRecord, device: DeviceChoice) -> LoadedModel:
        key = self._key(record, device)
        with self._lock:
            entry = self._models.get(key)
            if entry is not None and all(k in self._components for k in entry.components):
                self._models.move_to_end(key)
                self._touch(entry, device)
                self._hits += 1
                self._pin(entry)
                return entry
            self._models.pop(key, None)  # a component of it was dropped: assemble it again
            entry = self._load(record, device)
            self._models[key] = entry
            self._pin(entry)
            self._evict()
            return entry

    def _touch(self, entry: LoadedModel, device: DeviceChoice) -> None:
        now = time.monotonic()
        entry.last_used = now
        for key in entry.components:
            component = self._components[key]
            component.last_used = now
            self._components.move_to_end(key)
            if component.tier == "ram" and device.device != "cpu" and entry.offload == "none":
                component.module.to(device.torch_device)  # offloaded to RAM earlier: back for the job

    def _load(self, record: ModelRecord, device: DeviceChoice) -> LoadedModel:
        from .component_hashes import component_hashes

        by_parts = record.format == "diffusers" and record.kind in GENERATING_KINDS
        storage = self.weights(record) if by_parts else "native"
        check_usable(storage, device.device)  # nf4 / int8 on the CPU: refused before anything is read
        hashes = component_hashes(Path(record.path), self.cache_dir / "component-hashes.json") if by_parts else {}
        offload, device = self._offload_for(record, device, list(hashes) if hashes else None, storage)
        suffix = f"|{device.device}|{device.dtype}"
        keys = {name: f"sha256:{digest}{suffix}" + (f"|{storage}" if storage != "native" and name in DENOISERS else "") for name, digest in hashes.items()}
        if not self.share_components:
            keys = {name: f"{k}|{record.id}" for name, k in keys.items()}
        shared = {name: self._components[k].module for name, k in keys.items() if k in self._components}
        to_read = [n for n in keys if n not in shared]
        self._make_room(record, device, to_read if keys else None, storage)
        if self.on_load:
            self.on_load(record.id, "started", None, None)
        started = time.perf_counter()
        quantization = quantization_config(storage, to_read, device.torch_dtype)
        model = load_model(record, device, self.cache_dir, shared=shared, quantization=quantization)
        seconds = time.perf_counter() - started
        now = time.monotonic()
        used: list[str] = []
        read: list[str] = []
        if keys:
            parts = getattr(model, "components", {})
            for name, k in keys.items():
                module = parts.get(name)
                if module is None:
                    continue  # a component the family leaves out (SD 3's T5)
                if k not in self._components:
                    if k.endswith("|fp8"):
                        store_fp8(module, device.torch_dtype)
                    self._components[k] = Component(k, name, module, _module_bytes(module), seconds, last_used=now)
                    self._component_loads += 1
                    read.append(name)
                self._components[k].users.add(record.id)
                self._components[k].last_used = now
                self._components.move_to_end(k)
                used.append(k)
        else:
            k = f"model:{record.hash}:{record.id}{suffix}"
            self._components[k] = Component(k, record.kind, model, _module_bytes(model), seconds, users={record.id}, last_used=now)
            self._component_loads += 1
            used, read = [k], [record.kind]
        self._loads += 1
        entry = LoadedModel(
            record, device, model, sum(self._components[k].size_bytes for k in used), seconds, components=tuple(used), loaded=tuple(read),
            offload=offload,
        )
        if self.on_load:
            parts = [{"name": self._components[k].name, "bytes": self._components[k].size_bytes, "shared": self._components[k].name not in read}
                     for k in used]
            self.on_load(record.id, "finished", seconds, parts)
        return entry

    @staticmethod
    def _bytes(record: ModelRecord, device: DeviceChoice, names: list[str] | None, storage: str) -> tuple[int, int | None]:
        """What the components `names` of a model (all of it: None) take loaded at the device's dtype with
        the denoiser stored as `storage`, from the files' headers; and the denoiser's part (None: none)."""
        import torch

        float_size = torch.empty(0, dtype=device.torch_dtype).element_size()
        if names is None:
            return loaded_bytes(weight_files(Path(record.path), None), float_size), None
        others = loaded_bytes(weight_files(Path(record.path), [n for n in names if n not in DENOISERS]), float_size)
        denoisers = [n for n in names if n in DENOISERS]
        if not denoisers:
            return others, None
        denoiser = stored_bytes(loaded_bytes(weight_files(Path(record.path), denoisers), float_size), float_size, storage)
        return others + denoiser, denoiser

    def _offload_for(self, record: ModelRecord, device: DeviceChoice, names: list[str] | None, storage: str) -> tuple[str, DeviceChoice]:
        """The offload a model runs with (from its size against the VRAM budget and free memory), and the
        device its weights load to: the RAM when it is offloaded. Only diffusers pipeline folders are
        offloaded (`names`: their components); a ControlNet or a single file loads onto the device."""
        if device.device == "cpu" or not names:
            return "none", device
        from .limits import CUDA_WEIGHT_STORAGES
        from .offload import choose_offload

        total, denoiser = self._bytes(record, device, names, storage)
        room = min(self.vram_budget, self.available_memory(device.device))
        mode = choose_offload(self.offload, device.device, total, room, denoiser)
        if storage in CUDA_WEIGHT_STORAGES and mode in ("group", "sequential"):
            mode = "model"  # bitsandbytes layers move whole (model offload), not streamed in groups
        return mode, (device if mode == "none" else DeviceChoice("cpu", device.dtype))

    def _make_room(self, record: ModelRecord, device: DeviceChoice, names: list[str] | None, storage: str = "native") -> None:
        """Before a load: what it will take (from the files' headers) against what the device has free. Short:
        unpinned components go first (least recently used); still short: OutOfMemoryError, nothing loaded."""
        needed, _ = self._bytes(record, device, names, storage)
        tier = "ram" if device.device == "cpu" else "vram"
        for key in list(self._components):
            if needed <= self.available_memory(device.device):
                return
            component = self._components[key]
            if component.tier == tier and not component.pins:
                self._drop_component(key) if tier == "ram" else component.module.to("cpu")
                self._evictions += tier == "ram"
                self._offloads += tier == "vram"
        free = self.available_memory(device.device)
        if needed > free:
            where = "RAM" if tier == "ram" else f"memory on {device.device}"
            raise OutOfMemoryError(
                f"model {record.id!r} needs about {needed / 2**30:.2f} GB of {where} to load and {free / 2**30:.2f} GB are free:"
                " close other programs or models (lower --ram-cache-gb / --vram-cache-gb), or use a smaller or quantised model"
            )

    # ---- budgets ------------------------------------------------------------------------------------------
    def _used(self, tier: str) -> int:
        return sum(c.size_bytes for c in self._components.values() if c.tier == tier)

    def _evict(self) -> None:
        """Least recently used first, unpinned only: VRAM to RAM, then RAM dropped, until each fits."""
        freed = False
        for tier, budget in (("vram", self.vram_budget), ("ram", self.ram_budget)):
            # the others first, then resident models' components (least recently used first in each)
            order = sorted(self._components, key=lambda k: bool(self._components[k].users & self.resident))
            for key in order:
                if self._used(tier) <= budget:
                    break
                component = self._components.get(key)
                if component is None or component.tier != tier or component.pins:
                    continue
                if tier == "vram":
                    component.module.to("cpu")
                    self._offloads += 1
                else:
                    self._drop_component(key)
                    self._evictions += 1
                freed = True
        if freed:
            import gc

            import torch

            from . import allocator

            gc.collect()
            allocator.release()  # what the dropped weights held goes back to the system now
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _drop_component(self, key: str) -> None:
        component = self._components.pop(key)
        if self.on_drop is not None:
            self.on_drop(component.module)
        for model_key in [m for m, e in self._models.items() if key in e.components]:
            del self._models[model_key]

    def drop(self, model_id: str) -> None:
        with self._lock:
            for key in [k for k in self._models if k[0] == model_id]:
                del self._models[key]
            for key, component in list(self._components.items()):
                component.users.discard(model_id)
                if not component.users:
                    self._drop_component(key)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._components.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                loads=self._loads,
                hits=self._hits,
                evictions=self._evictions,
                ram_used=self._used("ram"),
                vram_used=self._used("vram"),
                loaded=tuple(k[0] for k in self._models),
                components=tuple(
                    ComponentStats(c.name, k, c.tier, c.size_bytes, c.last_used, c.pins > 0, tuple(sorted(c.users)))
                    for k, c in self._components.items()
                ),
                component_loads=self._component_loads,
                offloads=self._offloads,
                ram_budget=self.ram_budget,
                vram_budget=self.vram_budget,
            )
