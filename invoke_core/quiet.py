"""Keep a terminal or a log for our own output: no library progress bars, no advice about their internals."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """Keep the terminal for our own output: no library progress bars or advice about their internals."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
