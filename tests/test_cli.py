"""The `invoke-canvas` command: real generations on the demo model, one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import rgba
from PIL import Image

from server.cli import main


@pytest.fixture()
def cli(data_root, capsys):
    def call(*args: str) -> tuple[int, str, str]:
        code = main([*args[:2], "--root", str(data_root), *args[2:]] if args[0] == "models" else [args[0], "--root", str(data_root), *args[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def gen(cli, out, *extra):
    return cli("generate", "--prompt", "a lighthouse at dusk", "--steps", "3", "--out", str(out), *extra)


def test_generate_txt2img_is_reproducible(cli, tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for path, seed in ((a, "7"), (b, "7"), (c, "8")):
        code, out, err = gen(cli, path, "--seed", seed, "--width", "128", "--height", "128")
        assert code == 0, err
    assert pixels(a).shape == (128, 128, 3)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))
    with Image.open(a) as img:
        meta = json.loads(img.text["invoke_canvas"])
        assert "Seed: 7" in img.text["parameters"] and "Steps: 3" in img.text["parameters"]
    assert meta["seed"] == 7 and meta["prompt"] == "a lighthouse at dusk" and meta["mode"] == "txt2img"


def test_generate_batch_writes_one_file_per_seed(cli, tmp_path):
    code, out, err = gen(cli, tmp_path / "b.png", "--seed", "3", "--width", "64", "--height", "64", "--batch", "2")
    assert code == 0, err
    assert (tmp_path / "b.png").exists() and (tmp_path / "b-2.png").exists()
    assert "seed 3" in out and "seed 4" in out


def test_cli_inpaint_keeps_pixels_outside_the_mask(cli, tmp_path):
    init = rgba(64, 64, seed=11)[..., :3]
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(init).save(tmp_path / "init.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    code, _, err = gen(cli, out, "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"), "--mask-blur", "0", "--strength", "1")
    assert code == 0, err
    result = pixels(out)
    keep = mask == 0
    assert np.array_equal(result[keep], init[keep])
    assert not np.array_equal(result[~keep], init[~keep])


def test_cli_outpaint_from_a_smaller_init_keeps_it(cli, tmp_path):
    init = rgba(48, 40, seed=12)[..., :3]  # 40 wide, 48 high, anchored top-left in a 64x64 bbox
    Image.fromarray(init).save(tmp_path / "small.png")
    out = tmp_path / "out.png"
    code, _, err = gen(cli, out, "--init", str(tmp_path / "small.png"), "--width", "64", "--height", "64", "--mask-blur", "0", "--infill", "telea")
    assert code == 0, err
    result = pixels(out)
    assert result.shape == (64, 64, 3)
    assert np.array_equal(result[:48, :40], init)


def test_cli_outpaint_from_transparent_pixels_keeps_the_opaque_ones(cli, tmp_path):
    init = rgba(64, 64, seed=13)
    init[:, 32:, 3] = 0
    Image.fromarray(init, "RGBA").save(tmp_path / "half.png")
    out = tmp_path / "out.png"
    code, _, err = gen(cli, out, "--init", str(tmp_path / "half.png"), "--mask-blur", "0")
    assert code == 0, err
    assert np.array_equal(pixels(out)[:, :32], init[:, :32, :3])


@pytest.mark.parametrize(
    "args, message",
    [
        (("--width", "130", "--height", "128"), "128 or 136"),
        (("--scheduler", "fastest"), "unknown scheduler 'fastest'"),
        (("--model", "missing-model"), "unknown model 'missing-model'"),
        (("--infill", "magic"), "unknown infill method 'magic'"),
        (("--steps", "0"), "steps"),
        (("--lora", "no-such-lora:0.5"), "no-such-lora"),
        (("--lora", "demo:abc"), "write ID or ID:WEIGHT"),
        (("--lora", "demo:9"), "weight must be a number in [-2, 2]"),
        (("--region", "absent.png", "a boat"), "region 1 mask absent.png: no such file"),
        (("--control", "absent.png"), "control image 1 absent.png: no such file"),
        (("--region-strength", "1.5", "--region", "__MASK__", "a boat"), "region strength must be a number in [0, 1]"),
    ],
)
def test_cli_bad_input_is_one_clear_line(cli, tmp_path, args, message):
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "mask.png")
    args = [str(tmp_path / "mask.png") if a == "__MASK__" else a for a in args]
    code, out, err = gen(cli, tmp_path / "x.png", "--width", "64", "--height", "64", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_empty_prompt_for_txt2img(cli, tmp_path):
    code, _, err = cli("generate", "--prompt", "  ", "--out", str(tmp_path / "x.png"), "--width", "64", "--height", "64")
    assert code == 2 and "prompt" in err


def test_cli_mask_of_another_size_and_unreadable_image(cli, tmp_path):
    Image.fromarray(rgba(64, 64)[..., :3]).save(tmp_path / "init.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mask.png")
    code, _, err = gen(cli, tmp_path / "x.png", "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"))
    assert code == 2 and "mask is 32x32 but the init image is 64x64" in err
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    code, _, err = gen(cli, tmp_path / "x.png", "--init", str(tmp_path / "broken.png"))
    assert code == 2 and "not a readable image" in err
    code, _, err = gen(cli, tmp_path / "x.png", "--init", str(tmp_path / "absent.png"))
    assert code == 2 and "no such file" in err


def test_models_list_install_remove(cli, sdxl_folder, tmp_path):
    code, out, _ = cli("models", "list")
    assert code == 0
    assert "demo " in out and "random weights: install a real model for real images" in out
    code, out, err = cli("models", "install", str(sdxl_folder), "--name", "My SDXL")
    assert code == 0, err
    assert "installed my-sdxl (sdxl main, diffusers" in out
    code, out, _ = cli("models", "list")
    assert "my-sdxl" in out
    code, out, _ = cli("models", "remove", "my-sdxl")
    assert code == 0
    code, out, err = cli("models", "remove", "my-sdxl")
    assert code == 2 and "unknown model" in err


def test_models_install_refuses_pickle(cli, tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    code, _, err = cli("models", "install", str(ckpt))
    assert code == 2 and "pickle" in err.lower()


def test_console_script_error_has_no_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "invoke-canvas")
    proc = subprocess.run(
        [exe, "generate", "--root", str(tmp_path), "--prompt", "x", "--width", "100", "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr
    assert "96 or 104" in proc.stderr


def test_doctor_reports_and_repairs_the_image_store(tmp_path, capsys):
    import io as _io

    from db import images
    from db.assets import AssetStore
    from db.session import Database

    db, store = Database(tmp_path), AssetStore(tmp_path)
    buffer = _io.BytesIO()
    Image.fromarray(rgba(16, 16)[..., :3]).save(buffer, format="PNG")
    kept = images.add_image(db, store, buffer.getvalue())
    lost = images.add_image(db, store, buffer.getvalue())
    store.path(lost.file_name).unlink()  # a row without its file
    store.thumbnail_path(kept.id).unlink()  # a missing thumbnail
    db.dispose()

    args = ["doctor", "--root", str(tmp_path), "--min-age", "0"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "image rows without files: 1" in out and "missing thumbnails: 1" in out
    assert main([*args, "--repair"]) == 1
    assert "repaired:" in capsys.readouterr().out
    assert main(args) == 0
    assert "no problems found" in capsys.readouterr().out
    db = Database(tmp_path)
    assert [r.id for r in images.list_images(db).items] == [kept.id]
    db.dispose()


def test_cli_regions_controls_and_loras(cli, data_root, tmp_path):
    from invoke_core.demo_lora import build_lora
    from invoke_core.model_records import ModelRegistry

    lora_file = build_lora(ModelRegistry(data_root).get("demo").path, tmp_path / "cli_ink.safetensors", seed=4)
    code, out, err = cli("models", "install", str(lora_file), "--name", "CLI ink")
    assert code == 0, err
    lora_id = next(r.id for r in ModelRegistry(data_root).list() if r.name == "CLI ink")
    try:
        region = np.zeros((64, 64, 3), np.uint8)
        region[:, :32] = 255  # white = the region
        Image.fromarray(region).save(tmp_path / "region.png")
        control = np.zeros((64, 64, 3), np.uint8)
        control[16:48, 16:48] = 255
        Image.fromarray(control).save(tmp_path / "control.png")
        base = ("--seed", "5", "--width", "64", "--height", "64")
        plain = tmp_path / "plain.png"
        assert gen(cli, plain, *base)[0] == 0
        everything = tmp_path / "all.png"
        code, out, err = gen(
            cli, everything, *base, "--lora", f"{lora_id}:0.6", "--region", str(tmp_path / "region.png"), "a red boat",
            "--region-strength", "0.5", "--control", str(tmp_path / "control.png"), "--preprocessor", "canny",
            "--control-weight", "0.8",
        )
        assert code == 0, err
        assert not np.array_equal(pixels(everything), pixels(plain))
        with Image.open(everything) as img:
            meta = json.loads(img.text["invoke_canvas"])
        assert meta["loras"][0]["id"] == lora_id and meta["loras"][0]["weight"] == 0.6
        [item] = meta["regions"]["items"]
        assert (item["prompt"], item["strength"], item["use"], item["coverage"]) == ("a red boat", 0.5, "region", 0.5)
        [ctl] = meta["controls"]
        assert (ctl["model"]["id"], ctl["preprocessor"], ctl["weight"]) == ("demo-controlnet", "canny", 0.8)
    finally:
        cli("models", "remove", lora_id)


def test_generate_with_the_sd3_demo_names_model_and_family(cli, tmp_path):
    out = tmp_path / "sd3.png"
    code, stdout, err = gen(cli, out, "--model", "demo-sd3", "--seed", "3", "--width", "64", "--height", "64")
    assert code == 0, err
    assert "random weights" in stdout + err
    with Image.open(out) as img:
        meta = json.loads(img.text["invoke_canvas"])
        text = img.text["parameters"]
    assert meta["model"]["id"] == "demo-sd3" and meta["model"]["family"] == "sd-3"
    assert "Model: Demo SD 3.5 (tiny)" in text and "Model family: sd-3" in text
    code, _out, err = gen(cli, tmp_path / "bad.png", "--model", "demo-sd3", "--width", "72", "--height", "64")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "not a multiple of 16" in errors[0] and "use 64 or 80" in errors[0]


def test_generate_with_the_flux_demo_names_model_and_family(cli, tmp_path):
    out = tmp_path / "flux.png"
    code, stdout, err = gen(cli, out, "--model", "demo-flux", "--seed", "3", "--width", "64", "--height", "64")
    assert code == 0, err
    assert "random weights" in stdout + err
    with Image.open(out) as img:
        meta = json.loads(img.text["invoke_canvas"])
        text = img.text["parameters"]
    assert meta["model"]["id"] == "demo-flux" and meta["model"]["family"] == "flux"
    assert "Model: Demo FLUX.1 (tiny)" in text and "Model family: flux" in text
    code, _out, err = gen(cli, tmp_path / "bad.png", "--model", "demo-flux", "--scheduler", "dpmpp_2m")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "choose one of euler" in errors[0]
    code, _out, err = gen(cli, tmp_path / "bad.png", "--model", "demo-flux", "--init", str(out), "--edit")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "cannot run an edit job" in errors[0] and not (tmp_path / "bad.png").exists()
