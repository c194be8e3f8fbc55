"""Load single-file (original LDM layout) `.safetensors` checkpoints into diffusers, offline.

diffusers' `from_single_file` needs a diffusers-layout folder of configs and tokenizer files next to the
weights (without `config=` it goes to the Hub). The package ships those configs for SD1.5 and SDXL base
(`configs/<family>/<kind>/`); the CLIP tokenizer files are derived from the shipped BPE merges and written,
with a copy of the configs, into a cache folder the caller owns at first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .clip_vocab import EOS_TOKEN, write_clip_tokenizer_files
from .errors import ModelInstallError, UnsupportedError
from .model_probe import ModelInfo, probe_model, read_safetensors_shapes

CONFIG_ROOT = Path(__file__).parent / "configs"

_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."


def shipped_config_dir(family: str, kind: str) -> Path:
    """The package's config folder for `family`/`kind` (configs only; no tokenizer vocabulary)."""
    folder = CONFIG_ROOT / family / kind
    if not folder.is_dir():
        raise UnsupportedError(f"No shipped configuration for {family} {kind} models")
    return folder


def prepare_config_dir(family: str, kind: str, cache_dir: Path) -> Path:
    """A complete diffusers config folder for `family`/`kind` under `cache_dir` (configs + CLIP tokenizer files).

    Built once, atomically; the folder name carries a digest of the shipped files, so a package update
    gets a fresh copy instead of a stale one.
    """
    src = shipped_config_dir(family, kind)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    dest = Path(cache_dir) / "single-file-configs" / f"{family}-{kind}-{digest.hexdigest()[:12]}"
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for tok in sorted(tmp.glob("tokenizer*")):
            specials = json.loads((tok / "special_tokens_map.json").read_text(encoding="utf-8"))
            write_clip_tokenizer_files(tok, pad_token=specials.get("pad_token", EOS_TOKEN))
        (tmp / ".complete").write_text("ok\n")
        try:
            os.replace(tmp, dest)  # atomic when dest is absent
        except OSError:
            if not (dest / ".complete").is_file():  # a half-built leftover: replace it
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def load_single_file(
    path: Path, info: ModelInfo, torch_dtype=None, config_dir: Path | None = None, cache_dir: Path | None = None
):
    """Load a single-file checkpoint as a diffusers pipeline (main / inpaint) or a ControlNetModel, offline.

    `info` is what `probe_model(path)` returned. `config_dir` replaces the shipped config folder (for
    non-standard architectures); otherwise the shipped one is completed under `cache_dir` (required then).
    A file whose weights do not fit the configuration raises ModelInstallError, not a raw traceback.
    """
    path = Path(path)
    if info.format != "single-file":
        raise UnsupportedError(f"{path.name} is a {info.format} model, not a single file")
    if info.kind == "lora":
        raise UnsupportedError(f"{path.name} is a LoRA: it is applied to a main model, not loaded on its own")
    from . import families

    family = families.get(info.family)
    if family.transformer_file is not None and info.kind != "controlnet":  # (LoRAs are refused above)
        return _load_transformer_file(path, info, family, torch_dtype, config_dir)
    if info.kind not in getattr(family, "single_file_pipelines", {}) and info.kind != "controlnet":
        raise UnsupportedError(f"Single-file {info.family} {info.kind} models are not supported")
    actual = probe_model(path)  # header only: cheap, and catches a stale or wrong `info`
    if actual != info:
        raise ModelInstallError(
            f"{path.name} holds a {actual.family} {actual.kind} model, not {info.family} {info.kind}"
        )

    given = config_dir is not None
    if config_dir is None:
        if cache_dir is None:
            raise ValueError("load_single_file needs cache_dir when no config_dir is given")
        config_dir = prepare_config_dir(info.family, info.kind, Path(cache_dir))
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ModelInstallError(f"Config folder {config_dir} does not exist")

    origin = f"the {'given' if given else 'shipped'} {info.family} {info.kind} configuration ({config_dir})"
    _preflight(path, info, config_dir, origin)

    import diffusers

    try:
        if info.kind == "controlnet":
            model = diffusers.ControlNetModel.from_single_file(
                str(path), config=str(config_dir), local_files_only=True, torch_dtype=torch_dtype
            )
            _check_loaded(path, {"controlnet": model}, origin)
            return model
        cls = getattr(diffusers, family.single_file_pipelines[info.kind])
        if info.family == "sd-1":
            extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
        else:
            te2 = _load_open_clip_text_encoder(path, config_dir, torch_dtype)
            extra = {"add_watermarker": False, "text_encoder_2": te2}
        pipe = cls.from_single_file(
            str(path), config=str(config_dir), local_files_only=True, torch_dtype=torch_dtype, **extra
        )
    except (ModelInstallError, UnsupportedError, MemoryError):
        raise
    except Exception as exc:  # shape mismatches, missing keys, unreadable configs: all "does not fit"
        raise ModelInstallError(f"{path.name} does not match {origin}: {_first_line(exc)}") from exc
    _check_loaded(path, pipe.components, origin)
    return pipe


