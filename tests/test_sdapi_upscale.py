"""A1111's hires fix (`enable_hr`) and Extras upscaling, driven by PyPI's `webuiapi` against the real server
process (the built-in demo SD1.5 and demo ESRGAN upscalers); the translation's pure parts directly."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from server_process import ServerProcess
from test_sdapi import pixels, use_demo

from invoke_core.masks import resize_image
from server.sdapi_upscale import ExtrasIn, HiresFields, extras_plan, finish, hires_plan

import webuiapi  # noqa: E402  (PyPI's A1111 client, a test dependency)

X2 = "Demo ESRGAN upscaler x2 (tiny)"  # the demo upscalers' names, as A1111 clients name upscalers
X4 = "Demo ESRGAN upscaler x4 (tiny)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("sdapi-upscale-root"))
    yield srv
    srv.stop()


@pytest.fixture()
def api(server):
    return webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=4)


def picture(w: int, h: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def newest(server, mode: str) -> dict:
    """The newest generated gallery image of `mode`, with its metadata."""
    for image in server.get("/api/v1/images", params={"origin": "generated", "limit": 20}).json()["items"]:
        meta = server.get(f"/api/v1/images/{image['id']}/metadata").json()
        if meta.get("mode") == mode:
            return {**image, "metadata": meta}
    raise AssertionError(f"no {mode} image in the gallery")


def gallery_pixels(server, image_id: str) -> np.ndarray:
    return pixels(Image.open(io.BytesIO(server.get(f"/api/v1/images/{image_id}/file").content)))


def queued(server) -> int:
    return len(server.get("/api/v1/queue/items", params={"limit": 1000}).json())


# --- hires fix -------------------------------------------------------------------------------------


def test_hires_fix_generates_small_then_refines_at_the_final_size(api, server):
    use_demo(api)
    latent = api.txt2img(prompt="a lighthouse", width=32, height=32, seed=7, enable_hr=True, hr_scale=2,
                         hr_upscaler="Latent", denoising_strength=0.5)
    assert latent.image.size == (64, 64)  # A1111's width x height is the first pass
    text = latent.info["infotexts"][0]
    for field in ("Size: 32x32", "Hires upscale: 2", "Hires resize: 64x64", "Denoising strength: 0.5", "Hires upscaler: Lanczos"):
        assert field in text, text
    meta = newest(server, "txt2img")["metadata"]
    assert meta["hires_fix"]["first_pass_size"] == [32, 32] and meta["hires_fix"]["upscaler"] is None
    assert meta["hires_fix"]["strength"] == 0.5 and (meta["width"], meta["height"]) == (64, 64)
    # the final size named instead of the factor is the same job: the same pixels
    resized = api.txt2img(prompt="a lighthouse", width=32, height=32, seed=7, enable_hr=True, hr_resize_x=64,
                          hr_upscaler="Latent", denoising_strength=0.5)
    assert np.array_equal(pixels(resized.image), pixels(latent.image))
    plain = api.txt2img(prompt="a lighthouse", width=64, height=64, seed=7)
    assert np.abs(pixels(plain.image) - pixels(latent.image)).mean() > 1  # two passes, not one

    modelled = api.txt2img(prompt="a lighthouse", width=32, height=32, seed=7, enable_hr=True, hr_scale=2,
                           hr_upscaler=X2, denoising_strength=0.5)
    assert modelled.image.size == (64, 64)
    assert np.abs(pixels(modelled.image) - pixels(latent.image)).mean() > 1  # the upscaler model ran
    assert f"Hires upscaler: {X2}" in modelled.info["infotexts"][0]
    made = newest(server, "txt2img")
    assert made["metadata"]["hires_fix"]["upscaler"]["id"] == "demo-upscaler-x2"
    recalled = server.get(f"/api/v1/images/{made['id']}/recall").json()
    assert recalled["hires_fix"]["upscaler"] == "demo-upscaler-x2" and recalled["hires_fix"]["installed"] is True
    assert recalled["hires_fix"]["scale"] == 2 and recalled["hires_fix"]["strength"] == 0.5


def test_an_a1111_hires_picture_recalls_its_hires_fix(server):
    """A PNG from A1111 itself: its Size is the first pass; recall gives the final size and the hires fix."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, "
                                "Denoising strength: 0.4, Hires upscale: 1.5, Hires upscaler: Latent")
    buffer = io.BytesIO()
    picture(16, 16, 1).save(buffer, format="PNG", pnginfo=info)
    uploaded = server.post("/api/v1/images", files={"file": ("a1111.png", buffer.getvalue(), "image/png")}).json()
    recalled = server.get(f"/api/v1/images/{uploaded['id']}/recall").json()
    assert (recalled["width"], recalled["height"]) == (768, 1152)
    assert recalled["hires_fix"]["scale"] == 1.5 and recalled["hires_fix"]["strength"] == 0.4
    assert recalled["hires_fix"]["upscaler"] is None


