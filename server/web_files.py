"""The files of web/ the app serves, and no others (not the tests, the npm metadata, dev pages or source maps).

What the page needs: index.html, the stylesheet, our ES modules, and the vendored npm modules that the
import map in index.html names. An ES module package imports its siblings, so each import-map target's
folder is served (its .js files only). Listed once at start: a request is a set lookup.
"""

from __future__ import annotations

import json
from pathlib import Path

# An installed wheel carries the served files in server/webui (server/vendor_web.py copies them there when the
# wheel is built); a checkout serves web/ itself.
PACKAGED_WEB_DIR = Path(__file__).resolve().parent / "webui"
SOURCE_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
WEB_DIR = SOURCE_WEB_DIR if (SOURCE_WEB_DIR / "index.html").is_file() else PACKAGED_WEB_DIR
PAGES = ("index.html", "styles.css")
MODULE_DIRS = ("", "app", "canvas", "panels", "persistence", "state", "tools")  # our modules: *.js directly in these folders
_IMPORT_MAP_OPEN = '<script type="importmap">'


def import_map_targets(index_html: str) -> list[str]:
    """The URL paths the import map of our own index.html points at."""
    start = index_html.find(_IMPORT_MAP_OPEN)
    if start < 0:
        return []
    start += len(_IMPORT_MAP_OPEN)
    end = index_html.find("</script>", start)
    imports = json.loads(index_html[start:end]).get("imports", {})
    return [target for target in imports.values() if isinstance(target, str)]


def served_files(web_dir: Path = WEB_DIR) -> frozenset[str]:
    """Paths relative to web/ (POSIX style) that the server may send."""
    files = {name for name in PAGES if (web_dir / name).is_file()}
    for folder in MODULE_DIRS:
        files.update(p.relative_to(web_dir).as_posix() for p in (web_dir / folder).glob("*.js") if p.is_file())
    index = (web_dir / "index.html").read_text(encoding="utf-8")
    for target in import_map_targets(index):
        package_dir = (web_dir / target.lstrip("/")).parent
        if web_dir / "node_modules" in package_dir.parents:
            files.update(p.relative_to(web_dir).as_posix() for p in package_dir.rglob("*.js") if p.is_file())
    return frozenset(files)
