"""The GPU fast path: what makes a job faster than plain PyTorch without changing what it makes.

A setting (`--fast-path`, `Engine(fast_path=...)`): "auto" (the default) is on for CUDA and off
elsewhere, "on" and "off" say so, or a comma list of switches picks some (bench/gpu.py measures each
alone). The switches:

  channels_last  UNet and VAE convolutions in NHWC (tensor cores' layout), once per loaded module
  fused_qkv      one matmul for each attention's q, k and v (diffusers' fuse_qkv_projections)
  compile        torch.compile of the denoiser and the VAE decoder (inductor; the compile cache on disk
                 under models/.cache/torch-compile, so a restart reuses it). Dynamo compiles the first
                 size statically and the next one with dynamic height and width, so a new box size
                 does not recompile every time (its automatic dynamic shapes: the bucket is "any")
  cuda_graphs    the compiled denoiser replayed as CUDA graphs ("reduce-overhead"): pays where kernel
                 launches dominate (small boxes, few tokens); one graph per size, so opt-in
  fp8            fp8 matmuls (torchao's dynamic float8) for transformer families on cards that have
                 them (compute capability 8.9 and up); opt-in, and only where torchao is installed

Always on with CUDA, whatever the switches: TF32 matmuls and convolutions, cuDNN's autotuner, SDPA's
flash and memory-efficient kernels (diffusers' attention calls scaled_dot_product_attention, which picks
flash attention for half precision on cards that have it). Half precision is the device default
(invoke_core/devices.py).

A job that changes the denoiser's graph for itself (LoRA adapters, regional attention processors,
reference adapters, offload hooks) runs on the plain modules: the fused projections are swapped back
to the separate ones for it and the compiled graphs are left for the next plain job.
"""

from __future__ import annotations

import logging
import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from .errors import UnsupportedError

log = logging.getLogger(__name__)

SWITCHES = ("channels_last", "fused_qkv", "compile", "cuda_graphs", "fp8")
DEFAULT_SWITCHES = frozenset({"channels_last", "fused_qkv", "compile"})
MODES = ("auto", "on", "off")
COMPILE_CACHE = "torch-compile"  # under the model cache folder


@dataclass(frozen=True)
class FastPath:
    switches: frozenset[str] = frozenset()
    backend: str = "inductor"  # torch.compile's backend ("eager" and "aot_eager" check the wiring on a CPU)

    def __bool__(self) -> bool:
        return bool(self.switches)


def parse_fast_path(value: str | None, device: str, backend: str | None = None) -> FastPath:
    """The setting's text -> FastPath. `backend` (the `--compile BACKEND` option) turns compile on
    with that backend, on any device."""
    text = (value or "auto").strip().lower()
    if text == "auto":
        switches = DEFAULT_SWITCHES if device.startswith("cuda") else frozenset()
    elif text == "on":
        switches = DEFAULT_SWITCHES
    elif text == "off":
        switches = frozenset()
    else:
        switches = frozenset(s.strip() for s in text.split(",") if s.strip())
        unknown = sorted(switches - set(SWITCHES))
        if unknown:
            raise UnsupportedError(
                f"fast path {', '.join(unknown)!s}: use {', '.join(MODES)} or a comma list of {', '.join(SWITCHES)}"
            )
    if "cuda_graphs" in switches:
        switches |= {"compile"}  # graphs are recorded by the compiled module
    if backend:
        switches |= {"compile"}
    return FastPath(frozenset(switches), backend or "inductor")


def _denoiser_name(pipe: Any) -> str | None:
    for name in ("unet", "transformer"):
        if getattr(pipe, name, None) is not None:
            return name
    return None


@dataclass
class _Fused:
    fused: Any  # the attention processors with fused projections
    separate: Any  # the ones before fusing (the fused Linear layers stay beside the separate ones)
    on: bool = True


