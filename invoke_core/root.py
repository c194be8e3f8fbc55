"""The data root: where models, the database and images live. `--root` beats INVOKE_CANVAS_ROOT beats ~/invoke-canvas."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "INVOKE_CANVAS_ROOT"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    chosen = root or os.environ.get(ENV_VAR) or Path.home() / "invoke-canvas"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def inside(root: Path, candidate: Path) -> bool:
    """True when `candidate` resolves to a path inside `root` (no escaping via .. or symlinks)."""
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
