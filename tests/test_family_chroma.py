"""Chroma through the family seam, on the tiny random-weight `demo-chroma` (a small T5, FLUX.1's blocks with
the approximator's modulation, a 16-channel VAE with packed 2x2 latents): text to image and image to
image on its pipelines, inpaint and outpaint on the generic flow-matching path, CFG with a negative
prompt, regions at the attention level (over its text padding mask, both CFG branches), LoRA, recognition
of its folders, and what it lacks as clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rgba
from family_jobs import Jobs, region_layer, run1

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import UnsupportedError
from invoke_core.types import ControlSettings, Layer, LayerKind, LoraSpec

MODEL = "demo-chroma"


jobs = Jobs(MODEL, cfg_scale=3.0)
params, doc = jobs.params, jobs.doc


def test_the_demo_is_a_chroma_model_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "chroma" and record.builtin and "random weights" in record.description
    described = families.get("chroma").describe()
    assert described["schedulers"] == ["euler"] and described["size_multiple"] == 16
    assert set(described["features"]) == {"negative_prompt", "regions", "lora"}


def test_txt2img_is_the_plain_pipelines_same_seed_same_pixels_and_previews(engine):
    import torch
    from diffusers import ChromaPipeline

    seen = []
    ours = run1(engine, doc(seed=5, negative_prompt="fog"), on_progress=seen.append)[0]
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)
    raw = ChromaPipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", negative_prompt="fog", num_inference_steps=3, guidance_scale=3.0, width=64,
                  height=64, generator=torch.Generator().manual_seed(5), output_type="np",
                  max_sequence_length=raw.tokenizer.model_max_length).images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    assert not np.array_equal(ours.image, run1(engine, doc(seed=5))[0].image), "the negative prompt counts with CFG"


def test_img2img_inpaint_and_outpaint(engine):
    init = rgba(64, 64, seed=2)
    img2img = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, init)], strength=0.6))[0]
    assert img2img.metadata["mode"] == "img2img" and not np.array_equal(img2img.image, init[..., :3])
    mask = np.zeros((64, 64, 4), np.uint8)
    mask[16:48, 16:48, 3] = 255
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask)]
    inpaint = run1(engine, doc(layers, strength=1.0))[0]
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert inpaint.metadata["mode"] == "inpaint"
    assert np.array_equal(inpaint.image[outside], init[..., :3][outside])
    assert not np.array_equal(inpaint.image[~outside], init[..., :3][~outside])
    top = rgba(32, 64, seed=4)
    outpaint = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, top)], strength=1.0, infill="telea"))[0]
    assert outpaint.metadata["mode"] == "outpaint" and np.array_equal(outpaint.image[:32], top[..., :3])


def test_image_tokens_outside_a_region_give_its_text_zero_attention_in_both_cfg_branches(engine, monkeypatch):
    """At the attention level, every double and single block, both branches: the region's text gets zero
    attention from image tokens outside it, the prompts do not mix, and the padding past each slot's first
    pad token stays masked as the pipeline masks it."""
    import torch
    from family_jobs import record_attention, regional_call

    request = compile_canvas(doc([region_layer()], steps=2))
    pipe, args, processor = regional_call(engine, MODEL, request)
    family = families.get("chroma")
    calls = record_attention(monkeypatch)
    with torch.inference_mode(), family.attention(pipe, [], processor):
        pipe(**args, num_inference_steps=2, guidance_scale=3.0, width=64, height=64, output_type="np",
             generator=torch.Generator().manual_seed(1), max_sequence_length=pipe.tokenizer.model_max_length)
    tokens = pipe.tokenizer.model_max_length  # every slot is padded to the T5 length
    n_txt, n_img = 2 * tokens, 16
    inside = torch.arange(n_img) % 4 < 2  # the left half of the 4 x 4 patch grid
    config = pipe.transformer.config
    masked = [c for c in calls if c["masked"]]
    assert len(masked) == 2 * 2 * (config.num_layers + config.num_single_layers), "both branches, every block, each step"
    region_cols = slice(tokens, 2 * tokens)
    real = int(args["prompt_attention_mask"][0, tokens:].sum())  # the region slot's tokens and its first pad
    for call in masked:
        probs = call["probs"]
        image_rows = probs[:, :, n_txt:]
        assert torch.count_nonzero(image_rows[:, :, ~inside][..., region_cols]) == 0
        assert torch.all(image_rows[:, :, inside][..., region_cols].sum(-1) > 0)
        assert torch.count_nonzero(probs[:, :, :tokens, region_cols]) == 0
        assert torch.count_nonzero(probs[:, :, region_cols, n_txt:][..., ~inside]) == 0
    # the positive branch's region padding past its first pad token: masked as keys
    positive = masked[0]["probs"]
    assert torch.count_nonzero(positive[..., tokens + real :tokens * 2]) == 0


def test_a_chroma_lora_is_told_from_a_flux_one_and_changes_the_image(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    chroma_lora = install_model(engine.registry, str(build_transformer_lora(engine.registry.get(MODEL).path, tmp_path / "c.safetensors", "chroma", seed=1)), name="chroma a")
    flux_lora = install_model(engine.registry, str(build_transformer_lora(engine.registry.get("demo-flux").path, tmp_path / "f.safetensors", "flux", seed=1)), name="flux a")
    assert (chroma_lora.family, flux_lora.family) == ("chroma", "flux")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(chroma_lora.id, 1.0),)))[0]
    assert not np.array_equal(one.image, plain.image) and np.array_equal(run1(engine, doc(**small))[0].image, plain.image)


def test_what_chroma_lacks_is_refused_naming_the_family_and_the_feature(engine):
    control = Layer("c", LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=5), control=ControlSettings(model="demo-flux-controlnet", preprocessor="none"))
    with pytest.raises(UnsupportedError, match="Chroma models have no ControlNet"):
        run1(engine, doc([control]))
    with pytest.raises(UnsupportedError, match="Chroma models have no true CFG"):
        run1(engine, doc(true_cfg_scale=2.0))


def test_a_chroma_folder_installs_by_path_and_runs(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.chroma_demo import build_chroma_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(engine.registry, str(build_chroma_demo(tmp_path / "my-chroma")), name="my chroma")
    assert (record.family, record.kind, record.format) == ("chroma", "main", "diffusers")
    result = engine.run(compile_canvas(doc(model=record.id, size=32, steps=2)))[0]
    assert result.image.shape == (32, 32, 3) and result.metadata["model"]["family"] == "chroma"
