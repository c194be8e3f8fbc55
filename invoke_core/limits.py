"""What the app accepts, in one place: the API schema (server/schemas.py), the canvas compiler's checks
(invoke_core/compile.py) and recall (db/png_metadata.py, which drops recorded values outside these ranges)
all read them from here."""

from __future__ import annotations

from typing import NamedTuple


class Range(NamedTuple):
    low: float
    high: float
    low_open: bool = False  # True: `low` itself is outside

    def holds(self, value: float) -> bool:
        return (self.low < value if self.low_open else self.low <= value) and value <= self.high


STEPS = Range(1, 500)
CFG_SCALE = Range(0, 50)
SEED = Range(0, 2**32 - 1)
STRENGTH = Range(0, 1, low_open=True)  # denoise strength; 0 would change nothing
BATCH_SIZE = Range(1, 64)
MASK_BLUR = Range(0, 256)
SCALE = Range(0.25, 4)
BBOX_SIDE = Range(0, 8192, low_open=True)  # the bbox's width and height (also multiples of 8: see compile)

PROMPT_MAX_CHARS = 10_000
SEARCH_MAX_CHARS = 500
MAX_LAYERS = 200
