"""The content hash of each component of a diffusers pipeline folder (text encoders, UNet or transformer,
VAE, ...): the sha256 of its subfolder's files, so two installed models that ship the same component
(FLUX.1 dev, schnell, Fill and Kontext's T5) name it the same and the model cache loads it once.

A component is hashed once per file state: the digests are kept in a small JSON file beside the cache,
keyed by the subfolder's files, sizes and modification times, so a second start reads nothing to hash.
Components without weights (tokenizers, schedulers, processors) are not hashed: they are read with the
pipeline, and are small.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .atomic import atomic_write
from .model_records import hash_path

_WEIGHTS = (".safetensors", ".bin", ".gguf")
_LOCK = threading.Lock()


def _state(folder: Path) -> list[tuple[str, int, int]]:
    rows = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            rows.append((path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return rows


def component_hashes(folder: Path, store: Path) -> dict[str, str]:
    """{component name: sha256} for the subfolders of `folder` (a diffusers pipeline) that hold weights.
    `store`: the JSON file the digests are kept in."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}
    names = [k for k, v in index.items() if isinstance(v, list) and len(v) == 2 and v[0] and (folder / k).is_dir()]
    with _LOCK:
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}
        out, changed = {}, False
        for name in names:
            sub = folder / name
            state = _state(sub)
            if not any(rel.endswith(_WEIGHTS) for rel, _, _ in state):
                continue
            key = f"{os.path.realpath(sub)}"
            entry = known.get(key)
            if isinstance(entry, dict) and entry.get("state") == [list(r) for r in state]:
                out[name] = entry["sha256"]
                continue
            digest, _size = hash_path(sub)
            known[key] = {"state": [list(r) for r in state], "sha256": digest}
            out[name] = digest
            changed = True
        if changed:
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(store, json.dumps(known).encode())
        return out
