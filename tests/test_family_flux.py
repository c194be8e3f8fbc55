"""FLUX.1 through the family seam, on the tiny random-weight `demo-flux` (a CLIP for the pooled prompt, a
small T5, an MMDiT of one double and two single blocks with guidance embedding, a 16-channel VAE with
packed 2x2 latents, flow matching): every canvas mode through invoke_core.run, regions at the attention
level, ControlNets, the family's rules as clear errors, in the core and through the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import rgba

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, UnsupportedError
from invoke_core.types import Bounds, CanvasDocument, ControlSettings, GenerationParams, Layer, LayerKind, LoraSpec, RegionPrompt

MODEL = "demo-flux"
CONTROLNET = "demo-flux-controlnet"


def params(**kw) -> GenerationParams:
    base = dict(prompt="a lighthouse at dusk", model=MODEL, steps=3, seed=7, cfg_scale=3.5, mask_blur=0, infill="color")
    base.update(kw)
    return GenerationParams(**base)


def doc(layers=(), size=64, **kw) -> CanvasDocument:
    return CanvasDocument(Bounds(0, 0, size, size), tuple(layers), params(**kw))


def run1(engine, document, **kw):
    return engine.run(compile_canvas(document), **kw)


def raster(seed: int = 1, height: int = 64) -> Layer:
    return Layer("img", LayerKind.RASTER, 0, 0, rgba(height, 64, seed=seed))


def mask_layer(box: tuple[int, int, int, int]) -> Layer:
    pixels = np.zeros((64, 64, 4), np.uint8)
    y0, y1, x0, x1 = box
    pixels[y0:y1, x0:x1, 3] = 255
    return Layer("mask", LayerKind.INPAINT_MASK, 0, 0, pixels)


def region_layer(columns: slice = slice(0, 32), prompt: str = "a red boat", layer_id: str = "r") -> Layer:
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, columns, 3] = 255
    return Layer(layer_id, LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt=prompt))


def control_layer(model: str = CONTROLNET, layer_id: str = "c", seed: int = 5, **kw) -> Layer:
    return Layer(layer_id, LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=seed),
                 control=ControlSettings(model=model, **{"preprocessor": "none", **kw}))


def test_the_demo_is_a_flux_model_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "flux" and record.builtin and "random weights" in record.description
    assert engine.registry.get(CONTROLNET).family == "flux"


def test_txt2img_same_seed_same_pixels_other_seed_differs_and_previews(engine):
    seen = []
    a = run1(engine, doc(seed=7), on_progress=seen.append)[0]
    b = run1(engine, doc(seed=7))[0]
    c = run1(engine, doc(seed=8))[0]
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.metadata["model"]["family"] == "flux" and a.metadata["mode"] == "txt2img"
    # packed (1, 16 tokens, 64) latents unpacked to the 8 x 8 latent grid
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)


def test_the_guidance_is_distilled_guidance_and_changes_the_image(engine):
    a = run1(engine, doc(cfg_scale=3.5))[0]
    b = run1(engine, doc(cfg_scale=1.0))[0]
    assert not np.array_equal(a.image, b.image)


def test_a_non_square_box_runs_at_its_size(engine):
    result = engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, 96, 64), (), params())))[0]
    assert result.image.shape == (64, 96, 3)


def test_img2img_repaints_the_box_at_the_generation_size(engine):
    init = raster(seed=1)
    result = run1(engine, doc([init], strength=0.6))[0]
    assert result.metadata["mode"] == "img2img" and result.image.shape == (64, 64, 3)
    assert not np.array_equal(result.image, init.pixels[..., :3])


def test_inpaint_keeps_every_pixel_outside_the_mask(engine):
    init = raster(seed=2)
    result = run1(engine, doc([init, mask_layer((16, 48, 16, 48))], strength=1.0))[0]
    assert result.metadata["mode"] == "inpaint"
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(result.image[outside], init.pixels[..., :3][outside])
    assert not np.array_equal(result.image[~outside], init.pixels[..., :3][~outside])


def test_outpaint_keeps_every_originally_opaque_pixel(engine):
    init = raster(seed=4, height=32)  # the top 32 rows of the box
    result = run1(engine, doc([init], strength=1.0, infill="telea"))[0]
    assert result.metadata["mode"] == "outpaint"
    assert np.array_equal(result.image[:32], init.pixels[..., :3])
    assert result.image[32:].std() > 0


@pytest.mark.parametrize("name", families.get("flux").schedulers)
def test_each_flow_matching_scheduler_runs_deterministically(engine, name):
    a = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    b = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    assert np.array_equal(a.image, b.image) and a.metadata["scheduler"] == name


def test_the_familys_rules_are_clear_errors(engine):
    with pytest.raises(InvalidCanvasError, match=r"'dpmpp_2m' does not suit FLUX.1 models: choose one of euler$"):
        run1(engine, doc(scheduler="dpmpp_2m"))
    with pytest.raises(InvalidCanvasError, match=r"generation width 72 .* not a multiple of 16.*use 64 or 80"):
        engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, 72, 64), (), params())))
    with pytest.raises(InvalidCanvasError, match="ControlNet 'demo-sd3-controlnet' is for sd-3, the model 'demo-flux' is flux"):
        run1(engine, doc([control_layer("demo-sd3-controlnet")]))
    with pytest.raises(InvalidCanvasError, match="ControlNet 'demo-flux-controlnet' is for flux, the model 'demo-sd3' is sd-3"):
        run1(engine, doc([control_layer()], model="demo-sd3", cfg_scale=4.5))
    with pytest.raises(UnsupportedError, match="have no control modes: use balanced"):
        run1(engine, doc([control_layer(mode="prompt")]))


def test_a_region_changes_the_image_and_is_reproducible(engine):
    plain = run1(engine, doc())[0]
    a = run1(engine, doc([region_layer()]))[0]
    b = run1(engine, doc([region_layer()]))[0]
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, plain.image)
    assert a.metadata["regions"]["items"][0]["use"] == "region"


def test_image_tokens_outside_a_region_give_its_text_zero_attention(engine, monkeypatch):
    """At the attention level: the mask reaches SDPA in every double and single block, every step; the
    probabilities are computed from the real queries and keys of each call."""
    import torch
    from family_jobs import record_attention, regional_call

    request = compile_canvas(doc([region_layer(columns=slice(0, 32))], steps=2))
    pipe, args, _processor = regional_call(engine, MODEL, request)
    calls = record_attention(monkeypatch)
    with torch.inference_mode():
        pipe(**args, num_inference_steps=2, guidance_scale=3.5, width=64, height=64, output_type="np",
             generator=torch.Generator().manual_seed(1))
    tokens = pipe.tokenizer_2.model_max_length  # every slot is padded to the T5 length
    n_txt, n_img = 2 * tokens, 16  # main + one region; 4 x 4 patches of 16 px
    inside = torch.arange(n_img) % 4 < 2  # the left half of the patch grid
    config = pipe.transformer.config
    masked = [c for c in calls if c["masked"]]  # the VAE decoder's attention is the one unmasked call
    assert len(masked) == 2 * (config.num_layers + config.num_single_layers) == len(calls) - 1
    region_cols = slice(tokens, 2 * tokens)
    for call in masked:
        probs = call["probs"]  # (1, heads, text + image, text + image), token order [text, image]
        image_rows = probs[:, :, n_txt:]
        assert torch.count_nonzero(image_rows[:, :, ~inside][..., region_cols]) == 0
        assert torch.all(image_rows[:, :, inside][..., region_cols].sum(-1) > 0)
        # the prompts do not mix; region text reads only its region's image tokens
        assert torch.count_nonzero(probs[:, :, :tokens, region_cols]) == 0
        assert torch.count_nonzero(probs[:, :, region_cols, n_txt:][..., ~inside]) == 0


def test_without_regions_the_output_is_the_plain_pipelines(engine):
    import torch
    from diffusers import FluxPipeline

    ours = run1(engine, doc(seed=5, steps=3))[0]
    record = engine.resolve_model(MODEL)
    base = engine.cache.get(record, engine.device).model
    raw = FluxPipeline(**base.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", num_inference_steps=3, guidance_scale=3.5, width=64, height=64,
                  generator=torch.Generator().manual_seed(5), output_type="np", max_sequence_length=raw.tokenizer_2.model_max_length).images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))


def test_true_cfg_runs_the_negative_prompt_as_the_plain_pipeline_does(engine):
    """True CFG above 1: the negative prompt as a second branch, the same pixels as FluxPipeline's own
    true CFG; at 1 (off) the negative prompt changes nothing."""
    import torch
    from diffusers import FluxPipeline

    ours = run1(engine, doc(seed=5, steps=3, negative_prompt="fog", true_cfg_scale=2.5))[0]
    assert ours.metadata["true_cfg_scale"] == 2.5
    raw = FluxPipeline(**engine.cache.get(engine.resolve_model(MODEL), engine.device).model.components)
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", negative_prompt="fog", true_cfg_scale=2.5, num_inference_steps=3, guidance_scale=3.5,
                  width=64, height=64, generator=torch.Generator().manual_seed(5), output_type="np",
                  max_sequence_length=raw.tokenizer_2.model_max_length).images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))
    off = run1(engine, doc(seed=5, steps=3, negative_prompt="fog"))[0]
    assert "true_cfg_scale" not in off.metadata
    assert np.array_equal(off.image, run1(engine, doc(seed=5, steps=3))[0].image)
    assert not np.array_equal(off.image, ours.image)


def test_true_cfg_with_regions_masks_both_branches(engine):
    layers = [region_layer()]
    a = run1(engine, doc(layers, seed=5, negative_prompt="fog", true_cfg_scale=2.0))[0]
    b = run1(engine, doc(layers, seed=5, negative_prompt="fog", true_cfg_scale=2.0))[0]
    plain = run1(engine, doc(layers, seed=5, negative_prompt="fog"))[0]
    assert a.metadata["regions"]["items"][0]["use"] == "region" and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, plain.image)


def test_true_cfg_where_a_pipeline_or_family_has_none_is_a_clear_error(engine):
    with pytest.raises(UnsupportedError, match="FluxControlNetImg2ImgPipeline has no true CFG: set True CFG to 1"):
        run1(engine, doc([raster(), control_layer()], true_cfg_scale=2.0))
    with pytest.raises(UnsupportedError, match="FluxFillPipeline has no true CFG"):
        run1(engine, doc([raster()], model="demo-flux-fill", true_cfg_scale=2.0))
    with pytest.raises(UnsupportedError, match=r"Stable Diffusion 3.5 models have no true CFG \(their CFG scale is classifier-free guidance already\)"):
        run1(engine, doc(model="demo-sd3", true_cfg_scale=2.0))
    with pytest.raises(InvalidCanvasError, match="true_cfg_scale must be"):
        run1(engine, doc(true_cfg_scale=0.5))


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_a_flux_controlnet_steers_every_task(engine, mode):
    base = {"txt2img": [], "img2img": [raster(seed=6)], "inpaint": [raster(seed=6), mask_layer((0, 64, 0, 32))]}[mode]
    plain = run1(engine, doc(base, seed=3, strength=0.8))[0]
    a = run1(engine, doc([*base, control_layer()], seed=3, strength=0.8))[0]
    b = run1(engine, doc([*base, control_layer()], seed=3, strength=0.8))[0]
    assert a.metadata["mode"] == mode
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, plain.image)
    assert a.metadata["controls"][0]["model"]["family"] == "flux"
    # The Flux ControlNet pipelines sample the control image's latent from the job's generator, so the
    # starting noise differs from a job without control: the weight's effect is compared with weight 0.
    weak = run1(engine, doc([*base, control_layer(weight=0.0)], seed=3, strength=0.8))[0]
    weak_again = run1(engine, doc([*base, control_layer(weight=0.0, seed=11)], seed=3, strength=0.8))[0]
    assert np.array_equal(weak.image, weak_again.image), "weight 0: the control image does not matter"
    assert not np.array_equal(weak.image, a.image)


def test_two_flux_controlnets_and_a_region_together(engine):
    one = run1(engine, doc([control_layer()], seed=3))[0]
    both = run1(engine, doc([control_layer(), control_layer(layer_id="c2", seed=9), region_layer()], seed=3))[0]
    assert len(both.metadata["controls"]) == 2 and both.metadata["regions"]["items"][0]["use"] == "region"
    assert not np.array_equal(one.image, both.image)


def test_the_api_refuses_flux_jobs_it_cannot_run_with_422(tmp_path):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        document = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "p", "model": MODEL, "steps": 2}}
        for change, message in [
            ({"scheduler": "heun"}, "does not suit FLUX.1 models: choose one of euler"),
            ({"scale": 1.125}, "not a multiple of 16"),
            ({"edit": True}, "is a FLUX.1 main model, which cannot run an edit job: choose an edit model (FLUX.1 Kontext, Qwen-Image-Edit): demo-flux-kontext, demo-qwen-edit"),
        ]:
            body = {"document": {**document, "params": {**document["params"], **change}}}
            r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
            assert r.status_code == 422, (change, r.status_code, r.json)
            assert message in r.json["message"], r.json
        config = client.get("/api/v1/config").json["families"]["flux"]
        assert config["size_multiple"] == 16 and {"controlnet", "true_cfg", "negative_prompt"} <= set(config["features"])
        ok = client.post("/api/v1/canvas/jobs", json={"document": document}, headers={"Origin": "http://localhost"})
        assert ok.status_code in (200, 201), ok.json
    finally:
        shutdown(app)


def test_a_flux_diffusers_folder_installs_by_path_as_flux_and_runs(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")  # its own registry: an installed model becomes the default
    folder = build_flux_demo(tmp_path / "my-flux")
    record = install_model(engine.registry, str(folder), name="my flux")
    assert (record.family, record.kind, record.format) == ("flux", "main", "diffusers")
    result = engine.run(compile_canvas(doc(model=record.id, size=32, steps=2)))[0]
    assert result.metadata["model"]["family"] == "flux" and result.image.shape == (32, 32, 3)


FILL = "demo-flux-fill"


def test_a_flux_fill_model_inpaints_keeping_every_pixel_outside_the_mask(engine):
    record = engine.resolve_model(FILL)
    assert (record.family, record.kind) == ("flux", "inpaint")
    init = raster(seed=2)
    layers = [init, mask_layer((16, 48, 16, 48))]
    a = run1(engine, doc(layers, model=FILL, strength=1.0))[0]
    b = run1(engine, doc(layers, model=FILL, strength=1.0))[0]
    plain = run1(engine, doc(layers, strength=1.0))[0]  # the same job on the base model's inpaint pipeline
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert a.metadata["mode"] == "inpaint" and a.metadata["model"]["kind"] == "inpaint"
    assert np.array_equal(a.image, b.image) and np.array_equal(a.image[outside], init.pixels[..., :3][outside])
    assert not np.array_equal(a.image[~outside], plain.image[~outside])


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "outpaint"])
def test_a_flux_fill_model_runs_every_mode_through_its_pipeline(engine, mode):
    layers = {"txt2img": [], "img2img": [raster(seed=3)], "outpaint": [raster(seed=3, height=32)]}[mode]
    result = run1(engine, doc(layers, model=FILL, strength=1.0, infill="telea", steps=2))[0]
    assert result.metadata["mode"] == mode and result.image.shape == (64, 64, 3)
    if mode == "outpaint":
        assert np.array_equal(result.image[:32], layers[0].pixels[..., :3])
    region = run1(engine, doc([*layers, region_layer()], model=FILL, strength=1.0, infill="telea", steps=2))[0]
    assert region.metadata["regions"]["items"][0]["use"] == "region"


def test_a_flux_fill_model_with_a_controlnet_is_a_clear_error(engine):
    with pytest.raises(UnsupportedError, match="FLUX.1 inpaint models cannot run inpaint with ControlNet"):
        run1(engine, doc([raster(), mask_layer((0, 32, 0, 32)), control_layer()], model=FILL))


def test_a_flux_fill_folder_installs_as_an_inpaint_model(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(engine.registry, str(build_flux_demo(tmp_path / "fill", fill=True)), name="my fill")
    assert (record.family, record.kind) == ("flux", "inpaint")



def test_a_flux_lora_stack_changes_the_image_and_the_base_model_comes_back(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")  # its own registry for the installs
    folder = engine.registry.get(MODEL).path
    a = install_model(engine.registry, str(build_transformer_lora(folder, tmp_path / "a.safetensors", "flux", seed=1)), name="style a")
    b = install_model(engine.registry, str(build_transformer_lora(folder, tmp_path / "b.safetensors", "flux", seed=2)), name="style b")
    assert (a.family, a.kind, b.family) == ("flux", "lora", "flux")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(a.id, 1.0),)))[0]
    two = run1(engine, doc(**small, loras=(LoraSpec(a.id, 1.0), LoraSpec(b.id, 0.7))))[0]
    zero = run1(engine, doc(**small, loras=(LoraSpec(a.id, 0.0),)))[0]
    again = run1(engine, doc(**small))[0]
    assert not np.array_equal(one.image, plain.image) and not np.array_equal(two.image, one.image)
    assert np.array_equal(zero.image, plain.image) and np.array_equal(again.image, plain.image), "the base model comes back exactly"
    assert [lo["id"] for lo in two.metadata["loras"]] == [a.id, b.id]
    # with a region and a ControlNet in the same job
    both = run1(engine, doc([region_layer(columns=slice(0, 16)), control_layer()], **small, loras=(LoraSpec(a.id, 1.0),)))[0]
    assert both.metadata["loras"][0]["id"] == a.id and both.metadata["regions"]["items"][0]["use"] == "region"
    with pytest.raises(InvalidCanvasError, match=f"LoRA {a.id!r} is for flux, the model 'demo-sd3' is sd-3"):
        run1(engine, doc(model="demo-sd3", cfg_scale=4.5, loras=(LoraSpec(a.id),)))


def test_transformer_loras_are_told_apart_by_keys_width_and_header():
    flux, sd3 = families.get("flux"), families.get("sd-3")
    double_only = lambda width: {  # noqa: E731
        "transformer.transformer_blocks.0.attn.to_k.lora_A.weight": (4, width),
        "transformer.transformer_blocks.0.attn.to_k.lora_B.weight": (width, 4),
    }
    assert flux.claims_lora(double_only(3072), {}) and not sd3.claims_lora(double_only(3072), {})
    assert sd3.claims_lora(double_only(2432), {}) and not flux.claims_lora(double_only(2432), {})
    assert sd3.claims_lora(double_only(1536), {}) and not flux.claims_lora(double_only(1536), {})
    kohya = {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (16, 3072)}
    xlabs = {"double_blocks.0.processor.qkv_lora1.down.weight": (16, 3072)}
    single = {"transformer.single_transformer_blocks.3.attn.to_q.lora_A.weight": (4, 64)}
    for shapes in (kohya, xlabs, single):
        assert flux.claims_lora(shapes, {}) and not sd3.claims_lora(shapes, {}), shapes
    assert not flux.claims_lora(double_only(40), {}) and not sd3.claims_lora(double_only(40), {})
    assert sd3.claims_lora(double_only(40), {"modelspec.architecture": "stable-diffusion-v3-medium/lora"})
    sd1 = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768)}
    assert not flux.claims_lora(sd1, {}) and not sd3.claims_lora(sd1, {})


KONTEXT = "demo-flux-kontext"


def test_a_kontext_model_edits_the_pixels_under_the_box_as_its_reference(engine):
    record = engine.resolve_model(KONTEXT)
    assert (record.family, record.kind) == ("flux", "edit")
    instruction = dict(model=KONTEXT, prompt="make the sky red", steps=2)
    seen = []
    a = run1(engine, doc([raster(seed=1)], **instruction), on_progress=seen.append)[0]
    b = run1(engine, doc([raster(seed=1)], **instruction))[0]
    assert seen[-1].preview.size == (8, 8), "it runs at the generation size (64 px: 8 x 8 latents)"
    other_reference = run1(engine, doc([raster(seed=2)], **instruction))[0]
    assert a.metadata["mode"] == "edit" and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, other_reference.image), "the reference steers the edit"
    # a mask keeps the edit inside it; an empty box is text to image
    masked = run1(engine, doc([raster(seed=1), mask_layer((0, 32, 0, 64))], **instruction))[0]
    assert masked.metadata["mode"] == "edit"
    assert np.array_equal(masked.image[32:], raster(seed=1).pixels[32:, :, :3])
    empty = run1(engine, doc([], **instruction))[0]
    assert empty.metadata["mode"] == "txt2img" and empty.image.shape == (64, 64, 3)


def test_an_edit_job_needs_an_edit_model(engine):
    for model, label in (("demo-flux", "FLUX.1 main"), ("demo-sd3", "Stable Diffusion 3.5 main"), ("demo-flux-fill", "FLUX.1 inpaint")):
        with pytest.raises(UnsupportedError, match=f"'{model}' is a {label} model, which cannot run an edit job: .*demo-flux-kontext"):
            run1(engine, doc([raster()], model=model, steps=2, edit=True))
    asked = run1(engine, doc([raster(seed=1)], model=KONTEXT, prompt="make the sky red", steps=2, edit=True))[0]
    implied = run1(engine, doc([raster(seed=1)], model=KONTEXT, prompt="make the sky red", steps=2))[0]
    assert asked.metadata["mode"] == "edit" and np.array_equal(asked.image, implied.image)


def test_what_a_kontext_edit_cannot_do_is_a_clear_error(engine):
    with pytest.raises(UnsupportedError, match="Kontext edit jobs have no regional prompts"):
        run1(engine, doc([raster(), region_layer()], model=KONTEXT, steps=2))
    with pytest.raises(UnsupportedError, match="FLUX.1 edit models cannot run edit with ControlNet"):
        run1(engine, doc([raster(), control_layer()], model=KONTEXT, steps=2))


def test_a_kontext_folder_installs_as_an_edit_model(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(engine.registry, str(build_flux_demo(tmp_path / "kontext", kontext=True)), name="my kontext")
    assert (record.family, record.kind) == ("flux", "edit")


SCHNELL = "demo-flux-schnell"


def test_schnell_has_its_own_defaults_and_ignores_the_guidance(engine, tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_demo
    from invoke_core.model_install import install_model

    flux = families.get("flux")
    assert flux.model_defaults(engine.registry.get(SCHNELL)).steps == 4
    assert flux.model_defaults(engine.registry.get(MODEL)) is None, "dev: the family's defaults"
    a = run1(engine, doc(model=SCHNELL, steps=4, cfg_scale=1.0))[0]
    b = run1(engine, doc(model=SCHNELL, steps=4, cfg_scale=3.5))[0]
    assert np.array_equal(a.image, b.image), "schnell has no guidance input"
    # an installed schnell folder is told by its transformer (no guidance embedding)
    other = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(other.registry, str(build_flux_demo(tmp_path / "schnell", schnell=True)), name="my schnell")
    assert flux.model_defaults(record).steps == 4


def test_the_api_serves_a_models_own_defaults(tmp_path):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        models = {m["id"]: m for m in app.test_client().get("/api/v1/models").json}
        assert models[SCHNELL]["defaults"]["steps"] == 4
        assert models[MODEL]["defaults"] is None and models["demo"]["defaults"] is None
    finally:
        shutdown(app)


@pytest.fixture(scope="module")
def union_engine(tmp_path_factory):
    from invoke_core.engine import Engine
    from invoke_core.families.flux_demo import build_flux_controlnet_demo
    from invoke_core.model_install import install_model

    tmp = tmp_path_factory.mktemp("union")
    own = Engine(root=tmp / "root", device="cpu")
    folder = build_flux_controlnet_demo(tmp / "union", Path(own.registry.get(MODEL).path), union=True)
    own.union_id = install_model(own.registry, str(folder), name="tiny union").id
    return own


def test_a_union_controlnet_runs_the_control_type_of_each_layer(union_engine):
    from invoke_core.families.flux import UNION_TYPES

    union = union_engine.union_id
    assert families.get("flux").control_types(union_engine.registry.get(union)) == UNION_TYPES
    assert families.get("flux").control_types(union_engine.registry.get(CONTROLNET)) == ()
    depth = run1(union_engine, doc([control_layer(union, control_type="depth")]))[0]
    again = run1(union_engine, doc([control_layer(union, control_type="depth")]))[0]
    pose = run1(union_engine, doc([control_layer(union, control_type="pose")]))[0]
    assert np.array_equal(depth.image, again.image) and not np.array_equal(depth.image, pose.image)
    assert depth.metadata["controls"][0]["control_type"] == "depth"
    # a preprocessor that makes a known map says the type; with a one-kind ControlNet beside it
    canny = run1(union_engine, doc([control_layer(union, preprocessor="canny"), control_layer(layer_id="c2")]))[0]
    assert [c.get("control_type") for c in canny.metadata["controls"]] == ["canny", None]


def test_a_union_controlnet_without_a_control_type_is_a_clear_error(union_engine):
    union = union_engine.union_id
    with pytest.raises(InvalidCanvasError, match=f"control 1: ControlNet '{union}' is a Union ControlNet: choose what the control image shows .*canny, tile, depth"):
        run1(union_engine, doc([control_layer(union)]))
    with pytest.raises(InvalidCanvasError, match="control type 'normal' is not one of"):
        run1(union_engine, doc([control_layer(union, control_type="normal")]))
    with pytest.raises(InvalidCanvasError, match=f"ControlNet '{CONTROLNET}' takes one kind of control image: leave its control type unset"):
        run1(union_engine, doc([control_layer(control_type="depth")]))


def test_the_api_serves_a_union_controlnets_types_and_refuses_a_job_without_one(tmp_path):
    from invoke_core.families.flux_demo import build_flux_controlnet_demo
    from invoke_core.model_install import install_model
    from invoke_core.model_records import ModelRegistry
    from server.app import create_app, shutdown

    registry = ModelRegistry(tmp_path / "root")
    union = install_model(registry, str(build_flux_controlnet_demo(tmp_path / "u", Path(registry.get(MODEL).path), union=True)), name="union").id
    app = create_app({"root": str(tmp_path / "root"), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        listed = {m["id"]: m for m in client.get("/api/v1/models").json}
        assert listed[union]["control_types"][:3] == ["canny", "tile", "depth"] and listed[CONTROLNET]["control_types"] is None
        import io

        from PIL import Image

        png = io.BytesIO()
        Image.new("RGBA", (64, 64), (255, 255, 255, 255)).save(png, "PNG")
        up = client.post("/api/v1/images", data={"file": (io.BytesIO(png.getvalue()), "c.png")}, content_type="multipart/form-data", headers={"Origin": "http://localhost"})
        image_id = up.json["id"]
        layer = {"id": "c", "kind": "control", "image_id": image_id, "control": {"model": union}}
        document = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [layer], "params": {"prompt": "p", "model": MODEL, "steps": 2}}
        r = client.post("/api/v1/canvas/jobs", json={"document": document}, headers={"Origin": "http://localhost"})
        assert r.status_code == 422 and "is a Union ControlNet: choose what the control image shows" in r.json["message"], r.json
        layer["control"]["control_type"] = "depth"
        ok = client.post("/api/v1/canvas/jobs", json={"document": document}, headers={"Origin": "http://localhost"})
        assert ok.status_code in (200, 201), ok.json
    finally:
        shutdown(app)


@pytest.fixture(scope="module")
def control_lora_engine(tmp_path_factory):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_control_lora
    from invoke_core.model_install import install_model

    tmp = tmp_path_factory.mktemp("control-lora")
    own = Engine(root=tmp / "root", device="cpu")
    file = build_control_lora(Path(own.registry.get(MODEL).path), tmp / "flux-canny-lora.safetensors", seed=4)
    own.control_lora = install_model(own.registry, str(file), name="tiny canny lora")
    return own


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_a_control_lora_steers_every_task_and_the_base_model_comes_back(control_lora_engine, mode):
    """A FLUX.1 Control LoRA (Canny/Depth: the patch embedding widened to take the control latents) on a
    control layer runs the family's control pipelines; afterwards the model is its own again, bit for bit."""
    e, lora = control_lora_engine, control_lora_engine.control_lora
    assert (lora.family, lora.kind) == ("flux", "control_lora")
    base = {"txt2img": [], "img2img": [raster()], "inpaint": [raster(), mask_layer((16, 48, 16, 48))]}[mode]
    plain = run1(e, doc(base, seed=2))[0]
    a = run1(e, doc([*base, control_layer(lora.id, weight=0.9)], seed=2))[0]
    b = run1(e, doc([*base, control_layer(lora.id, weight=0.9)], seed=2))[0]
    other = run1(e, doc([*base, control_layer(lora.id, weight=0.9, seed=8)], seed=2))[0]
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, other.image), "the control image steers it"
    assert a.metadata["controls"][0]["model"]["id"] == lora.id and "loras" not in a.metadata
    assert np.array_equal(run1(e, doc(base, seed=2))[0].image, plain.image), "the Control LoRA is gone after its job"
    if mode == "inpaint":
        outside = np.ones((64, 64), bool)
        outside[16:48, 16:48] = False
        assert np.array_equal(a.image[outside], raster().pixels[..., :3][outside])