# --- Extras ----------------------------------------------------------------------------------------


def test_extras_runs_the_upscaler_model_and_sizes_as_a1111(api, server):
    source = picture(36, 20, 3)  # sides that are not multiples of the box's step
    up = api.extra_single_image(source, upscaler_1=X2, upscaling_resize=2)
    assert up.image.size == (72, 40)
    assert "Postprocess upscale to: 72x40" in up.info
    job = newest(server, "upscale")  # an upscale job of ours, in the gallery: the picture padded to 40x24
    assert job["metadata"]["upscale"]["model"]["id"] == "demo-upscaler-x2" and (job["width"], job["height"]) == (80, 48)
    assert np.array_equal(pixels(up.image), gallery_pixels(server, job["id"])[:40, :72])  # the picture's part of it
    lanczos = api.extra_single_image(source, upscaler_1="Lanczos", upscaling_resize=2)
    expected = resize_image(np.asarray(source), (72, 40)).astype(np.int16)
    assert np.abs(pixels(lanczos.image) - expected).max() == 0
    assert np.abs(pixels(lanczos.image) - pixels(up.image)).mean() > 1  # the model is no plain resize
    assert api.extra_single_image(source, upscaler_1=X4, upscaling_resize=3).image.size == (108, 60)
    cropped = api.extra_single_image(source, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64, upscaler_1=X4)
    assert cropped.image.size == (64, 64)
    stretched = api.extra_single_image(source, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64,
                                       upscaling_crop=False, upscaler_1="Nearest")
    assert stretched.image.size == (64, 64)
    unchanged = api.extra_single_image(source, upscaler_1="None")
    assert np.array_equal(pixels(unchanged.image), pixels(source)) and unchanged.info == ""


def test_extras_batch(api):
    result = api.extra_batch_images([picture(16, 16, 1), picture(24, 8, 2)], name_list=["a", "b"], upscaler_1=X4, upscaling_resize=4)
    assert [im.size for im in result.images] == [(64, 64), (96, 32)]


