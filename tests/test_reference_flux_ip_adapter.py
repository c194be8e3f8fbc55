"""FLUX.1 reference layers through XLabs' FLUX IP-Adapter (invoke_core/families/flux_ip_adapter.py), on diffusers'
real Flux pipelines and FluxIPAdapterAttnProcessor with the tiny random-weight demos (demo-flux,
demo-flux-ip-adapter, demo-image-encoder): weight, step range, per region, beside FLUX Redux, every task, the
file layout diffusers' own loader reads, install by path, and through the server (enqueue, metadata, recall)."""

from __future__ import annotations

import numpy as np
import pytest

from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError, ModelInstallError, ModelNotFoundError, UnsupportedError

from test_reference import API, SIZE, app, doc, picture, reference, region, run_job, upload  # noqa: F401 (app: the server fixture)
from test_reference_flux import check_steers, run, task_cases

IP = "demo-flux-ip-adapter"


def ip(layer_id: str = "ref", seed: int = 1, **settings):
    return reference(layer_id, seed, model=IP, **settings)


@pytest.fixture(scope="module")
def plain(engine):
    return run(engine)


def test_an_ip_adapter_reference_changes_the_image_and_weight_zero_is_no_reference(engine, plain):
    check_steers(engine, plain, ip, IP)
    transformer = engine.cache.get(engine.registry.get("demo-flux"), engine.device).model.transformer
    assert transformer.encoder_hid_proj is None and not any("IPAdapter" in type(p).__name__ for p in transformer.attn_processors.values())


def test_two_references_a_zero_weight_second_and_a_step_range(engine, plain):
    one = run(engine, [ip()])
    two = run(engine, [ip(), ip("ref2", seed=9)])
    assert not np.array_equal(two.image, one.image) and len(two.metadata["references"]) == 2
    assert np.array_equal(run(engine, [ip(), ip("ref2", seed=9, weight=0)]).image, one.image), "a slot at weight 0 adds nothing"
    late = run(engine, [ip(begin=0.5)])
    assert not np.array_equal(late.image, one.image) and not np.array_equal(late.image, plain.image)
    assert late.metadata["references"][0]["begin"] == 0.5
    # a range that holds no step (ControlNet's rule: step 2 of 3 needs (2+1)/3 <= end) is no reference at all
    assert np.array_equal(run(engine, [ip(begin=0.9)]).image, plain.image)


def test_a_redux_and_an_ip_adapter_in_one_job(engine):
    redux = run(engine, [reference()])
    adapter = run(engine, [ip("ref2", seed=9)])
    both = run(engine, [reference(), ip("ref2", seed=9)])
    assert not np.array_equal(both.image, redux.image) and not np.array_equal(both.image, adapter.image)
    assert [r["model"]["id"] for r in both.metadata["references"]] == ["demo-flux-redux", IP]


