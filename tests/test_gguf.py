"""A GGUF transformer file (quantised Q8_0 where a row is a multiple of 32, float32 elsewhere, written here
with the gguf package from the tiny Qwen-Image demo's transformer) installs by path like a transformer file,
runs with its base's encoders and VAE through diffusers' GGUF quantiser, and gives nearly the pixels of the
unquantised model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from family_jobs import Jobs, run1

from invoke_core.errors import ModelInstallError
from invoke_core.model_install import install_model
from invoke_core.model_probe import ModelInfo, probe_model


def write_gguf(state: dict, dest: Path, quantise: bool = True) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(dest), arch="qwen_image")
    for key, tensor in state.items():
        a = tensor.float().numpy()
        if quantise and a.ndim == 2 and a.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(key, a.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    from invoke_core.engine import Engine

    return Engine(root=tmp_path_factory.mktemp("gguf-root"), device="cpu")


def test_a_gguf_transformer_installs_and_generates(own_engine, tmp_path):
    from safetensors.torch import load_file

    demo = own_engine.registry.get("demo-qwen")
    state = load_file(f"{demo.path}/transformer/diffusion_pytorch_model.safetensors")
    file = write_gguf(state, tmp_path / "qwen-image-tiny-Q8_0.gguf")
    assert probe_model(file) == ModelInfo("qwen-image", "main", "single-file")
    record = install_model(own_engine.registry, str(file), name="tiny qwen gguf")
    try:
        assert "GGUF Q8_0" in record.description and "text encoders and VAE from demo-qwen" in record.description
        doc = Jobs(record.id, cfg_scale=4.0).doc(size=32, steps=2)
        ours = run1(own_engine, doc)[0]
        model = own_engine.cache.get(record, own_engine.device).model
        assert type(model.transformer.img_in.weight).__name__ == "GGUFParameter", "kept quantised"
        assert record.size < sum(t.numel() * 4 for t in state.values()), "smaller than its float32 weights"
        plain = run1(own_engine, Jobs("demo-qwen", cfg_scale=4.0).doc(size=32, steps=2))[0]
        assert ours.image.shape == (32, 32, 3) and np.array_equal(run1(own_engine, doc)[0].image, ours.image)
        assert np.abs(ours.image.astype(int) - plain.image.astype(int)).mean() < 8, "Q8_0: close to the float weights"
    finally:
        own_engine.registry.remove(record.id)


def test_a_gguf_file_of_nothing_we_know_is_a_clear_error(tmp_path):
    import torch

    file = write_gguf({"token_embd.weight": torch.zeros(4, 32)}, tmp_path / "llama.gguf")
    with pytest.raises(ModelInstallError, match="a GGUF file with no transformer of a supported family"):
        probe_model(file)
    import struct

    hostile = {
        "broken.gguf": b"GGUF" + b"\x00" * 12,
        "huge-counts.gguf": b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40),  # a trillion tensors claimed
        "truncated.gguf": b"GGUF\x03\x00",
    }
    for name, data in hostile.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelInstallError, match=f"{name} is not a readable GGUF file"):
            probe_model(tmp_path / name)
