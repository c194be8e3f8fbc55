"""Single-file checkpoints: probing, offline loading with the shipped or a given config, refusals.

The tiny demo pipelines are exported to original-layout (LDM) single files by `tests/ckpt_export.py`,
then loaded back through diffusers' `from_single_file`; the weights must come back bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from ckpt_export import export_controlnet_to_single_file, export_pipeline_to_single_file
from safetensors.torch import load_file, save_file

from invoke_core.errors import ModelInstallError, UnsupportedError
from invoke_core.model_probe import ModelInfo, probe_model
from invoke_core.single_file import CONFIG_ROOT, load_single_file, prepare_config_dir

PIPELINES = {  # demo name -> (family, kind, components holding weights)
    "sd15": ("sd-1", "main", ("unet", "vae", "text_encoder")),
    "sd15-inpaint": ("sd-1", "inpaint", ("unet", "vae", "text_encoder")),
    "sdxl": ("sdxl", "main", ("unet", "vae", "text_encoder", "text_encoder_2")),
    "sdxl-inpaint": ("sdxl", "inpaint", ("unet", "vae", "text_encoder", "text_encoder_2")),
}


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """Demo diffusers folders and their single-file exports: {name: (folder, file)}."""
    from invoke_core.demo import build_controlnet_demo, build_sd15_demo, build_sdxl_demo

    root = tmp_path_factory.mktemp("single-file")
    folders = {
        "sd15": build_sd15_demo(root / "sd15"),
        "sd15-inpaint": build_sd15_demo(root / "sd15-inpaint", inpaint=True),
        "sdxl": build_sdxl_demo(root / "sdxl"),
        "sdxl-inpaint": build_sdxl_demo(root / "sdxl-inpaint", inpaint=True),
    }
    folders["controlnet"] = build_controlnet_demo(root / "controlnet", folders["sd15"])
    out = {}
    for name, folder in folders.items():
        export = export_controlnet_to_single_file if name == "controlnet" else export_pipeline_to_single_file
        out[name] = (folder, export(folder, root / f"{name}.safetensors"))
    return out


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


_loaded: dict[str, object] = {}


def load_demo(demo, name: str):
    """The single-file demo loaded with the demo folder as config (cached for the session)."""
    if name not in _loaded:
        folder, file = demo[name]
        _loaded[name] = load_single_file(file, probe_model(file), torch.float32, config_dir=folder)
    return _loaded[name]


def _folder_weights(folder: Path) -> dict[str, torch.Tensor]:
    (weights,) = folder.glob("*.safetensors")
    return load_file(str(weights))


def _assert_same(module: torch.nn.Module, expected: dict[str, torch.Tensor], what: str) -> None:
    got = module.state_dict()
    assert set(got) == set(expected), f"{what}: keys differ: {sorted(set(got) ^ set(expected))[:5]}"
    different = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not different, f"{what}: {len(different)} tensors differ, e.g. {different[0]}"


# ------------------------------------------------------------------------------------------ tokenizer


def test_clip_tokenizer_is_the_real_vocabulary(cache_dir):
    from invoke_core.clip_vocab import clip_vocab_and_merges, load_clip_tokenizer

    vocab, merges = clip_vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["!"] == 0 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407

    tok = load_clip_tokenizer(cache_dir)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77 and tok.pad_token == "<|endoftext|>"
    tok2 = load_clip_tokenizer(cache_dir, pad_token="!")
    ids = tok2("a photo of a cat", padding="max_length").input_ids
    assert len(ids) == 77 and ids[7:] == [0] * 70  # SDXL's tokenizer_2 pads with "!" (id 0)


def test_shipped_config_folders_are_complete_and_outside_the_package(cache_dir):
    from transformers import CLIPTokenizer

    folder = prepare_config_dir("sdxl", "main", cache_dir)
    assert folder.is_relative_to(cache_dir)
    assert prepare_config_dir("sdxl", "main", cache_dir) == folder  # built once
    tok = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)
    tok2 = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer_2", local_files_only=True)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (tok.pad_token, tok2.pad_token) == ("<|endoftext|>", "!")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    assert not list(CONFIG_ROOT.rglob("vocab.json")), "tokenizer files must not be written into the package"


# ------------------------------------------------------------------------------------------ shipped configs


def _count(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize(
    "family, unet_m, te_m, te2_m, cn_m, scaling",
    [("sd-1", 859.5, 123.1, None, 361.3, 0.18215), ("sdxl", 2567.5, 123.1, 694.7, 1251.0, 0.13025)],
)
def test_shipped_configs_describe_the_real_architectures(family, unet_m, te_m, te2_m, cn_m, scaling):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    main, inpaint = CONFIG_ROOT / family / "main", CONFIG_ROOT / family / "inpaint"
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(main / "unet"))
        assert _count(unet) == pytest.approx(unet_m, rel=1e-3)
        inpaint_unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(inpaint / "unet"))
        assert inpaint_unet.conv_in.in_channels == 9 and unet.conv_in.in_channels == 4
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(main / "vae"))
        assert _count(vae) == pytest.approx(83.65, rel=1e-3) and vae.config.scaling_factor == scaling
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(main / "text_encoder"))
        assert _count(te) == pytest.approx(te_m, rel=1e-3)
        if te2_m:
            te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(main / "text_encoder_2"))
            assert _count(te2) == pytest.approx(te2_m, rel=1e-3)
            assert te2.config.hidden_act == "gelu" and te2.config.projection_dim == 1280
        cn = ControlNetModel.from_config(ControlNetModel.load_config(CONFIG_ROOT / family / "controlnet"))
        assert _count(cn) == pytest.approx(cn_m, rel=1e-3)
    for kind in ("main", "inpaint"):
        for sub in ("unet", "vae"):
            assert (CONFIG_ROOT / family / kind / sub / "config.json").read_text() != ""


# ------------------------------------------------------------------------------------------ probing


@pytest.mark.parametrize("name", [*PIPELINES, "controlnet"])
def test_probe_diffusers_folder_and_single_file(demo, name):
    family, kind = PIPELINES[name][:2] if name in PIPELINES else ("sd-1", "controlnet")
    folder, file = demo[name]
    assert probe_model(folder) == ModelInfo(family, kind, "diffusers")
    assert probe_model(file) == ModelInfo(family, kind, "single-file")


@pytest.mark.parametrize(
    "tensors, family",
    [
        ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768)}, "sd-1"),
        ({"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 768)}, "sd-1"),
        ({"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048)}, "sdxl"),
        ({"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280)}, "sdxl"),
        ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048)}, "sdxl"),
        ({"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768)}, "sd-1"),
    ],
)
def test_probe_lora(tmp_path, tensors, family):
    file = tmp_path / "lora.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(file))
    assert probe_model(file) == ModelInfo(family, "lora", "single-file")
    with pytest.raises(UnsupportedError, match="LoRA"):
        load_single_file(file, probe_model(file), None, cache_dir=tmp_path)


def test_sd2_and_unknown_safetensors_are_refused(tmp_path):
    sd2 = tmp_path / "sd2.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3),
            "cond_stage_model.model.token_embedding.weight": torch.zeros(4, 8),
        },
        str(sd2),
    )
    with pytest.raises(ModelInstallError, match=r"Could not identify the model family.*sd-1.*sdxl") as err:
        probe_model(sd2)
    assert "2.x" in str(err.value) and "\n" not in str(err.value)

    unknown = tmp_path / "random.safetensors"
    save_file({"foo.weight": torch.zeros(3), "bar.bias": torch.zeros(2)}, str(unknown))
    with pytest.raises(ModelInstallError, match=r"Could not identify the model family.*supported families"):
        probe_model(unknown)


# ------------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("name", list(PIPELINES))
def test_single_file_loads_back_the_same_weights(demo, name):
    folder, _ = demo[name]
    pipe = load_demo(demo, name)
    expected_cls = {
        "sd15": "StableDiffusionPipeline",
        "sd15-inpaint": "StableDiffusionInpaintPipeline",
        "sdxl": "StableDiffusionXLPipeline",
        "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
    }[name]
    assert type(pipe).__name__ == expected_cls
    for component in PIPELINES[name][2]:
        _assert_same(getattr(pipe, component), _folder_weights(folder / component), f"{name}.{component}")
    if "sdxl" not in name:
        assert pipe.safety_checker is None


def test_controlnet_single_file_loads_back_the_same_weights(demo):
    from diffusers import ControlNetModel

    folder, file = demo["controlnet"]
    model = load_single_file(file, probe_model(file), torch.float32, config_dir=folder)
    assert isinstance(model, ControlNetModel)
    _assert_same(model, _folder_weights(folder), "controlnet")


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_loaded_single_file_generates(demo, name):
    pipe = load_demo(demo, name)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a photo of a cat",
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    image = out.images[0]
    assert image.shape == (64, 64, 3) and torch.isfinite(torch.from_numpy(image)).all()


def test_shipped_config_that_does_not_fit_gives_a_clear_error(demo, cache_dir):
    _, file = demo["sd15"]
    with pytest.raises(
        ModelInstallError, match=r"does not match the shipped sd-1 main configuration.*base width 32"
    ) as err:
        load_single_file(file, probe_model(file), torch.float32, cache_dir=cache_dir)
    assert "\n" not in str(err.value)


def test_config_that_does_not_fit_deeper_down_gives_a_clear_error(demo, tmp_path):
    """A mismatch the header check cannot see (layers per block) is still reported as ModelInstallError."""
    folder, file = demo["sd15"]
    config_dir = tmp_path / "config"
    shutil.copytree(folder, config_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    unet_config = json.loads((config_dir / "unet" / "config.json").read_text())
    unet_config["layers_per_block"] = 2
    (config_dir / "unet" / "config.json").write_text(json.dumps(unet_config))
    with pytest.raises(ModelInstallError, match="does not match the given sd-1 main configuration"):
        load_single_file(file, probe_model(file), torch.float32, config_dir=config_dir)


def test_info_that_does_not_match_the_file_is_refused(demo, cache_dir):
    _, file = demo["sd15"]
    with pytest.raises(ModelInstallError, match="holds a sd-1 main model"):
        load_single_file(file, ModelInfo("sdxl", "main", "single-file"), None, cache_dir=cache_dir)


# ------------------------------------------------------------------------------------------ refusals


class _Tripwire:
    """Unpickling this creates a marker file: proof that a refused file was never unpickled."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".pkl"])
