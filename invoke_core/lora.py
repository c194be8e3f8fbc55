"""LoRA stacks: apply installed LoRA files to a pipeline for a job, and restore the base model exactly.

A LoRA is loaded as a named peft adapter (`pipe.load_lora_weights`) and weighted with `set_adapters`;
`unload_lora_weights` removes every adapter: peft wraps the base Linear layers and unloading puts the
original modules back, so the UNet and text-encoder weights are bit-identical afterwards
(`fuse_lora`/`unfuse_lora` is not: it writes into the base weights).

Between jobs a pipeline keeps the stack it last ran with (`LoraStacks`): a job with the same LoRAs (any
weights) only calls `set_adapters`, which is what an illustrator iterating on one style does; a job with
other LoRAs, or none, first unloads them, so every job still starts from the exact base model. At most one
pipeline carries adapters at a time. `apply_loras` is the one-shot form (load, run, unload).

File contents are kept in memory (`LoraFileCache`, keyed by path and sha256) so a second job with the
same LoRA reads nothing from disk. Both diffusers/peft files and kohya files load (diffusers converts
kohya names). A LoRA at weight 0 adds nothing, so it is not loaded at all (its output is the plain one).

No torch at import: compile and the server import the checks from here.
"""

from __future__ import annotations

import math
import numbers
import re
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import limits
from .errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError
from .model_records import ModelRecord
from .types import LoraSpec

__all__ = [
    "LORA_FILES",
    "MAX_LORAS",
    "WEIGHT_RANGE",
    "LoadedLora",
    "LoraFileCache",
    "LoraSpec",
    "LoraStacks",
    "apply_loras",
    "check_lora_record",
    "lora_metadata",
    "resolve_loras",
    "validate_loras",
]

MAX_LORAS = limits.MAX_LORAS
WEIGHT_RANGE = (float(limits.LORA_WEIGHT.low), float(limits.LORA_WEIGHT.high))


def validate_loras(loras: Any) -> None:
    """Shape checks needing no registry: LoraSpec items, model ids, weights in WEIGHT_RANGE, no repeats."""
    if not isinstance(loras, (tuple, list)):
        raise InvalidCanvasError(f"loras must be a list of LoRA specs, got {type(loras).__name__}")
    if len(loras) > MAX_LORAS:
        raise InvalidCanvasError(f"at most {MAX_LORAS} LoRAs per job, got {len(loras)}")
    low, high = WEIGHT_RANGE
    seen: set[str] = set()
    for number, spec in enumerate(loras, 1):
        if not isinstance(spec, LoraSpec):
            raise InvalidCanvasError(f"LoRA {number}: expected a LoraSpec(model, weight), got {type(spec).__name__}")
        if not isinstance(spec.model, str) or not spec.model:
            raise InvalidCanvasError(f"LoRA {number}: choose a LoRA model")
        weight = spec.weight
        if not (
            isinstance(weight, numbers.Real) and not isinstance(weight, bool) and math.isfinite(weight)
            and low <= weight <= high
        ):
            raise InvalidCanvasError(f"LoRA {spec.model!r}: weight must be a number in [{low:g}, {high:g}], got {weight!r}")
        if spec.model in seen:
            raise InvalidCanvasError(f"LoRA {spec.model!r} is listed twice: list it once with the weight you want")
        seen.add(spec.model)


def check_lora_record(record: ModelRecord, main: ModelRecord) -> None:
    """InvalidCanvasError unless `record` is a LoRA of the main model's family."""
    if record.kind == "control_lora":
        raise InvalidCanvasError(f"{record.id!r} is a Control LoRA: use it as a control layer's model, not in the LoRA list")
    if record.kind != "lora":
        raise InvalidCanvasError(f"model {record.id!r} is a {record.kind} model, not a LoRA: choose a lora model")
    if record.family != main.family:
        raise InvalidCanvasError(
            f"LoRA {record.id!r} is for {record.family}, the model {main.id!r} is {main.family}:"
            f" choose a {main.family} LoRA"
        )


@dataclass(frozen=True)
class LoadedLora:
    """A LoRA of a job: what was asked (spec) and the installed record it resolved to."""

    spec: LoraSpec
    record: ModelRecord


