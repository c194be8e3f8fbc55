"""Model registry, install by path, defaults and the demo models (real files, real loads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from invoke_core import demo
from invoke_core.devices import choose_device
from invoke_core.errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError
from invoke_core.model_install import install_model
from invoke_core.model_records import ModelRegistry


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_demo_models_are_deterministic_and_small(tmp_path):
    a = demo.build_sd15_demo(tmp_path / "a")
    b = demo.build_sd15_demo(tmp_path / "b")
    assert folder_digest(a) == folder_digest(b)
    size = sum(p.stat().st_size for p in a.rglob("*") if p.is_file())
    assert size < 10 * 1024 * 1024
    unet = (a / "unet" / "config.json").read_text()
    assert '"in_channels": 4' in unet
    assert '"in_channels": 9' in (demo.build_sd15_demo(tmp_path / "i", inpaint=True) / "unet" / "config.json").read_text()


def test_demo_tokenizer_knows_its_words_and_spells_the_rest(tmp_path):
    from transformers import CLIPTokenizer

    vocab, merges = demo.write_demo_tokenizer_files(tmp_path)
    tok = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    ids = tok("a lighthouse at dusk").input_ids
    assert len(ids) == 6  # start, 4 whole words, end
    assert tok.decode(tok("zebra crossing").input_ids, skip_special_tokens=True).strip() == "zebra crossing"


def test_registry_lists_demo_models_labelled(tmp_path):
    registry = ModelRegistry(tmp_path)
    listed = {r.id: r for r in registry.list()}
    assert {"demo", "demo-inpaint", "demo-controlnet"} <= set(listed)
    assert all(listed[i].description == demo.DEMO_LABEL for i in ("demo", "demo-inpaint", "demo-controlnet"))
    assert not Path(listed["demo"].path).exists()  # built on first use, not before
    record = registry.get("demo")
    assert Path(record.path, "model_index.json").exists() and len(record.hash) == 64


def test_default_is_the_demo_only_while_no_real_model_is_installed(tmp_path, sdxl_folder):
    registry = ModelRegistry(tmp_path)
    assert registry.default_model_id() == "demo"
    record = install_model(registry, str(sdxl_folder), name="Tiny XL")
    assert (record.id, record.family, record.kind, record.format) == ("tiny-xl", "sdxl", "main", "diffusers")
    assert record.size > 0 and len(record.hash) == 64 and record.source == str(sdxl_folder)
    assert registry.default_model_id() == "tiny-xl"
    with pytest.raises(ModelInstallError, match="already installed"):
        install_model(registry, str(sdxl_folder))
    registry.remove("tiny-xl")
    assert registry.default_model_id() == "demo"


def test_install_errors_are_clear(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelInstallError, match="no file or folder"):
        install_model(registry, str(tmp_path / "nothing.safetensors"))
    for suffix in (".ckpt", ".pt", ".bin", ".pth"):
        path = tmp_path / f"model{suffix}"
        path.write_bytes(b"\x80\x04not unpickled")
        with pytest.raises(ModelInstallError, match="pickle"):
            install_model(registry, str(path))
    with pytest.raises(ModelInstallError, match="built in"):
        registry.remove("demo")
    with pytest.raises(ModelNotFoundError):
        registry.get("absent")
    assert [r for r in registry.list() if not r.builtin] == []


def test_model_whose_files_vanished_fails_clearly(engine, sdxl_folder, tmp_path):
    import shutil

    from invoke_core.compile import compile_canvas
    from invoke_core.types import Bounds, CanvasDocument, GenerationParams

    copy = shutil.copytree(sdxl_folder, tmp_path / "xl-copy")
    record = install_model(engine.registry, str(copy), name="vanishing")
    shutil.rmtree(copy)
    try:
        request = compile_canvas(CanvasDocument(Bounds(0, 0, 64, 64), (), GenerationParams("x", model=record.id, steps=2)))
        with pytest.raises(ModelInstallError, match="files are gone"):
            engine.run(request)
    finally:
        engine.registry.remove(record.id)


def test_device_choice():
    choice = choose_device("cpu")
    assert (choice.device, choice.dtype) == ("cpu", "float32")
    assert choose_device("cpu", "bf16").dtype == "bfloat16"
    with pytest.raises(InvalidCanvasError, match="unknown device"):
        choose_device("tpu")
    with pytest.raises(InvalidCanvasError, match="unknown dtype"):
        choose_device("cpu", "int4")
