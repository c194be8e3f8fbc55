"""Prompt weighting and long prompts (compel) on the real demo SD1.5 model and the tiny SDXL model (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError
from invoke_core.prompts import encode_prompts
from invoke_core.schedulers import make_scheduler
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Mode

LONG = ", ".join(f"detail {i}" for i in range(50))  # far beyond 77 tokens


def doc(**kw) -> CanvasDocument:
    base = dict(prompt="a lighthouse at dusk", steps=2, seed=3, cfg_scale=5.0, mask_blur=0, infill="color")
    base.update(kw)
    return CanvasDocument(Bounds(0, 0, 64, 64), (), GenerationParams(**base))


def run1(engine, **kw):
    return engine.run(compile_canvas(doc(**kw)))[0]


def raw_pipeline_image(engine, model_id, prompt, negative_prompt, seed=3):
    """What the pipeline makes from plain `prompt=` strings, the way the engine called it before compel."""
    record = engine.resolve_model(model_id)
    pipe, _ = engine.pipeline_for(engine.cache.get(record, engine.device).model, record, Mode.TXT2IMG)
    pipe.scheduler = make_scheduler(doc().params.scheduler, pipe.scheduler.config, seed)
    with torch.inference_mode():
        out = pipe(
            prompt=prompt,
            negative_prompt=negative_prompt or None,
            num_inference_steps=2,
            guidance_scale=5.0,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
            width=64,
            height=64,
        )
    return (np.asarray(out.images[0]) * 255).round().clip(0, 255).astype(np.uint8), pipe


@pytest.fixture(scope="module")
def sdxl(engine, sdxl_folder):
    from invoke_core.model_install import install_model

    record = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl prompts")
    yield record
    engine.registry.remove(record.id)


@pytest.mark.parametrize("family", ["sd-1", "sdxl"])
def test_weighting_long_prompts_blend_and_on_both_families(engine, sdxl, family):
    model = "demo" if family == "sd-1" else sdxl.id
    for negative in ("", "blurry, low quality"):
        # no weighting syntax: exactly the pipeline's own prompt encoding and image
        expected, pipe = raw_pipeline_image(engine, model, "a lighthouse at dusk", negative)
        plain = run1(engine, model=model, negative_prompt=negative)
        assert np.array_equal(plain.image, expected)
    kwargs = encode_prompts(pipe, family, "a lighthouse at dusk", "", True)
    with torch.inference_mode():
        reference = pipe.encode_prompt("a lighthouse at dusk", device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True)
    assert torch.equal(kwargs["prompt_embeds"], reference[0]) and torch.equal(kwargs["negative_prompt_embeds"], reference[1])
    if family == "sdxl":  # empty negative on SDXL: zeros (force_zeros_for_empty_prompt), as diffusers
        assert torch.equal(kwargs["pooled_prompt_embeds"], reference[2])
        assert not kwargs["negative_prompt_embeds"].any() and not kwargs["negative_pooled_prompt_embeds"].any()

    # weights change the conditioning and the image
    for weighted in ("a (lighthouse)1.6 at dusk", "a lighthouse++ at dusk--"):
        embeds = encode_prompts(pipe, family, weighted, "", True)["prompt_embeds"]
        assert embeds.shape == kwargs["prompt_embeds"].shape
        assert not torch.equal(embeds, kwargs["prompt_embeds"])
    assert not np.array_equal(run1(engine, model=model, prompt="a (lighthouse)1.6 at dusk").image, plain.image)

    # blend and conjunction run; .and() and long prompts are not truncated, negatives padded to match
    blend = encode_prompts(pipe, family, '("a lighthouse", "a storm").blend(0.7, 0.3)', "", True)
    assert blend["prompt_embeds"].shape[1] == 77
    both = encode_prompts(pipe, family, '("a lighthouse", "a storm").and()', "blurry", True)
    assert both["prompt_embeds"].shape[1] == both["negative_prompt_embeds"].shape[1] == 154
    long = encode_prompts(pipe, family, LONG, "blurry", True)
    assert long["prompt_embeds"].shape[1] > 77 and long["prompt_embeds"].shape[1] % 77 == 0
    assert long["negative_prompt_embeds"].shape == long["prompt_embeds"].shape
    for prompt in ('("a lighthouse", "a storm").blend(0.7, 0.3)', '("a lighthouse", "a storm").and()', LONG):
        result = run1(engine, model=model, prompt=prompt, negative_prompt="blurry")
        assert result.image.shape == (64, 64, 3) and result.metadata["prompt"] == prompt


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("a (lighthouse at dusk", "unbalanced parentheses"),
        ("a (lighthouse)1.3) at dusk", "unbalanced parentheses"),
        ('("a lighthouse", "a storm").blend(0.7', "unbalanced parentheses"),
        ('("a lighthouse" "a storm").blend(0.7, 0.3)', r"malformed \.blend\(\)"),
        ('("a lighthouse", "a storm).and()', "unbalanced double quotes"),
        ('("a lighthouse", "a storm").blend(0.1, 0.2, 0.3)', "mismatched prompts/weights"),
    ],
)
def test_malformed_syntax_is_a_clear_error(engine, prompt, message):
    with pytest.raises(InvalidCanvasError, match=message) as error:
        run1(engine, prompt=prompt)
    assert "\n" not in str(error.value)
    with pytest.raises(InvalidCanvasError, match="negative prompt"):
        run1(engine, negative_prompt=prompt)


def test_a1111_weights_read_as_compel_weights(engine, sdxl):
    from invoke_core.prompt_syntax import to_compel

    assert to_compel("a (red:1.5) boat, ((sails:1.2) white:0.8)") == "a (red)1.5 boat, ((sails)1.2 white)0.8"
    assert to_compel("smile :) at 10:30 \\(a:1.2\\)") == "smile :) at 10:30 \\(a:1.2\\)"  # not weights: left alone
    assert to_compel("a [foggy] sea, [[rain]], [cat:dog:0.5]") == "a (foggy)0.9091 sea, ((rain)0.9091)0.9091, [cat:dog:0.5]"
    for model in ("demo", sdxl.id):
        record = engine.resolve_model(model)
        pipe, _ = engine.pipeline_for(engine.cache.get(record, engine.device).model, record, Mode.TXT2IMG)
        a1111 = encode_prompts(pipe, record.family, "a (red:1.5) boat", "", True)
        compel = encode_prompts(pipe, record.family, "a (red)1.5 boat", "", True)
        plain = encode_prompts(pipe, record.family, "a red boat", "", True)
        assert torch.equal(a1111["prompt_embeds"], compel["prompt_embeds"])
        assert not torch.equal(a1111["prompt_embeds"], plain["prompt_embeds"])


@pytest.mark.parametrize("family", ["sd-1", "sdxl", "flux"])
def test_conditioning_is_kept_between_jobs_on_the_text_encoder(engine, sdxl, family):
    """A second job with the same prompts runs no text encoder and makes the same image; a new prompt does."""
    model = {"sd-1": "demo", "sdxl": sdxl.id, "flux": "demo-flux"}[family]
    extra = {"true_cfg_scale": 2.0, "cfg_scale": 3.5} if family == "flux" else {}  # FLUX: the negative's branch too
    first = run1(engine, model=model, prompt="a kept prompt, (soft light)1.2", negative_prompt="blur", **extra)
    pipe = engine.cache.get(engine.registry.get(model), engine.device).model
    calls = []
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    hooks = [e.register_forward_hook(lambda *_: calls.append(1)) for e in encoders]
    try:
        again = run1(engine, model=model, prompt="a kept prompt, (soft light)1.2", negative_prompt="blur", **extra)
        assert calls == [] and np.array_equal(again.image, first.image)
        other = run1(engine, model=model, prompt="another prompt", negative_prompt="blur", **extra)
        assert calls and not np.array_equal(other.image, first.image)
    finally:
        for hook in hooks:
            hook.remove()