def test_over_a_region_it_steers_that_region_only(engine):
    """A reference over a region layer's mask (the left half): its IP attention is scaled by the mask per image
    token, so the right half's tokens never see it in the double block (checked on the block's output: its
    feed-forward is per token; the single blocks after it mix all tokens)."""
    import torch

    from invoke_core import families
    from invoke_core.families.flux_ip_adapter import flux_ip_adapter_references

    left = region(columns=(0, 32))
    whole = run(engine, [left])
    masked = run(engine, [left, ip(x=0, y=0)])
    beside = run(engine, [left, ip()])
    assert not np.array_equal(masked.image, whole.image) and not np.array_equal(masked.image, beside.image)

    request = compile_canvas(doc([left, ip(x=0, y=0)], model="demo-flux"))
    (reference_input,) = request.references
    assert reference_input.mask is not None
    record = engine.registry.get("demo-flux")
    pipe = engine.cache.get(record, engine.device).model
    models = families.get("flux").reference_models([reference_input.settings], engine.registry, record, regions=True)
    loaded = [tuple(engine.cache.get(r, engine.device).model for r in records) for records in models]
    side = SIZE // 16  # image tokens per row
    call = dict(
        hidden_states=torch.randn(1, side * side, 64, generator=torch.Generator().manual_seed(1)),
        encoder_hidden_states=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(2)),
        pooled_projections=torch.zeros(1, 32), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
        img_ids=pipe._prepare_latent_image_ids(1, side, side, "cpu", torch.float32), txt_ids=torch.zeros(8, 3), return_dict=False,
    )
    outputs = []
    hook = pipe.transformer.transformer_blocks[0].register_forward_hook(lambda _m, _a, out: outputs.append(out[1].clone()))
    try:
        with torch.inference_mode():
            pipe.transformer(**call)
            with flux_ip_adapter_references(pipe, request, [reference_input], [(models[0][0], loaded[0][0], loaded[0][1])]) as run_:
                run_.inject = True  # as in a pipeline without IP-Adapter inputs: the hook hands the embeddings over
                pipe.transformer(**call)
    finally:
        hook.remove()
    grid = (outputs[1] - outputs[0]).abs().sum(-1).reshape(side, side)
    assert grid[:, 2:].max() == 0, "the right half (outside the region) is untouched"
    assert grid[:, :2].min() > 0, "the left half (the region) is steered"


def test_every_task_and_true_cfg(engine):
    cases = task_cases() | {"schnell": ([], dict(model="demo-flux-schnell", steps=2))}
    for name, (layers, params) in cases.items():
        without = run(engine, layers, **params)
        ours = run(engine, [*layers, ip()], **params)
        assert not np.array_equal(ours.image, without.image), name


def test_the_demo_file_is_what_diffusers_own_loader_reads(engine):
    """diffusers' FluxIPAdapterMixin.load_ip_adapter on the demo's XLabs-layout file puts the same weights on the
    transformer as our load does."""
    import torch
    from diffusers import FluxPipeline
    from diffusers.models.transformers.transformer_flux import FluxIPAdapterAttnProcessor

    from invoke_core.ip_adapter import adapter_file
    from invoke_core.ip_adapter_run import load_adapter

    record = engine.registry.get(IP)
    file = adapter_file(record.path)
    pipe = FluxPipeline.from_pretrained(engine.registry.get("demo-flux").path, local_files_only=True)
    pipe.load_ip_adapter(str(file.parent), weight_name=file.name, image_encoder_pretrained_model_name_or_path=None)
    ours = load_adapter(record.path, torch.float32).diffusers_state_dict()
    (processor,) = [p for p in pipe.transformer.attn_processors.values() if isinstance(p, FluxIPAdapterAttnProcessor)]
    assert torch.equal(processor.to_k_ip[0].weight, ours["ip_adapter"]["0.to_k_ip.weight"])
    assert torch.equal(processor.to_v_ip[0].bias, ours["ip_adapter"]["0.to_v_ip.bias"])
    projection = pipe.transformer.encoder_hid_proj.image_projection_layers[0]
    assert torch.equal(projection.image_embeds.weight, ours["image_proj"]["proj.weight"])


def test_a_transformer_kept_in_fp8_takes_an_ip_adapter_and_stays_in_fp8(engine):
    import torch

    engine.registry.set_options("demo-flux", weights="fp8")
    try:
        plain = run(engine).image
        transformer = engine.cache.get(engine.registry.get("demo-flux"), engine.device).model.transformer
        probe = transformer.transformer_blocks[0].attn.to_q
        seen: list = []
        hook = transformer.register_forward_pre_hook(lambda *_: seen.append(probe.weight.dtype))
        try:
            steered, zero = run(engine, [ip()]).image, run(engine, [ip(weight=0.0)]).image
        finally:
            hook.remove()
        assert seen and set(seen) == {torch.float8_e4m3fn}, seen
        assert np.abs(steered.astype(int) - plain.astype(int)).mean() > 1
        assert np.array_equal(zero, plain) and np.array_equal(run(engine).image, plain)
    finally:
        engine.registry.set_options("demo-flux", weights="native")