def test_upscalers_and_latent_modes_are_listed(api):
    listed = {u["name"]: u for u in api.get_upscalers()}
    assert {"None", "Lanczos", "Nearest", X2, X4} <= set(listed)
    assert listed[X4]["scale"] == 4 and listed[X4]["model_name"] == "demo-upscaler"
    assert "Latent" in [m["name"] for m in api.get_latent_upscale_modes()]


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("extra-single-image", {"gfpgan_visibility": 0.5, "upscaler_1": X2}, 422, "face restoration"),
        ("extra-single-image", {"upscaler_1": X2, "upscaler_2": X4, "extras_upscaler_2_visibility": 0.5}, 422, "second upscaler"),
        ("extra-single-image", {"upscaler_1": "R-ESRGAN 4x+"}, 422, "not installed"),
        ("extra-single-image", {"upscaler_1": X4, "upscaling_resize": 6}, 422, "at most 4x"),
        ("extra-single-image", {"upscaler_1": X2, "image": "bm90IGFuIGltYWdl"}, 415, ""),
        ("extra-single-image", {"upscaler_1": X2, "image": "abc"}, 400, "base64"),
        ("extra-batch-images", {"upscaler_1": X2, "imageList": []}, 422, ""),
        ("txt2img", {"enable_hr": True, "hr_scale": 1}, 422, "hires fix upscales by more than 1"),
        ("txt2img", {"enable_hr": True, "hr_prompt": "another"}, 422, "hr_prompt"),
        ("txt2img", {"enable_hr": True, "hr_upscaler": "SwinIR 4x"}, 422, "not installed"),
        ("txt2img", {"enable_hr": True, "hr_resize_x": 64, "hr_resize_y": 128}, 422, "shape"),
        ("txt2img", {"enable_hr": True, "denoising_strength": 0}, 422, "denoising_strength"),
    ],
)
def test_bad_upscale_requests_are_clear_and_queue_nothing(server, path, body, status, says):
    before = queued(server)
    if path.startswith("extra"):
        body = {"image": _b64(picture(16, 16, 5)), **body} if path == "extra-single-image" else body
    else:
        body = {"prompt": "x", "width": 32, "height": 32, "steps": 2, **body}
    r = server.post(f"/sdapi/v1/{path}", json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["message"]
    assert queued(server) == before


# --- the pure translation --------------------------------------------------------------------------


def _hires(**fields) -> HiresFields:
    return SimpleNamespace(**{**HiresFields().model_dump(), "prompt": "", "negative_prompt": "", "width": 512, "height": 512, "enable_hr": True, **fields})


def test_hires_plan_sizes():
    assert hires_plan(_hires(enable_hr=False), []) is None
    plan = hires_plan(_hires(hr_scale=1.5), [])
    assert plan.size == (768, 768) and plan.scale == 1.5 and plan.upscaler is None and plan.strength == 0.7
    plan = hires_plan(_hires(width=512, height=768, hr_resize_y=1024), [])  # one side named: the other follows
    assert plan.size == (680, 1024) and plan.scale == pytest.approx(4 / 3)
    assert hires_plan(_hires(hr_resize_x=1024, hr_resize_y=1024), []).size == (1024, 1024)
    x2 = SimpleNamespace(id="esrgan-x2", name="RealESRGAN x2")
    assert hires_plan(_hires(hr_upscaler="realesrgan X2"), [x2]).upscaler == "esrgan-x2"


def test_extras_plan_and_finish():
    plan = extras_plan(ExtrasIn(resize_mode=1, upscaling_resize_w=40, upscaling_resize_h=20, upscaler_1="Lanczos"), (20, 20), [])
    assert plan.cover == (40, 40) and plan.target == (40, 20)
    stripes = np.zeros((20, 20, 3), np.uint8)
    stripes[5:15] = 255  # a band across the middle
    out = finish(stripes, plan, (20, 20))
    assert out.shape == (20, 40, 3) and out[..., 0].min() > 150  # the middle of the cover: all band (the Lanczos edge rings a little)
    x4 = SimpleNamespace(id="u4", name="U4")
    assert extras_plan(ExtrasIn(upscaling_resize=1.5, upscaler_1="U4"), (10, 10), [x4]).scale == 2
    assert extras_plan(ExtrasIn(upscaling_resize=2.5, upscaler_1="U4"), (10, 10), [x4]).scale == 4
    padded_result = np.arange(24 * 16 * 3, dtype=np.uint8).reshape(24, 16, 3)  # an x2 job of the 8x12 padded 5x10 picture
    plan = extras_plan(ExtrasIn(upscaling_resize=2, upscaler_1="U4"), (5, 10), [x4])
    assert np.array_equal(finish(padded_result, plan, (5, 10)), padded_result[:20, :10])
    with pytest.raises(ValueError, match="at most 8192"):
        extras_plan(ExtrasIn(upscaling_resize=8, upscaler_1="Lanczos"), (2000, 10), [])
