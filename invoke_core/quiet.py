"""Keep a terminal or a log for our own output: no library progress bars, no advice about their internals."""

from __future__ import annotations

import os


def quiet_environment() -> None:
    """What can be said before the libraries load, without importing them (commands that never touch
    torch stay fast): their verbosity through the environment they read at import, no FutureWarnings."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def quiet_libraries() -> None:
    """Keep the terminal for our own output: no library progress bars or advice about their internals.
    Imports diffusers and transformers (and so torch): called where they load anyway (the engine)."""
    quiet_environment()
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
