"""Shared fixtures: a real engine on a temporary data root with the real demo models (no mocks)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import settings

from invoke_core.quiet import quiet_libraries

quiet_libraries()

# CI runs the same examples every time (a failure there is reproducible, never a new random draw); local runs
# explore new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="session")
def engine(data_root):
    from invoke_core.engine import Engine

    return Engine(root=data_root, device="cpu")


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory):
    from invoke_core.demo import build_sdxl_demo

    return build_sdxl_demo(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(scope="session")
def sdxl_inpaint_folder(tmp_path_factory):
    from invoke_core.demo import build_sdxl_demo

    return build_sdxl_demo(tmp_path_factory.mktemp("sdxl-inpaint") / "tiny-sdxl-inpaint", inpaint=True)


def rgba(h: int, w: int, seed: int = 0, alpha: int = 255) -> np.ndarray:
    """A deterministic random opaque (or uniformly translucent) RGBA image."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = alpha
    return img