def resolve_loras(registry: Any, loras: Iterable[LoraSpec], main: ModelRecord) -> list[LoadedLora]:
    """The record of each LoRA, checked (ModelNotFoundError for an unknown id, InvalidCanvasError else)."""
    loras = tuple(loras)
    validate_loras(loras)
    resolved = []
    for spec in loras:
        try:
            record = registry.get(spec.model)
        except ModelNotFoundError:
            installed = [r.id for r in registry.list() if r.kind == "lora" and r.family == main.family]
            known = f"installed {main.family} LoRAs are {', '.join(installed)}" if installed else f"no {main.family} LoRA is installed"
            raise ModelNotFoundError(f"unknown LoRA {spec.model!r}: {known}") from None
        check_lora_record(record, main)
        resolved.append(LoadedLora(spec, record))
    return resolved


def lora_metadata(loras: Iterable[LoadedLora]) -> dict[str, Any]:
    """{"loras": [{id, name, hash, weight}, ...]} for the image metadata; {} without LoRAs."""
    rows = [
        {"id": lo.record.id, "name": lo.record.name, "hash": lo.record.hash, "weight": float(lo.spec.weight)}
        for lo in loras
    ]
    return {"loras": rows} if rows else {}


class LoraFileCache:
    """LoRA state dicts (CPU tensors) by (path, sha256), least recently used dropped past `max_bytes`.

    `reads` counts files read from disk. Callers get a shallow copy: diffusers' kohya conversion pops
    keys from the dict it is given; it never writes into the tensors."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self.reads = 0
        self._entries: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, record: ModelRecord) -> dict[str, Any]:
        key = (record.path, record.hash)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return dict(entry[0])
            state = self._read(record)
            size = sum(t.numel() * t.element_size() for t in state.values())
            self._entries[key] = (state, size)
            self.reads += 1
            while len(self._entries) > 1 and sum(s for _, s in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)
            return dict(state)

    @staticmethod
    def _read(record: ModelRecord) -> dict[str, Any]:
        from safetensors.torch import load_file

        path = Path(record.path)
        if not path.is_file():
            raise ModelInstallError(f"LoRA {record.id!r}: its file is gone from {path}; reinstall or remove it")
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelInstallError(f"LoRA {record.id!r} could not be read from {path}: {reason}") from exc

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


LORA_FILES = LoraFileCache()


def _adapter_name(index: int, model_id: str) -> str:
    # peft adapter names become module attribute keys: keep them to [A-Za-z0-9_].
    return f"lora{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", model_id)[:40]


def _load_stack(pipe: Any, active: list[LoadedLora], cache: LoraFileCache) -> list[str]:
    """Load each LoRA of `active` (weight != 0) as an adapter; set their weights. On a failure every adapter
    is removed again and InvalidCanvasError names the LoRA that did not fit."""
    names: list[str] = []
    try:
        for index, lora in enumerate(active):
            name = _adapter_name(index, lora.record.id)
            state = cache.get(lora.record)
            try:
                with warnings.catch_warnings():
                    # peft warns on every adapter after the first; a stack is the point here.
                    warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                    warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
                    pipe.load_lora_weights(state, adapter_name=name)
            except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                raise InvalidCanvasError(
                    f"LoRA {lora.record.id!r} does not fit this {lora.record.family} model: {first}"
                ) from exc
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[float(lo.spec.weight) for lo in active])
    except BaseException:
        _unload(pipe)  # a failed load may leave an adapter's layers behind
        raise
    return names


def _unload(pipe: Any) -> None:
    import inspect

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
        if "reset_to_overwritten_params" in inspect.signature(pipe.unload_lora_weights).parameters:
            # a FLUX.1 Control LoRA widened the patch embedding: back to the model's own
            pipe.unload_lora_weights(reset_to_overwritten_params=True)
        else:
            pipe.unload_lora_weights()


@contextmanager
def apply_loras(pipe: Any, loras: Iterable[LoadedLora], cache: LoraFileCache | None = None) -> Iterator[list[str]]:
    """Inside the block `pipe` (and every pipeline sharing its UNet and text encoders) runs with the
    LoRAs at their weights; on exit, error or not, every adapter is removed. Yields the adapter names."""
    active = [lo for lo in loras if lo.spec.weight != 0]
    if not active:
        yield []
        return
    names = _load_stack(pipe, active, cache or LORA_FILES)
    try:
        yield names
    finally:
        _unload(pipe)


class LoraStacks:
    """The LoRA stack each pipeline carries between jobs (weakly: an evicted pipeline is simply gone).
    Call `prepare` under the engine's job lock, before every job, with or without LoRAs."""

    def __init__(self, cache: LoraFileCache | None = None):
        self.cache = cache or LORA_FILES
        self.loads = 0  # stacks loaded (a reused stack does not count)
        self._carried: weakref.WeakKeyDictionary[Any, tuple[tuple, list[str], list[float]]] = weakref.WeakKeyDictionary()

    def prepare(self, pipe: Any, loras: Iterable[LoadedLora]) -> list[str]:
        """Make `pipe` carry exactly the LoRAs of weight != 0 at their weights, every other pipeline none."""
        active = [lo for lo in loras if lo.spec.weight != 0]
        key = tuple((lo.record.id, lo.record.hash, lo.record.path) for lo in active)
        weights = [float(lo.spec.weight) for lo in active]
        for other in list(self._carried.keys()):
            if other is not pipe or self._carried[other][0] != key:
                self.release(other)
        if not active:
            return []
        carried = self._carried.get(pipe)
        if carried is not None:
            names = carried[1]
            if carried[2] != weights:
                pipe.set_adapters(names, adapter_weights=weights)
                self._carried[pipe] = (key, names, weights)
            return names
        names = _load_stack(pipe, active, self.cache)
        self.loads += 1
        self._carried[pipe] = (key, names, weights)
        return names

    def release(self, pipe: Any) -> None:
        """Unload `pipe`'s adapters (bit-identical base weights again)."""
        if self._carried.pop(pipe, None) is not None:
            _unload(pipe)

    def release_all(self) -> None:
        for pipe in list(self._carried.keys()):
            self.release(pipe)

    def carrying(self, pipe: Any) -> list[str]:
        """The adapter names `pipe` carries now ([] for none)."""
        carried = self._carried.get(pipe)
        return list(carried[1]) if carried else []


