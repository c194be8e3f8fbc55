"""Identify a model on disk (family, kind, format) without loading its weights.

Supported: Stable Diffusion 1.x ("sd-1") and SDXL base ("sdxl") main, inpaint and ControlNet models, as
diffusers folders or single `.safetensors` files, and LoRA `.safetensors` files for either family; the
families of invoke_core.families claim their own folders, LoRA files and transformer files.
Single files are read through the safetensors header only (key names and shapes); pickle-based files
(`.ckpt`, `.pt`, `.pth`, `.bin`, `.pkl`) are refused unopened, since unpickling can run arbitrary code;
only an upscaler's `.pth` / `.pt` is read, through torch's weights-only loader (invoke_core/upscalers.py).
Upscaler files (what spandrel recognises) are loaded once to learn their scale.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelInstallError
from .safe_paths import CONFIG_MAX_BYTES, Forbidden, as_forbidden, check_source, open_checked

SUPPORTED = (
    "supported families: Stable Diffusion 1.x (sd-1), SDXL base (sdxl) and, as diffusers folders, LoRA files and"
    " transformer files, SD 3.x (sd-3), FLUX.1 (flux), Chroma (chroma), HiDream-I1 (hidream), Z-Image (z-image)"
    " and Qwen-Image (qwen-image)"
)

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"})

_PIPELINE_CLASS = re.compile(r"^StableDiffusion(XL)?(Inpaint|Img2Img)?Pipeline$")

# LDM (original Stable Diffusion) key names.
_UNET = "model.diffusion_model."
_UNET_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
_SD1_TEXT = "cond_stage_model.transformer."
_SD2_TEXT = "cond_stage_model.model."
_SDXL_TEXT_1 = "conditioner.embedders.0.transformer."
_SDXL_TEXT_2 = "conditioner.embedders.1.model."
_SDXL_REFINER_TEXT = "conditioner.embedders.0.model."
_CONTROL = "control_model."


@dataclass(frozen=True)
class ModelInfo:
    family: str  # "sd-1" | "sdxl"
    kind: str  # one of model_records.KINDS
    format: str  # "diffusers" | "single-file"
    scale: int | None = None  # an upscaler's factor
    description: str = ""  # an upscaler's architecture ("ESRGAN (64nf, 23nb) x4 upscaler")


def probe_model(path: Path, forbidden: Forbidden | Sequence[Path] | None = None) -> ModelInfo:
    """Return what `path` holds, or raise ModelInstallError with a one-line reason.

    Only regular files are opened (a FIFO, device or socket is refused unopened), and nothing that is,
    lies inside or holds a `forbidden` path (see `safe_paths`).
    """
    path = Path(path)
    guard = as_forbidden(forbidden)
    if not os.path.lexists(path):
        raise ModelInstallError(f"Model path does not exist: {path}")
    if check_source(path, guard) == "dir":
        return _probe_folder(path, guard)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        from .upscalers import PICKLE_UPSCALER_SUFFIXES

        if path.suffix.lower() in PICKLE_UPSCALER_SUFFIXES:  # an upscaler's .pth: torch's weights-only loader
            return _probe_upscaler(path, guard, pickled=True)
        raise ModelInstallError(_pickle_message(path))
    return _probe_single_file(path, guard)


def _probe_upscaler(path: Path, forbidden: Forbidden, pickled: bool = False) -> ModelInfo:
    """An upscaler file (invoke_core/upscalers.py), loaded once through spandrel to learn its scale. A .pth
    that is no upscaler gets the pickle message: only upscalers are read from pickle files."""
    from .upscalers import FAMILY, probe_upscaler

    try:
        info = probe_upscaler(path, forbidden)
    except ModelInstallError as exc:
        if pickled and "Refusing" not in str(exc):
            raise ModelInstallError(f"{exc}; {_pickle_message(path)}") from None
        raise
    return ModelInfo(FAMILY, "upscaler", "single-file", scale=info.scale, description=info.description)


def _pickle_message(path: Path) -> str:
    return (
        f"Refusing {path.name}: pickle-based checkpoints ({', '.join(sorted(PICKLE_SUFFIXES))}) can run arbitrary code "
        "when loaded. Convert it to .safetensors in a trusted environment (load it with torch.load and save the state "
        "dict with safetensors.torch.save_file, or use diffusers' conversion scripts such as "
        "convert_original_stable_diffusion_to_diffusers.py) and install that file instead."
    )


def _unidentified(path: Path, why: str) -> ModelInstallError:
    return ModelInstallError(f"Could not identify the model family of {path.name} ({why}); {SUPPORTED}.")


# ----------------------------------------------------------------------------------------------- folders


def _read_json(path: Path, forbidden: Forbidden) -> dict:
    with open_checked(path, forbidden, max_bytes=CONFIG_MAX_BYTES) as fh:
        try:
            raw = fh.read()
        except OSError as exc:
            raise ModelInstallError(f"Cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelInstallError(f"Cannot read {path}: its JSON is nested too deeply to be a model config") from None
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
        raise ModelInstallError(f"Cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict):
        raise ModelInstallError(f"Cannot read {path}: not a JSON object")
    return data


def _probe_folder(folder: Path, forbidden: Forbidden) -> ModelInfo:
    if (folder / "model_index.json").is_file():
        return _probe_pipeline_folder(folder, forbidden)
    if (folder / "config.json").is_file():
        config = _read_json(folder / "config.json", forbidden)
        from . import families
        from .ip_adapter import ENCODER_FAMILY, is_image_encoder_config

        if is_image_encoder_config(config):  # an IP-Adapter's CLIP image encoder (invoke_core/ip_adapter.py)
            return ModelInfo(ENCODER_FAMILY, "image_encoder", "diffusers")

        for family in families.claiming_families():
            if family.claims_controlnet(config):
                return ModelInfo(family.name, "controlnet", "diffusers")
        if config.get("_class_name") == "ControlNetModel":
            return ModelInfo(_controlnet_family(folder, config), "controlnet", "diffusers")
        raise _unidentified(
            folder, f"a diffusers {config.get('_class_name') or 'model'} folder, not a pipeline or ControlNet"
        )
    raise ModelInstallError(
        f"{folder} is not a diffusers model folder (no model_index.json or config.json); "
        "for a single-file model give the path of the .safetensors file"
    )


def _probe_pipeline_folder(folder: Path, forbidden: Forbidden) -> ModelInfo:
    index = _read_json(folder / "model_index.json", forbidden)
    from . import families

    def read_config(relative: str) -> dict | None:
        path = folder / relative
        return _read_json(path, forbidden) if path.is_file() else None

    for family in families.claiming_families():
        kind = family.claims_folder(index, read_config)
        if kind is not None:
            return ModelInfo(family.name, kind, "diffusers")
    cls = str(index.get("_class_name", ""))
    match = _PIPELINE_CLASS.match(cls)
    if not match:
        raise _unidentified(folder, f"pipeline class {cls or 'missing'}")
    unet_config_file = folder / "unet" / "config.json"
    if not unet_config_file.is_file():
        raise ModelInstallError(f"{folder.name} has no unet/config.json; the folder is incomplete")
    unet = _read_json(unet_config_file, forbidden)
    text_encoder = index.get("text_encoder")
    first_encoder = text_encoder[0] if isinstance(text_encoder, list) and text_encoder else None
    if match.group(1):  # XL
        if first_encoder is None or unet.get("cross_attention_dim") == 1280:
            raise ModelInstallError(f"{folder.name} is an SDXL refiner, which is not supported; {SUPPORTED}")
        family = "sdxl"
    else:
        if unet.get("cross_attention_dim") == 1024:
            raise _unidentified(folder, "Stable Diffusion 2.x")
        family = "sd-1"
    return ModelInfo(family, _kind_from_in_channels(folder, unet.get("in_channels")), "diffusers")


def _kind_from_in_channels(path: Path, in_channels) -> str:
    if in_channels == 4:
        return "main"
    if in_channels == 9:
        return "inpaint"
    raise ModelInstallError(
        f"{path.name} has a UNet with {in_channels} input channels; only 4 (text-to-image) and 9 (inpainting) are supported"
    )


def _controlnet_family(folder: Path, config: dict) -> str:
    if config.get("addition_embed_type") == "text_time" or config.get("cross_attention_dim") == 2048:
        return "sdxl"
    if config.get("cross_attention_dim") == 1024:
        raise _unidentified(folder, "a Stable Diffusion 2.x ControlNet")
    return "sd-1"


# ----------------------------------------------------------------------------------------------- single files


def read_safetensors_shapes(path: Path, forbidden: Forbidden | Sequence[Path] | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a .safetensors header, without reading the tensors. ModelInstallError if unreadable
    (or not a regular file, or forbidden: see `safe_paths`)."""
    path = Path(path)
    with open_checked(path, as_forbidden(forbidden)) as fh:
        try:
            head = fh.read(9)
            size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise ModelInstallError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if len(head) == 0:
        raise ModelInstallError(f"{path.name} is empty")
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    looks_safe = len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8
    if not looks_safe:
        if head[:2] == b"PK" or (head[:1] == b"\x80" and 2 <= head[1] <= 5):  # torch zip archive / raw pickle
            raise ModelInstallError(_pickle_message(path))
        raise ModelInstallError(f"{path.name} is not a valid .safetensors file (corrupt or truncated header)")

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # noqa: BLE001 (safetensors raises its own SafetensorError, OSError...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelInstallError(
            f"{path.name} is not a valid .safetensors file (corrupt or truncated: {reason})"
        ) from None
    if not shapes:
        raise ModelInstallError(f"{path.name} holds no tensors")
    return shapes


