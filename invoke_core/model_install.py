"""Install models by local path (diffusers folder or single-file .safetensors), or by Hugging Face repo id when online."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ModelInstallError
from .model_probe import probe_model
from .model_records import ModelRecord, ModelRegistry, hash_path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def install_model(
    registry: ModelRegistry,
    source: str,
    name: str | None = None,
    config: str | None = None,
    source_label: str | None = None,
) -> ModelRecord:
    """Probe, hash and register a model. The files stay where they are (installed in place)."""
    path = Path(source).expanduser()
    if not path.exists():
        if _REPO_ID.match(source) and not source.startswith((".", "/")):
            return _install_from_hub(registry, source, name)
        raise ModelInstallError(f"no file or folder at {source}")
    path = path.resolve()
    info = probe_model(path)  # raises ModelInstallError for pickle files and unknown families
    config_path = None
    if config:
        config_path = Path(config).expanduser().resolve()
        if not (config_path / "model_index.json").exists() and not (config_path / "config.json").exists():
            raise ModelInstallError(f"--config {config} is not a diffusers config folder (no model_index.json or config.json)")
    for existing in registry.list():
        if not existing.builtin and Path(existing.path) == path:
            raise ModelInstallError(f"{path} is already installed as {existing.id!r}")
    digest, size = hash_path(path)
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
    )
    return registry.add(record)


def _install_from_hub(registry: ModelRegistry, repo_id: str, name: str | None) -> ModelRecord:
    """Download safetensors weights and configs of a diffusers repo (never pickle files)."""
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
    return install_model(registry, folder, name=name or repo_id.split("/")[-1], source_label=f"hf:{repo_id}")
