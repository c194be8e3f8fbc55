"""The FLUX.2 transformer alone in one .safetensors file, in Black Forest Labs' layout (klein and dev, told
apart by dev's guidance embedder), installed by path and run with the Qwen3 or Mistral encoders and the VAE
of an installed FLUX.2 diffusers model: configured from its shapes, the same pixels as the folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from invoke_core.compile import compile_canvas
from invoke_core.errors import ModelInstallError
from invoke_core.model_install import install_model
from invoke_core.model_probe import ModelInfo, probe_model
from invoke_core.types import Bounds, CanvasDocument, GenerationParams

_TOP = {
    "x_embedder": "img_in", "context_embedder": "txt_in", "proj_out": "final_layer.linear",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer", "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer", "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin", "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
}
_DOUBLE = {
    "attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm", "attn.norm_added_q": "txt_attn.norm.query_norm",
    "attn.norm_added_k": "txt_attn.norm.key_norm", "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
    "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2", "ff_context.linear_in": "txt_mlp.0", "ff_context.linear_out": "txt_mlp.2",
}
_SINGLE = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2", "attn.norm_q": "norm.query_norm", "attn.norm_k": "norm.key_norm"}
_QKV = {("attn.to_q", "attn.to_k", "attn.to_v"): "img_attn.qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"): "txt_attn.qkv"}


def flux2_to_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers Flux2Transformer2DModel tensors -> BFL's FLUX.2 tensors (every tensor mapped, or KeyError)."""
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        module, _, param = key.rpartition(".")
        bfl_param = "scale" if "norm_" in module else param  # the RMSNorms' `scale`
        if module == "norm_out.linear":  # diffusers (scale, shift) -> BFL (shift, scale)
            scale, shift = t.chunk(2, dim=0)
            out[f"final_layer.adaLN_modulation.1.{param}"] = torch.cat([shift, scale], dim=0)
        elif module in _TOP:
            out[f"{_TOP[module]}.{param}"] = t
        elif key.startswith("transformer_blocks."):
            _, index, rest = key.split(".", 2)
            inner, _, _ = rest.rpartition(".")
            fused = next(((names, name) for names, name in _QKV.items() if inner in names), None)
            if fused:
                if inner == fused[0][0]:
                    parts = [state[f"transformer_blocks.{index}.{n}.{param}"] for n in fused[0]]
                    out[f"double_blocks.{index}.{fused[1]}.{param}"] = torch.cat(parts, dim=0)
            else:
                out[f"double_blocks.{index}.{_DOUBLE[inner]}.{bfl_param}"] = t
        elif key.startswith("single_transformer_blocks."):
            _, index, rest = key.split(".", 2)
            inner, _, _ = rest.rpartition(".")
            out[f"single_blocks.{index}.{_SINGLE[inner]}.{bfl_param}"] = t
        else:
            raise KeyError(key)
    return out


def export(folder, dest, prefix: str = ""):
    state = load_file(f"{folder}/transformer/diffusion_pytorch_model.safetensors")
    save_file({prefix + k: v.contiguous() for k, v in flux2_to_bfl(state).items()}, str(dest))
    return dest


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    from invoke_core.engine import Engine

    return Engine(root=tmp_path_factory.mktemp("root"), device="cpu")  # its own registry


def image(engine, model: str) -> np.ndarray:
    params = GenerationParams(prompt="a lighthouse at dusk", model=model, steps=2, seed=5, cfg_scale=4.0)
    return engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, 32, 32), (), params)))[0].image


def test_the_export_round_trips_through_diffusers_converter(own_engine):
    from invoke_core.families.flux2_file import DEV

    state = load_file(f"{own_engine.registry.get('demo-flux2-dev').path}/transformer/diffusion_pytorch_model.safetensors")
    back = DEV.convert(flux2_to_bfl(state))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize(("demo", "family", "prefix"), [
    ("demo-flux2", "flux2", ""), ("demo-flux2", "flux2", "model.diffusion_model."), ("demo-flux2-dev", "flux2-dev", ""),
])
def test_a_flux2_transformer_file_runs_with_the_encoders_of_an_installed_model(own_engine, tmp_path, demo, family, prefix):
    file = export(own_engine.registry.get(demo).path, tmp_path / f"{demo}.safetensors", prefix)
    assert probe_model(file) == ModelInfo(family, "main", "single-file")
    record = install_model(own_engine.registry, str(file), name=f"tiny {demo} file {prefix}")
    try:
        assert (record.family, record.format) == (family, "single-file") and f"text encoders and VAE from {demo}" in record.description
        assert np.array_equal(image(own_engine, record.id), image(own_engine, demo)), "the same weights, the same pixels"
    finally:
        own_engine.registry.remove(record.id)
    if not prefix:  # and the file's own weights are the ones that run
        state = load_file(str(file))
        state["final_layer.linear.weight"] = state["final_layer.linear.weight"] * 3
        save_file(state, str(tmp_path / "tuned.safetensors"))
        tuned = install_model(own_engine.registry, str(tmp_path / "tuned.safetensors"), name=f"tuned {demo} file")
        try:
            assert not np.array_equal(image(own_engine, tuned.id), image(own_engine, demo))
        finally:
            own_engine.registry.remove(tuned.id)


def test_a_klein_file_does_not_fit_a_dev_folder(own_engine, tmp_path):
    file = export(own_engine.registry.get("demo-flux2").path, tmp_path / "klein.safetensors")
    dev = own_engine.registry.get("demo-flux2-dev").path
    with pytest.raises(ModelInstallError, match=r"does not fit the FLUX.2 \[klein\] model at .*a Flux2Pipeline folder \(the file is FLUX.2 \[klein\]'s"):
        install_model(own_engine.registry, str(file), name="klein on dev", config=dev)
    assert all(r.path != str(file) for r in own_engine.registry.list()), "nothing half-installed"
