"""Install models by local path (diffusers folder or single-file .safetensors), or by Hugging Face repo id when online."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from . import families
from .errors import ModelInstallError
from .model_probe import ModelInfo, probe_model
from .model_records import GENERATING_KINDS, ModelRecord, ModelRegistry, hash_path
from .safe_paths import Forbidden, as_forbidden, check_source, check_tree

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_install_source(source: str, forbidden: Forbidden | Sequence[Path] | None = None) -> None:
    """The checks of `install_model` that need no reading, for a caller to run before starting the
    install in the background: ModelInstallError if `source` is, lies inside or holds a forbidden path,
    or is not a regular file or a folder (a FIFO, socket, device, broken link). A source that does not
    exist passes (it may be a Hugging Face repo id; `install_model` says so otherwise). Opens nothing."""
    guard = as_forbidden(forbidden)
    path = Path(source).expanduser()
    guard.check(path, shown=source)
    if os.path.lexists(path):
        check_source(path, guard)


def install_model(
    registry: ModelRegistry,
    source: str,
    name: str | None = None,
    config: str | None = None,
    source_label: str | None = None,
    forbidden: Forbidden | Sequence[Path] | None = None,
    base: str | None = None,
) -> ModelRecord:
    """Probe, hash and register a model. The files stay where they are (installed in place).

    `forbidden`: paths that must never be read (the data folder's database files and image folders,
    from `db.session.protected_paths(root)`). A source that is, lies inside or holds one of them, or a
    folder with any such entry (symlinks resolved), is refused before anything is opened. So is any
    entry that is not a regular file or a folder (FIFO, socket, device, broken link): the whole folder
    is checked up front, since all of it is hashed and loaded. Every failure is a ModelInstallError.

    A family's transformer alone (a FLUX.1, SD 3.x, Chroma, HiDream-I1, Z-Image or Qwen-Image file) runs
    with the text encoders and VAE of an installed diffusers model of its family: `base` (a model id),
    `config` (a folder), or else the first installed one whose encoders fit the file's widths.
    """
    guard = as_forbidden(forbidden)
    path = Path(source).expanduser()
    guard.check(path, shown=source)
    if not os.path.lexists(path):
        if _REPO_ID.match(source) and not source.startswith((".", "/")):
            return _install_from_hub(registry, source, name, guard)
        raise ModelInstallError(f"no file or folder at {source}")
    if check_source(path, guard) == "dir":
        check_tree(path, guard)
    path = path.resolve()
    info = probe_model(path, guard)  # raises ModelInstallError for pickle files and unknown families
    config_path = None
    if config:
        config_path = Path(config).expanduser()
        guard.check(config_path, shown=config)
        config_path = config_path.resolve()
        if not (config_path / "model_index.json").exists() and not (config_path / "config.json").exists():
            raise ModelInstallError(f"--config {config} is not a diffusers config folder (no model_index.json or config.json)")
        check_tree(config_path, guard)
    for existing in registry.list():
        if not existing.builtin and Path(existing.path) == path:
            raise ModelInstallError(f"{path} is already installed as {existing.id!r}")
    description = ""
    alone = info.format == "single-file" and info.kind in GENERATING_KINDS  # a pipeline's weights, not a LoRA or ControlNet
    spec = families.get(info.family).transformer_file if alone else None
    if spec is not None:
        config_path, description = _transformer_base(registry, info, path, spec, config_path, base)
    elif base:
        raise ModelInstallError(f"--base is for a transformer file alone; {path.name} is a {info.family} {info.kind} model")
    if info.kind == "ip_adapter":  # the CLIP image encoder it reads: --config, the one beside it, or an installed one
        config_path, description = _adapter_encoder(registry, path, config_path, guard)
    digest, size = hash_path(path, guard)
    display = name or (path.stem if path.is_file() else path.name)
    record = ModelRecord(
        id="",
        name=display,
        family=info.family,
        kind=info.kind,
        format=info.format,
        path=str(path),
        hash=digest,
        size=size,
        source=source_label or str(path),
        config_path=str(config_path) if config_path else None,
        description=description or info.description,
        scale=info.scale,
    )
    return registry.add(record)


def _adapter_encoder(registry: ModelRegistry, path: Path, folder: Path | None, guard: Forbidden) -> tuple[Path | None, str]:
    """The image encoder an IP-Adapter file runs with (invoke_core/ip_adapter.py): `folder` (--config), else
    an image_encoder folder beside it (installed with it), else the first installed one that fits; and the
    record's description. None when none fits yet (a job then names what to install)."""
    from .ip_adapter import ENCODER_KIND, adapter_info, encoder_config, encoder_fits, find_encoder_beside, is_image_encoder_config

    adapter = adapter_info(path)
    if folder is not None and not (is_image_encoder_config(encoder_config(folder)) and encoder_fits(adapter, encoder_config(folder))):
        raise ModelInstallError(f"--config {folder} is not a CLIP image encoder that {path.name} reads ({adapter.encoder_width} wide)")
    folder = folder or find_encoder_beside(path, adapter)
    encoders = [r for r in registry.list() if r.kind == ENCODER_KIND and not r.builtin]
    if folder is not None:
        record = next((r for r in encoders if Path(r.path) == folder), None) or install_model(registry, str(folder), forbidden=guard)
    else:
        record = next((r for r in encoders if encoder_fits(adapter, encoder_config(r.path))), None)
    if record is None:
        width = f"{adapter.encoder_width} {'hidden' if adapter.hidden_states else 'projection'} width"
        return None, f"{adapter.label}; needs a CLIP image encoder of {width}: install its image_encoder folder"
    return Path(record.path), f"{adapter.label}; image encoder {record.id}"


