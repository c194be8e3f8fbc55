"""LoRA stacks on the demo model: tiny LoRA files built here (diffusers/peft and kohya layouts), installed
through install_model, run through compile_canvas and Engine.run (CPU, 64x64, 3 steps)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from invoke_core import lora as lora_module
from invoke_core.compile import compile_canvas
from invoke_core.demo_lora import SD1_METADATA, build_lora
from invoke_core.engine import Engine
from invoke_core.errors import InvalidCanvasError, ModelNotFoundError
from invoke_core.metadata import a1111_parameters
from invoke_core.model_install import install_model
from invoke_core.model_probe import ModelInfo, probe_model
from invoke_core.types import Bounds, CanvasDocument, GenerationParams, LoraSpec


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An engine on its own data root (the LoRAs stay out of the shared registry) and the installed LoRAs."""
    root = tmp_path_factory.mktemp("lora-root")
    engine = Engine(root=root, device="cpu")
    demo = Path(engine.registry.get("demo").path)
    files = tmp_path_factory.mktemp("loras")
    peft_a = build_lora(demo, files / "style_a.safetensors", seed=1, fmt="peft")
    peft_b = build_lora(demo, files / "style_b.safetensors", seed=2, fmt="peft")
    kohya_a = build_lora(demo, files / "style_a_kohya.safetensors", seed=1, fmt="kohya")
    # One whose shapes fit no demo layer: loading it fails half-way through a stack.
    broken = load_file(str(peft_a))
    key = next(k for k in sorted(broken) if k.startswith("unet.") and k.endswith("attn2.to_k.lora_A.weight"))
    broken[key] = broken[key][:, :16].contiguous()
    save_file(broken, str(files / "broken.safetensors"), metadata=SD1_METADATA)
    ids = {
        name: install_model(engine.registry, str(path)).id
        for name, path in (
            ("a", peft_a), ("b", peft_b), ("kohya", kohya_a), ("broken", files / "broken.safetensors")
        )
    }
    # An SDXL LoRA record (the file does not matter: the family check comes first).
    sdxl = engine.registry.add(dataclasses.replace(engine.registry.get(ids["a"]), id="xl-lora", family="sdxl", path=str(files / "xl")))
    ids["sdxl"] = sdxl.id
    return engine, ids, {"peft": peft_a, "kohya": kohya_a}


def run(engine, loras=(), **kw):
    return run_on(engine, loras, **kw)


def run_on(engine, loras=(), **kw):
    base = {"prompt": "a lighthouse at dusk", "steps": 3, "seed": 7, "cfg_scale": 5.0, "loras": tuple(loras)}
    base.update(kw)
    document = CanvasDocument(Bounds(0, 0, 64, 64), (), GenerationParams(**base))
    return engine.run(compile_canvas(document))[0]


def base_weights(engine) -> dict[str, torch.Tensor]:
    pipe = engine.cache.get(engine.registry.get("demo"), engine.device).model
    named = [("unet." + n, p) for n, p in pipe.unet.state_dict().items()]
    named += [("text_encoder." + n, p) for n, p in pipe.text_encoder.state_dict().items()]
    return {n: p.detach().clone() for n, p in named}


def test_probe_and_install_say_sd1_lora(setup):
    engine, ids, files = setup
    for path in files.values():
        assert probe_model(path) == ModelInfo("sd-1", "lora", "single-file")
    record = engine.registry.get(ids["a"])
    assert (record.kind, record.family, record.format) == ("lora", "sd-1", "single-file")
    assert len(record.hash) == 64


def test_lora_changes_output_and_base_model_is_restored_bit_for_bit(setup):
    engine, ids, _ = setup
    plain = run(engine)
    before = base_weights(engine)
    with_lora = run(engine, [LoraSpec(ids["a"], 0.8)])
    assert not np.array_equal(with_lora.image, plain.image)
    after = run(engine)
    assert np.array_equal(after.image, plain.image)
    now = base_weights(engine)
    assert now.keys() == before.keys()  # no lora_A/lora_B modules left behind
    assert all(torch.equal(now[k], before[k]) for k in before)
    meta = with_lora.metadata
    record = engine.registry.get(ids["a"])
    assert meta["loras"] == [{"id": record.id, "name": "style_a", "hash": record.hash, "weight": 0.8}]
    assert "loras" not in after.metadata
    text = a1111_parameters(meta)
    assert text.splitlines()[0] == "a lighthouse at dusk <lora:style_a:0.8>"
    assert f'Lora hashes: "style_a: {record.hash[:10]}"' in text


