"""Model families behind one interface (`base.Family`): one module per family, registered here.

Adding a family: a module with its `FAMILY`, one line below, its tiny test-model builder and tests.
"""

from __future__ import annotations

from ..errors import UnsupportedError
from . import chroma, flux, flux2, flux2_dev, hidream, qwenimage, sd1, sd3, sdxl, zimage
from .base import FEATURES, Defaults, Family

_REGISTRY: dict[str, Family] = {
    f.name: f
    for f in (
        sd1.FAMILY, sdxl.FAMILY, sd3.FAMILY, flux.FAMILY, flux2.FAMILY, flux2_dev.FAMILY, chroma.FAMILY, hidream.FAMILY, zimage.FAMILY,
        qwenimage.FAMILY,
    )
}
# The first family that claims a file owns it: Qwen-Image before SD 3 and FLUX.1 (its blocks are 3072 wide,
# as FLUX.1's), Chroma and FLUX.2 before FLUX.1 (their LoRA keys are mostly FLUX.1's), FLUX.2 [dev] before
# [klein] (the same LoRA keys: dev's are told by their width or header); each claims only the LoRAs it can
# tell apart by their keys or header
_CLAIM_ORDER = ("qwen-image", "chroma", "flux2-dev", "flux2")

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get(name: str) -> Family:
    """The family of a model record (`record.family`)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedError(f"model family {name!r} is not supported; supported: {', '.join(NAMES)}") from None


def all_families() -> tuple[Family, ...]:
    return tuple(_REGISTRY.values())


def claiming_families() -> tuple[Family, ...]:
    """Every family in the order the model probe asks them to claim a folder or file."""
    first = tuple(_REGISTRY[name] for name in _CLAIM_ORDER)
    return first + tuple(f for f in _REGISTRY.values() if f not in first)


def describe() -> dict[str, dict]:
    """Every family's description for the API."""
    return {name: f.describe() for name, f in _REGISTRY.items()}


__all__ = ["FEATURES", "NAMES", "Defaults", "Family", "all_families", "claiming_families", "describe", "get"]