@dataclass
class FastPathRunner:
    """Applies a FastPath to each job's pipeline; keeps what it made (compiled modules, fused
    projections) keyed by the loaded module, for the engine's lifetime."""

    fast: FastPath
    cache_dir: Path
    device: str = "cpu"
    # id(module) -> (module, compiled): the compiled module holds its original, so the id stays its own
    # until `forget` (the model cache calls it when it drops the module)
    _compiled: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    _fused: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    _prepared: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    _shapes: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    _process_ready: bool = False

    def describe(self) -> list[str]:
        return sorted(self.fast.switches)

    # --- once per process, once per module -----------------------------------------------------------
    def _prepare_process(self) -> None:
        if self._process_ready:
            return
        self._process_ready = True
        import torch

        if self.device.startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.enable_flash_sdp(True)
            torch.backends.cuda.enable_mem_efficient_sdp(True)
        if "compile" in self.fast.switches:
            folder = self.cache_dir / COMPILE_CACHE
            folder.mkdir(parents=True, exist_ok=True)
            # inductor reads these when it compiles: its FX graph and autotuning caches persist across restarts
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
            os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
            os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
            import torch._dynamo

            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)

    def _prepare_module(self, module: Any, kind: str) -> None:
        if module in self._prepared:
            return
        self._prepared[module] = True
        import torch

        if "channels_last" in self.fast.switches and kind in ("unet", "vae"):
            module.to(memory_format=torch.channels_last)
        if "fp8" in self.fast.switches and kind == "transformer":
            _fp8(module, self.device)

    # --- per job --------------------------------------------------------------------------------------
    @contextmanager
    def job(self, pipe: Any, plain: bool, shape: tuple) -> Iterator[dict[str, Any]]:
        """The job's pipeline on the fast modules while it runs. `plain`: nothing job-specific is on the
        denoiser's graph (see the module docstring); `shape`: what a compiled graph is keyed by (size,
        batch). Yields what to record: {"switches": [...], "compiling": bool}."""
        info: dict[str, Any] = {}
        name = _denoiser_name(pipe)
        if not self.fast or name is None:
            yield info
            return
        self._prepare_process()
        denoiser = getattr(pipe, name)
        self._prepare_module(denoiser, name)
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            self._prepare_module(vae, "vae")
        used = {s for s in self.fast.switches if s in ("channels_last", "fp8")}
        if "fused_qkv" in self.fast.switches:
            if self._set_fused(denoiser, plain):
                used.add("fused_qkv")
        decoder_swap = None
        if plain and "compile" in self.fast.switches:
            setattr(pipe, name, self._compiled_module(denoiser, name))
            if vae is not None and hasattr(vae, "decoder"):
                decoder_swap = vae.decoder
                vae.decoder = self._compiled_module(decoder_swap, "decoder")
            seen = self._shapes.setdefault(denoiser, set())
            info["compiling"] = shape not in seen
            seen.add(shape)
            used |= {"compile"} | ({"cuda_graphs"} & self.fast.switches)
        info["switches"] = sorted(used)
        try:
            yield info
        finally:
            if decoder_swap is not None:
                vae.decoder = decoder_swap

    def _set_fused(self, denoiser: Any, on: bool) -> bool:
        """Fused q/k/v processors for a plain job, the separate ones otherwise; whether fused now."""
        entry = self._fused.get(denoiser)
        if entry is None:
            if not on or not hasattr(denoiser, "fuse_qkv_projections"):
                return False
            separate = denoiser.attn_processors
            try:
                denoiser.fuse_qkv_projections()
            except (ValueError, AttributeError, NotImplementedError) as exc:  # a model with added KV projections
                log.info("fused QKV projections not available for %s: %s", type(denoiser).__name__, exc)
                self._fused[denoiser] = _Fused(None, separate, on=False)
                return False
            entry = self._fused[denoiser] = _Fused(denoiser.attn_processors, separate, on=True)
            _share_fused_weights(denoiser)
            return True
        if entry.fused is None:
            return False
        if entry.on != on:
            denoiser.set_attn_processor(dict(entry.fused if on else entry.separate))
            entry.on = on
        if on and not _sharing(denoiser):  # a move to another device copied each weight apart
            _share_fused_weights(denoiser)
        return on

    def _compiled_module(self, module: Any, kind: str) -> Any:
        entry = self._compiled.get(id(module))
        compiled = entry[1] if entry is not None else None
        if compiled is None:
            import torch

            mode = "reduce-overhead" if ("cuda_graphs" in self.fast.switches and kind != "decoder") else None
            options = {"backend": self.fast.backend}
            if mode and self.fast.backend == "inductor":
                options["mode"] = mode
            compiled = torch.compile(module, **options)
            self._compiled[id(module)] = (module, compiled)
        return compiled

    def forget(self, module: Any) -> None:
        """A module left the cache: drop its compiled graphs (and, for a VAE, its decoder's)."""
        for part in (module, getattr(module, "decoder", None)):
            if part is not None:
                self._compiled.pop(id(part), None)


# fused Linear -> the separate ones it concatenates, in order (diffusers' Attention.fuse_projections)
_FUSED_PARTS = (("to_qkv", ("to_q", "to_k", "to_v")), ("to_kv", ("to_k", "to_v")), ("to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj")))


def _fused_pairs(denoiser: Any) -> Iterator[tuple[Any, list[Any]]]:
    for module in denoiser.modules():
        for fused_name, part_names in _FUSED_PARTS:
            fused = getattr(module, fused_name, None)
            parts = [getattr(module, n, None) for n in part_names]
            if fused is not None and all(hasattr(p, "weight") for p in parts):
                yield fused, parts


def _share_fused_weights(denoiser: Any) -> None:
    """The separate projections' weights as views of the fused ones: diffusers keeps both copies (25% more
    of SDXL's UNet in VRAM); the separate ones serve LoRA, regional and reference jobs, unchanged."""
    import torch

    for fused, parts in _fused_pairs(denoiser):
        if sum(p.weight.shape[0] for p in parts) != fused.weight.shape[0] or any(p.weight.dtype != fused.weight.dtype for p in parts):
            continue  # not a plain concatenation (quantised layers): left as diffusers made it
        start = 0
        for part in parts:
            rows = part.weight.shape[0]
            part.weight = torch.nn.Parameter(fused.weight.data[start:start + rows], requires_grad=False)
            if part.bias is not None and fused.bias is not None:
                part.bias = torch.nn.Parameter(fused.bias.data[start:start + rows], requires_grad=False)
            start += rows


def _sharing(denoiser: Any) -> bool:
    """Whether the first fused projection still shares its memory with its separate ones."""
    for fused, parts in _fused_pairs(denoiser):
        return parts[0].weight.untyped_storage().data_ptr() == fused.weight.untyped_storage().data_ptr()
    return True


def _fp8(module: Any, device: str) -> None:
    """torchao's dynamic float8 matmuls on the module's Linear layers, where the card has fp8."""
    import torch

    if not device.startswith("cuda") or torch.cuda.get_device_capability(torch.device(device)) < (8, 9):
        log.info("fp8 matmuls need a CUDA card of compute capability 8.9 or later: left off")
        return
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
    except ImportError:
        log.info("fp8 matmuls need torchao (pip install torchao): left off")
        return
    quantize_(module, Float8DynamicActivationFloat8WeightConfig())