def test_weight_zero_equals_no_lora(setup):
    engine, ids, _ = setup
    assert np.array_equal(run(engine, [LoraSpec(ids["a"], 0.0)]).image, run(engine).image)


def test_two_loras_differ_from_each_alone_and_negative_weights_work(setup):
    engine, ids, _ = setup
    a = run(engine, [LoraSpec(ids["a"], 1.0)]).image
    b = run(engine, [LoraSpec(ids["b"], 0.5)]).image
    both = run(engine, [LoraSpec(ids["a"], 1.0), LoraSpec(ids["b"], 0.5)])
    assert not np.array_equal(both.image, a) and not np.array_equal(both.image, b)
    assert [row["weight"] for row in both.metadata["loras"]] == [1.0, 0.5]
    negative = run(engine, [LoraSpec(ids["a"], -1.0)]).image
    assert not np.array_equal(negative, a)


def test_kohya_file_gives_the_peft_files_image(setup):
    engine, ids, _ = setup
    peft = run(engine, [LoraSpec(ids["a"], 1.0)]).image
    kohya = run(engine, [LoraSpec(ids["kohya"], 1.0)]).image
    assert np.abs(peft.astype(int) - kohya.astype(int)).max() <= 1


def test_second_job_reads_no_file(setup):
    engine, ids, _ = setup
    lora_module.LORA_FILES.clear()
    reads = lora_module.LORA_FILES.reads
    first = run(engine, [LoraSpec(ids["b"], 1.0)])
    assert lora_module.LORA_FILES.reads == reads + 1
    second = run(engine, [LoraSpec(ids["b"], 1.0)])
    assert lora_module.LORA_FILES.reads == reads + 1
    assert np.array_equal(first.image, second.image)


def test_lora_on_the_inpaint_model_and_in_a_batch(setup):
    engine, ids, _ = setup
    plain = run(engine, model="demo-inpaint", batch_size=2)
    lora = run(engine, [LoraSpec(ids["a"], 1.0)], model="demo-inpaint", batch_size=2)
    assert not np.array_equal(plain.image, lora.image)
    assert np.array_equal(run(engine, model="demo-inpaint", batch_size=2).image, plain.image)


@pytest.mark.parametrize(
    "spec, error, match",
    [
        (lambda ids: [LoraSpec(ids["a"], 3.0)], InvalidCanvasError, r"weight must be a number in \[-2, 2\]"),
        (lambda ids: [LoraSpec(ids["a"], float("nan"))], InvalidCanvasError, "weight"),
        (lambda ids: [LoraSpec(ids["a"]), LoraSpec(ids["a"], 0.5)], InvalidCanvasError, "listed twice"),
        (lambda ids: [LoraSpec("", 1.0)], InvalidCanvasError, "choose a LoRA"),
        (lambda ids: [LoraSpec(f"l{i}") for i in range(11)], InvalidCanvasError, "at most 10"),
        (lambda ids: [("a", 1.0)], InvalidCanvasError, "LoraSpec"),
    ],
)
def test_malformed_lora_specs_are_refused_at_compile(setup, spec, error, match):
    _, ids, _ = setup
    with pytest.raises(error, match=match):
        compile_canvas(CanvasDocument(Bounds(0, 0, 64, 64), (), GenerationParams(prompt="p", loras=spec(ids))))


@pytest.mark.parametrize(
    "model_id, error, match",
    [
        ("no-such-lora", ModelNotFoundError, "no-such-lora"),
        ("demo-controlnet", InvalidCanvasError, "not a LoRA"),
        ("sdxl", InvalidCanvasError, "is for sdxl"),
    ],
)
def test_wrong_models_are_refused_and_leave_the_model_plain(setup, model_id, error, match):
    engine, ids, _ = setup
    with pytest.raises(error, match=match):
        run(engine, [LoraSpec(ids.get(model_id, model_id), 1.0)])