def read_weight_shapes(path: Path, forbidden: Forbidden | Sequence[Path] | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a single weights file: .safetensors, or GGUF (invoke_core/gguf_file.py)."""
    from .gguf_file import read_gguf_shapes

    if _is_gguf(Path(path), forbidden):
        return read_gguf_shapes(path)[0]
    return read_safetensors_shapes(path, forbidden)


def _is_gguf(path: Path, forbidden: Forbidden | Sequence[Path] | None = None) -> bool:
    """Whether a file starts as GGUF does, opened only after the checks every read here gets."""
    from .gguf_file import MAGIC

    with open_checked(path, as_forbidden(forbidden)) as fh:
        try:
            return fh.read(4) == MAGIC
        except OSError as exc:
            raise ModelInstallError(f"Cannot read {path}: {exc.strerror or exc}") from None


def _probe_gguf(path: Path, forbidden: Forbidden) -> ModelInfo:
    """A GGUF file: a quantised transformer alone, of a family with a transformer-file layout."""
    from . import families

    shapes = read_weight_shapes(path, forbidden)
    for family in families.claiming_families():
        kind = family.transformer_file.claims(shapes) if family.transformer_file else None
        if kind is not None:
            return ModelInfo(family.name, kind, "single-file")
    raise _unidentified(path, "a GGUF file with no transformer of a supported family (GGUF UNets, LoRAs and text encoders are not read)")


def _probe_single_file(path: Path, forbidden: Forbidden) -> ModelInfo:
    if _is_gguf(path, forbidden):
        return _probe_gguf(path, forbidden)
    shapes = read_safetensors_shapes(path, forbidden)
    keys = shapes.keys()

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    from .ip_adapter import adapter_family, describe_adapter, is_ip_adapter

    if is_ip_adapter(shapes):  # a reference layer's adapter (invoke_core/ip_adapter.py)
        info = describe_adapter(shapes, path.name)
        return ModelInfo(adapter_family(info, _header_metadata(path), path.name), "ip_adapter", "single-file", description=info.label)

    if has(_CONTROL):
        return ModelInfo(_ldm_controlnet_family(path, shapes), "controlnet", "single-file")
    if "controlnet_cond_embedding.conv_in.weight" in shapes:  # a diffusers-layout ControlNet saved as one file
        family = "sdxl" if "add_embedding.linear_1.weight" in shapes else "sd-1"
        if family == "sd-1" and _cross_attention_dim(shapes, lambda k: "attn2.to_k" in k) == 1024:
            raise _unidentified(path, "a Stable Diffusion 2.x ControlNet")
        return ModelInfo(family, "controlnet", "single-file")
    from . import families

    metadata = _header_metadata(path)
    for family in families.claiming_families():
        if family.claims_lora(dict(shapes), metadata):
            return ModelInfo(family.name, family.lora_kind(dict(shapes)), "single-file")
    if _is_lora(keys):
        return ModelInfo(_lora_family(path, shapes), "lora", "single-file")
    for family in families.claiming_families():  # a transformer alone (FLUX.1, SD 3.x, Chroma...) or an SD 3.x all-in-one file
        kind = family.transformer_file.claims(shapes) if family.transformer_file else None
        if kind is not None:
            return ModelInfo(family.name, kind, "single-file")
    if has(_UNET):
        return _probe_ldm_main(path, shapes, has)
    from .upscalers import claims_file

    if claims_file(shapes):  # an architecture spandrel knows (ESRGAN, SwinIR, HAT, ...): an upscaler, or refused
        return _probe_upscaler(path, forbidden)
    raise _unidentified(path, "no Stable Diffusion UNet, ControlNet, LoRA or upscaler weights found")


def _probe_ldm_main(path: Path, shapes: dict[str, tuple[int, ...]], has: Callable[[str], bool]) -> ModelInfo:
    if has(_SDXL_TEXT_2):
        family = "sdxl"
    elif has(_SDXL_REFINER_TEXT):
        raise ModelInstallError(f"{path.name} is an SDXL refiner, which is not supported; {SUPPORTED}")
    elif has(_SD2_TEXT):
        raise _unidentified(path, "Stable Diffusion 2.x, OpenCLIP text encoder")
    elif has(_SD1_TEXT):
        family = "sd-1"
    else:
        raise _unidentified(path, "UNet weights without a known text encoder")
    conv_in = shapes.get(_UNET_CONV_IN)
    if conv_in is None or len(conv_in) != 4:
        raise ModelInstallError(f"{path.name} has no UNet input convolution ({_UNET_CONV_IN}); the file is incomplete")
    return ModelInfo(family, _kind_from_in_channels(path, conv_in[1]), "single-file")


def _cross_attention_dim(shapes: dict[str, tuple[int, ...]], select: Callable[[str], bool]) -> int | None:
    for key in sorted(shapes):
        if select(key) and len(shapes[key]) == 2:
            return shapes[key][-1]
    return None


def _ldm_controlnet_family(path: Path, shapes: dict[str, tuple[int, ...]]) -> str:
    if any(k.startswith(_CONTROL + "label_emb.") for k in shapes):  # SDXL's text_time embedding
        return "sdxl"
    context = _cross_attention_dim(shapes, lambda k: k.startswith(_CONTROL) and k.endswith("attn2.to_k.weight"))
    if context == 1024:
        raise _unidentified(path, "a Stable Diffusion 2.x ControlNet")
    if context == 2048:
        return "sdxl"
    return "sd-1"


# ----------------------------------------------------------------------------------------------- LoRA

_LORA_WEIGHT = re.compile(r"(lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up|hada_w1_a|lokr_w1)")


def _is_lora(keys) -> bool:
    for key in keys:
        if key.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")):
            return True
        if _LORA_WEIGHT.search(key):
            return True
    return False


def _lora_family(path: Path, shapes: dict[str, tuple[int, ...]]) -> str:
    keys = list(shapes)
    if any(k.startswith(("lora_te2_", "text_encoder_2.", "te2.")) or ".text_encoder_2." in k for k in keys):
        return "sdxl"
    # The cross-attention key projection's input width is the text-embedding width: 768 SD1, 1024 SD2, 2048 SDXL.
    for key in sorted(keys):
        normal = key.replace("_", ".")
        if "attn2" in normal and "to.k" in normal and re.search(r"lora.(down|A)\.weight$", normal):
            width = shapes[key][-1] if shapes[key] else None
            if width == 768:
                return "sd-1"
            if width == 2048:
                return "sdxl"
            if width == 1024:
                raise _unidentified(path, "a Stable Diffusion 2.x LoRA")
            declared = _lora_family_from_metadata(path)
            if declared:
                return declared
            raise _unidentified(path, f"a LoRA for a {width}-wide text embedding")
    # Text-encoder-only LoRAs: CLIP-L is 768 wide (SD1); OpenCLIP-H (SD2) is 1024.
    for key in sorted(keys):
        if key.startswith(("lora_te_", "lora_te1_", "text_encoder.", "te.")) and re.search(
            r"(lora_down|lora_A|lora\.down)\.weight$", key
        ):
            width = shapes[key][-1] if shapes[key] else None
            if width == 768:
                return "sd-1"
            if width == 1024:
                raise _unidentified(path, "a Stable Diffusion 2.x LoRA")
            break
    declared = _lora_family_from_metadata(path)
    if declared:
        return declared
    raise _unidentified(path, "a LoRA whose base model cannot be told from its keys")


def _header_metadata(path: Path) -> dict[str, str]:
    """A .safetensors file's header metadata ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 (already read once by read_safetensors_shapes)
        return {}


def _lora_family_from_metadata(path: Path) -> str | None:
    """The family a LoRA's safetensors header declares (`modelspec.architecture`, or kohya's
    `ss_base_model_version`), used only when the tensor shapes do not tell: e.g. the demo's LoRAs, whose
    32-wide text embedding is no real model's."""
    meta = _header_metadata(path)
    arch = str(meta.get("modelspec.architecture", ""))
    version = str(meta.get("ss_base_model_version", ""))
    if arch.startswith("stable-diffusion-v1") or version.startswith("sd_v1"):
        return "sd-1"
    if arch.startswith("stable-diffusion-xl-v1-base") or version.startswith("sdxl_base"):
        return "sdxl"
    if arch.startswith("stable-diffusion-v2") or version.startswith("sd_v2"):
        raise _unidentified(path, "a Stable Diffusion 2.x LoRA")
    return None
