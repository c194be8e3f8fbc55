"""Canvas jobs for the family tests: documents on one model with the family's test defaults, and the
layers they share (an inpaint mask over the middle, a region over the left half, a control layer)."""

from __future__ import annotations

import numpy as np
from conftest import rgba

from invoke_core.compile import compile_canvas
from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LayerKind, RegionPrompt


class Jobs:
    def __init__(self, model: str, cfg_scale: float):
        self.model, self.cfg_scale = model, cfg_scale

    def params(self, **kw) -> GenerationParams:
        base = dict(prompt="a lighthouse at dusk", model=self.model, steps=3, seed=7, cfg_scale=self.cfg_scale, mask_blur=0, infill="color")
        return GenerationParams(**(base | kw))

    def doc(self, layers=(), size: int = 64, width: int | None = None, height: int | None = None, **kw) -> CanvasDocument:
        return CanvasDocument(Bounds(0, 0, width or size, height or size), tuple(layers), self.params(**kw))


def run1(engine, document, **kw):
    return engine.run(compile_canvas(document), **kw)


def region_layer(columns: slice = slice(0, 32), prompt: str = "a red boat", size: int = 64) -> Layer:
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[:, columns, 3] = 255
    return Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt=prompt))


def control_layer(model: str, layer_id: str = "c", **kw) -> Layer:
    return Layer(layer_id, LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=5), control=ControlSettings(model=model, **{"preprocessor": "none", **kw}))


def inpaint_layers(seed: int = 2, box: tuple[int, int, int, int] = (16, 48, 16, 48)) -> tuple[list[Layer], np.ndarray, np.ndarray]:
    """A raster layer and a mask over `box` (rows y0:y1, columns x0:x1) of a 64 px box; the pixels; where
    the result must keep them."""
    init = rgba(64, 64, seed=seed)
    y0, y1, x0, x1 = box
    mask = np.zeros((64, 64, 4), np.uint8)
    mask[y0:y1, x0:x1, 3] = 255
    outside = np.ones((64, 64), bool)
    outside[y0:y1, x0:x1] = False
    return [Layer("img", LayerKind.RASTER, 0, 0, init), Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask)], init, outside


def regional_call(engine, model: str, request):
    """`model`'s text-to-image pipeline and its family's regional call arguments and processor for `request`."""
    from invoke_core import families
    from invoke_core.regions import plan_regions
    from invoke_core.types import Mode

    record = engine.resolve_model(model)
    pipe, _task = engine.pipeline_for(engine.cache.get(record, engine.device).model, record, Mode.TXT2IMG)
    plan = plan_regions(request.regions, request.params.prompt, request.params.negative_prompt)
    args, processor = families.get(record.family).regional(pipe, request, plan)
    return pipe, args, processor


def record_attention(monkeypatch) -> list[dict]:
    """Every scaled-dot-product attention from now on (the test's): its probabilities with the mask added
    (rows masked whole read 0) and whether it had a mask."""
    import torch
    import torch.nn.functional as F

    calls, sdpa = [], F.scaled_dot_product_attention

    def recording(query, key, value, attn_mask=None, **kw):
        scores = query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5
        if attn_mask is not None:
            scores = scores + attn_mask
        calls.append({"probs": torch.nan_to_num(scores.float().softmax(-1)), "masked": attn_mask is not None})
        return sdpa(query, key, value, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    return calls
