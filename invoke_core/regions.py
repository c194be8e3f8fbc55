"""Regional guidance rules (pure numpy), after Krita AI Diffusion's `process_regions`.

Input: the request's regions, bottom to top (later = higher layer), masks float32 HxW in [0, 1] already
clipped to the bbox. Rules, applied from the top region down:

1. A higher region subtracts from the lower ones: mask_i' = clip(mask_i - covered_above, 0, 1), where
   covered_above = clip(sum of the *original* masks of the kept regions above, 0, 1). A dropped region
   subtracts nothing (as in Krita).
2. coverage_i = mean(mask_i') (a fraction of the bbox area). Below `min_coverage` (0.5 %) the region is
   dropped: that includes a region painted entirely outside the bbox, whose clipped mask is empty. Dropping
   rather than failing is deliberate: moving the bbox away from a region must not break the job. A region
   layer with nothing painted at all is a different thing, a user mistake, and compile_canvas rejects it
   with an InvalidCanvasError naming the layer (it has the layer; the request does not).
3. Above `collapse_coverage` (95 %) the region collapses into the main prompt: the effective prompt is
   "region prompt, main prompt" (Krita's merge_prompt without a {prompt} placeholder: the region's text
   first, the main prompt appended as its style); the negative prompts join the same way. The collapsed
   region still subtracts from the regions below it (they keep only what lies outside it); regions above
   it stay regions. At most one region can collapse: the subtracted masks add up to at most the bbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import InvalidCanvasError

MIN_COVERAGE = 0.005
COLLAPSE_COVERAGE = 0.95


@dataclass(frozen=True, eq=False)
class Region:
    """One region that conditions the job: its mask after subtraction, its prompts, its coverage."""

    mask: np.ndarray
    prompt: str
    negative_prompt: str
    coverage: float
    index: int  # position in the request's regions
    strength: float = 0.8  # how far the region's prompt replaces the main prompt inside its mask


@dataclass(frozen=True, eq=False)
class RegionPlan:
    prompt: str  # the effective main prompt
    negative_prompt: str
    regions: tuple[Region, ...]  # bottom to top, the ones that stay regions
    fates: tuple[dict, ...] = field(default=())  # per request region: use ("region"|"main"|"dropped"),
    # coverage after subtraction, bounds (x, y, w, h) of the subtracted mask in bbox pixels (None if empty)


def merge_prompt(first: str, second: str) -> str:
    """Krita-style: `second` may hold a {prompt} placeholder for `first`; else the non-empty parts are joined."""
    first, second = first.strip(), second.strip()
    if "{prompt}" in second:
        return second.replace("{prompt}", first)
    return ", ".join(p for p in (first, second) if p)


def plan_regions(
    regions: Sequence,
    prompt: str,
    negative_prompt: str = "",
    min_coverage: float = MIN_COVERAGE,
    collapse_coverage: float = COLLAPSE_COVERAGE,
) -> RegionPlan:
    """Apply the rules above to `regions` (objects with .mask, .prompt, .negative_prompt and optionally
    .strength)."""
    if not regions:
        return RegionPlan(prompt, negative_prompt, ())
    shape = np.asarray(regions[0].mask).shape
    covered = np.zeros(shape, np.float32)
    kept: list[Region] = []
    fates: list[dict] = [{}] * len(regions)
    main_prompt, main_negative = prompt, negative_prompt
    for index in range(len(regions) - 1, -1, -1):
        region = regions[index]
        original = np.asarray(region.mask, dtype=np.float32)
        if original.shape != shape or original.ndim != 2:
            raise InvalidCanvasError(
                f"region {index + 1} ({region.prompt!r}): mask of shape {original.shape}, expected {shape}"
            )
        if not np.isfinite(original).all() or original.min() < 0 or original.max() > 1:
            raise InvalidCanvasError(f"region {index + 1} ({region.prompt!r}): mask values must be in [0, 1]")
        strength = getattr(region, "strength", Region.strength)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise InvalidCanvasError(f"region {index + 1} ({region.prompt!r}): strength must be in [0, 1], got {strength!r}")
        mask = np.clip(original - covered, 0, 1).astype(np.float32)
        coverage = float(mask.mean())
        if coverage < min_coverage:
            fates[index] = {"use": "dropped", "coverage": coverage, "bounds": mask_bounds(mask)}
            continue
        covered = np.clip(covered + original, 0, 1)
        if coverage > collapse_coverage:
            main_prompt = merge_prompt(region.prompt, prompt)
            main_negative = merge_prompt(region.negative_prompt, negative_prompt)
            fates[index] = {"use": "main", "coverage": coverage, "bounds": mask_bounds(mask)}
            continue
        fates[index] = {"use": "region", "coverage": coverage, "bounds": mask_bounds(mask)}
        kept.append(Region(mask, region.prompt, region.negative_prompt, coverage, index, float(strength)))
    return RegionPlan(main_prompt, main_negative, tuple(reversed(kept)), tuple(fates))


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the mask's non-zero pixels, or None when it is empty."""
    ys, xs = np.nonzero(np.asarray(mask) > 0)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
