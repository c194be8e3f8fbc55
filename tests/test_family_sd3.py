"""SD 3.5 through the family seam, on the tiny random-weight `demo-sd3` (two CLIPs, no T5, an MMDiT of two
joint blocks, a 16-channel VAE, flow matching): every canvas mode through invoke_core.run, the family's
rules (flow-matching schedulers, sizes in multiples of 16, what it cannot do yet) as clear errors, in the
core and through the API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import rgba

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, UnsupportedError
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, Layer, LayerKind, RegionPrompt

MODEL = "demo-sd3"


def params(**kw) -> GenerationParams:
    base = dict(prompt="a lighthouse at dusk", model=MODEL, steps=3, seed=7, cfg_scale=4.5, mask_blur=0, infill="color")
    base.update(kw)
    return GenerationParams(**base)


def doc(layers=(), size=64, **kw) -> CanvasDocument:
    return CanvasDocument(Bounds(0, 0, size, size), tuple(layers), params(**kw))


def run1(engine, document, **kw):
    return engine.run(compile_canvas(document), **kw)


def mask_layer(size: int, box: tuple[int, int, int, int]) -> Layer:
    pixels = np.zeros((size, size, 4), np.uint8)
    y0, y1, x0, x1 = box
    pixels[y0:y1, x0:x1, 3] = 255
    return Layer("mask", LayerKind.INPAINT_MASK, 0, 0, pixels)


def test_the_demo_is_an_sd3_model_labelled_random_weights(engine):
    record = engine.resolve_model(MODEL)
    assert record.family == "sd-3" and record.builtin and "random weights" in record.description


def test_txt2img_same_seed_same_pixels_other_seed_differs_and_previews(engine):
    seen = []
    a = run1(engine, doc(seed=7), on_progress=seen.append)[0]
    b = run1(engine, doc(seed=7))[0]
    c = run1(engine, doc(seed=8))[0]
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.metadata["model"]["family"] == "sd-3" and a.metadata["mode"] == "txt2img"
    assert [p.step for p in seen] == [1, 2, 3] and seen[-1].preview.size == (8, 8)


def test_img2img_repaints_the_box(engine):
    init = rgba(64, 64, seed=1)
    result = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, init)], strength=0.6))[0]
    assert result.metadata["mode"] == "img2img"
    assert not np.array_equal(result.image, init[..., :3])


def test_inpaint_keeps_every_pixel_outside_the_mask(engine):
    init = rgba(64, 64, seed=2)
    layers = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer(64, (16, 48, 16, 48))]
    result = run1(engine, doc(layers, strength=1.0))[0]
    assert result.metadata["mode"] == "inpaint"
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(result.image[outside], init[..., :3][outside])
    assert not np.array_equal(result.image[~outside], init[..., :3][~outside])


def test_outpaint_keeps_every_originally_opaque_pixel(engine):
    init = rgba(32, 64, seed=4)  # the top 32 rows of the box
    result = run1(engine, doc([Layer("img", LayerKind.RASTER, 0, 0, init)], strength=1.0, infill="telea"))[0]
    assert result.metadata["mode"] == "outpaint"
    assert np.array_equal(result.image[:32], init[..., :3])
    assert result.image[32:].std() > 0


@pytest.mark.parametrize("name", families.get("sd-3").schedulers)
def test_each_flow_matching_scheduler_runs_deterministically(engine, name):
    a = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    b = run1(engine, doc(size=32, scheduler=name, steps=2))[0]
    assert np.array_equal(a.image, b.image) and a.metadata["scheduler"] == name


def test_a_diffusion_scheduler_on_sd3_names_the_valid_ones(engine):
    with pytest.raises(InvalidCanvasError, match=r"'dpmpp_2m' does not suit Stable Diffusion 3.5 models: choose one of euler, heun"):
        run1(engine, doc(scheduler="dpmpp_2m"))


def test_a_size_not_a_multiple_of_16_names_the_nearest(engine):
    with pytest.raises(InvalidCanvasError, match=r"generation width 72 .* not a multiple of 16.*use 64 or 80"):
        engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, 72, 64), (), params())))


def region_layer(size: int = 64, columns: slice = slice(0, 32), prompt: str = "a red boat") -> Layer:
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[:, columns, 3] = 255
    return Layer("r", LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt=prompt))


def control_layer(model: str = "demo-sd3-controlnet", **kw) -> Layer:
    from invoke_core.types import ControlSettings

    return Layer("c", LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=5), control=ControlSettings(model=model, preprocessor="none", **kw))


def test_an_sd3_lora_stack_changes_the_image_and_the_base_model_comes_back(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.transformer_lora import build_transformer_lora
    from invoke_core.model_install import install_model
    from invoke_core.types import LoraSpec

    engine = Engine(root=tmp_path / "root", device="cpu")  # its own registry for the installs
    folder = engine.registry.get(MODEL).path
    a = install_model(engine.registry, str(build_transformer_lora(folder, tmp_path / "a.safetensors", "sd-3", seed=1)), name="sd3 a")
    b = install_model(engine.registry, str(build_transformer_lora(folder, tmp_path / "b.safetensors", "sd-3", seed=2)), name="sd3 b")
    assert (a.family, a.kind) == ("sd-3", "lora")
    small = dict(size=32, steps=2)
    plain = run1(engine, doc(**small))[0]
    one = run1(engine, doc(**small, loras=(LoraSpec(a.id, 1.0),)))[0]
    two = run1(engine, doc(**small, loras=(LoraSpec(a.id, 1.0), LoraSpec(b.id, 0.5))))[0]
    again = run1(engine, doc(**small))[0]
    assert not np.array_equal(one.image, plain.image) and not np.array_equal(two.image, one.image)
    assert np.array_equal(again.image, plain.image), "the base model comes back exactly"
    regional = run1(engine, doc([region_layer(size=32, columns=slice(0, 16))], **small, loras=(LoraSpec(a.id, 1.0),)))[0]
    assert regional.metadata["loras"][0]["id"] == a.id
    with pytest.raises(InvalidCanvasError, match=f"LoRA {a.id!r} is for sd-3, the model 'demo-flux' is flux"):
        run1(engine, doc(model="demo-flux", cfg_scale=3.5, loras=(LoraSpec(a.id),)))


def test_an_sd3_controlnet_steers_text_to_image(engine):
    plain = run1(engine, doc(seed=3))[0]
    a = run1(engine, doc([control_layer()], seed=3))[0]
    b = run1(engine, doc([control_layer()], seed=3))[0]
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, plain.image)
    assert a.metadata["controls"][0]["model"]["family"] == "sd-3"
    weak = run1(engine, doc([control_layer(weight=0.0)], seed=3))[0]
    assert np.array_equal(weak.image, plain.image), "weight 0: no control"


def test_sd3_control_mistakes_are_clear(engine):
    from invoke_core.errors import InvalidCanvasError

    with pytest.raises(InvalidCanvasError, match="ControlNet 'demo-controlnet' is for sd-1, the model 'demo-sd3' is sd-3"):
        run1(engine, doc([control_layer("demo-controlnet")]))
    raster = Layer("img", LayerKind.RASTER, 0, 0, rgba(64, 64, seed=6))
    with pytest.raises(UnsupportedError, match="cannot run img2img with ControlNet"):
        run1(engine, doc([raster, control_layer()]))
    with pytest.raises(UnsupportedError, match="have no control modes: use balanced"):
        run1(engine, doc([control_layer(mode="prompt")]))
    record = engine.registry.get("demo-sd3-controlnet")
    assert (record.family, record.kind) == ("sd-3", "controlnet")


INPAINTING = "demo-sd3-inpaint-controlnet"


def test_an_sd3_inpainting_controlnet_repaints_the_mask_from_the_canvas_and_keeps_the_rest(engine):
    record = engine.registry.get(INPAINTING)
    assert (record.family, record.kind) == ("sd-3", "controlnet")
    init = rgba(64, 64, seed=2)
    painted = [Layer("img", LayerKind.RASTER, 0, 0, init), mask_layer(64, (16, 48, 16, 48))]
    control = control_layer(INPAINTING)
    a = run1(engine, doc([*painted, control], strength=1.0))[0]
    b = run1(engine, doc([*painted, control], strength=1.0))[0]
    plain = run1(engine, doc(painted, strength=1.0))[0]
    assert a.metadata["mode"] == "inpaint" and a.metadata["controls"][0]["model"]["id"] == INPAINTING
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, plain.image)
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(a.image[outside], init[..., :3][outside]), "outside the mask byte-identical"
    # it conditions on the canvas under the box, not on the control layer's pixels
    other = Layer("c", LayerKind.CONTROL, 0, 0, rgba(64, 64, seed=9), control=control.control)
    assert np.array_equal(run1(engine, doc([*painted, other], strength=1.0))[0].image, a.image)
    repainted = [Layer("img", LayerKind.RASTER, 0, 0, rgba(64, 64, seed=3)), painted[1]]
    assert not np.array_equal(run1(engine, doc([*repainted, control], strength=1.0))[0].image[~outside], a.image[~outside])


def test_sd3_inpainting_controlnet_mistakes_are_clear(engine):
    init = Layer("img", LayerKind.RASTER, 0, 0, rgba(64, 64, seed=2))
    painted = [init, mask_layer(64, (16, 48, 16, 48))]
    with pytest.raises(UnsupportedError, match="inpainting ControlNet 'demo-sd3-inpaint-controlnet' repaints the masked area from noise: set strength to 1"):
        run1(engine, doc([*painted, control_layer(INPAINTING)], strength=0.7))
    second = dataclasses.replace(control_layer(), id="c2")
    with pytest.raises(UnsupportedError, match="runs alone: hide the other control layers"):
        run1(engine, doc([*painted, control_layer(INPAINTING), second], strength=1.0))
    canny = control_layer(INPAINTING)
    canny = dataclasses.replace(canny, control=dataclasses.replace(canny.control, preprocessor="canny"))
    with pytest.raises(UnsupportedError, match="set its preprocessor to none"):
        run1(engine, doc([*painted, canny], strength=1.0))
    with pytest.raises(UnsupportedError, match="inpainting ControlNet repaints a mask: paint an inpaint mask"):
        run1(engine, doc([control_layer(INPAINTING)], strength=1.0))
    with pytest.raises(UnsupportedError, match="ControlNets steer text to image; inpaint and outpaint take a Stable Diffusion 3.5 inpainting ControlNet"):
        run1(engine, doc([*painted, control_layer()], strength=1.0))


def test_a_region_changes_the_image_and_is_reproducible(engine):
    plain = run1(engine, doc())[0]
    a = run1(engine, doc([region_layer()]))[0]
    b = run1(engine, doc([region_layer()]))[0]
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, plain.image)
    assert a.metadata["regions"]["items"][0]["use"] == "region"


def test_image_tokens_outside_a_region_give_its_text_zero_attention(engine):
    """At the attention level: every joint-attention call, both CFG branches, every head."""
    import torch

    from invoke_core.regions import plan_regions
    from invoke_core.types import Mode

    request = compile_canvas(doc([region_layer(columns=slice(0, 32))], steps=2))
    record = engine.resolve_model(MODEL)
    pipe, _task = engine.pipeline_for(engine.cache.get(record, engine.device).model, record, Mode.TXT2IMG)
    family = families.get("sd-3")
    plan = plan_regions(request.regions, request.params.prompt, request.params.negative_prompt)
    args, processor = family.regional(pipe, request, plan)
    processor.record = []
    with family.attention(pipe, [], processor), torch.inference_mode():
        pipe(**args, num_inference_steps=2, guidance_scale=4.5, width=64, height=64, output_type="np",
             generator=torch.Generator().manual_seed(1))
    main_tokens, region_tokens = processor.tokens
    n_img = processor.image_tokens  # 4 x 4 patches of 16 px
    inside = torch.arange(n_img) % 4 < 2  # the left half of the patch grid (region columns 0-31 of 64 px)
    assert 0 < int(inside.sum()) < n_img
    calls = processor.record
    assert len(calls) == 2 * pipe.transformer.config.num_layers  # every block, every step
    for call in calls:
        probs = call["probs"]  # (2 CFG branches, heads, Q, K)
        region_cols = slice(n_img + main_tokens, n_img + main_tokens + region_tokens)
        outside_rows = probs[:, :, :n_img][:, :, ~inside]
        assert torch.count_nonzero(outside_rows[..., region_cols]) == 0
        assert torch.all(probs[:, :, :n_img][:, :, inside][..., region_cols].sum(-1) > 0)
        # the prompts do not mix: the main prompt's text never attends to the region's text
        main_rows = probs[:, :, n_img : n_img + main_tokens]
        assert torch.count_nonzero(main_rows[..., region_cols]) == 0


def test_without_regions_the_output_is_the_plain_pipelines(engine):
    import torch
    from diffusers import StableDiffusion3Pipeline

    ours = run1(engine, doc(seed=5, steps=3))[0]
    record = engine.resolve_model(MODEL)
    base = engine.cache.get(record, engine.device).model
    raw = StableDiffusion3Pipeline(**{k: v for k, v in base.components.items()})
    raw.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = raw(prompt="a lighthouse at dusk", num_inference_steps=3, guidance_scale=4.5, width=64, height=64,
                  generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    assert np.array_equal(ours.image, (out * 255).round().clip(0, 255).astype(np.uint8))


def test_the_api_refuses_sd3_jobs_it_cannot_run_with_422(tmp_path):
    from invoke_core.model_records import ModelRegistry
    from server.app import create_app, shutdown

    ModelRegistry(tmp_path).ensure_demo_built(INPAINTING)  # what it is shows in its config (a demo's: once built)
    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        document = {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "p", "model": MODEL, "steps": 2}}
        bad = [
            ({"scheduler": "dpmpp_2m"}, "choose one of euler, heun"),
            ({"scale": 1.125}, "not a multiple of 16"),  # 64 x 1.125 = 72
        ]
        for change, message in bad:
            body = {"document": {**document, "params": {**document["params"], **change}}}
            r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
            assert r.status_code == 422, (change, r.status_code, r.json)
            assert message in r.json["message"], r.json
        ok = client.post("/api/v1/canvas/jobs", json={"document": document}, headers={"Origin": "http://localhost"})
        assert ok.status_code in (200, 201), ok.json
        # an inpainting ControlNet below strength 1
        import io

        from PIL import Image

        png = io.BytesIO()
        Image.new("RGBA", (64, 64), (255, 255, 255, 255)).save(png, "PNG")
        up = client.post("/api/v1/images", data={"file": (io.BytesIO(png.getvalue()), "c.png")}, content_type="multipart/form-data", headers={"Origin": "http://localhost"})
        layer = {"id": "c", "kind": "control", "image_id": up.json["id"], "control": {"model": INPAINTING}}
        body = {"document": {**document, "layers": [layer], "params": {**document["params"], "strength": 0.5}}}
        r = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
        assert r.status_code == 422 and "repaints the masked area from noise: set strength to 1" in r.json["message"], r.json
        body["document"]["params"]["strength"] = 1.0
        ok = client.post("/api/v1/canvas/jobs", json=body, headers={"Origin": "http://localhost"})
        assert ok.status_code in (200, 201), ok.json
    finally:
        shutdown(app)


def test_an_sd3_diffusers_folder_installs_by_path_as_sd3_and_runs(tmp_path):
    from invoke_core.engine import Engine
    from invoke_core.families.sd3_demo import build_sd3_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")  # its own registry: an installed model becomes the default
    folder = build_sd3_demo(tmp_path / "my-sd3")
    record = install_model(engine.registry, str(folder), name="my sd3")
    assert (record.family, record.kind, record.format) == ("sd-3", "main", "diffusers")
    result = engine.run(compile_canvas(doc(model=record.id, size=32, steps=2)))[0]
    assert result.metadata["model"]["family"] == "sd-3" and result.image.shape == (32, 32, 3)


def test_an_sd3_folder_without_its_transformer_config_is_refused(tmp_path):
    import shutil

    from invoke_core.engine import Engine
    from invoke_core.errors import ModelInstallError
    from invoke_core.families.sd3_demo import build_sd3_demo
    from invoke_core.model_install import install_model

    engine = Engine(root=tmp_path / "root", device="cpu")
    folder = build_sd3_demo(tmp_path / "broken-sd3")
    shutil.rmtree(folder / "transformer")
    with pytest.raises(ModelInstallError, match="without transformer/config.json"):
        install_model(engine.registry, str(folder), name="broken")


def test_an_sd3_model_with_its_t5_reads_a_prompt_past_clips_77_tokens(engine, tmp_path):
    """Two prompts that agree on their first 100 words and differ after: CLIP alone (demo-sd3) sees the
    same 77 tokens; with a T5 installed, the model reads on."""
    from invoke_core.engine import Engine
    from invoke_core.families.sd3_demo import build_sd3_demo
    from invoke_core.model_install import install_model

    own = Engine(root=tmp_path / "root", device="cpu")
    record = install_model(own.registry, str(build_sd3_demo(tmp_path / "sd3-t5", t5=True)), name="sd3 with t5")
    words = " ".join(["a detailed painting of a lighthouse at dusk with a red boat on the blue sea"] * 8).split()[:100]

    def pair(run_engine, model):
        return [run1(run_engine, doc(prompt=" ".join(words + [last]), model=model, size=32, steps=2))[0].image for last in ("cat", "dog")]

    cat, dog = pair(own, record.id)
    assert not np.array_equal(cat, dog), "T5 reads past 77 tokens"
    cat, dog = pair(engine, MODEL)
    assert np.array_equal(cat, dog), "CLIP alone stops at 77"
