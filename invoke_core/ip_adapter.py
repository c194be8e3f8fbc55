"""IP-Adapter models for reference layers on Stable Diffusion 1.x, SDXL and FLUX.1: what a file is, which image
encoder it runs with, and which adapter a reference layer uses (no torch here: the probe, compile and the
server's enqueue checks import it; the job side is invoke_core/ip_adapter_run.py).

Two model kinds, installed by path like any other:

- `ip_adapter`: one `.safetensors` file in the layout h94/IP-Adapter ships and diffusers' `load_ip_adapter`
  reads (`image_proj.*` and `ip_adapter.<n>.to_k_ip.weight` / `to_v_ip.weight`, one pair per cross-attention
  layer of the UNet): the plain adapter ("base": 4 image tokens from the encoder's image embedding), "plus"
  and "plus-face" (a resampler over the encoder's penultimate hidden states) and "full face" (an MLP over
  them). FaceID adapters (InsightFace face embeddings, with LoRAs) are refused. The family comes from the
  width of the text embedding the adapter's keys read (768 SD 1.x, 2048 SDXL), else from the header's
  `modelspec.architecture` (the tiny demo's). XLabs' FLUX IP-Adapters (`ip_adapter_proj_model.*`,
  `double_blocks.<n>.processor.*`) are family flux, variant "flux" (families/flux_ip_adapter.py).
- `image_encoder`: a CLIPVisionModelWithProjection folder (config.json and safetensors), as h94 ships
  `models/image_encoder` (ViT-H: SD 1.5 and the SDXL "vit-h" adapters) and `sdxl_models/image_encoder`
  (ViT-bigG). Encoders serve any family (`family` "any").

An adapter runs with the installed encoder recorded at install (`config_path`: the one beside it, installed
with it, or the first installed one that fits), else with the first installed encoder whose width fits: the
projection width for a plain adapter, the hidden width for plus and full face.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError, UnsupportedError

ADAPTER_KIND = "ip_adapter"
ENCODER_KIND = "image_encoder"
ENCODER_FAMILY = "any"  # an image encoder serves the adapters of every family
ADAPTER_FILE = "ip-adapter.safetensors"  # the adapter inside a folder record (the built-in demo's)
VARIANT_LABELS = {"base": "IP-Adapter", "plus": "IP-Adapter Plus", "full_face": "IP-Adapter Full Face", "flux": "FLUX IP-Adapter"}
_FAMILY_WIDTHS = {768: "sd-1", 2048: "sdxl"}
_ARCHITECTURES = {"stable-diffusion-v1": "sd-1", "stable-diffusion-xl-v1-base": "sdxl"}


@dataclass(frozen=True)
class AdapterInfo:
    variant: str  # "base" | "plus" | "full_face"
    cross_attention_dim: int  # the width of the text embedding its keys read
    encoder_width: int  # what it reads of the encoder: the image embedding (base) or the hidden states' width
    hidden_states: bool  # reads the encoder's penultimate hidden states (plus, full face)
    layers: int  # the cross-attention layers it adapts

    @property
    def label(self) -> str:
        return VARIANT_LABELS[self.variant]


def is_ip_adapter(shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether a .safetensors file's keys are an IP-Adapter's (h94's layout, or XLabs' FLUX one)."""
    from .families.flux_ip_adapter import is_flux_ip_adapter

    h94 = any(k.startswith("image_proj.") for k in shapes) and any(k.startswith("ip_adapter.") for k in shapes)
    return h94 or is_flux_ip_adapter(shapes)


