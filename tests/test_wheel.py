"""The wheel carries its web UI: built from a copy of the checkout (`python -m build`), installed into a fresh
venv with no npm on PATH, its `invoke-canvas` serves the whole page and Chromium loads it without errors."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def checkout_copy(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files, plus the installed npm modules (as after setup)."""
    listed = subprocess.run(
        "git ls-files; git ls-files --others --exclude-standard", shell=True, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "web" / "node_modules"), str(dest / "web")], check=True)
    return dest


def test_the_wheel_serves_the_ui_without_npm(tmp_path, request):
    from browser_helpers import app_session, launch
    from playwright import sync_api

    src = checkout_copy(tmp_path / "src")
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("invoke_canvas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "server/webui/index.html" in names and any(n.startswith("server/webui/node_modules/konva/") for n in names)
    assert not any(n.startswith("server/webui/tests/") or n.endswith("package.json") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The wheel's own files go in with pip (no dependencies fetched: torch and the rest come from this
    # test's environment, appended after the fresh venv's site-packages, so the wheel's packages win).
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    exe = venv / "bin" / "invoke-canvas"
    exe.write_text(f"#!{py}\nimport sys\nfrom server.cli import main\nsys.exit(main())\n")
    exe.chmod(0o755)
    located = subprocess.run([str(py), "-c", "import server; print(server.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert located.stdout.startswith(str(site)), located  # the wheel's code, not the checkout's

    env = {"PATH": str(venv / "bin")}  # no npm, no node
    (tmp_path / "data").mkdir()
    server = ServerProcess(tmp_path / "data", None, exe=str(exe), env=env, wait_device=False)
    try:
        assert server.get("/node_modules/konva/lib/index.js").status_code == 200  # the vendored module
        assert server.get("/package.json").status_code == 404
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            try:
                session = app_session(browser, server, tmp_path, request)
                next(session)  # the page loaded, connected, ready
                next(session, None)  # its end screenshot; fails on any console error
            finally:
                browser.close()
    finally:
        server.stop()
