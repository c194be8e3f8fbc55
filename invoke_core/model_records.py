"""Model records and the registry that keeps them (a JSON file under the data root, written atomically)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import demo, families
from .atomic import atomic_write
from .errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError
from .limits import WEIGHT_STORAGES
from .safe_paths import Forbidden, as_forbidden, check_source, iter_files, open_checked

KINDS = ("main", "inpaint", "edit", "controlnet", "control_lora", "lora", "upscaler", "ip_adapter", "image_encoder", "redux")
# the kinds a job can run on: a main model, an inpainting one, an instruction-editing one (FLUX.1 Kontext)
GENERATING_KINDS = ("main", "inpaint", "edit")
# what a control layer can run with: a ControlNet, or a Control LoRA (FLUX.1 Canny/Depth: a LoRA that takes
# the control image's latents beside the noise)
CONTROL_KINDS = ("controlnet", "control_lora")
# what a reference layer runs with: on SD 1.x / SDXL an IP-Adapter, which reads a CLIP image encoder
# (invoke_core/ip_adapter.py); on FLUX.1 a FLUX Redux folder (SigLIP encoder + Redux embedder, families/flux_redux.py)
REFERENCE_KINDS = ("ip_adapter", "redux")


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    family: str  # a name of invoke_core.families ("sd-1", "sdxl", "sd-3", ...)
    kind: str  # one of KINDS
    format: str  # "diffusers" | "single-file"
    path: str
    hash: str = ""  # sha256 of the weights (files sorted by relative path for folders)
    size: int = 0  # bytes on disk
    source: str = ""  # "builtin", a local path, or "hf:<repo id>"
    description: str = ""
    config_path: str | None = None  # diffusers config folder for single files of non-standard architecture
    builtin: bool = False
    installed_at: float = 0.0
    scale: int | None = None  # an upscaler's factor (2, 4); None for the other kinds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def short_hash(self) -> str:
        return self.hash[:10]


# Built-in demo models: (id, name, folder under models/demo, kind, family); the SD 1.5 ones, then each
# family's (invoke_core/families)
DEMO_MODELS = (
    ("demo", "Demo SD1.5 (tiny)", "sd15", "main", "sd-1"),
    ("demo-inpaint", "Demo SD1.5 inpainting (tiny)", "sd15-inpaint", "inpaint", "sd-1"),
    ("demo-controlnet", "Demo ControlNet (tiny)", "controlnet", "controlnet", "sd-1"),
    # tiny ESRGANs (invoke_core/upscalers.py), one .safetensors file each, for every family ("any")
    ("demo-upscaler", "Demo ESRGAN upscaler x4 (tiny)", "upscaler-x4.safetensors", "upscaler", "any"),
    ("demo-upscaler-x2", "Demo ESRGAN upscaler x2 (tiny)", "upscaler-x2.safetensors", "upscaler", "any"),
    # a tiny IP-Adapter for the SD1.5 demo and the CLIP image encoder it reads (invoke_core/ip_adapter_demo.py)
    ("demo-ip-adapter", "Demo IP-Adapter SD1.5 (tiny)", "ip-adapter", "ip_adapter", "sd-1"),
    ("demo-image-encoder", "Demo CLIP image encoder (tiny)", "image-encoder", "image_encoder", "any"),
) + tuple((d.id, d.name, d.folder, d.kind, f.name) for f in families.all_families() for d in f.demos)
_FAMILY_DEMOS = {d.id: d for f in families.all_families() for d in f.demos}
_DEMO_UPSCALER_SCALES = {"demo-upscaler": 4, "demo-upscaler-x2": 2}


def check_edit_request(edit: bool, record: ModelRecord, records: Sequence[ModelRecord]) -> None:
    """Refuse an edit job (`GenerationParams.edit`) on a model that is not an edit model (UnsupportedError)."""
    if not edit or record.kind == "edit":
        return
    from .errors import UnsupportedError

    editors = ", ".join(r.id for r in records if r.kind == "edit") or "none is installed"
    raise UnsupportedError(
        f"model {record.id!r} is a {families.get(record.family).label} {record.kind} model, which cannot run an"
        f" edit job: choose an edit model (FLUX.1 Kontext, Qwen-Image-Edit): {editors}"
    )


def check_control_loras(settings: Sequence[Any], records: Sequence[ModelRecord]) -> None:
    """A Control LoRA runs alone (diffusers' control pipelines take one control image and no ControlNet),
    at its weight over every step. `settings` and `records`: each control layer's."""
    loras = [(s, r) for s, r in zip(settings, records) if r.kind == "control_lora"]
    if not loras:
        return
    from .errors import UnsupportedError

    (chosen, record), *_ = loras
    if len(records) > 1:
        raise UnsupportedError(
            f"Control LoRA {record.id!r} runs alone: hide the other control layers (or use ControlNets for several)"
        )
    if chosen.begin != 0 or chosen.end != 1:
        raise UnsupportedError(f"Control LoRA {record.id!r} acts over every step: set begin 0 and end 1")
    if chosen.weight == 0:
        raise UnsupportedError(f"Control LoRA {record.id!r} at weight 0 does nothing: raise it or hide the control layer")


def hash_path(path: Path, forbidden: Forbidden | Sequence[Path] | None = None) -> tuple[str, int]:
    """sha256 and byte size of a file, or of a folder's files in sorted relative-path order.

    Every entry that is not a folder must be a regular file (after symlinks) and not `forbidden`
    (see `safe_paths`): a FIFO, socket, device or broken link is refused unopened (ModelInstallError).
    """
    path = Path(path)
    guard = as_forbidden(forbidden)
    is_dir = check_source(path, guard) == "dir"
    digest = hashlib.sha256()
    total = 0
    files = list(iter_files(path)) if is_dir else [path]
    for file in files:
        if is_dir:
            digest.update(file.relative_to(path).as_posix().encode())
        with open_checked(file, guard) as fh:
            try:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    total += len(chunk)
            except OSError as exc:
                raise ModelInstallError(f"Cannot read {file}: {exc.strerror or exc}") from None
    return digest.hexdigest(), total


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


class JsonRecordStore:
    """Where the single-user default keeps the registry: two JSON files under <root>/models, written
    atomically. `db.model_store.DatabaseRecordStore` is the same interface on a shared database."""

    def __init__(self, models_dir: Path):
        self.file = models_dir / "registry.json"
        self.options_file = models_dir / "options.json"  # per model: keep loaded, weight storage

    def load(self) -> list[dict[str, Any]]:
        if not self.file.exists():
            return []
        try:
            rows = json.loads(self.file.read_text())
        except (ValueError, RecursionError) as exc:
            raise ModelInstallError(f"model registry {self.file} is unreadable ({exc}); fix or delete it") from exc
        if not isinstance(rows, list):
            raise ModelInstallError(f"model registry {self.file} is unreadable (not a list); fix or delete it")
        return rows

    def save(self, rows: list[dict[str, Any]]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.file, json.dumps(rows, indent=2).encode(), temp_prefix=".registry.")

    def load_options(self) -> dict[str, Any]:
        try:
            data = json.loads(self.options_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_options(self, options: dict[str, dict[str, Any]]) -> None:
        self.options_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.options_file, json.dumps(options, indent=1, sort_keys=True).encode(), temp_prefix=".options.")


class ModelRegistry:
    """Installed models. Demo models are always listed; their folders are built on first use.

    `store`: where the records live (JsonRecordStore under the root by default; a database store when
    workers on several machines share one registry)."""

    def __init__(self, root: Path, store: Any = None):
        self.root = root
        self.models_dir = root / "models"
        self.store = store if store is not None else JsonRecordStore(self.models_dir)
        self._lock = threading.RLock()

    # --- per-model options (the Memory dialog's) ---------------------------------------------------------
    def _options(self) -> dict[str, dict[str, Any]]:
        data = self.store.load_options()
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def options(self, model_id: str) -> dict[str, Any]:
        """A model's options: `keep_loaded` (bool) and `weights` (limits.WEIGHT_STORAGES), with defaults."""
        own = self._options().get(model_id, {})
        return {"keep_loaded": bool(own.get("keep_loaded", False)), "weights": own.get("weights") if own.get("weights") in WEIGHT_STORAGES else "native"}

    def resident_ids(self) -> set[str]:
        """The models marked "keep loaded" that are still installed."""
        known = {r.id for r in self.list()}
        return {i for i, o in self._options().items() if o.get("keep_loaded") and i in known}

    def set_options(self, model_id: str, keep_loaded: bool | None = None, weights: str | None = None) -> ModelRecord:
        with self._lock:
            record = self.get(model_id)  # ModelNotFoundError for an unknown id
            if weights is not None and weights not in WEIGHT_STORAGES:
                raise InvalidCanvasError(f"weights {weights!r}: use one of {', '.join(WEIGHT_STORAGES)}")
            options = self._options()
            own = {**self.options(model_id)}
            if keep_loaded is not None:
                own["keep_loaded"] = keep_loaded
            if weights is not None:
                own["weights"] = weights
            options[model_id] = own
            self.store.save_options(options)
            return record

    # --- storage -----------------------------------------------------------------------------
    def _read(self) -> dict[str, ModelRecord]:
        rows = self.store.load()
        try:
            return {r["id"]: ModelRecord(**r) for r in rows}
        except (TypeError, KeyError) as exc:
            raise ModelInstallError(f"model registry is unreadable ({exc}); fix or delete it") from exc

    def _write(self, records: dict[str, ModelRecord]) -> None:
        self.store.save([r.to_dict() for r in records.values()])

    # --- demo models ---------------------------------------------------------------------------
    def _demo_record(
        self, model_id: str, name: str, folder: str, kind: str, family: str, stored: ModelRecord | None
    ) -> ModelRecord:
        path = self.models_dir / "demo" / folder
        return ModelRecord(
            id=model_id,
            name=name,
            family=family,
            kind=kind,
            format="single-file" if kind == "upscaler" else "diffusers",
            path=str(path),
            hash=stored.hash if stored else "",
            size=stored.size if stored else 0,
            source="builtin",
            description=demo.DEMO_LABEL,
            builtin=True,
            scale=_DEMO_UPSCALER_SCALES.get(model_id),
        )

    def ensure_demo_built(self, model_id: str) -> ModelRecord:
        """Build the demo folders the first time they are needed; record their hash."""
        with self._lock:
            records = self._read()
            spec = next(s for s in DEMO_MODELS if s[0] == model_id)
            record = self._demo_record(*spec, stored=records.get(model_id))
            path = Path(record.path)
            if path.exists() and record.hash:
                return record
            base = self.models_dir / "demo"
            if model_id in ("demo", "demo-controlnet") and not (base / "sd15").exists():
                demo.build_sd15_demo(base / "sd15")
            if model_id == "demo-inpaint" and not path.exists():
                demo.build_sd15_demo(path, inpaint=True)
            if model_id == "demo-controlnet" and not path.exists():
                demo.build_controlnet_demo(path, base / "sd15")
            if model_id in _FAMILY_DEMOS and not path.exists():
                _FAMILY_DEMOS[model_id].build(path, base)
            if model_id in _DEMO_UPSCALER_SCALES and not path.exists():
                from .upscalers import build_demo_upscaler

                build_demo_upscaler(path, _DEMO_UPSCALER_SCALES[model_id])
            if model_id in ("demo-ip-adapter", "demo-image-encoder") and not path.exists():
                from .ip_adapter_demo import build_image_encoder_demo, build_ip_adapter_demo

                build_ip_adapter_demo(path, base) if model_id == "demo-ip-adapter" else build_image_encoder_demo(path)
            digest, size = hash_path(path)
            record = dataclasses.replace(record, hash=digest, size=size, installed_at=time.time())
            records[model_id] = record
            self._write(records)
            return record

    # --- queries -------------------------------------------------------------------------------
    def list(self) -> list[ModelRecord]:
        with self._lock:
            records = self._read()
            demos = [self._demo_record(*spec, stored=records.get(spec[0])) for spec in DEMO_MODELS]
            installed = [r for r in records.values() if not r.builtin]
            return demos + sorted(installed, key=lambda r: r.name.lower())

    def get(self, model_id: str) -> ModelRecord:
        for record in self.list():
            if record.id == model_id:
                if record.builtin:
                    return self.ensure_demo_built(model_id)
                return record
        known = ", ".join(r.id for r in self.list())
        raise ModelNotFoundError(f"unknown model {model_id!r}: installed models are {known}")

    def default_model_id(self, kind: str = "main") -> str:
        """The first installed real model of the kind; the demo only while none is installed."""
        for record in self.list():
            if not record.builtin and record.kind == kind:
                return record.id
        # the first demo of the kind ("demo", "demo-inpaint", "demo-controlnet", "demo-flux-kontext")
        return next((spec[0] for spec in DEMO_MODELS if spec[3] == kind), "demo")

    # --- changes -------------------------------------------------------------------------------
    def add(self, record: ModelRecord) -> ModelRecord:
        with self._lock:
            records = self._read()
            taken = set(records) | {s[0] for s in DEMO_MODELS}
            base = record.id or _slug(record.name)
            model_id, n = base, 2
            while model_id in taken:
                model_id, n = f"{base}-{n}", n + 1
            record = dataclasses.replace(record, id=model_id, installed_at=time.time())
            records[model_id] = record
            self._write(records)
            return record

    def remove(self, model_id: str) -> ModelRecord:
        with self._lock:
            records = self._read()
            if any(s[0] == model_id for s in DEMO_MODELS):
                raise ModelInstallError(f"{model_id!r} is built in and cannot be removed")
            if model_id not in records:
                raise ModelNotFoundError(f"unknown model {model_id!r}")
            users = [r.id for r in records.values() if r.config_path and Path(r.config_path) == Path(records[model_id].path)]
            if users:
                role = "image encoder" if records[model_id].kind == "image_encoder" else "base model"  # of IP-Adapters
                raise ModelInstallError(f"{model_id!r} is the {role} of {', '.join(users)}: remove those first")
            record = records.pop(model_id)
            self._write(records)
            return record