def describe_adapter(shapes: dict[str, tuple[int, ...]], name: str) -> AdapterInfo:
    """The variant and widths of an IP-Adapter file from its tensor shapes; ModelInstallError for one that
    does not run here (FaceID) or is malformed. XLabs' FLUX IP-Adapters (families/flux_ip_adapter.py): variant
    "flux", reading the encoder's image embedding."""
    from .families import flux_ip_adapter

    if flux_ip_adapter.is_flux_ip_adapter(shapes):
        width, encoder_width, blocks, _hidden = flux_ip_adapter.describe(shapes, name)
        return AdapterInfo(flux_ip_adapter.VARIANT, width, encoder_width, False, blocks)
    proj = {k[len("image_proj."):]: v for k, v in shapes.items() if k.startswith("image_proj.")}
    ip = {k[len("ip_adapter."):]: v for k, v in shapes.items() if k.startswith("ip_adapter.")}
    if "perceiver_resampler.proj_in.weight" in proj or ("norm.weight" in proj and "proj.0.weight" in proj) or any("lora" in k for k in ip):
        raise ModelInstallError(
            f"{name} is an IP-Adapter FaceID, which reads InsightFace face embeddings: not supported; install a plain,"
            " plus, plus-face or full-face IP-Adapter"
        )
    to_k = [k for k in ip if k.endswith(".to_k_ip.weight") and len(ip[k]) == 2]
    if not to_k:
        raise ModelInstallError(f"{name} is an IP-Adapter file without its attention weights (ip_adapter.N.to_k_ip.weight)")
    cross = ip[min(to_k, key=lambda k: int(k.split(".")[0]) if k.split(".")[0].isdigit() else 0)][1]
    if len(proj.get("proj.weight", ())) == 2:
        variant, width, hidden = "base", proj["proj.weight"][1], False
    elif len(proj.get("proj.3.weight", ())) == 1 and len(proj.get("proj.0.weight", ())) == 2:
        variant, width, hidden = "full_face", proj["proj.0.weight"][1], True
    elif len(proj.get("latents", ())) == 3 and len(proj.get("proj_in.weight", ())) == 2:
        variant, width, hidden = "plus", proj["proj_in.weight"][1], True
    else:
        raise ModelInstallError(f"{name}: an IP-Adapter image projection of an unknown layout (not plain, plus or full face)")
    return AdapterInfo(variant, int(cross), int(width), hidden, len(to_k))


def adapter_family(info: AdapterInfo, metadata: dict[str, str], name: str) -> str:
    """The family an adapter is for: FLUX.1 for XLabs' layout; else from its text-embedding width, else its
    header's architecture."""
    if info.variant == "flux":
        return "flux"
    if info.cross_attention_dim in _FAMILY_WIDTHS:
        return _FAMILY_WIDTHS[info.cross_attention_dim]
    arch = str(metadata.get("modelspec.architecture", "")).split("/")[0]
    if arch in _ARCHITECTURES:
        return _ARCHITECTURES[arch]
    raise ModelInstallError(
        f"{name} is an IP-Adapter for a {info.cross_attention_dim}-wide text embedding: no supported family"
        " (SD 1.x reads 768, SDXL 2048)"
    )


def adapter_file(path: str | Path) -> Path:
    """The .safetensors file of an adapter record (a folder record holds ADAPTER_FILE)."""
    path = Path(path)
    if path.is_dir():
        file = path / ADAPTER_FILE
        if not file.is_file():
            raise ModelInstallError(f"IP-Adapter folder {path} has no {ADAPTER_FILE}")
        return file
    return path


@functools.lru_cache(maxsize=64)
def _adapter_info(path: str, _mtime: float) -> AdapterInfo:
    from .model_probe import read_safetensors_shapes

    return describe_adapter(read_safetensors_shapes(Path(path)), Path(path).name)


def adapter_info(path: str | Path) -> AdapterInfo:
    """The AdapterInfo of an adapter record's file, read from its header once per change."""
    file = adapter_file(path)
    try:
        mtime = file.stat().st_mtime
    except OSError:
        raise ModelInstallError(f"IP-Adapter file {file} is gone: reinstall or remove it") from None
    return _adapter_info(str(file), mtime)


def is_image_encoder_config(config: dict[str, Any]) -> bool:
    """Whether a folder's config.json is a CLIP vision model with a projection (an IP-Adapter image encoder)."""
    architectures = config.get("architectures") or ()
    return "CLIPVisionModelWithProjection" in architectures or (config.get("model_type") == "clip_vision_model" and not architectures)


def encoder_config(path: str | Path) -> dict[str, Any]:
    """An image encoder folder's config.json ({} when unreadable)."""
    from .families.base import cached_config

    return cached_config(Path(path) / "config.json")


def encoder_fits(info: AdapterInfo, config: dict[str, Any]) -> bool:
    width = config.get("hidden_size") if info.hidden_states else config.get("projection_dim")
    return width == info.encoder_width


def _what_fits(info: AdapterInfo) -> str:
    return f"{info.encoder_width} {'hidden' if info.hidden_states else 'projection'} width"