def test_a_lora_that_does_not_fit_fails_cleanly_mid_stack(setup):
    engine, ids, _ = setup
    plain = run(engine)
    before = base_weights(engine)
    with pytest.raises(InvalidCanvasError, match="does not fit"):
        run(engine, [LoraSpec(ids["a"], 1.0), LoraSpec(ids["broken"], 1.0)])
    assert np.array_equal(run(engine).image, plain.image)
    now = base_weights(engine)
    assert now.keys() == before.keys() and all(torch.equal(now[k], before[k]) for k in before)


def test_server_checks_and_passes_loras_through(setup):
    from server.jobs import build_document, check_document
    from server.schemas import JobDocumentIn

    engine, ids, _ = setup

    def document(*loras):
        params = {"prompt": "p", "steps": 2, "seed": 1, "loras": [{"model": m, "weight": w} for m, w in loras]}
        return {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": params}

    good = document((ids["a"], 0.5), (ids["kohya"], -1.25))
    check_document(JobDocumentIn.model_validate(good), None, engine.registry)  # no layers: no db lookups
    built = build_document(good, lambda _id: None)
    assert built.params.loras == (LoraSpec(ids["a"], 0.5), LoraSpec(ids["kohya"], -1.25))
    with pytest.raises(InvalidCanvasError, match="is for sdxl"):
        check_document(JobDocumentIn.model_validate(document((ids["sdxl"], 1.0))), None, engine.registry)
    with pytest.raises(InvalidCanvasError, match="listed twice"):
        check_document(JobDocumentIn.model_validate(document((ids["a"], 1.0), (ids["a"], 1.0))), None, engine.registry)


def test_a_stack_stays_loaded_for_the_next_job_with_the_same_loras(setup):
    """The same LoRAs in the next job: nothing is loaded again, only the weights set; the pixels equal a
    freshly loaded stack's, and a job without LoRAs (or with others) still starts from the base model."""
    engine, ids, _ = setup

    def run(engine, loras=(), **kw):  # the demo explicitly: other tests install models that become the default
        return run_on(engine, loras, **{"model": "demo", **kw})

    base_pipe = engine.cache.get(engine.registry.get("demo"), engine.device).model
    plain = run(engine)
    stack = [LoraSpec(ids["a"], 0.8), LoraSpec(ids["b"], -0.5)]
    loads = engine.lora_stacks.loads
    first = run(engine, stack)
    assert engine.lora_stacks.loads == loads + 1 and len(engine.lora_stacks.carrying(base_pipe)) == 2
    again = run(engine, stack)
    reweighted = run(engine, [LoraSpec(ids["a"], 0.3), LoraSpec(ids["b"], 1.2)])
    assert engine.lora_stacks.loads == loads + 1  # the same LoRAs: weights set, nothing loaded
    assert np.array_equal(again.image, first.image) and not np.array_equal(reweighted.image, first.image)
    assert reweighted.metadata["timings"]["lora"] < first.metadata["timings"]["lora"]
    # a fresh load at the new weights gives the same pixels as re-weighting the kept stack
    assert np.array_equal(run(engine).image, plain.image) and engine.lora_stacks.carrying(base_pipe) == []
    fresh = run(engine, [LoraSpec(ids["a"], 0.3), LoraSpec(ids["b"], 1.2)])
    assert np.array_equal(fresh.image, reweighted.image) and engine.lora_stacks.loads == loads + 2
    # another stack replaces it; one LoRA at weight 0 is not part of the stack
    other = run(engine, [LoraSpec(ids["a"], 0.3), LoraSpec(ids["b"], 0.0)])
    assert engine.lora_stacks.carrying(base_pipe) == ["lora0_" + ids["a"].replace("-", "_")]
    assert not np.array_equal(other.image, fresh.image)
    # another model: the demo's stack is unloaded first, leaving its weights exactly the base ones
    run(engine, model="demo-inpaint")
    assert engine.lora_stacks.carrying(base_pipe) == []
    assert not any("lora" in name for name in base_pipe.unet.state_dict())
    assert np.array_equal(run(engine).image, plain.image)


# --- SDXL ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdxl_setup(setup, sdxl_folder, tmp_path_factory):
    """The tiny SDXL installed on the LoRA engine, with an SDXL LoRA in peft and kohya form."""
    engine, _, _ = setup
    files = tmp_path_factory.mktemp("sdxl-loras")
    main = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl for LoRAs")
    peft = build_lora(sdxl_folder, files / "xl_style.safetensors", seed=5, fmt="peft")
    kohya = build_lora(sdxl_folder, files / "xl_style_kohya.safetensors", seed=5, fmt="kohya")
    ids = {"main": main.id, "peft": install_model(engine.registry, str(peft)).id, "kohya": install_model(engine.registry, str(kohya)).id}
    yield engine, ids
    for model_id in ids.values():
        engine.registry.remove(model_id)


def sdxl_weights(engine, model_id) -> dict[str, torch.Tensor]:
    pipe = engine.cache.get(engine.registry.get(model_id), engine.device).model
    named = [("unet." + n, p) for n, p in pipe.unet.state_dict().items()]
    for name in ("text_encoder", "text_encoder_2"):
        named += [(f"{name}." + n, p) for n, p in getattr(pipe, name).state_dict().items()]
    return {n: p.detach().clone() for n, p in named}


def test_sdxl_lora_in_both_formats_and_the_base_model_restored(sdxl_setup):
    engine, ids = sdxl_setup
    assert engine.registry.get(ids["peft"]).family == "sdxl" and engine.registry.get(ids["kohya"]).kind == "lora"
    plain = run(engine, model=ids["main"], steps=2)
    before = sdxl_weights(engine, ids["main"])
    styled = run(engine, [LoraSpec(ids["peft"], 0.8)], model=ids["main"], steps=2)
    assert not np.array_equal(styled.image, plain.image)
    assert styled.metadata["loras"][0]["id"] == ids["peft"]
    assert np.array_equal(run(engine, [LoraSpec(ids["kohya"], 0.8)], model=ids["main"], steps=2).image, styled.image)
    assert np.array_equal(run(engine, [LoraSpec(ids["peft"], 0.0)], model=ids["main"], steps=2).image, plain.image)
    after = sdxl_weights(engine, ids["main"])
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert np.array_equal(run(engine, model=ids["main"], steps=2).image, plain.image)
    with pytest.raises(InvalidCanvasError, match="is for sdxl"):  # an SDXL LoRA on the SD1.5 demo
        run(engine, [LoraSpec(ids["peft"], 1.0)], model="demo")


def test_sdxl_regions_weighted_prompts_and_two_loras_together(sdxl_setup):
    """Everything of issue 6 in one SDXL job: a region with a weighted prompt, a weighted main prompt, a
    LoRA stack; the next plain job is the plain image again."""
    from invoke_core.types import Layer, LayerKind, RegionPrompt

    engine, ids = sdxl_setup
    region = np.zeros((64, 64, 4), np.uint8)
    region[:, :32, 3] = 255
    layer = Layer("reg", LayerKind.REGIONAL_GUIDANCE, 0, 0, region, region=RegionPrompt("a (red)1.4 boat", "", 0.7))
    params = dict(prompt="a harbour, (storm clouds)1.2", model=ids["main"], steps=2, seed=3, cfg_scale=5.0)
    stack = (LoraSpec(ids["peft"], 0.6), LoraSpec(ids["kohya"], -0.3))

    def job(layers=(), loras=(), **kw):
        document = CanvasDocument(Bounds(0, 0, 64, 64), tuple(layers), GenerationParams(**{**params, **kw, "loras": loras}))
        return engine.run(compile_canvas(document))[0]

    plain = job()
    everything = job([layer], stack)
    assert everything.metadata["regions"]["items"][0]["use"] == "region"
    assert [lo["weight"] for lo in everything.metadata["loras"]] == [0.6, -0.3]
    assert not np.array_equal(everything.image, job([layer]).image)  # the LoRAs act on the regional job
    assert not np.array_equal(everything.image, job(loras=stack).image)  # the region acts with the LoRAs
    unweighted_region = Layer("reg", LayerKind.REGIONAL_GUIDANCE, 0, 0, region, region=RegionPrompt("a red boat", "", 0.7))
    assert not np.array_equal(everything.image, job([unweighted_region], stack).image)  # region weights count
    assert np.array_equal(job().image, plain.image)

