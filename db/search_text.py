"""What an image is found by besides its own prompt: the region prompts of the generation that made it.

The full-text index `images_fts` covers the image row's prompt, negative_prompt, model_name and
region_prompts columns (see db/migrations/versions/0002_region_prompts_search.py). `region_prompts` is
filled from the generation's stored request by `region_prompts_text`, the one definition used both when
an image is saved (db.images.add_image) and by the migration that backfilled older images.

Pure and defensive: a stored request is any JSON (older rows, hand-made ones), so anything unexpected is
skipped, never raised on; at most MAX_LAYERS layers and PROMPT_MAX_CHARS characters a prompt are read.
"""

from __future__ import annotations

from typing import Any

from invoke_core.limits import MAX_LAYERS, PROMPT_MAX_CHARS


def region_prompts_text(request: Any) -> str:
    """The prompts and negative prompts of the request's visible regional-guidance layers (the ones the
    canvas compiler turns into regions), bottom layer first, one non-blank prompt a line."""
    layers = request.get("layers") if isinstance(request, dict) else None
    if not isinstance(layers, list):
        return ""
    lines: list[str] = []
    for layer in layers[:MAX_LAYERS]:
        if not isinstance(layer, dict) or layer.get("kind") != "regional_guidance" or layer.get("visible") is False:
            continue
        region = layer.get("region")
        if not isinstance(region, dict):
            continue
        for key in ("prompt", "negative_prompt"):
            value = region.get(key)
            if isinstance(value, str) and value.strip():
                lines.append(value[:PROMPT_MAX_CHARS])
    return "\n".join(lines)