def image_encoder_for(registry: Any, adapter: Any, build: bool = True) -> Any:
    """The image encoder record an adapter record runs with (see the module's text); UnsupportedError when none
    fits. `build`: build the built-in demo encoder if it is the one (False at enqueue: it is known to fit)."""
    encoders = [r for r in registry.list() if r.kind == ENCODER_KIND]
    if adapter.builtin and not build:
        demo = next((r for r in encoders if r.builtin), None)
        if demo is not None:
            return demo
    info = adapter_info(adapter.path)
    recorded = [r for r in encoders if adapter.config_path and Path(r.path) == Path(adapter.config_path)]
    for record in [*recorded, *(r for r in encoders if not r.builtin), *(r for r in encoders if r.builtin)]:
        if record.builtin:
            if not adapter.builtin:
                continue  # the demo encoder fits the demo adapters only
            if not build:
                return record
            record = registry.get(record.id)
        if encoder_fits(info, encoder_config(record.path)):
            return record
    raise UnsupportedError(f"{info.label} {adapter.id!r} needs a CLIP image encoder of {_what_fits(info)}, and none is installed: {where_encoders(info)}")


def where_encoders(info: AdapterInfo) -> str:
    """Which image encoder folder to install for an adapter."""
    if info.variant == "flux":
        return "install openai/clip-vit-large-patch14 (a CLIPVisionModelWithProjection folder), which XLabs' FLUX IP-Adapters read"
    return (
        "install its image_encoder folder (h94/IP-Adapter: models/image_encoder for SD 1.5 and the SDXL vit-h"
        " adapters, sdxl_models/image_encoder for the other SDXL ones)"
    )


def find_encoder_beside(file: Path, info: AdapterInfo) -> Path | None:
    """An image_encoder folder shipped beside an adapter file (h94's layout: `models/image_encoder` next to
    `models/ip-adapter_sd15.safetensors`; the SDXL vit-h adapters read `../models/image_encoder`) that fits it."""
    for folder in (file.parent / "image_encoder", file.parent.parent / "models" / "image_encoder"):
        config = encoder_config(folder)
        if config and is_image_encoder_config(config) and encoder_fits(info, config):
            return folder.resolve()
    return None


def default_adapter_id(records: Sequence[Any], family: str) -> str | None:
    """The adapter a reference layer without one uses: the first installed IP-Adapter of the family, else
    its built-in demo; None when there is neither."""
    adapters = [r for r in records if r.kind == ADAPTER_KIND and r.family == family]
    chosen = next((r for r in adapters if not r.builtin), None) or next(iter(adapters), None)
    return chosen.id if chosen else None


def resolve_adapters(
    registry: Any, settings: Sequence[Any], main: Any, label: str, build: bool = True, names: Sequence[str] | None = None
) -> list[tuple[Any, Any]]:
    """(adapter record, image encoder record) of each reference layer (`settings`: their ReferenceSettings;
    `names`: how messages name them), checked against the main model `main` of family label `label`:
    ModelNotFoundError for an unknown id, InvalidCanvasError for a model of another kind or family,
    UnsupportedError when none is installed."""
    records = registry.list()
    by_id = {r.id: r for r in records}
    out = []
    for where, reference in zip(names or [f"reference {n}" for n in range(1, len(settings) + 1)], settings):
        model_id = reference.model or default_adapter_id(records, main.family)
        if model_id is None:
            raise UnsupportedError(
                f"{where}: no {label} IP-Adapter is installed: install one (with its CLIP image encoder) to use reference layers"
            )
        record = by_id.get(model_id)
        if record is None:
            installed = [r.id for r in records if r.kind == ADAPTER_KIND and r.family == main.family]
            known = f"installed {label} IP-Adapters are {', '.join(installed)}" if installed else f"no {label} IP-Adapter is installed"
            raise ModelNotFoundError(f"{where}: unknown IP-Adapter {model_id!r}: {known}")
        if record.kind != ADAPTER_KIND:
            raise InvalidCanvasError(f"{where}: model {record.id!r} is a {record.kind} model, not an IP-Adapter: choose an ip_adapter model")
        if record.family != main.family:
            raise InvalidCanvasError(
                f"{where}: IP-Adapter {record.id!r} is for {record.family}, the model {main.id!r} is {main.family}:"
                f" choose a {main.family} IP-Adapter"
            )
        if build and record.builtin:
            record = registry.get(record.id)
        out.append((record, image_encoder_for(registry, record, build=build)))
    return out

