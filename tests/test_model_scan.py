"""Models where A1111/Forge and ComfyUI users keep them: a scan registers each in place (no copy), by the
probe; pickle checkpoints are skipped unread; moved files are reported, not fatal; a found model and a found
LoRA generate. Tiny models with random weights, written here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ckpt_export import export_pipeline_to_single_file
from PIL import Image

from invoke_core.demo import build_sd15_demo
from invoke_core.demo_lora import build_lora
from invoke_core.model_records import ModelRegistry
from invoke_core.model_scan import scan
from server.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """An A1111 `models/` and a ComfyUI `models/`, laid out as those apps do."""
    base = tmp_path_factory.mktemp("elsewhere")
    demo = build_sd15_demo(base / "build" / "sd15")
    a1111 = base / "stable-diffusion-webui" / "models"
    (a1111 / "Stable-diffusion").mkdir(parents=True)
    export_pipeline_to_single_file(demo, a1111 / "Stable-diffusion" / "tinyDream_v1.safetensors")
    (a1111 / "Stable-diffusion" / "oldModel.ckpt").write_bytes(b"\x80\x02c__builtin__\neval\n")  # never opened
    (a1111 / "Lora").mkdir()
    build_lora(demo, a1111 / "Lora" / "inkStyle.safetensors", seed=5, fmt="kohya")
    (a1111 / "VAE").mkdir()
    comfy = base / "ComfyUI" / "models"
    (comfy / "diffusers").mkdir(parents=True)
    shutil.copytree(demo, comfy / "diffusers" / "tiny-sd15")
    (comfy / "loras").mkdir()
    build_lora(demo, comfy / "loras" / "watercolor.safetensors", seed=6, fmt="peft")
    (comfy / "checkpoints").mkdir()
    return {"a1111": a1111, "comfy": comfy}


def test_scan_registers_in_place_by_the_probe(folders, tmp_path):
    registry = ModelRegistry(tmp_path)
    a1111 = scan(registry, folders["a1111"])
    found = {r.name: r for r in a1111.installed}
    assert set(found) == {"tinyDream_v1", "inkStyle"}
    assert (found["tinyDream_v1"].family, found["tinyDream_v1"].kind, found["tinyDream_v1"].format) == ("sd-1", "main", "single-file")
    assert (found["inkStyle"].family, found["inkStyle"].kind) == ("sd-1", "lora")
    assert found["inkStyle"].path == str(folders["a1111"] / "Lora" / "inkStyle.safetensors")  # in place, no copy
    assert [p for p, _ in a1111.skipped] == [str(folders["a1111"] / "Stable-diffusion" / "oldModel.ckpt")]
    assert "pickle" in a1111.skipped[0][1]
    comfy = scan(registry, folders["comfy"])
    assert {(r.name, r.kind, r.format) for r in comfy.installed} == {("tiny-sd15", "main", "diffusers"), ("watercolor", "lora", "single-file")}
    again = scan(registry, folders["comfy"])
    assert again.installed == [] and len(again.already) == 2  # a rescan adds nothing


def test_moved_files_are_reported_not_fatal(folders, tmp_path):
    registry = ModelRegistry(tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(folders["comfy"], moved)
    scan(registry, moved)
    shutil.rmtree(moved / "loras")
    result = scan(registry, moved)
    assert [r.name for r in result.missing] == ["watercolor"]
    assert any(r.name == "watercolor" for r in registry.list())  # still listed: the user decides


def test_cli_scan_then_generate_with_the_found_model_and_lora(folders, tmp_path, capsys):
    root = tmp_path / "root"
    assert main(["models", "scan", str(folders["comfy"]), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "installed tiny-sd15 (sd-1 main, diffusers)" in out and "registered in place" in out
    assert main(["models", "scan", str(folders["a1111"]), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "oldModel.ckpt" in out
    images = {}
    for name, extra in (("plain", []), ("lora", ["--lora", "inkstyle:1"])):
        path = tmp_path / f"{name}.png"
        code = main(["generate", "--root", str(root), "--model", "tiny-sd15", "--prompt", "a harbour", "--steps", "3",
                     "--width", "64", "--height", "64", "--seed", "7", "--out", str(path), *extra])
        assert code == 0, capsys.readouterr().err
        images[name] = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert np.abs(images["plain"] - images["lora"]).mean() > 1  # the found LoRA changes the found model's image


def test_the_api_scans_in_the_background(folders, tmp_path):
    import time

    from server.app import create_app, shutdown

    app = create_app({"root": tmp_path, "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        assert client.post("/api/v1/models/scan", json={"path": str(tmp_path / "nope")}).status_code == 422
        job = client.post("/api/v1/models/scan", json={"path": str(folders["comfy"])}).json
        deadline = time.monotonic() + 60
        while (state := client.get(f"/api/v1/models/install/{job['job_id']}").json)["status"] == "started":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["status"] == "completed" and set(state["installed"]) == {"tiny-sd15", "watercolor"}, state
        assert {"tiny-sd15", "watercolor"} <= {m["id"] for m in client.get("/api/v1/models").json}
    finally:
        shutdown(app)