def _transformer_base(
    registry: ModelRegistry, info: ModelInfo, path: Path, spec, config_path: Path | None, base: str | None
) -> tuple[Path, str]:
    """The folder whose text encoders, tokenizers and VAE a transformer file runs with, and its description."""
    from .families.transformer_file import check_base, choose_base
    from .gguf_file import is_gguf, quantisation, read_gguf_shapes
    from .model_probe import read_weight_shapes

    family = families.get(info.family)
    shapes = read_weight_shapes(path)
    if config_path is not None:
        check_base(spec, shapes, config_path, family.label, path.name)
        model_id, folder = str(config_path), config_path
    else:
        model_id, folder = choose_base(spec, shapes, _base_candidates(registry, info.family, base), family.label, path.name)
    quantised = f", GGUF {quantisation(read_gguf_shapes(path)[1])}" if is_gguf(path) else ""
    return Path(folder), f"{spec.layout}-layout transformer file{quantised}; text encoders and VAE from {model_id}"


def _base_candidates(registry: ModelRegistry, family: str, base: str | None) -> list[tuple[str, Path]]:
    """(id, folder) of the diffusers models of `family` a transformer file could run with: `base` alone when
    named, else the installed ones, then the family's first demo (built on first use)."""
    if base:
        record = registry.get(base)
        if record.family != family or record.format != "diffusers" or record.kind not in GENERATING_KINDS:
            raise ModelInstallError(
                f"--base {base}: a {record.family} {record.kind} {record.format} model; name a {family} diffusers main model"
            )
        return [(record.id, Path(record.path))]
    records = registry.list()
    installed = [r for r in records if not r.builtin and r.family == family and r.format == "diffusers" and r.kind in GENERATING_KINDS]
    demo = next((r for r in records if r.builtin and r.family == family and r.kind == "main"), None)
    if demo is not None:
        demo = registry.get(demo.id)  # built on first use
    return [(r.id, Path(r.path)) for r in [*installed, *([demo] if demo else [])]]


def cached_snapshot(repo_id: str) -> Path | None:
    """The repo's snapshot in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE layout: what
    `huggingface-cli download` or any diffusers script left there), found without the network; None if absent."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), a half-written cache...: not there
        return None


def _install_from_hub(registry: ModelRegistry, repo_id: str, name: str | None, forbidden: Forbidden) -> ModelRecord:
    """A repo already in the local Hugging Face cache installs from there, in place and offline; otherwise
    its safetensors weights and configs are downloaded (never pickle files)."""
    snapshot = cached_snapshot(repo_id)
    if snapshot is not None:
        return install_model(registry, str(snapshot), name=name or repo_id.split("/")[-1], source_label=f"hf:{repo_id}", forbidden=forbidden)
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id,
            local_dir=registry.models_dir / "hub" / repo_id.replace("/", "--"),
            allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model"],
            ignore_patterns=["*.fp16.safetensors", "*.non_ema*", "*.ckpt", "*.bin", "*.pt"],
        )
    except Exception as exc:  # network, auth, missing repo: all one line for the user
        raise ModelInstallError(f"could not download {repo_id!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return install_model(registry, folder, name=name or repo_id.split("/")[-1], source_label=f"hf:{repo_id}", forbidden=forbidden)
