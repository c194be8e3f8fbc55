"""One browser bench's setup: `invoke-canvas` on a free loopback port (temporary data root), Debian
Chromium, one page, its errors collected; the browser errors and the total time printed at the end."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser_helpers import VIEWPORT, launch
from server_process import ServerProcess


@dataclass
class Session:
    server: ServerProcess
    browser: Any
    page: Any
    root: Path
    errors: list[str] = field(default_factory=list)


@contextmanager
def browser_session(extra_args: list[str] | None = None) -> Iterator[Session]:
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = launch(p, extra_args)
                s = Session(server, browser, browser.new_page(viewport=VIEWPORT), Path(tmp))
                s.page.on("pageerror", lambda e: s.errors.append(str(e)))
                s.page.on("console", lambda m: m.type == "error" and s.errors.append(m.text))
                yield s
                if s.errors:
                    print("browser errors:", *s.errors, sep="\n  ")
                browser.close()
        finally:
            server.stop()
    print(f"total {time.perf_counter() - started:.1f} s")