def test_pickle_files_are_refused_without_unpickling(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    _Tripwire.marker = str(marker)
    file = tmp_path / f"model{suffix}"
    file.write_bytes(pickle.dumps({"state_dict": {"w": _Tripwire()}}))
    with pytest.raises(ModelInstallError, match="pickle.*arbitrary code.*safetensors") as err:
        probe_model(file)
    assert "save_file" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelInstallError, match="pickle"):
        load_single_file(file, ModelInfo("sd-1", "main", "single-file"), None, cache_dir=tmp_path)
    assert not marker.exists()


def test_a_real_torch_checkpoint_under_a_safetensors_name_is_refused(tmp_path):
    file = tmp_path / "sneaky.safetensors"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(2)}}, file)
    with pytest.raises(ModelInstallError, match="pickle"):
        probe_model(file)


def test_corrupt_empty_and_missing_files_are_refused(demo, tmp_path):
    _, good = demo["sd15"]
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.safetensors"
    # not urandom: 1 run in ~13,000 drew a "PK" or pickle-protocol start and was (rightly) refused as a pickle
    garbage.write_bytes(b"\x01" + random.Random(7).randbytes(4095))
    bad_header = tmp_path / "bad-header.safetensors"
    bad_header.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    for file in (truncated, garbage, bad_header):
        with pytest.raises(ModelInstallError, match="not a valid .safetensors file") as err:
            probe_model(file)
        assert "\n" not in str(err.value)
    with pytest.raises(ModelInstallError, match="empty"):
        probe_model(empty)
    with pytest.raises(ModelInstallError, match="does not exist"):
        probe_model(tmp_path / "nope.safetensors")


def test_unsupported_diffusers_folders_are_refused(tmp_path):
    folder = tmp_path / "kandinsky"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    with pytest.raises(ModelInstallError, match="Could not identify the model family"):
        probe_model(folder)
    sd3 = tmp_path / "sd3"  # a family we run, but the folder lacks its transformer
    sd3.mkdir()
    (sd3 / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    with pytest.raises(ModelInstallError, match="SD 3 pipeline folder without transformer/config.json"):
        probe_model(sd3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelInstallError, match="not a diffusers model folder"):
        probe_model(empty)
