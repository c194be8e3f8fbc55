"""Chroma, HiDream-I1, Z-Image and Qwen-Image transformers alone in one .safetensors file, in the layouts they
are distributed in (lodestones' for Chroma, NextDiT's for Z-Image as ComfyUI ships it, diffusers' own names
for HiDream-I1 and Qwen-Image), bare or under `model.diffusion_model.`, installed by path and run with the
text encoders and VAE of an installed diffusers model of their family: each told from the others (and from
FLUX.1's and Lumina-Image 2.0's) by its keys, configured from its shapes, checked against the base's
widths, the same pixels as the folder it came from."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformer_export import chroma_to_lodestones, export_transformer, zimage_to_nextdit

from invoke_core import families
from invoke_core.compile import compile_canvas
from invoke_core.errors import ModelInstallError
from invoke_core.families import chroma_file
from invoke_core.families.transformer_file import folder_config
from invoke_core.model_install import install_model
from invoke_core.model_probe import ModelInfo, probe_model, read_safetensors_shapes
from invoke_core.types import Bounds, CanvasDocument, GenerationParams

PREFIX = "model.diffusion_model."

# family -> (its demo, the layout its files are distributed in, a file name as distributed, the layout's name
# in the record, its output projection)
FILES = {
    "chroma": ("demo-chroma", "lodestones", "chroma-unlocked-v50-tiny", "lodestones", "final_layer.linear.weight"),
    "hidream": ("demo-hidream", "diffusers", "hidream_i1_dev_tiny", "HiDream-ai", "final_layer.linear.weight"),
    "qwen-image": ("demo-qwen", "diffusers", "qwen_image_tiny_fp8_e4m3fn", "diffusers", "proj_out.weight"),
    "z-image": ("demo-zimage", "nextdit", "z_image_turbo_tiny", "NextDiT", "final_layer.linear.weight"),
}
# family -> (its context input tensors (the text encoder's width is their last axis), the encoder's config
# file and width key, how misfit names it)
CONTEXT = {
    "chroma": (("txt_in.weight",), "text_encoder/config.json", "d_model", "T5 width"),
    "hidream": (("caption_projection.2.linear.weight",), "text_encoder_3/config.json", "d_model", "T5 width"),
    "qwen-image": (("txt_in.weight", "txt_norm.weight"), "text_encoder/config.json", "text_config", "Qwen2.5-VL width"),
    "z-image": (("cap_embedder.1.weight", "cap_embedder.0.weight"), "text_encoder/config.json", "hidden_size", "Qwen3 width"),
}


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    from invoke_core.engine import Engine

    # its own registry: installs here change no other test's default model
    return Engine(root=tmp_path_factory.mktemp("root"), device="cpu")


@pytest.fixture(scope="module")
def files(own_engine, tmp_path_factory):
    """family -> {prefix: the demo's transformer exported to its distributed layout}."""
    out = tmp_path_factory.mktemp("files")
    exported = {}
    for family, (demo, layout, stem, _, _) in FILES.items():
        folder = own_engine.registry.get(demo).path
        bare = export_transformer(folder, out / f"{stem}.safetensors", layout)
        # prefixed as ComfyUI saves them; older NextDiT files carry Lumina's unused final norm too
        extra = {f"{PREFIX}norm_final.weight": torch.ones(32)} if layout == "nextdit" else None
        exported[family] = {"": bare, PREFIX: export_transformer(folder, out / f"{stem}-prefixed.safetensors", layout, PREFIX, extra)}
    return exported


def job(model: str):
    params = GenerationParams(prompt="a lighthouse at dusk", model=model, steps=2, seed=5, cfg_scale=3.5)
    return compile_canvas(CanvasDocument(Bounds(0, 0, 32, 32), (), params))


def image(engine, model: str) -> np.ndarray:
    return engine.run(job(model))[0].image


def spec(family: str):
    return families.get(family).transformer_file


@pytest.mark.parametrize("family", FILES)
def test_a_transformer_file_runs_with_the_encoders_of_an_installed_model(own_engine, files, tmp_path, family):
    demo, _, _, layout, output = FILES[family]
    want = image(own_engine, demo)
    for prefix, file in files[family].items():
        assert probe_model(file) == ModelInfo(family, "main", "single-file")
        record = install_model(own_engine.registry, str(file), name=f"{file.stem} file")
        assert (record.family, record.kind, record.format) == (family, "main", "single-file")
        assert record.description == f"{layout}-layout transformer file; text encoders and VAE from {demo}"
        assert np.array_equal(image(own_engine, record.id), want), f"the same weights, the same pixels ({prefix!r})"
        own_engine.registry.remove(record.id)
    # and the file's own weights are the ones that run, not the base's transformer
    state = load_file(str(files[family][""]))
    state[output] = state[output] * 3
    save_file(state, str(tmp_path / "tuned.safetensors"))
    tuned = install_model(own_engine.registry, str(tmp_path / "tuned.safetensors"), name=f"tuned {family} file")
    assert not np.array_equal(image(own_engine, tuned.id), want)
    own_engine.registry.remove(tuned.id)


def _lumina2_file(path):
    """A Lumina-Image 2.0 transformer in its original layout (ComfyUI's NextDiT without Z-Image's modulation):
    the shapes only, which is all the probe reads. Its modulation is SiLU then Linear (`adaLN_modulation.1`)
    from a min(width, 1024)-wide time embedding, its k/v heads grouped."""
    dim, head, heads, kv, cap, hidden = 32, 16, 2, 1, 32, 96
    t = min(dim, 1024)
    shapes = {"x_embedder.weight": (dim, 64), "x_embedder.bias": (dim,), "t_embedder.mlp.0.weight": (t, 256),
              "t_embedder.mlp.2.weight": (t, t), "cap_embedder.0.weight": (cap,), "cap_embedder.1.weight": (dim, cap),
              "norm_final.weight": (dim,), "final_layer.linear.weight": (64, dim), "final_layer.adaLN_modulation.1.weight": (dim, t)}
    for block, modulated in (("noise_refiner.0", True), ("context_refiner.0", False), ("layers.0", True)):
        shapes |= {f"{block}.attention.qkv.weight": ((heads + 2 * kv) * head, dim), f"{block}.attention.out.weight": (dim, dim),
                   f"{block}.attention.q_norm.weight": (head,), f"{block}.attention.k_norm.weight": (head,),
                   f"{block}.feed_forward.w1.weight": (hidden, dim), f"{block}.feed_forward.w2.weight": (dim, hidden),
                   f"{block}.feed_forward.w3.weight": (hidden, dim)}
        shapes |= {f"{block}.{norm}.weight": (dim,) for norm in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2")}
        if modulated:
            shapes[f"{block}.adaLN_modulation.1.weight"] = (4 * dim, t)
    save_file({PREFIX + k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


def test_each_file_is_claimed_by_its_own_family_only(own_engine, files, tmp_path):
    """Every family's layout asked about every file (the probe asks in its claim order; here none may claim
    another's, whatever the order): Chroma's blocks are FLUX.1's, Z-Image's names Lumina's."""
    others = {
        "flux": export_transformer(own_engine.registry.get("demo-flux").path, tmp_path / "flux1.safetensors", "bfl"),
        "sd-3": export_transformer(own_engine.registry.get("demo-sd3").path, tmp_path / "sd35.safetensors", "sai", PREFIX),
        None: _lumina2_file(tmp_path / "lumina_2_tiny.safetensors"),
    }
    candidates = [(family, file) for family, by_prefix in files.items() for file in by_prefix.values()] + list(others.items())
    layouts = [f for f in families.all_families() if f.transformer_file is not None]
    assert {f.name for f in layouts} >= {"flux", "sd-3", *FILES}
    for owner, file in candidates:
        shapes = read_safetensors_shapes(file)
        claimed = [f.name for f in layouts if f.transformer_file.claims(shapes) is not None]
        assert claimed == ([owner] if owner else []), file.name
    with pytest.raises(ModelInstallError, match="Could not identify the model family of lumina_2_tiny.safetensors"):
        probe_model(others[None])


@pytest.mark.parametrize("family", FILES)
def test_a_file_that_fits_no_installed_model_is_a_clear_error(own_engine, files, tmp_path, family):
    """A transformer taking a wider text encoder than any installed base's: refused at install, naming why;
    and a base whose text encoder is wider than the file's context input: misfit says so."""
    demo = FILES[family][0]
    keys, config_file, width_key, what = CONTEXT[family]
    state = load_file(str(files[family][""]))
    for key in keys:  # 48 wide where the demo's encoder is 32
        state[key] = torch.zeros(*state[key].shape[:-1], 48)
    wide = tmp_path / f"wide-{family}.safetensors"
    save_file(state, str(wide))
    why = re.escape(f"none fits ({demo}: {what} 32 (the file's transformer takes 48))")
    with pytest.raises(ModelInstallError, match=rf"{families.get(family).label} transformer alone: .* {why}"):
        install_model(own_engine.registry, str(wide))
    assert all(r.path != str(wide) for r in own_engine.registry.list()), "nothing half-installed"

    folder = own_engine.registry.get(demo).path
    read = folder_config(folder)
    encoder = read(config_file)
    if width_key == "text_config":  # Qwen2.5-VL: its language model's config inside
        encoder = encoder | {"text_config": encoder["text_config"] | {"hidden_size": 64}}
    else:
        encoder = encoder | {width_key: 64}
    own = spec(family).transformer_shapes(read_safetensors_shapes(files[family][""]))
    assert spec(family).misfit(own, read) == []
    assert spec(family).misfit(own, lambda relative: encoder if relative == config_file else read(relative)) == [
        f"{what} 64 (the file's transformer takes 32)"
    ]


def test_a_base_of_another_family_or_kind_is_refused(own_engine, files):
    with pytest.raises(ModelInstallError, match="--base demo-flux: a flux main diffusers model; name a chroma diffusers main model"):
        install_model(own_engine.registry, str(files["chroma"][""]), base="demo-flux")
    # Qwen-Image-Edit's transformer has Qwen-Image's shapes: a file runs as text to image, on a Qwen-Image folder
    edit = own_engine.registry.get("demo-qwen-edit").path
    with pytest.raises(ModelInstallError, match="does not fit the Qwen-Image model at .*: a QwenImageEditPipeline folder"):
        install_model(own_engine.registry, str(files["qwen-image"][""]), config=edit)


def test_the_chroma_conversion_is_diffusers_own_at_the_released_width():
    """diffusers' converter assumes the released width (3072) where ours reads it from the file: at that
    width they agree tensor for tensor. One-column tensors with a distinct value per row: every row's
    destination is checked without allocating the real weights."""
    from accelerate import init_empty_weights
    from diffusers import ChromaTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_chroma_transformer_checkpoint_to_diffusers

    with init_empty_weights():
        model = ChromaTransformer2DModel(num_layers=1, num_single_layers=1, approximator_layers=2)
    counter, rows = 0, {}
    for key, tensor in model.state_dict().items():
        n = tensor.shape[0]
        rows[key] = torch.arange(counter, counter + n, dtype=torch.float64)[:, None]
        counter += n
    original = chroma_to_lodestones(rows)
    assert "distilled_guidance_layer.norms.1.scale" in original and original["img_in.weight"].shape[0] == 3072
    ours = chroma_file.convert(dict(original))
    theirs = convert_chroma_transformer_checkpoint_to_diffusers(dict(original))
    assert set(ours) == set(theirs) == set(rows)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_variants_that_do_not_run_are_refused_by_name(files, tmp_path):
    from diffusers import QwenImage21Transformer2DModel, QwenImageTransformer2DModel, ZImageTransformer2DModel

    tiny = dict(num_layers=1, attention_head_dim=8, num_attention_heads=2, axes_dims_rope=(2, 2, 4))
    layered = QwenImageTransformer2DModel(joint_attention_dim=32, use_additional_t_cond=True, **tiny)
    qwen21 = QwenImage21Transformer2DModel(context_in_dim=32, **tiny)
    omni = ZImageTransformer2DModel(dim=32, n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32,
                                    siglip_feat_dim=16, axes_dims=[4, 6, 6], axes_lens=[64, 32, 32])
    chroma = load_file(str(files["chroma"][""]))  # as ComfyUI scales fp8 weights: a marker, a scale each
    scaled = chroma | {"scaled_fp8": torch.zeros(2), "img_in.scale_weight": torch.ones(1)}
    for name, state, message in (
        ("qwen_image_layered", layered.state_dict(), "Qwen-Image-Layered transformer files are not supported yet"),
        ("qwen_image_2.1", qwen21.state_dict(), "Qwen-Image 2.1 transformer files are not supported yet"),
        ("z_image_omni", zimage_to_nextdit(omni.state_dict()), "Z-Image Omni .* is not supported yet"),
        ("chroma_fp8_scaled", scaled, "scaled fp8 files .* are not supported: install the bf16 or plain fp8 file"),
    ):
        file = tmp_path / f"{name}.safetensors"
        save_file({PREFIX + k: v.contiguous() for k, v in state.items()}, str(file))
        with pytest.raises(ModelInstallError, match=message):
            probe_model(file)


def test_a_files_defaults_come_from_its_name_or_its_base(own_engine, files, tmp_path):
    """Z-Image Turbo and base, HiDream-I1 Full, Dev and Fast have the same shapes: a file's name tells them
    (as ComfyUI's files are named), else for HiDream the scheduler of the base it runs with."""
    import shutil

    from invoke_core.families import hidream, zimage

    def defaults(family: str, stem: str):
        file = tmp_path / f"{stem}.safetensors"
        shutil.copy(files[family][""], file)
        record = install_model(own_engine.registry, str(file))
        try:
            return families.get(family).model_defaults(record)
        finally:
            own_engine.registry.remove(record.id)

    assert defaults("z-image", "z_image_turbo_bf16") == zimage.TURBO
    assert defaults("z-image", "z_image_bf16") is None  # the family's: base's 50 steps, CFG 4
    assert defaults("hidream", "hidream_i1_full_fp16") == hidream.FULL
    assert defaults("hidream", "hidream_i1_dev_bf16") == hidream.DEV
    assert defaults("hidream", "hidream_i1_fast_fp8") == hidream.FAST
    assert defaults("hidream", "my_finetune") == hidream.FAST  # demo-hidream's scheduler: Fast's shift of 3


def test_an_fp8_file_runs_on_its_values(own_engine, files, tmp_path):
    """ComfyUI's fp8 files (qwen_image_fp8_e4m3fn): each tensor read into the device's dtype as it loads, the
    same pixels as those values stored wide."""
    state = load_file(str(files["qwen-image"][""]))
    fp8 = {k: v.to(torch.float8_e4m3fn) for k, v in state.items()}
    save_file(fp8, str(tmp_path / "qwen_image_fp8_e4m3fn.safetensors"))
    save_file({k: v.float() for k, v in fp8.items()}, str(tmp_path / "qwen_image_fp8_values.safetensors"))
    runs = []
    for stem in ("qwen_image_fp8_e4m3fn", "qwen_image_fp8_values"):
        record = install_model(own_engine.registry, str(tmp_path / f"{stem}.safetensors"))
        runs.append(image(own_engine, record.id))
        own_engine.registry.remove(record.id)
    assert np.array_equal(*runs)


# the released transformers' configs (Chroma1-HD, HiDream-I1, Qwen-Image, Z-Image Turbo), HiDream's Llama
# width changed from 4096 so that a T5/Llama swap would show
RELEASED = {
    "chroma": ("ChromaTransformer2DModel", "lodestones", {}),
    "hidream": ("HiDreamImageTransformer2DModel", "diffusers", dict(
        patch_size=2, in_channels=16, out_channels=16, num_layers=16, num_single_layers=32, attention_head_dim=128,
        num_attention_heads=20, caption_channels=[4096, 2048], text_emb_dim=2048, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=[64, 32, 32], max_resolution=[128, 128], llama_layers=list(range(48)))),
    "qwen-image": ("QwenImageTransformer2DModel", "diffusers", {}),
    "z-image": ("ZImageTransformer2DModel", "nextdit", dict(axes_lens=[1536, 512, 512])),
}


@pytest.mark.parametrize("family", RELEASED)
def test_the_config_read_from_released_sizes_is_the_released_one(family):
    """Width, depth, heads and channels from the shapes of a released-size file (meta tensors: nothing
    allocated), the rest from the base's config: the model's own config again."""
    import diffusers
    from accelerate import init_empty_weights
    from transformer_export import LAYOUTS

    cls, layout, config = RELEASED[family]
    with init_empty_weights():
        model = getattr(diffusers, cls)(**config)
    shapes = {PREFIX + k: tuple(v.shape) for k, v in LAYOUTS[layout](model.state_dict()).items()}
    base = dict(model.config)
    read = spec(family).config(spec(family).transformer_shapes(shapes), base)
    if base.get("out_channels", 0) is None:  # Chroma's: the input's
        base["out_channels"] = base["in_channels"]

    def plain(values):  # configs hold lists, the models' tuples
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}

    assert plain(read) == plain({k: base[k] for k in read})