@contextmanager
def job_loras(engine: Any, request: Any, control_records: list[ModelRecord] = ()) -> Iterator[Any]:
    """What Engine.run wraps a job in: the request's LoRAs put on the main model's cached pipeline (every
    task pipeline of the job shares its UNet and text encoders, so regional prompt encoding and ControlNet
    jobs see them too) through `engine.lora_stacks`, which first unloads any other stack. Yields
    `add_metadata(results) -> results`, which records the LoRAs (and their set-up time) in each result's
    metadata. A job without LoRAs runs on the exact base model."""
    import time

    loras = tuple(request.params.loras)
    stacks: LoraStacks = engine.lora_stacks
    main = engine.resolve_model(request.params.model)
    # a control layer's Control LoRA joins the stack at the layer's weight (its image goes to the pipeline;
    # `control_records`: the controls' records, checked)
    controls = [
        LoadedLora(LoraSpec(r.id, c.settings.weight), r)
        for c, r in zip(request.controls, control_records)
        if r.kind == "control_lora"
    ]
    if not loras and not controls:
        stacks.release_all()
        yield lambda results: results
        return
    resolved = resolve_loras(engine.registry, loras, main)
    base = engine.cache.get(main, engine.device).model  # the job's own get is then a cache hit
    started = time.perf_counter()
    stacks.prepare(base, [*resolved, *controls])
    seconds = time.perf_counter() - started
    meta = lora_metadata(resolved)  # the Control LoRA is in the controls' metadata

    def add_metadata(results: list[Any]) -> list[Any]:
        for result in results:
            result.metadata.update(meta)
            timings = result.metadata.get("timings")
            if isinstance(timings, dict):
                timings["lora"] = round(seconds, 4) if result is results[0] else 0.0
        return results

    yield add_metadata
