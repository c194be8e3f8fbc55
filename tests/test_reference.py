"""Reference layers: IP-Adapters on SD 1.x and SDXL (invoke_core/ip_adapter.py, ip_adapter_run.py), on the real
diffusers pipelines with the tiny random-weight demos (demo-ip-adapter, demo-image-encoder, and the plus and
full-face variants built here), through the engine, the server (enqueue checks, metadata, recall) and the CLI."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError, UnsupportedError
from invoke_core.types import (
    Bounds,
    CanvasDocument,
    ControlSettings,
    GenerationParams,
    Layer,
    LayerKind,
    ReferenceSettings,
    RegionPrompt,
)

SIZE = 64
API = "/api/v1"


def picture(seed: int = 1, shape: tuple[int, int] = (40, 48)) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    return pixels


def reference(layer_id: str = "ref", seed: int = 1, x: int = 100, y: int = 0, **settings) -> Layer:
    """A reference layer beside the box (over no region: it steers the whole box)."""
    return Layer(layer_id, LayerKind.REFERENCE, x, y, picture(seed), reference=ReferenceSettings(**settings) if settings else None)


def region(layer_id: str = "reg", columns: tuple[int, int] = (0, 32), prompt: str = "a dog") -> Layer:
    pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
    pixels[:, columns[0]:columns[1], 3] = 255
    return Layer(layer_id, LayerKind.REGIONAL_GUIDANCE, 0, 0, pixels, region=RegionPrompt(prompt))


def doc(layers=(), **params) -> CanvasDocument:
    p = dict(prompt="a cat", steps=3, seed=5, cfg_scale=7.5) | params
    return CanvasDocument(Bounds(0, 0, SIZE, SIZE), tuple(layers), GenerationParams(**p))


def run(engine, layers=(), **params):
    return engine.run(compile_canvas(doc(layers, **params)))[0]


@pytest.fixture(scope="module")
def plain(engine):
    return run(engine)


def test_a_reference_changes_the_image_weight_zero_is_no_reference_and_the_unet_is_clean_after(engine, plain):
    unet = engine.cache.get(engine.registry.get("demo"), engine.device).model.unet
    processors = dict(unet.attn_processors)
    ours = run(engine, [reference()])
    assert not np.array_equal(ours.image, plain.image), "the reference steers the job"
    assert np.array_equal(run(engine, [reference()]).image, ours.image), "same seed, same pixels"
    assert not np.array_equal(run(engine, [reference(seed=9)]).image, ours.image), "another picture, another image"
    assert not np.array_equal(run(engine, [reference(weight=0.5)]).image, ours.image), "the weight is the adapter's scale"
    assert np.array_equal(run(engine, [reference(weight=0)]).image, plain.image), "weight 0: the pixels of no reference"
    assert np.array_equal(run(engine, [reference(x=-300, y=40)]).image, ours.image), "its place off the regions does not matter"
    # the cached UNet is the base model again: the same processor objects, no image projection
    assert unet.encoder_hid_proj is None and unet.config.encoder_hid_dim_type is None
    assert all(unet.attn_processors[k] is v for k, v in processors.items()) and len(unet.attn_processors) == len(processors)
    assert np.array_equal(run(engine).image, plain.image)
    meta = ours.metadata["references"]
    assert meta == [{"layer_id": "ref", "width": 48, "height": 40, "weight": 1.0, "begin": 0.0, "end": 1.0,
                     "model": {"id": "demo-ip-adapter", "name": "Demo IP-Adapter SD1.5 (tiny)",
                               "hash": engine.registry.get("demo-ip-adapter").hash, "family": "sd-1"}}]


def test_two_references_and_a_step_range(engine, plain):
    one = run(engine, [reference()])
    two = run(engine, [reference(), reference("ref2", seed=9)])
    assert not np.array_equal(two.image, one.image) and len(two.metadata["references"]) == 2
    half = run(engine, [reference(), reference("ref2", seed=9, weight=0)])
    assert np.array_equal(half.image, one.image), "each reference has its own scale: a second at 0 adds nothing"
    late = run(engine, [reference(begin=0.5, end=1.0)], steps=4)
    assert not np.array_equal(late.image, run(engine, [reference()], steps=4).image)
    assert not np.array_equal(late.image, run(engine, steps=4).image)
    assert late.metadata["references"][0]["begin"] == 0.5
    # 3 steps: no step i has 0.1 <= i/3 and (i+1)/3 <= 0.2 (ControlNet's rule): the adapter never runs
    assert np.array_equal(run(engine, [reference(begin=0.1, end=0.2)]).image, plain.image)
    batch = engine.run(compile_canvas(doc([reference(begin=0.3)], batch_size=2)))
    assert np.array_equal(batch[1].image, run(engine, [reference(begin=0.3)], seed=6).image), "each batch image from step 0"


def test_references_on_inpaint_control_and_inpainting_models(engine):
    image = picture(3, (SIZE, SIZE))
    mask = np.zeros((SIZE, SIZE, 4), np.uint8)
    mask[16:48, 16:48, 3] = 255
    layers = [Layer("img", LayerKind.RASTER, 0, 0, image), Layer("m", LayerKind.INPAINT_MASK, 0, 0, mask)]
    for model in ("demo", "demo-inpaint"):
        without = run(engine, layers, model=model, strength=0.8, mask_blur=0)
        ours = run(engine, [*layers, reference()], model=model, strength=0.8, mask_blur=0)
        assert not np.array_equal(ours.image, without.image), model
        assert np.array_equal(ours.image[:16], image[:16, :, :3]), "outside the mask nothing changes"
    control = Layer("c", LayerKind.CONTROL, 0, 0, image, control=ControlSettings(model="demo-controlnet"))
    assert not np.array_equal(run(engine, [control, reference()]).image, run(engine, [control]).image)


def test_a_reference_over_a_region_applies_there_with_the_regional_attention(engine):
    request = compile_canvas(doc([region(), reference(x=0, y=0)]))
    (ref,) = request.references
    assert ref.regions == ("reg",) and ref.mask[:, :32].min() == 1 and ref.mask[:, 32:].max() == 0
    assert compile_canvas(doc([region(), reference(x=20, y=0)])).references[0].regions == ("reg",), "any overlap"
    assert compile_canvas(doc([region(), reference()])).references[0].mask is None, "off the regions: the whole box"
    regional = run(engine, [region()])
    ours = run(engine, [region(), reference(x=0, y=0)])
    assert ours.metadata["references"][0]["regions"] == ["reg"] and ours.metadata["regions"]["items"][0]["use"] == "region"
    assert not np.array_equal(ours.image, regional.image)
    assert np.array_equal(run(engine, [region(), reference(x=0, y=0, weight=0)]).image, regional.image)
    assert not np.array_equal(run(engine, [region(), reference()]).image, regional.image), "a whole-box reference beside regions"
    # a region over 95% of the box folds into the main prompt: no regional processor, diffusers' own masks
    folded = run(engine, [region(columns=(0, SIZE)), reference(x=0, y=0)])
    assert folded.metadata["references"][0]["regions"] == ["reg"] and folded.metadata["regions"]["items"][0]["use"] == "main"
    assert not np.array_equal(folded.image, run(engine, [region(columns=(0, SIZE))]).image)


def test_the_regional_ip_adapter_processor_keeps_a_masked_reference_inside_its_mask():
    """At the attention level (as the region tests do): outside a reference's mask a layer's output is the
    regional processor's alone, bit for bit; inside, the adapter's image attention adds to it."""
    import torch
    from diffusers.models.attention_processor import Attention, IPAdapterAttnProcessor2_0

    from invoke_core.attention import RegionalAttnProcessor, RegionalIPAdapterAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=16, heads=2, dim_head=16)
    ip = IPAdapterAttnProcessor2_0(hidden_size=32, cross_attention_dim=16, num_tokens=(4,))
    region_mask = np.zeros((32, 32), np.float32)
    region_mask[:, :16] = 1
    regional = RegionalAttnProcessor(region_mask[None], [77, 77], (8, 8))
    hidden = torch.randn(2, 64, 32)
    text = torch.randn(2, 154, 16)
    images = [torch.randn(2, 1, 4, 16)]
    reference_mask = torch.zeros(1, 1, 32, 32)
    reference_mask[..., 16:, :] = 1  # the lower half
    combined = RegionalIPAdapterAttnProcessor(regional, ip)
    with torch.no_grad():
        alone = regional(attn, hidden, text)
        ours = combined(attn, hidden, (text, images), ip_adapter_masks=[reference_mask])
        ip.scale = [0.0]
        off = combined(attn, hidden, (text, images), ip_adapter_masks=[reference_mask])
    rows = torch.arange(64).reshape(8, 8)
    upper, lower = rows[:4].flatten(), rows[4:].flatten()
    assert torch.equal(ours[:, upper], alone[:, upper]), "outside the mask: the regional output, bit for bit"
    assert not torch.allclose(ours[:, lower], alone[:, lower]), "inside: the reference adds"
    assert torch.equal(off, alone), "scale 0: nothing added"


def test_plus_and_full_face_adapters_install_with_the_encoder_beside_them_and_run(engine, plain, tmp_path):
    from invoke_core.ip_adapter_demo import build_image_encoder_demo, build_ip_adapter
    from invoke_core.model_install import install_model

    folder = tmp_path / "h94" / "models"
    build_image_encoder_demo(folder / "image_encoder")
    demo = Path(engine.registry.get("demo").path)
    records = []
    try:
        for variant in ("plus", "full_face"):
            build_ip_adapter(folder / f"ip-adapter-{variant}_sd15.safetensors", demo, variant, seed=4)
            records.append(install_model(engine.registry, str(folder / f"ip-adapter-{variant}_sd15.safetensors")))
        plus, face = records
        encoder = next(r for r in engine.registry.list() if r.kind == "image_encoder" and not r.builtin)
        records.append(encoder)
        assert (plus.kind, plus.family, face.family, encoder.family) == ("ip_adapter", "sd-1", "sd-1", "any")
        assert plus.config_path == face.config_path == encoder.path == str((folder / "image_encoder").resolve())
        assert plus.description == f"IP-Adapter Plus; image encoder {encoder.id}"
        assert face.description == f"IP-Adapter Full Face; image encoder {encoder.id}"
        one = run(engine, [reference(model=plus.id)])
        assert not np.array_equal(one.image, plain.image) and one.metadata["references"][0]["model"]["id"] == plus.id
        assert not np.array_equal(run(engine, [reference(model=face.id)]).image, plain.image)
        assert np.array_equal(run(engine, [reference(model=plus.id, weight=0)]).image, plain.image)
        mixed = run(engine, [reference(model=plus.id), reference("ref2", seed=9, model="demo-ip-adapter")])
        assert not np.array_equal(mixed.image, one.image), "two adapters reading two encoders in one job"
        assert np.array_equal(run(engine).image, plain.image), "and the UNet is clean afterwards"
        with pytest.raises(ModelInstallError, match="is already installed"):
            install_model(engine.registry, str(folder / "ip-adapter-plus_sd15.safetensors"))
        with pytest.raises(ModelInstallError, match="is the image encoder of ip-adapter-plus-sd15, ip-adapter-full-face-sd15: remove those first"):
            engine.registry.remove(encoder.id)  # its adapters read it
    finally:
        for record in sorted(records, key=lambda r: r.kind == "image_encoder"):
            engine.registry.remove(record.id)


def test_faceid_and_other_files_are_refused_at_install(tmp_path):
    import torch
    from safetensors.torch import save_file

    from invoke_core.model_probe import probe_model

    face_id = tmp_path / "ip-adapter-faceid_sd15.safetensors"
    save_file({"image_proj.proj.0.weight": torch.zeros(8, 4), "image_proj.norm.weight": torch.zeros(8),
               "ip_adapter.1.to_k_ip.weight": torch.zeros(8, 768)}, str(face_id))
    with pytest.raises(ModelInstallError, match="IP-Adapter FaceID, which reads InsightFace face embeddings: not supported"):
        probe_model(face_id)
    odd = tmp_path / "ip-adapter-odd.safetensors"
    save_file({"image_proj.proj.weight": torch.zeros(16, 8), "ip_adapter.1.to_k_ip.weight": torch.zeros(8, 1024)}, str(odd))
    with pytest.raises(ModelInstallError, match="IP-Adapter for a 1024-wide text embedding: no supported family"):
        probe_model(odd)
    (tmp_path / "ip-adapter_sd15.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelInstallError, match="Refusing ip-adapter_sd15.bin: pickle-based"):
        probe_model(tmp_path / "ip-adapter_sd15.bin")


def test_sdxl_references_through_its_adapter(engine, sdxl_folder, tmp_path):
    from invoke_core.ip_adapter_demo import build_image_encoder_demo, build_ip_adapter
    from invoke_core.model_install import install_model

    xl = install_model(engine.registry, str(sdxl_folder), name="Tiny XL refs")
    records = [xl]
    try:
        with pytest.raises(UnsupportedError, match="no Stable Diffusion XL IP-Adapter is installed"):
            run(engine, [reference()], model=xl.id, steps=2)
        with pytest.raises(InvalidCanvasError, match="IP-Adapter 'demo-ip-adapter' is for sd-1, the model 'tiny-xl-refs' is sdxl"):
            run(engine, [reference(model="demo-ip-adapter")], model=xl.id, steps=2)
        build_ip_adapter(tmp_path / "xl" / "ip-adapter-plus_sdxl_vit-h.safetensors", sdxl_folder, "plus", seed=6)
        adapter = install_model(engine.registry, str(tmp_path / "xl" / "ip-adapter-plus_sdxl_vit-h.safetensors"))
        records.append(adapter)
        assert (adapter.family, adapter.config_path) == ("sdxl", None), "no encoder beside it or installed"
        with pytest.raises(UnsupportedError, match="needs a CLIP image encoder of 48 hidden width, and none is installed"):
            run(engine, [reference()], model=xl.id, steps=2)
        build_image_encoder_demo(tmp_path / "encoder")
        records.append(install_model(engine.registry, str(tmp_path / "encoder"), name="ViT tiny"))
        without = run(engine, model=xl.id, steps=2)
        ours = run(engine, [reference()], model=xl.id, steps=2)
        assert not np.array_equal(ours.image, without.image) and ours.metadata["references"][0]["model"]["id"] == adapter.id
        assert np.array_equal(run(engine, [reference(weight=0)], model=xl.id, steps=2).image, without.image)
    finally:
        for record in reversed(records):
            engine.registry.remove(record.id)


def test_unknown_or_wrong_reference_models_and_families_without_references_are_refused(engine, tmp_path):
    from invoke_core import families

    with pytest.raises(ModelNotFoundError, match="reference layer 'ref': unknown IP-Adapter 'nope': installed Stable Diffusion 1.x IP-Adapters are demo-ip-adapter"):
        run(engine, [reference(model="nope")])
    with pytest.raises(InvalidCanvasError, match="reference layer 'ref': model 'demo-controlnet' is a controlnet model, not an IP-Adapter"):
        run(engine, [reference(model="demo-controlnet")])
    with pytest.raises(InvalidCanvasError, match="reference layer 'ref': begin 0.5 must be below end 0.5"):
        compile_canvas(doc([reference(begin=0.5, end=0.5)]))
    with pytest.raises(InvalidCanvasError, match="reference layer 'ref': weight must be a number in \\[0, 2\\], got 3"):
        compile_canvas(doc([reference(weight=3)]))
    for name in ("sd-3", "z-image", "chroma", "hidream"):  # qwen-image: its edit models take them (test_reference_edit.py)
        with pytest.raises(UnsupportedError, match="models have no reference images: hide the reference layers"):
            families.get(name).check_job(scheduler="euler", size=(64, 64), regions=False, controls=False, loras=False, references=True)
    # FLUX.2 takes the picture itself: whole, at full weight, over no region (refused before any model loads)
    klein = families.get("flux2")
    main = engine.registry.get("demo")
    assert klein.reference_models([ReferenceSettings()], engine.registry, main) == [()]
    with pytest.raises(UnsupportedError, match="FLUX.2 \\[klein\\] models take reference images themselves: leave its model unset"):
        klein.reference_models([ReferenceSettings(model="demo-ip-adapter")], engine.registry, main)
    with pytest.raises(UnsupportedError, match="FLUX.2 \\[klein\\] models take a reference image whole, at every step: set its weight to 1"):
        klein.reference_models([ReferenceSettings(weight=0.5)], engine.registry, main)
    with pytest.raises(UnsupportedError, match="FLUX.2 \\[klein\\] reference images steer the whole box: move reference layer 'ref' off"):
        klein.references(None, compile_canvas(doc([region(), reference(x=0, y=0)])), [()], False)


# --- server: enqueue checks, metadata, recall ---------------------------------------------------------------


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path_factory.mktemp("reference-root")), "device": "cpu"})
    yield app
    shutdown(app)


def upload(client, array: np.ndarray) -> str:
    response = client.post(f"{API}/images", data={"file": (io.BytesIO(png(array)), "layer.png"), "category": "layer"},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def run_job(client, document: dict) -> dict:
    response = client.post(f"{API}/canvas/jobs", json={"document": document})
    assert response.status_code == 201, response.get_data(as_text=True)
    item_id, generation_id = response.json["item_ids"][0], response.json["generation_ids"][0]
    deadline = time.monotonic() + 120
    while (item := client.get(f"{API}/queue/items/{item_id}").json)["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, item
        time.sleep(0.05)
    assert item["status"] == "completed", item
    return client.get(f"{API}/history/{generation_id}").json


def image_pixels(client, image_id: str) -> np.ndarray:
    url = client.get(f"{API}/images/{image_id}").json["url"]
    return np.asarray(Image.open(io.BytesIO(client.get(url).data)))


def test_the_api_runs_records_and_recalls_reference_layers_and_refuses_bad_ones(app):
    client = app.test_client()
    ref_id = upload(client, picture(2))
    layer = {"id": "ref-1", "kind": "reference", "x": 90, "y": 0, "image_id": ref_id, "name": "Mood",
             "reference": {"model": "demo-ip-adapter", "weight": 0.7, "begin": 0.0, "end": 0.75}}
    params = {"prompt": "a harbour", "steps": 4, "seed": 3}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [layer], "params": params}
    original = run_job(client, document)["image_ids"][0]
    recall = client.get(f"{API}/images/{original}/recall").json
    assert recall["references"] == [{
        "layer_id": "ref-1", "name": "Mood", "image_id": ref_id, "x": 90, "y": 0, "available": True, "weight": 0.7, "begin": 0.0,
        "end": 0.75, "model": "demo-ip-adapter", "model_name": "Demo IP-Adapter SD1.5 (tiny)", "installed": True,
        "model_hash": app.extensions["invoke_canvas"].registry.get("demo-ip-adapter").hash,
    }]
    rebuilt = {**document, "layers": [{"id": r["layer_id"], "kind": "reference", "x": r["x"], "y": r["y"], "image_id": r["image_id"],
                                       "reference": {k: r[k] for k in ("model", "weight", "begin", "end")}} for r in recall["references"]]}
    assert np.array_equal(image_pixels(client, run_job(client, rebuilt)["image_ids"][0]), image_pixels(client, original)), "recall reproduces it"
    without = run_job(client, {**document, "layers": []})["image_ids"][0]
    assert not np.array_equal(image_pixels(client, without), image_pixels(client, original)), "the reference mattered"
    config = client.get(f"{API}/config").json
    assert config["families"]["sd-1"]["reference_model_kind"] == "ip_adapter" and "reference" in config["families"]["sdxl"]["features"]
    assert config["families"]["flux2"]["reference_model_kind"] is None and config["defaults"]["reference"]["weight"] == 1.0
    assert {m["id"]: m["kind"] for m in client.get(f"{API}/models").json}["demo-ip-adapter"] == "ip_adapter"

    def refused(changes: dict, status: int, message: str, model: str | None = None) -> None:
        body = {**document, "layers": [{**layer, **changes}], "params": {**params, **({"model": model} if model else {})}}
        r = client.post(f"{API}/canvas/jobs", json={"document": body})
        assert r.status_code == status and message in r.json["message"], r.json

    refused({"reference": {"model": "nope"}}, 422, 'reference layer "Mood": unknown IP-Adapter \'nope\'')
    refused({"reference": {"model": "demo"}}, 422, "model 'demo' is a main model, not an IP-Adapter")
    refused({"reference": {"weight": 2.5}}, 422, "weight")
    refused({"reference": {"begin": 0.8, "end": 0.2}}, 422, "begin 0.8 must be below end 0.2")
    refused({"image_id": "0" * 32}, 404, "0" * 32)
    refused({"reference": {"model": "demo-ip-adapter"}}, 422, "FLUX.2 [klein] models take reference images themselves", model="demo-flux2")
    refused({"reference": None}, 422, "have no reference images: hide the reference layers", model="demo-zimage")
    broken = client.post(f"{API}/images", data={"file": (io.BytesIO(b"not a picture"), "ref.png"), "category": "layer"},
                         content_type="multipart/form-data")
    assert broken.status_code in (400, 415, 422) and broken.json["message"], broken.json


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_reference_flags(data_root, tmp_path, capsys):
    from server.cli import main

    Image.fromarray(picture(5)[..., :3]).save(tmp_path / "ref.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    base = ["generate", "--root", str(data_root), "--prompt", "a cat", "--steps", "2", "--width", "64", "--height", "64", "--seed", "1"]
    assert main([*base, "--out", str(tmp_path / "a.png")]) == 0
    assert main([*base, "--reference", str(tmp_path / "ref.png"), "--reference-weight", "0.8", "--out", str(tmp_path / "b.png")]) == 0
    assert main([*base, "--reference", str(tmp_path / "ref.png"), "--reference", str(tmp_path / "ref.png"), "--out", str(tmp_path / "c.png")]) == 0
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert not np.array_equal(a, b)
    meta = json.loads(Image.open(tmp_path / "b.png").text["invoke_canvas"])["references"]
    assert [(m["weight"], m["model"]["id"]) for m in meta] == [(0.8, "demo-ip-adapter")]
    assert len(json.loads(Image.open(tmp_path / "c.png").text["invoke_canvas"])["references"]) == 2
    assert main([*base, "--reference", str(tmp_path / "ref.png"), "--reference-weight", "0", "--out", str(tmp_path / "d.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), a), "weight 0: no reference"
    capsys.readouterr()
    for extra, message in (
        (["--reference", str(tmp_path / "broken.png")], "reference image 1"),
        (["--reference", str(tmp_path / "missing.png")], "missing.png: no such file"),
        (["--reference", str(tmp_path / "ref.png"), "--reference-model", "nope"], "unknown IP-Adapter 'nope'"),
        (["--reference", str(tmp_path / "ref.png"), "--reference-weight", "3"], "weight must be a number in [0, 2]"),
        (["--reference-weight", "0.5"], "--reference-weight needs --reference"),
    ):
        assert main([*base, *extra, "--out", str(tmp_path / "e.png")]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (extra, err)
    assert not (tmp_path / "e.png").exists()


def test_a_model_kept_in_fp8_takes_references_and_stays_in_fp8(engine):
    """An IP-Adapter on a UNet kept in fp8: it steers, weight 0 is the job without it, and the UNet's layers
    stay fp8 through the adapter's load (diffusers' own loader would cast the whole UNet up before the
    first step, the fp8 saving gone at the peak); afterwards the base model's pixels again."""
    import torch

    engine.registry.set_options("demo", weights="fp8")
    try:
        plain = run(engine, steps=2).image
        unet = engine.cache.get(engine.registry.get("demo"), engine.device).model.unet
        probe = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_q
        seen: list = []
        hook = unet.register_forward_pre_hook(lambda *_: seen.append(probe.weight.dtype))
        try:
            steered = run(engine, [reference()], steps=2).image
            zero = run(engine, [reference(weight=0.0)], steps=2).image
        finally:
            hook.remove()
        assert seen and set(seen) == {torch.float8_e4m3fn}, seen
        assert np.abs(steered.astype(int) - plain.astype(int)).mean() > 1
        assert np.array_equal(zero, plain)
        assert np.array_equal(run(engine, steps=2).image, plain), "the model itself is unharmed"
    finally:
        engine.registry.set_options("demo", weights="native")
