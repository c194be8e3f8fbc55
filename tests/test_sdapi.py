"""The A1111 API driven by a real client: PyPI's `webuiapi`, against the real server process (demo models)."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image
from server_process import ServerProcess

from invoke_core.demo import build_sd15_demo
from invoke_core.demo_lora import build_lora
from server.cli import main

import webuiapi  # noqa: E402  (PyPI's A1111 client, a test dependency)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdapi-root")
    files = tmp_path_factory.mktemp("sdapi-models")
    demo = build_sd15_demo(files / "build")
    shutil.copytree(demo, files / "tinyDream")
    build_lora(demo, files / "inkStyle.safetensors", seed=5, fmt="kohya")
    for path in (files / "tinyDream", files / "inkStyle.safetensors"):
        assert main(["models", "install", str(path), "--root", str(root)]) == 0
    srv = ServerProcess(root)
    yield srv
    srv.stop()


@pytest.fixture()
def api(server):
    return webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=3)


def use_demo(api) -> None:
    """The SD1.5 demo by its exact title (webuiapi's closest-name match may pick "Demo SD 3.5")."""
    (title,) = [t for t in api.util_get_model_names() if t.startswith("Demo SD1.5 (tiny)")]
    api.util_set_model(title, find_closest=False)
    assert api.util_get_current_model() == title


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_models_samplers_and_switching_the_checkpoint(api, server):
    titles = api.util_get_model_names()
    assert any(t.startswith("tinyDream [") for t in titles) and any(t.startswith("Demo SD1.5") for t in titles)
    assert "Euler a" in api.util_get_sampler_names() and "DPM++ 2M" in api.util_get_sampler_names()
    assert {s["name"] for s in api.get_schedulers()} >= {"automatic", "karras"}
    assert [lo["name"] for lo in api.get_loras()] == ["inkStyle"]
    api.util_set_model("tinyDream")
    assert api.util_get_current_model().startswith("tinyDream [")
    result = api.txt2img(prompt="a harbour at dusk", width=64, height=64, seed=11, steps=3)
    assert result.image.size == (64, 64)
    assert "Model: tinyDream" in result.info["infotexts"][0]
    # in our gallery, with its history
    image = server.get("/api/v1/images", params={"origin": "generated", "limit": 1}).json()["items"][0]
    assert image["model_name"] == "tinyDream"
    assert server.get(f"/api/v1/history/{image['generation_id']}").json()["status"] == "completed"
    refused = api.set_options({"sd_model_checkpoint": "no such model"})  # webuiapi hands back the JSON body
    assert "unknown checkpoint" in refused["message"]
    assert api.util_get_current_model().startswith("tinyDream [")  # unchanged


def test_txt2img_with_a_lora_tag(api):
    api.util_set_model("tinyDream")
    plain = api.txt2img(prompt="a castle", width=64, height=64, seed=5, steps=3)
    inked = api.txt2img(prompt="a castle <lora:inkStyle:1>", width=64, height=64, seed=5, steps=3, batch_size=2)
    assert len(inked.images) == 2 and inked.info["all_seeds"] == [5, 6]
    assert np.abs(pixels(plain.image) - pixels(inked.images[0])).mean() > 1  # the LoRA changes the picture
    assert "<lora:inkStyle:1>" in inked.info["infotexts"][0]
    info = api.png_info(inked.images[0])  # the PNG carries A1111's parameters text
    assert "<lora:inkStyle:1>" in info.info and "Seed: 5" in info.info


def test_img2img_with_a_mask_keeps_what_is_outside_it(api):
    rng = np.random.default_rng(3)
    init = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    result = api.img2img(images=[init], mask_image=Image.fromarray(mask), mask_blur=0, denoising_strength=0.9,
                         inpainting_fill=1, prompt="a red door", width=64, height=64, seed=2, steps=3)
    out = pixels(result.image)
    outside = mask == 0
    assert np.abs(out[outside] - pixels(init)[outside]).max() <= 1  # untouched outside the mask
    assert np.abs(out[~outside] - pixels(init)[~outside]).mean() > 5  # repainted inside
    # "only masked": the box around the mask is generated, the answer is the whole picture
    masked = api.img2img(images=[init], mask_image=Image.fromarray(mask), mask_blur=0, inpaint_full_res=True,
                         inpaint_full_res_padding=8, prompt="a red door", width=64, height=64, seed=2, steps=3)
    assert masked.image.size == (64, 64)
    assert np.abs(pixels(masked.image)[outside] - pixels(init)[outside]).max() <= 1


def test_progress_during_a_job_and_interrupt(api):
    use_demo(api)
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(result=api.txt2img(prompt="a long one", width=64, height=64, steps=400)))
    worker.start()
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] > 2:
            seen = progress
            break
        time.sleep(0.05)
    assert seen is not None, "no progress reported during the job"
    assert 0 < seen["progress"] < 1 and seen["state"]["sampling_steps"] == 400 and seen["state"]["job_count"] == 1
    assert seen["current_image"]  # the live preview, base64
    api.interrupt()
    worker.join(60)
    assert not worker.is_alive()
    assert done["result"].images == []  # stopped before an image was made
    assert api.get_progress()["state"]["job_count"] == 0


def test_bad_requests_are_clear(server):
    assert server.post("/sdapi/v1/txt2img", data="{", headers={"Content-Type": "application/json"}).status_code == 400
    r = server.post("/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "No Such Sampler", "width": 64, "height": 64})
    assert r.status_code == 422 and "sampler" in r.json()["message"]
    r = server.post("/sdapi/v1/txt2img", json={"prompt": "x <lora:missing:1>", "width": 64, "height": 64})
    assert r.status_code == 422 and "missing" in r.json()["message"]
    r = server.post("/sdapi/v1/img2img", json={"init_images": ["bm90IGFuIGltYWdl"], "width": 64, "height": 64})
    assert r.status_code == 415


def test_controlnet_units_in_alwayson_scripts(api, server):
    use_demo(api)
    rng = np.random.default_rng(9)
    edges = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    plain = api.txt2img(prompt="a tower", width=64, height=64, seed=4, steps=3)
    unit = webuiapi.ControlNetUnit(image=edges, module="canny", model="demo-controlnet [abcdef12]", weight=1.0,
                                   guidance_start=0.0, guidance_end=1.0)
    guided = api.txt2img(prompt="a tower", width=64, height=64, seed=4, steps=3, controlnet_units=[unit])
    assert np.abs(pixels(plain.image) - pixels(guided.image)).mean() > 1  # the control image steers the job
    assert "Control" in guided.info["infotexts"][0]  # recorded in A1111's parameters text
    off = webuiapi.ControlNetUnit(image=edges, module="canny", model="demo-controlnet", enabled=False)
    same = api.txt2img(prompt="a tower", width=64, height=64, seed=4, steps=3, controlnet_units=[off])
    assert np.array_equal(pixels(plain.image), pixels(same.image))  # a disabled unit changes nothing
    bad = server.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "alwayson_scripts": {
        "ControlNet": {"args": [{"image": "aGk=", "module": "openpose_full", "model": "demo-controlnet"}]}}})
    assert bad.status_code == 422 and "openpose_full" in bad.json()["message"]
