"""Upscaler models (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, ... whatever spandrel recognises): reading
their weights safely, recognising them, loading them for the model cache, running them tiled, and the
built-in tiny ESRGAN demo.

Weights are read from `.safetensors` (preferred), or from a `.pth` / `.pt` file through torch's
weights-only loader (`torch.load(weights_only=True)`: tensors and plain containers only, no code); a
file that loader refuses (a pickled object) is refused, never unpickled otherwise. The other pickle
suffixes stay refused unopened, as for every model (invoke_core/model_probe.py).
"""

from __future__ import annotations

import sys
import threading
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenerationCancelled, ModelInstallError
from .safe_paths import Forbidden, as_forbidden, open_checked

FAMILY = "any"  # an upscaler's records' `family`: it serves every model family
PICKLE_UPSCALER_SUFFIXES = frozenset({".pth", ".pt"})  # read through the weights-only loader
MAX_PICKLE_BYTES = 2 << 30  # a .pth larger than this is no upscaler: refused unopened
UPSCALER_TILE = 512  # input pixels a side per tile of the upscaler
UPSCALER_OVERLAP = 32

_import_lock = threading.Lock()
_spandrel: Any = None


class _Missing:
    """Stands for a torchvision name spandrel imports but only two non-upscaler architectures use."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> "_Missing":
        return _Missing(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"torchvision is not installed: {self._name} is unavailable (only spandrel's LaMa and RestoreFormer"
            " architectures use it, which are not upscalers)"
        )


def _import_spandrel() -> Any:
    """`import spandrel`, with or without torchvision.

    Why: spandrel's registry imports every architecture eagerly, and two of them (LaMa, an inpainting model,
    and RestoreFormer, a face restorer) import `torchvision.transforms.functional` at module level. Our torch
    is pinned and torchvision cannot be installed beside it (its wheels pin another torch), so spandrel is
    installed without its dependencies (scripts/setup.sh). When torchvision is missing or fails to import,
    placeholder modules stand in for it during the import only, and are removed afterwards (so nothing else,
    transformers' availability checks included, ever sees them); their names raise a clear error if called.
    Neither architecture is accepted as an upscaler (`probe_upscaler` refuses face restoration and
    inpainting models), so they are never called.
    """
    global _spandrel
    with _import_lock:
        if _spandrel is not None:
            return _spandrel
        before = {k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")}
        try:
            import torchvision.transforms.functional  # noqa: F401
            placeholders: list[str] = []
        except Exception:  # noqa: BLE001 (missing, or built for another torch: RuntimeError, ImportError...)
            for name in [k for k in sys.modules if (k == "torchvision" or k.startswith("torchvision.")) and k not in before]:
                del sys.modules[name]  # a half-imported torchvision
            placeholders = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional"]
            for name in placeholders:
                module = types.ModuleType(name)
                module.__getattr__ = lambda attr, _name=name: _Missing(f"{_name}.{attr}")  # type: ignore[attr-defined]
                sys.modules[name] = module
            sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]  # type: ignore[attr-defined]
            sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]  # type: ignore[attr-defined]
        try:
            import spandrel
        except ImportError as exc:
            raise ModelInstallError(
                f"upscalers need the spandrel package ({exc}): run scripts/setup.sh, or pip install --no-deps spandrel==0.4.2 einops"
            ) from None
        finally:
            for name in placeholders:
                sys.modules.pop(name, None)
        _spandrel = spandrel
        return spandrel


# ----------------------------------------------------------------------------------------------- reading


def _pickle_refusal(path: Path, why: str) -> ModelInstallError:
    return ModelInstallError(
        f"Refusing {path.name}: {why}. A pickle-based file can run arbitrary code when loaded, so an upscaler's .pth is"
        " read only through torch's weights-only loader (tensors, no code): convert it to .safetensors in a trusted"
        " environment (load it with torch.load and save the state dict with safetensors.torch.save_file) and install"
        " that file instead"
    )


def _weights_only_reason(exc: Exception) -> str:
    """The line of torch's weights-only refusal that says what it met ("Unsupported global: GLOBAL io.open ...")."""
    text = " ".join(str(exc).split())
    _, found, rest = text.partition("WeightsUnpickler error:")
    reason = (rest if found else text).strip()
    reason = reason.split(". Please")[0].split(" Check the documentation")[0].strip()
    return reason[:160] or type(exc).__name__


def read_state_dict(path: Path, forbidden: Forbidden | None = None) -> dict[str, Any]:
    """The tensors of an upscaler file (canonicalised as spandrel expects). `.safetensors`, or `.pth`/`.pt`
    through `torch.load(weights_only=True, map_location="cpu")`: ModelInstallError if that loader refuses it."""
    import torch

    path = Path(path)
    guard = as_forbidden(forbidden)
    suffix = path.suffix.lower()
    if suffix in PICKLE_UPSCALER_SUFFIXES:
        with open_checked(path, guard) as fh:
            import os

            if os.fstat(fh.fileno()).st_size > MAX_PICKLE_BYTES:
                raise _pickle_refusal(path, f"a pickle file over {MAX_PICKLE_BYTES >> 30} GB is no upscaler")
            try:
                with warnings.catch_warnings():  # "pickle protocol 4": said again by the refusal, if any
                    warnings.simplefilter("ignore", UserWarning)
                    state = torch.load(fh, weights_only=True, map_location="cpu")
            except Exception as exc:  # noqa: BLE001 (UnpicklingError for a pickled object, RuntimeError...)
                raise _pickle_refusal(path, f"torch's weights-only loader refused it ({_weights_only_reason(exc)})") from None
        if not isinstance(state, dict):
            raise _pickle_refusal(path, f"it holds a {type(state).__name__}, not a state dict")
    else:
        from safetensors.torch import load

        with open_checked(path, guard) as fh:
            try:
                state = load(fh.read())
            except Exception as exc:  # noqa: BLE001 (SafetensorError)
                raise ModelInstallError(f"{path.name} is not a valid .safetensors file ({exc})") from None
    spandrel = _import_spandrel()
    state = spandrel.canonicalize_state_dict(state)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if all(isinstance(k, str) for k in state) else state


@dataclass(frozen=True)
class UpscalerInfo:
    architecture: str  # spandrel's architecture name ("ESRGAN", "SwinIR", ...)
    scale: int
    tags: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        tags = f" ({', '.join(self.tags)})" if self.tags else ""
        return f"{self.architecture}{tags} x{self.scale} upscaler"


def detect_architecture(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The spandrel architecture whose key (and shape) rules a file's tensors match, from their shapes alone
    (meta tensors: nothing is read); None when none does."""
    import torch

    spandrel = _import_spandrel()
    fake = spandrel.canonicalize_state_dict({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    for support in spandrel.MAIN_REGISTRY.architectures("detection"):
        try:
            if support.detect(fake):
                return str(support.architecture.name)
        except Exception:  # noqa: BLE001 (a rule that reads values: decided at load)
            continue
    return None


def describe(descriptor: Any, path: Path) -> UpscalerInfo:
    """What a loaded spandrel model is, or ModelInstallError when it is not an RGB upscaler."""
    spandrel = _import_spandrel()
    name = str(descriptor.architecture.name)
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelInstallError(f"{path.name} is a {name} inpainting model, not an upscaler")
    if descriptor.purpose == "FaceSR":
        raise ModelInstallError(f"{path.name} is a {name} face restoration model, not an upscaler")
    if descriptor.purpose != "SR" or descriptor.scale < 2:
        raise ModelInstallError(f"{path.name} is a {name} restoration model (x{descriptor.scale}), not an upscaler")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelInstallError(
            f"{path.name} is a {name} upscaler of {descriptor.input_channels}-channel images: only RGB upscalers are supported"
        )
    return UpscalerInfo(name, int(descriptor.scale), tuple(str(t) for t in descriptor.tags))


def load_descriptor(path: Path, forbidden: Forbidden | None = None) -> Any:
    """The spandrel model of an upscaler file, on the CPU in float32 (ModelInstallError if it is none)."""
    spandrel = _import_spandrel()
    state = read_state_dict(path, forbidden)
    try:
        return spandrel.MAIN_REGISTRY.load(state)
    except spandrel.UnsupportedModelError:
        raise ModelInstallError(f"{Path(path).name} is no model architecture spandrel knows, so not an upscaler this app can run") from None
    except Exception as exc:  # noqa: BLE001 (a known architecture with odd shapes)
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelInstallError(f"{Path(path).name} could not be read as an upscaler: {first}") from None


def probe_upscaler(path: Path, forbidden: Forbidden | None = None) -> UpscalerInfo:
    """The upscaler a file holds (loaded once to learn its scale), or ModelInstallError."""
    return describe(load_descriptor(path, forbidden), Path(path))


def claims_file(shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether a .safetensors file's tensors (shapes from its header) look like a model spandrel knows."""
    try:
        return detect_architecture(shapes) is not None
    except ModelInstallError:  # spandrel missing: not recognised (a message says so when one is installed)
        return False


# ----------------------------------------------------------------------------------------------- loading


def _torch_module_class():
    import torch

    class LoadedUpscaler(torch.nn.Module):
        """A spandrel model as the model cache keeps it (an nn.Module: its bytes and device are counted), with
        what running it needs: its scale, its size rule and the dtypes it supports."""

        def __init__(self, descriptor: Any, info: UpscalerInfo):
            super().__init__()
            self.net = descriptor.model
            self.descriptor = descriptor
            self.info = info
            self.scale = info.scale

        def dtype_for(self, wanted: Any) -> Any:
            """The compute dtype for a device dtype: float32 where the model cannot run the half one."""
            if wanted == torch.float16 and not self.descriptor.supports_half:
                return torch.float32
            if wanted == torch.bfloat16 and not self.descriptor.supports_bfloat16:
                return torch.float32
            return wanted

    return LoadedUpscaler


_LOADED_CLASS: Any = None


def load_upscaler(path: Path, device: Any) -> Any:
    """The model cache's loader (invoke_core/model_cache.py): the upscaler on `device` (a DeviceChoice), in
    the device's dtype where the architecture supports it, else float32."""
    global _LOADED_CLASS
    if _LOADED_CLASS is None:
        _LOADED_CLASS = _torch_module_class()
    descriptor = load_descriptor(Path(path))
    info = describe(descriptor, Path(path))
    module = _LOADED_CLASS(descriptor, info)
    dtype = module.dtype_for(device.torch_dtype)
    descriptor.to(device.torch_device).to(dtype).eval()
    return module


def _run_tile(module: Any, tile: np.ndarray) -> np.ndarray:
    """One RGB uint8 tile through the model (spandrel pads to the architecture's size rule)."""
    import torch

    param = next(module.net.parameters())
    x = torch.from_numpy(np.array(tile, dtype=np.uint8)).to(param.device).permute(2, 0, 1)[None].to(param.dtype) / 255
    with torch.inference_mode():
        y = module.descriptor(x)
    return (y[0].permute(1, 2, 0).float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def upscale_rgb(
    module: Any,
    image: np.ndarray,
    tile: int = UPSCALER_TILE,
    overlap: int = UPSCALER_OVERLAP,
    on_tile: Callable[[int, int, Callable[[], np.ndarray]], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """An RGB uint8 image through the upscaler once (scale x its size), in overlapping tiles blended
    (invoke_core/tiles.py) when it is larger than `tile`. `on_tile(done, total, partial)` after each tile;
    `partial()` renders the blend so far. GenerationCancelled when `is_cancelled()` between tiles."""
    from .tiles import TileBlender, crop, tile_grid

    h, w = image.shape[:2]
    grid = tile_grid(w, h, tile, min(overlap, max(0, tile // 2 - 1)))
    blender = TileBlender(w, h, 3, grid, scale=module.scale)
    for number, bounds in enumerate(grid, 1):
        if is_cancelled and is_cancelled():
            raise GenerationCancelled(f"cancelled while upscaling, at tile {number} of {len(grid)}")
        blender.add(bounds, _run_tile(module, crop(image, bounds)))
        if on_tile is not None:
            on_tile(number, len(grid), lambda: blender.partial(np.zeros((h * module.scale, w * module.scale, 3), np.uint8)))
    return blender.result()


# ----------------------------------------------------------------------------------------------- demo


def demo_state_dict(scale: int, seed: int = 0, features: int = 8, blocks: int = 1, growth: int = 32) -> dict[str, Any]:
    """A tiny ESRGAN (RRDBNet, Real-ESRGAN's key layout) with random but deterministic weights: small
    random weights on top of a nearest-neighbour upscale (the first three features carry the image through
    every layer), so the demo's output looks like its input, a little noisy. x2 or x4; `growth` is 32, as
    spandrel's RRDBNet has it."""
    import torch

    if scale not in (2, 4):
        raise ValueError("the demo upscaler is x2 or x4")
    g = torch.Generator().manual_seed(seed)

    def conv(out_ch: int, in_ch: int, std: float = 0.02, identity: bool = False) -> tuple[Any, Any]:
        weight = torch.randn(out_ch, in_ch, 3, 3, generator=g) * std
        if identity:
            for c in range(3):
                weight[c, c, 1, 1] += 1.0
        return weight, torch.zeros(out_ch)

    state: dict[str, Any] = {}

    def put(name: str, pair: tuple[Any, Any]) -> None:
        state[f"{name}.weight"], state[f"{name}.bias"] = pair

    put("conv_first", conv(features, 3, identity=True))
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                put(f"body.{b}.rdb{r}.conv{c}", conv(features if c == 5 else growth, features + (c - 1) * growth, std=0.01))
    put("conv_body", conv(features, features, std=0.01))
    for u in range(1, (2 if scale == 2 else 3)):
        put(f"conv_up{u}", conv(features, features, identity=True))
    put("conv_hr", conv(features, features, identity=True))
    put("conv_last", conv(3, features, identity=True))
    return state


def build_demo_upscaler(dest: Path, scale: int) -> Path:
    """Write the demo upscaler (`demo_state_dict`) as one .safetensors file, atomically."""
    from safetensors.torch import save

    from .atomic import atomic_write

    data = save({k: v.contiguous() for k, v in demo_state_dict(scale).items()}, metadata={"description": "Invoke Canvas demo upscaler: random weights"})
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, data, temp_prefix=f".{dest.name}.")
    return dest
