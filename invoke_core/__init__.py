"""invoke_core: canvas document -> generation request -> images, on diffusers pipelines.

Imports neither `server` nor `db`; usable from a script, a test or a worker:

    from invoke_core import Engine, compile_canvas
    results = Engine(root).run(compile_canvas(document), on_progress, is_cancelled)

`import invoke_core` stays light: torch and diffusers load with the first use of `Engine` or `run`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Engine", "compile_canvas", "run", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "compile_canvas":
        from .compile import compile_canvas

        return compile_canvas
    if name in ("Engine", "run"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
