"""Model families behind one interface (`base.Family`): one module per family, registered here.

Adding a family: a module with its `FAMILY`, one line below, its tiny test-model builder and tests.
"""

from __future__ import annotations

from ..errors import UnsupportedError
from . import chroma, flux, hidream, sd1, sd3, sdxl, zimage
from .base import FEATURES, Defaults, Family

# The first family that claims a file owns it: Chroma before FLUX.1, whose LoRA keys its LoRAs share
# (Chroma claims only those it can tell apart)
_REGISTRY: dict[str, Family] = {
    f.name: f for f in (sd1.FAMILY, sdxl.FAMILY, sd3.FAMILY, chroma.FAMILY, flux.FAMILY, hidream.FAMILY, zimage.FAMILY)
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get(name: str) -> Family:
    """The family of a model record (`record.family`)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedError(f"model family {name!r} is not supported; supported: {', '.join(NAMES)}") from None


def all_families() -> tuple[Family, ...]:
    return tuple(_REGISTRY.values())


def describe() -> dict[str, dict]:
    """Every family's description for the API."""
    return {name: f.describe() for name, f in _REGISTRY.items()}


__all__ = ["FEATURES", "NAMES", "Defaults", "Family", "all_families", "describe", "get"]
