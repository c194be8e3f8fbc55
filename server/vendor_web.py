"""Copy what the page needs (server/web_files.py's served files: our pages and modules, and the pinned npm
modules the import map names) from web/ into server/webui, the package data of a wheel, so an installed
wheel serves the whole UI with no npm at install time. Run by the wheel build (setup.py) and by hand:

    python -m server.vendor_web
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .web_files import PACKAGED_WEB_DIR, SOURCE_WEB_DIR, served_files


def vendor(source: Path = SOURCE_WEB_DIR, dest: Path = PACKAGED_WEB_DIR) -> int:
    """Replace `dest` with the served files of `source`; how many were copied. Refuses a checkout whose npm
    modules are not installed (the page would load without them)."""
    files = served_files(source)
    if not any(name.startswith("node_modules/") for name in files):
        raise SystemExit(f"{source}/node_modules is missing: run `npm ci` in web/ (or scripts/setup.sh) first")
    if dest.exists():
        shutil.rmtree(dest)
    for name in sorted(files):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    return len(files)


if __name__ == "__main__":
    print(f"copied {vendor()} files to {PACKAGED_WEB_DIR}")
    sys.exit(0)