def _load_transformer_file(path: Path, info: ModelInfo, family, torch_dtype, base_folder: Path | None):
    """A family's transformer file, with the rest of the pipeline from its base model's folder."""
    from .families.transformer_file import load_pipeline

    actual = probe_model(path)
    if actual != info:
        raise ModelInstallError(f"{path.name} holds a {actual.family} {actual.kind} model, not {info.family} {info.kind}")
    if base_folder is None or not Path(base_folder).is_dir():
        raise ModelInstallError(
            f"{path.name} is a {family.label} transformer alone and its base model's folder ({base_folder}) is gone:"
            f" reinstall it with --base naming an installed {family.label} diffusers model"
        )
    try:
        return load_pipeline(family, path, info.kind, Path(base_folder), torch_dtype)
    except (ModelInstallError, UnsupportedError, MemoryError):
        raise
    except Exception as exc:  # unreadable configs, a base that changed since the install: "does not fit"
        raise ModelInstallError(f"{path.name} could not be loaded with the base model at {base_folder}: {_first_line(exc)}") from exc


def _preflight(path: Path, info: ModelInfo, config_dir: Path, origin: str) -> None:
    """Compare a few architecture facts in the file's header with the config, for a readable mismatch message
    (diffusers' own errors name one tensor shape deep inside a component)."""
    shapes = read_safetensors_shapes(path)

    def config(sub: str) -> dict:
        f = config_dir / sub / "config.json"
        try:
            return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
        except (OSError, ValueError) as exc:
            raise ModelInstallError(f"Cannot read {f}: {exc}") from None

    prefix = "control_model." if info.kind == "controlnet" else "model.diffusion_model."
    unet = config("" if info.kind == "controlnet" else "unet")
    facts = []  # (what, in the file, in the config)
    conv_in = shapes.get(prefix + "input_blocks.0.0.weight")
    if conv_in and unet:
        facts.append(("UNet input channels", conv_in[1], unet.get("in_channels")))
        facts.append(("UNet base width", conv_in[0], (unet.get("block_out_channels") or [None])[0]))
    to_k = next((shapes[k] for k in sorted(shapes) if k.startswith(prefix) and k.endswith("attn2.to_k.weight")), None)
    if to_k and unet:
        facts.append(("cross-attention width", to_k[-1], unet.get("cross_attention_dim")))
    for sub, key in (
        ("text_encoder", "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"),
        ("text_encoder", "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"),
        ("text_encoder_2", "conditioner.embedders.1.model.positional_embedding"),
    ):
        if key in shapes and info.kind != "controlnet":
            facts.append((f"{sub} width", shapes[key][-1], config(sub).get("hidden_size")))
    wrong = [f"{what} {got} (configuration: {want})" for what, got, want in facts if want is not None and got != want]
    if wrong:
        raise ModelInstallError(f"{path.name} does not match {origin}: " + "; ".join(wrong))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _check_loaded(path: Path, components: dict, origin: str) -> None:
    """diffusers leaves parameters the file lacks on the meta device (no error): refuse such a model."""
    import torch

    for name, module in components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        missing = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if missing:
            raise ModelInstallError(
                f"{path.name} does not match {origin}: {len(missing)} {name} weights are missing from the file "
                f"(e.g. {missing[0]})"
            )


def _load_open_clip_text_encoder(path: Path, config_dir: Path, torch_dtype):
    """SDXL's second text encoder (OpenCLIP bigG in the file) as a CLIPTextModelWithProjection.

    Done here rather than by the pipeline's `from_single_file`, which picks the text-encoder layout by
    comparing widths and so mistakes the OpenCLIP encoder for the CLIP-L one when both are equally wide
    (as in small test models).
    """
    from accelerate import init_empty_weights
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    if not (config_dir / "text_encoder_2" / "config.json").is_file():
        raise ModelInstallError(f"The config folder {config_dir} has no text_encoder_2/config.json (needed for SDXL)")
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys() if k.startswith(_OPEN_CLIP_PREFIX)}  # noqa: SIM118
    config = CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder_2"), local_files_only=True)
    with init_empty_weights():
        model = CLIPTextModelWithProjection(config)
    converted = convert_open_clip_checkpoint(model, state, prefix=_OPEN_CLIP_PREFIX)
    if not hasattr(model, "text_model"):
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    expected = model.state_dict()
    wrong = [k for k, v in converted.items() if k not in expected or expected[k].shape != v.shape]
    if wrong:
        k = wrong[0]
        got, want = tuple(converted[k].shape), tuple(expected[k].shape) if k in expected else None
        raise ModelInstallError(
            f"{path.name} does not match the text_encoder_2 configuration in {config_dir}: {k} has shape {got}, expected {want}"
        )
    model.load_state_dict(converted, strict=False, assign=True)
    if torch_dtype is not None:
        model.to(torch_dtype)
    return model.eval()
