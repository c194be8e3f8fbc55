"""A family's transformer alone in one .safetensors file, as distributed (FLUX.1 in Black Forest Labs'
layout, SD 3.x in Stability AI's, alone or bundled with encoders), installed by path and run with the text
encoders and VAE of an installed diffusers model of its family: identified and configured from the tensor
shapes, checked against the base's widths, the same pixels as the folder it came from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_export import export_transformer, flux_to_bfl

from invoke_core.compile import compile_canvas
from invoke_core.errors import ModelInstallError
from invoke_core.families import flux_file
from invoke_core.model_install import install_model
from invoke_core.model_probe import ModelInfo, probe_model
from invoke_core.types import Bounds, CanvasDocument, GenerationParams


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    from invoke_core.engine import Engine

    # its own registry: installs here change no other test's default model
    return Engine(root=tmp_path_factory.mktemp("root"), device="cpu")


def job(model: str, **kw):
    params = dict(prompt="a lighthouse at dusk", model=model, steps=2, seed=5, cfg_scale=3.5)
    params.update(kw)
    return compile_canvas(CanvasDocument(Bounds(0, 0, 32, 32), (), GenerationParams(**params)))


def image(engine, model: str, **kw) -> np.ndarray:
    return engine.run(job(model, **kw))[0].image


def demo_folder(engine, model_id: str):
    return engine.registry.get(model_id).path


def test_the_bfl_conversion_is_diffusers_own_at_the_released_width():
    """diffusers' converter assumes the released width (3072) where ours reads it from the file: at that
    width they agree tensor for tensor. One-column tensors with a distinct value per row: every row's
    destination is checked without allocating the real weights."""
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    with init_empty_weights():
        model = FluxTransformer2DModel(num_layers=1, num_single_layers=1, guidance_embeds=True)
    counter, rows = 0, {}
    for key, tensor in model.state_dict().items():
        n = tensor.shape[0]
        rows[key] = torch.arange(counter, counter + n, dtype=torch.float64)[:, None]
        counter += n
    bfl = flux_to_bfl(rows)
    assert "single_blocks.0.linear1.weight" in bfl and bfl["img_in.weight"].shape[0] == 3072
    ours = flux_file.convert(dict(bfl))
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert set(ours) == set(theirs) == set(rows)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_flux_transformer_file_runs_with_the_encoders_of_an_installed_model(own_engine, tmp_path, prefix):
    file = export_transformer(demo_folder(own_engine, "demo-flux"), tmp_path / "flux1-tiny.safetensors", "bfl", prefix)
    assert probe_model(file) == ModelInfo("flux", "main", "single-file")
    record = install_model(own_engine.registry, str(file), name=f"tiny flux file {prefix}")
    assert (record.family, record.kind, record.format) == ("flux", "main", "single-file")
    assert "text encoders and VAE from demo-flux" in record.description
    # the same weights (equal tensor for tensor), the same pixels but for rounding: on some CPUs the first job
    # after a load takes other kernel paths (one level off somewhere); other weights differ by far more
    ours, theirs = image(own_engine, record.id).astype(int), image(own_engine, "demo-flux").astype(int)
    assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 0.01, "the same weights, the same pixels"
    own_engine.registry.remove(record.id)
    if not prefix:  # and the file's own weights are the ones that run
        from safetensors.torch import load_file, save_file

        state = load_file(str(file))
        state["final_layer.linear.weight"] = state["final_layer.linear.weight"] * 3
        save_file(state, str(tmp_path / "tuned.safetensors"))
        tuned = install_model(own_engine.registry, str(tmp_path / "tuned.safetensors"), name="tuned flux file")
        assert not np.array_equal(image(own_engine, tuned.id), image(own_engine, "demo-flux"))
        own_engine.registry.remove(tuned.id)


def test_schnell_and_fill_files_are_told_by_their_shapes(own_engine, tmp_path):
    schnell = export_transformer(demo_folder(own_engine, "demo-flux-schnell"), tmp_path / "schnell.safetensors", "bfl")
    config = flux_file.TRANSFORMER_FILE.config(flux_file.TRANSFORMER_FILE.transformer_shapes(_shapes(schnell)), {"axes_dims_rope": [2, 2, 4]})
    assert config["guidance_embeds"] is False and (config["num_layers"], config["num_single_layers"]) == (1, 2)
    from invoke_core import families

    record = install_model(own_engine.registry, str(schnell), name="tiny schnell file", base="demo-flux-schnell")
    try:
        assert families.get("flux").model_defaults(record).steps == 4, "schnell's defaults, told by its shapes"
    finally:
        own_engine.registry.remove(record.id)
    fill = export_transformer(demo_folder(own_engine, "demo-flux-fill"), tmp_path / "fill.safetensors", "bfl")
    assert probe_model(fill) == ModelInfo("flux", "inpaint", "single-file")
    record = install_model(own_engine.registry, str(fill), name="tiny fill file")
    assert np.array_equal(image(own_engine, record.id), image(own_engine, "demo-flux-fill"))
    own_engine.registry.remove(record.id)


def _shapes(file):
    from invoke_core.model_probe import read_safetensors_shapes

    return read_safetensors_shapes(file)


def test_sd3_transformer_and_all_in_one_files_run_with_the_encoders_of_an_installed_model(own_engine, tmp_path):
    alone = export_transformer(demo_folder(own_engine, "demo-sd3"), tmp_path / "sd35-tiny.safetensors", "sai", "model.diffusion_model.")
    bundled = export_transformer(
        demo_folder(own_engine, "demo-sd3"), tmp_path / "sd35-tiny-all.safetensors", "sai", "model.diffusion_model.",
        extra={
            "text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight": torch.zeros(77, 32),
            "first_stage_model.decoder.conv_in.weight": torch.zeros(12, 16, 3, 3),
        },
    )
    want = image(own_engine, "demo-sd3", cfg_scale=4.5, negative_prompt="fog")
    for file in (alone, bundled):
        assert probe_model(file) == ModelInfo("sd-3", "main", "single-file")
        record = install_model(own_engine.registry, str(file), name=file.stem)
        assert "Stability AI-layout transformer file; text encoders and VAE from demo-sd3" == record.description
        assert np.array_equal(image(own_engine, record.id, cfg_scale=4.5, negative_prompt="fog"), want)
        own_engine.registry.remove(record.id)


def test_a_transformer_file_that_fits_no_installed_model_is_a_clear_error(own_engine, tmp_path):
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    wide = FluxTransformer2DModel(
        num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=48, pooled_projection_dim=32, axes_dims_rope=(2, 2, 4),
    )
    file = tmp_path / "wide-t5.safetensors"
    save_file(flux_to_bfl(wide.state_dict()), str(file))
    with pytest.raises(ModelInstallError, match=r"FLUX.1 transformer alone: .* none fits \(demo-flux: T5 width 32 \(the file's transformer takes 48\)\)"):
        install_model(own_engine.registry, str(file))
    with pytest.raises(ModelInstallError, match="--base demo: a sd-1 main diffusers model; name a flux diffusers main model"):
        install_model(own_engine.registry, str(file), base="demo")
    with pytest.raises(ModelInstallError, match="does not fit the FLUX.1 model at .*T5 width 32"):
        install_model(own_engine.registry, str(file), config=demo_folder(own_engine, "demo-flux"))
    assert all(r.path != str(file) for r in own_engine.registry.list()), "nothing half-installed"


def test_a_flux_control_transformer_file_is_refused_by_name(tmp_path):
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    control = FluxTransformer2DModel(
        in_channels=128, out_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(2, 2, 4),
    )
    file = tmp_path / "flux1-canny-tiny.safetensors"
    save_file(flux_to_bfl(control.state_dict()), str(file))
    with pytest.raises(ModelInstallError, match="FLUX.1 Canny/Depth control models are not supported yet"):
        probe_model(file)


def test_a_base_in_use_cannot_be_removed(own_engine, tmp_path):
    from invoke_core.families.flux_demo import build_flux_demo

    base = install_model(own_engine.registry, str(build_flux_demo(tmp_path / "my-flux")), name="my flux base")
    file = export_transformer(base.path, tmp_path / "finetune.safetensors", "bfl")
    record = install_model(own_engine.registry, str(file), name="finetune", base=base.id)
    assert record.config_path == base.path and f"from {base.id}" in record.description
    with pytest.raises(ModelInstallError, match=f"'{base.id}' is the base model of {record.id}: remove those first"):
        own_engine.registry.remove(base.id)
    own_engine.registry.remove(record.id)
    own_engine.registry.remove(base.id)


def test_the_cli_installs_a_transformer_file_and_generates_with_it(tmp_path, capsys):
    import json

    from PIL import Image

    from server.cli import main

    root = str(tmp_path / "root")
    from invoke_core.model_records import ModelRegistry

    flux = ModelRegistry(tmp_path / "root").get("demo-flux").path
    file = export_transformer(flux, tmp_path / "flux1-tiny.safetensors", "bfl")
    assert main(["models", "install", "--root", root, str(file), "--base", "demo-flux"]) == 0
    out = capsys.readouterr().out
    assert "installed flux1-tiny (flux main, single-file" in out and "text encoders and VAE from demo-flux" in out
    png = tmp_path / "out.png"
    code = main(["generate", "--root", root, "--model", "flux1-tiny", "--prompt", "a lighthouse", "--steps", "2",
                 "--width", "32", "--height", "32", "--seed", "1", "--out", str(png)])
    assert code == 0, capsys.readouterr().err
    with Image.open(png) as img:
        meta = json.loads(img.text["invoke_canvas"])
    assert meta["model"]["id"] == "flux1-tiny" and meta["model"]["family"] == "flux"
    assert main(["models", "install", "--root", root, str(file), "--base", "demo-sd3"]) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "already installed" in errors[0]


def test_the_api_installs_a_transformer_file_on_a_named_base(tmp_path):
    import time

    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path / "root"), "device": "cpu", "start_worker": False})
    try:
        client = app.test_client()
        headers = {"Origin": "http://localhost"}
        from invoke_core.model_records import ModelRegistry

        file = export_transformer(ModelRegistry(tmp_path / "root").get("demo-sd3").path, tmp_path / "sd35.safetensors", "sai")

        def install(**body):
            job = client.post("/api/v1/models/install", json={"source": str(file), **body}, headers=headers)
            assert job.status_code == 202, job.json
            deadline = time.monotonic() + 60
            while (state := client.get(f"/api/v1/models/install/{job.json['job_id']}").json)["status"] == "started":
                assert time.monotonic() < deadline, state
                time.sleep(0.05)
            return state

        wrong = install(base="demo-flux")
        assert wrong["status"] == "failed" and "--base demo-flux: a flux main diffusers model; name a sd-3" in wrong["message"]
        assert install(base="no-such-model")["status"] == "failed"
        done = install(base="demo-sd3")
        assert done["status"] == "completed", done
        listed = {m["id"]: m for m in client.get("/api/v1/models").json}[done["model_id"]]
        assert (listed["family"], listed["kind"], listed["format"]) == ("sd-3", "main", "single-file")
        assert listed["description"].endswith("text encoders and VAE from demo-sd3")
        bad = client.post("/api/v1/models/install", json={"source": str(file), "base": ""}, headers=headers)
        assert bad.status_code == 422 and "base" in bad.json["message"]
    finally:
        shutdown(app)
