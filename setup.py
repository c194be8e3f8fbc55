"""The wheel build copies the web UI (with its pinned npm modules) into the package: server/vendor_web.py.
Everything else about the package is in pyproject.toml."""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithWebUI(build_py):
    def run(self) -> None:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from server.vendor_web import vendor

        # Not for an editable install (a checkout serves web/ itself); an sdist without web/ keeps its copy.
        if not getattr(self, "editable_mode", False) and (Path(__file__).resolve().parent / "web" / "index.html").is_file():
            vendor()
        super().run()


setup(cmdclass={"build_py": BuildWithWebUI})