def test_what_a_control_lora_cannot_do_is_a_clear_error(control_lora_engine):
    from invoke_core.errors import InvalidCanvasError as Invalid

    e, lora = control_lora_engine, control_lora_engine.control_lora.id
    with pytest.raises(UnsupportedError, match=f"Control LoRA '{lora}' runs alone: hide the other control layers"):
        run1(e, doc([control_layer(lora), control_layer(layer_id="c2")]))
    with pytest.raises(UnsupportedError, match="acts over every step: set begin 0 and end 1"):
        run1(e, doc([control_layer(lora, end=0.5)]))
    with pytest.raises(UnsupportedError, match="at weight 0 does nothing"):
        run1(e, doc([control_layer(lora, weight=0.0)]))
    with pytest.raises(Invalid, match="is a Control LoRA: use it as a control layer's model, not in the LoRA list"):
        run1(e, doc(loras=(LoraSpec(lora, 1.0),)))
    with pytest.raises(UnsupportedError, match="FLUX.1 inpaint models cannot run inpaint with a Control LoRA"):
        run1(e, doc([raster(), control_layer(lora)], model="demo-flux-fill"))
    with pytest.raises(Invalid, match=f"ControlNet '{lora}' is for flux, the model 'demo-sd3' is sd-3"):
        run1(e, doc([control_layer(lora)], model="demo-sd3", cfg_scale=4.5))