def test_refused_and_unknown_say_why(engine):
    with pytest.raises(UnsupportedError, match="cannot run with regional prompts"):
        run(engine, [region(), reference()])  # a Redux beside regions: still refused
    with pytest.raises(InvalidCanvasError, match="is for sd-1"):
        run(engine, [reference(model="demo-ip-adapter")])
    with pytest.raises(InvalidCanvasError, match="is for flux"):
        engine.run(compile_canvas(doc([ip()], model="demo", cfg_scale=7.5)))
    with pytest.raises(ModelNotFoundError, match="unknown FLUX Redux or IP-Adapter model 'nope'"):
        run(engine, [reference(model="nope")])
    with pytest.raises(InvalidCanvasError, match="not a FLUX Redux"):
        run(engine, [reference(model="demo-flux-controlnet")])


def test_an_xlabs_file_installs_by_path_and_a_broken_one_is_refused(engine, tmp_path):
    from safetensors.torch import load_file, save_file

    from invoke_core.families.flux_demo import build_ip_adapter_file
    from invoke_core.model_install import install_model

    file = build_ip_adapter_file(tmp_path / "flux-ip-adapter.safetensors", engine.registry.get("demo-flux").path, seed=5)
    record = install_model(engine.registry, str(file))
    try:
        assert (record.kind, record.family) == ("ip_adapter", "flux")
        assert record.description.startswith("FLUX IP-Adapter")
        # it reads a 40-wide projection: the demo encoder is built in, so no installed encoder fits it yet
        assert "needs a CLIP image encoder" in record.description
    finally:
        engine.registry.remove(record.id)
    tensors = load_file(str(file))
    del tensors["double_blocks.0.processor.ip_adapter_double_stream_v_proj.bias"]
    save_file(tensors, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ModelInstallError, match="without double_blocks.0.processor.ip_adapter_double_stream_v_proj.bias"):
        install_model(engine.registry, str(tmp_path / "broken.safetensors"))


def test_the_api_runs_records_and_recalls_an_ip_adapter_reference_over_a_region(app):
    client = app.test_client()
    ref_id = upload(client, picture(2))
    mask = upload(client, np.pad(np.full((SIZE, SIZE // 2, 4), 255, np.uint8), ((0, 0), (0, SIZE // 2), (0, 0))))
    layer = {"id": "ref", "kind": "reference", "x": 0, "y": 0, "image_id": ref_id,
             "reference": {"model": IP, "weight": 0.8, "begin": 0.0, "end": 0.7}}
    reg = {"id": "reg", "kind": "regional_guidance", "x": 0, "y": 0, "image_id": mask, "region": {"prompt": "a dog"}}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [reg, layer],
                "params": {"prompt": "a cat", "steps": 3, "seed": 3, "model": "demo-flux", "cfg_scale": 3.5}}
    original = run_job(client, document)["image_ids"][0]
    recall = client.get(f"{API}/images/{original}/recall").json
    (ref,) = recall["references"]
    assert ref["model"] == IP and ref["installed"] and (ref["weight"], ref["end"]) == (0.8, 0.7)
    models = {m["id"]: m for m in client.get(f"{API}/models").json}
    assert models["demo-flux"]["reference_kinds"] == ["redux", "ip_adapter"]
    assert models["demo-flux-kontext"]["reference_kinds"] == []
    assert (models[IP]["kind"], models[IP]["family"]) == ("ip_adapter", "flux") and models[IP]["label"].startswith("random weights")
    redux = {**document, "layers": [reg, {**layer, "reference": {"weight": 0.8}}]}  # the default: a Redux
    response = client.post(f"{API}/canvas/jobs", json={"document": redux})
    assert response.status_code == 422 and "cannot run with regional prompts" in response.json["message"], response.json
