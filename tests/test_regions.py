"""Regional guidance: the region rules on hand-made masks, the masked cross-attention at every resolution,
and regional jobs end to end on the demo SD1.5 and tiny SDXL pipelines (CPU, 64x64, 2-3 steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import rgba

from invoke_core.attention import RegionalAttnProcessor, regional_attention
from invoke_core.prompts import encode_regional_prompts
from invoke_core.compile import compile_canvas
from invoke_core.errors import InvalidCanvasError
from invoke_core.metadata import a1111_parameters
from invoke_core.regions import plan_regions
from invoke_core.types import (
    Bounds,
    CanvasDocument,
    ControlSettings,
    GenerationParams,
    GenerationRequest,
    Layer,
    LayerKind,
    Mode,
    RegionInput,
    RegionPrompt,
)

SIZE = 64


def box(y0, y1, x0, x1, value=1.0, size=SIZE) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[y0:y1, x0:x1] = value
    return m


# --- the rules ------------------------------------------------------------------------------------


def test_higher_regions_subtract_from_lower_ones():
    low, high = RegionInput(box(0, 64, 0, 32), "low", "ln"), RegionInput(box(0, 64, 16, 48), "high")
    plan = plan_regions([low, high], "main", "neg")
    assert (plan.prompt, plan.negative_prompt) == ("main", "neg")
    assert [r.prompt for r in plan.regions] == ["low", "high"]  # bottom to top, as given
    np.testing.assert_array_equal(plan.regions[0].mask, box(0, 64, 0, 16))
    np.testing.assert_array_equal(plan.regions[1].mask, box(0, 64, 16, 48))
    assert [r.coverage for r in plan.regions] == [0.25, 0.5]
    assert [f["use"] for f in plan.fates] == ["region", "region"]
    assert plan.fates[0]["bounds"] == (0, 0, 16, 64) and plan.fates[1]["bounds"] == (16, 0, 32, 64)
    # soft masks: the lower keeps what the higher leaves, clip(low - high, 0, 1)
    soft = plan_regions([RegionInput(box(0, 64, 0, 64, 0.75), "a"), RegionInput(box(0, 32, 0, 64, 0.5), "b")], "m")
    np.testing.assert_allclose(soft.regions[0].mask, np.where(box(0, 32, 0, 64) > 0, 0.25, 0.75))
    assert soft.regions[0].coverage == pytest.approx(0.5)


def test_tiny_regions_are_dropped_and_subtract_nothing():
    tiny = RegionInput(box(0, 4, 0, 4), "tiny")  # 16 / 4096 = 0.4 % of the bbox
    low = RegionInput(box(0, 32, 0, 64), "low")
    empty = RegionInput(np.zeros((SIZE, SIZE), np.float32), "outside the bbox")
    plan = plan_regions([low, tiny, empty], "main")
    assert [r.prompt for r in plan.regions] == ["low"]
    np.testing.assert_array_equal(plan.regions[0].mask, low.mask)  # the dropped tiny one did not cut into it
    assert [f["use"] for f in plan.fates] == ["region", "dropped", "dropped"]
    assert plan.fates[2] == {"use": "dropped", "coverage": 0.0, "bounds": None}
    # a region above cuts a lower one below the threshold: dropped
    plan = plan_regions([RegionInput(box(0, 8, 0, 8), "under"), RegionInput(box(0, 32, 0, 32), "over")], "m")
    assert [r.prompt for r in plan.regions] == ["over"] and plan.fates[0]["use"] == "dropped"


def test_a_region_covering_almost_everything_collapses_into_the_main_prompt():
    under = RegionInput(box(0, 64, 0, 64), "under")
    full = RegionInput(box(0, 64, 0, 63), "a stormy sea", "calm")  # 98.4 %
    top = RegionInput(box(0, 8, 0, 8), "a boat")  # 1.6 %
    plan = plan_regions([under, full, top], "an oil painting", "blurry")
    assert plan.prompt == "a stormy sea, an oil painting" and plan.negative_prompt == "calm, blurry"
    assert [r.prompt for r in plan.regions] == ["under", "a boat"]
    # the collapsed region still subtracts: under keeps only the column it leaves (64 px = 1.6 %)
    np.testing.assert_array_equal(plan.regions[0].mask, box(0, 64, 63, 64))
    assert [f["use"] for f in plan.fates] == ["region", "main", "region"]
    assert plan.fates[1]["coverage"] == pytest.approx((64 * 63 - 8 * 8) / 4096)
    assert plan_regions([RegionInput(box(0, 64, 0, 64), "x")], "", "").prompt == "x"  # no main prompt: just it
    assert plan_regions([RegionInput(box(0, 64, 0, 64), "x")], "{prompt}, by night").prompt == "x, by night"


def test_bad_region_masks_are_clear_errors():
    with pytest.raises(InvalidCanvasError, match="region 2 .* shape"):
        plan_regions([RegionInput(box(0, 8, 0, 8), "a"), RegionInput(np.ones((8, 8), np.float32), "b")], "m")
    with pytest.raises(InvalidCanvasError, match=r"in \[0, 1\]"):
        plan_regions([RegionInput(box(0, 8, 0, 8, 2.0), "a")], "m")
    empty = Layer("reg-empty", LayerKind.REGIONAL_GUIDANCE, 0, 0, np.zeros((8, 8, 4), np.uint8), region=RegionPrompt("x"))
    document = CanvasDocument(Bounds(0, 0, SIZE, SIZE), (empty,), GenerationParams(prompt="p"))
    with pytest.raises(InvalidCanvasError, match="regional guidance layer 'reg-empty' has an empty mask"):
        compile_canvas(document)


# --- attention ------------------------------------------------------------------------------------


def params(**kw) -> GenerationParams:
    base = dict(prompt="a lighthouse at dusk", steps=3, seed=7, cfg_scale=5.0, mask_blur=0, infill="color")
    base.update(kw)
    return GenerationParams(**base)


def region_layer(mask: np.ndarray, prompt="a red boat", negative="fog", layer_id="reg", x=0, y=0, strength=0.8) -> Layer:
    pixels = np.zeros(mask.shape + (4,), np.uint8)
    pixels[..., 3] = np.rint(mask * 255)
    return Layer(layer_id, LayerKind.REGIONAL_GUIDANCE, x, y, pixels, region=RegionPrompt(prompt, negative, strength))


def run1(engine, layers=(), **kw):
    return engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), tuple(layers), params(**kw))))[0]


@pytest.fixture(scope="module")
def sd_pipe(engine):
    record = engine.resolve_model("demo")
    pipe, _ = engine.pipeline_for(engine.cache.get(record, engine.device).model, record, Mode.TXT2IMG)
    return pipe


def block_mean(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return mask.reshape(h, mask.shape[0] // h, w, mask.shape[1] // w).mean(axis=(1, 3))


def test_region_tokens_get_no_attention_outside_the_mask_at_every_resolution(sd_pipe):
    masks = np.stack([box(0, 40, 0, 24), box(8, 64, 40, 64)])  # two regions, odd edges
    embeds, tokens = encode_regional_prompts(sd_pipe, "sd-1", "a harbour", "", [("a boat", "fog"), ("a tower", "")], True)
    assert tokens == [77, 77, 77] and embeds["prompt_embeds"].shape[1] == 231
    assert embeds["negative_prompt_embeds"].shape == embeds["prompt_embeds"].shape
    record: list = []
    processor = RegionalAttnProcessor(masks, tokens, (8, 8), strength=0.8, record=record)
    unet = sd_pipe.unet
    before = dict(unet.attn_processors)
    cross = [k for k in before if k.endswith("attn2.processor")]
    with regional_attention([unet], processor):
        during = unet.attn_processors
        assert all(during[k] is processor for k in cross)
        assert all(during[k] is before[k] for k in before if k not in cross)  # self-attention untouched
        with torch.inference_mode():
            recorded = sd_pipe(**embeds, num_inference_steps=2, guidance_scale=5.0, width=SIZE, height=SIZE,
                               generator=torch.Generator().manual_seed(1), output_type="np").images[0]
    assert all(unet.attn_processors[k] is before[k] for k in before)  # the very same objects back
    assert len(record) == 2 * len(cross)  # every cross-attention layer, every step (CFG in one batch)
    sizes = {entry["size"] for entry in record}
    assert sizes == {(8, 8), (4, 4)}, sizes
    for entry in record:
        probs = entry["probs"]  # (2 CFG branches, heads, Q, 231)
        h, w = entry["size"]
        np.testing.assert_allclose(probs.sum(-1).numpy(), 1, atol=1e-5)
        for i in range(2):
            small = block_mean(masks[i], (h, w)).reshape(-1)  # area resize, computed independently
            region = probs[..., 77 * (i + 1) : 77 * (i + 2)].sum(-1)  # (2, heads, Q)
            assert (region[..., small == 0] == 0).all(), (entry["size"], i)
            assert (region[..., small > 0] > 0).all()
        covered = (block_mean(masks[0], (h, w)) + block_mean(masks[1], (h, w))).reshape(-1)
        main = probs[..., :77].sum(-1)
        assert (main > 0).all()  # the main prompt stays available everywhere...
        if (covered == 1).any() and (covered == 0).any():  # ...and weighs more where no region covers
            assert main[..., covered == 0].mean() > main[..., covered == 1].mean()
    # the explicit test-mode computation and the SDPA path give the same image
    processor.record = None
    with regional_attention([unet], processor), torch.inference_mode():
        fast = sd_pipe(**embeds, num_inference_steps=2, guidance_scale=5.0, width=SIZE, height=SIZE,
                       generator=torch.Generator().manual_seed(1), output_type="np").images[0]
    np.testing.assert_allclose(fast, recorded, atol=1e-4)


def test_regions_masked_out_everywhere_leave_plain_attention(sd_pipe):
    attn = sd_pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    from diffusers.models.attention_processor import AttnProcessor2_0

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 64, attn.to_q.in_features, generator=g)
    text = torch.randn(2, 154, attn.to_k.in_features, generator=g)
    for strength in (0.0, 0.8, 1.0):  # no region covers anything: the main tokens are unbiased
        processor = RegionalAttnProcessor(np.zeros((1, SIZE, SIZE), np.float32), [77, 77], (8, 8), strength)
        with torch.no_grad():
            ours = processor(attn, hidden, text)
            plain = AttnProcessor2_0()(attn, hidden, text[:, :77])
        torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(engine):
    return run1(engine)


def test_region_job_differs_and_plain_jobs_stay_byte_identical(engine, plain):
    unet = engine.pipeline_for(engine.cache.get(engine.resolve_model("demo"), engine.device).model,
                                engine.resolve_model("demo"), Mode.TXT2IMG)[0].unet
    before = dict(unet.attn_processors)
    regional = run1(engine, [region_layer(box(0, 64, 0, 32))])
    again = run1(engine, [region_layer(box(0, 64, 0, 32))])
    assert np.array_equal(regional.image, again.image) and not np.array_equal(regional.image, plain.image)
    assert all(unet.attn_processors[k] is v for k, v in before.items())
    assert np.array_equal(run1(engine).image, plain.image)
    meta = regional.metadata["regions"]
    assert meta["effective_prompt"] == "a lighthouse at dusk"
    assert 'Region 1: "Prompt: a red boat, Negative: fog, Strength: 0.8"' in a1111_parameters(regional.metadata)
    assert meta["items"] == [
        {"layer_id": "reg", "prompt": "a red boat", "negative_prompt": "fog", "strength": 0.8, "use": "region",
         "coverage": 0.5, "bbox": [0, 0, 32, 64]}
    ]


def test_dropped_and_collapsed_regions(engine, plain):
    # painted only outside the bbox: dropped, the job is the plain one
    outside = region_layer(box(0, 64, 0, 64), layer_id="far", x=200, y=0)
    result = run1(engine, [outside])
    assert np.array_equal(result.image, plain.image)
    assert result.metadata["regions"]["items"][0]["use"] == "dropped"
    # covering the whole bbox: the same pixels as the merged prompt without regions
    collapsed = run1(engine, [region_layer(box(0, 64, 0, 64), prompt="a red boat", negative="fog")])
    merged = run1(engine, prompt="a red boat, a lighthouse at dusk", negative_prompt="fog")
    assert np.array_equal(collapsed.image, merged.image)
    assert collapsed.metadata["regions"]["effective_prompt"] == "a red boat, a lighthouse at dusk"
    assert collapsed.metadata["prompt"] == "a lighthouse at dusk"  # what the user typed stays recorded


def test_region_with_img2img_inpaint_outpaint_and_batch(engine):
    init = rgba(SIZE, SIZE, seed=4)
    img = Layer("img", LayerKind.RASTER, 0, 0, init)
    reg = region_layer(box(16, 48, 16, 48))
    assert run1(engine, [img, reg], strength=0.6).metadata["mode"] == "img2img"
    mask_px = np.zeros((SIZE, SIZE, 4), np.uint8)
    mask_px[0:32, :, 3] = 255
    mask = Layer("mask", LayerKind.INPAINT_MASK, 0, 0, mask_px)
    for model in ("demo", "demo-inpaint"):
        result = run1(engine, [img, mask, reg], model=model, strength=1.0)
        assert result.metadata["mode"] == "inpaint"
        assert np.array_equal(result.image[32:], init[32:, :, :3])  # outside the mask: untouched
        assert not np.array_equal(result.image[:32], init[:32, :, :3])
    half = init.copy()
    half[:, 32:, 3] = 0
    out = run1(engine, [Layer("img", LayerKind.RASTER, 0, 0, half), reg], strength=1.0)
    assert out.metadata["mode"] == "outpaint" and np.array_equal(out.image[:, :32], init[:, :32, :3])
    batch = engine.run(compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), (reg,), params(batch_size=2, seed=3))))
    single = run1(engine, [reg], seed=4)
    assert np.array_equal(batch[1].image, single.image)


def test_region_with_controlnet_and_scale(engine):
    ctl = np.zeros((SIZE, SIZE, 4), np.uint8)
    ctl[20:44, 20:44] = 255
    control = Layer("ctl", LayerKind.CONTROL, 0, 0, ctl, control=ControlSettings("demo-controlnet"))
    reg = region_layer(box(0, 32, 0, 64))
    controlled = run1(engine, [control])
    both = run1(engine, [control, reg])
    assert not np.array_equal(both.image, controlled.image)
    assert both.metadata["controls"] and both.metadata["regions"]["items"][0]["use"] == "region"
    assert run1(engine, [control, reg], scale=1.5).image.shape == (SIZE, SIZE, 3)  # 96x96 generation


def test_request_built_by_hand(engine, plain):
    request = compile_canvas(CanvasDocument(Bounds(0, 0, SIZE, SIZE), (), params()))
    regions = (RegionInput(box(0, 64, 32, 64), "a red boat"),)
    result = engine.run(GenerationRequest(request.mode, request.params, request.bbox, request.size, regions=regions))[0]
    assert result.metadata["regions"]["items"][0]["layer_id"] is None
    assert not np.array_equal(result.image, plain.image)


def test_sdxl_region_job(engine, sdxl_folder):
    from invoke_core.model_install import install_model

    main = install_model(engine.registry, str(sdxl_folder), name="tiny sdxl for regions")
    try:
        plain_xl = run1(engine, model=main.id, steps=2)
        regional = run1(engine, [region_layer(box(0, 64, 0, 32))], model=main.id, steps=2)
        no_negative = run1(engine, [region_layer(box(0, 64, 0, 32), negative="")], model=main.id, steps=2)
        assert regional.metadata["model"]["family"] == "sdxl"
        assert not np.array_equal(plain_xl.image, regional.image)
        assert not np.array_equal(no_negative.image, regional.image)
        assert np.array_equal(run1(engine, model=main.id, steps=2).image, plain_xl.image)
    finally:
        engine.registry.remove(main.id)


# --- strength and weighted region prompts -----------------------------------------------------------------


def test_each_region_strength_scales_the_main_prompt_bias_inside_it():
    # region 0 (left quarter) at strength 0, region 1 (right quarter) at strength 1, the middle uncovered
    masks = np.stack([box(0, 64, 0, 16), box(0, 64, 48, 64)])
    processor = RegionalAttnProcessor(masks, [77, 77, 77], (8, 8), [0.0, 1.0])
    bias = processor.bias(64, torch.float32, torch.device("cpu")).reshape(8, 8, 231)
    main = bias[..., 0]
    assert (main[:, :2] == 0).all()  # strength 0: the main prompt keeps full weight inside the region
    assert torch.isneginf(main[:, 6:]).all()  # strength 1 over a fully painted cell: the region's tokens only
    assert (main[:, 2:6] == 0).all()  # no region: unbiased
    assert torch.isneginf(bias[:, 2:, 77]).all() and (bias[:, :2, 77] == 0).all()  # the region's own tokens
    half = RegionalAttnProcessor(masks[:1], [77, 77], (8, 8), [0.5]).bias(64, torch.float32, torch.device("cpu"))
    torch.testing.assert_close(half.reshape(8, 8, 154)[:, :2, 0], torch.full((8, 2), float(np.log(0.5))))
    with pytest.raises(ValueError, match="one strength"):
        RegionalAttnProcessor(masks, [77, 77, 77], (8, 8), [0.5])
    with pytest.raises(ValueError, match="one strength"):
        RegionalAttnProcessor(masks, [77, 77, 77], (8, 8), [0.5, 1.5])


def test_region_strength_reaches_the_image_and_metadata(engine):
    mask = box(0, 64, 0, 32)
    weak = run1(engine, [region_layer(mask, strength=0.1)])
    strong = run1(engine, [region_layer(mask, strength=1.0)])
    default = run1(engine, [region_layer(mask)])
    assert not np.array_equal(weak.image, strong.image) and not np.array_equal(weak.image, default.image)
    assert weak.metadata["regions"]["items"][0]["strength"] == 0.1
    with pytest.raises(InvalidCanvasError, match="'reg': region strength must be a number in"):
        run1(engine, [region_layer(mask, strength=1.5)])
    with pytest.raises(InvalidCanvasError, match="strength must be in"):
        plan_regions([RegionInput(mask, "a", strength=-0.1)], "main")


def test_regional_prompts_are_weighted_and_long_prompts_kept_whole(sd_pipe):
    def encode(*regions, main="a harbour"):
        return encode_regional_prompts(sd_pipe, "sd-1", main, "blurry", list(regions), True)

    plain, tokens = encode(("a boat", ""))
    # unweighted: exactly the pipeline's own encoding of each slot, side by side
    with torch.inference_mode():
        slots = [sd_pipe.encode_prompt(t, "cpu", 1, True, "blurry") for t in ("a harbour", "a boat")]
    torch.testing.assert_close(plain["prompt_embeds"], torch.cat([s[0] for s in slots], 1), rtol=0, atol=0)
    torch.testing.assert_close(plain["negative_prompt_embeds"], torch.cat([s[1] for s in slots], 1), rtol=0, atol=0)
    weighted, _ = encode(("(a boat)1.6", ""))
    assert torch.equal(weighted["prompt_embeds"][:, :77], plain["prompt_embeds"][:, :77])  # the main slot
    assert not torch.equal(weighted["prompt_embeds"][:, 77:], plain["prompt_embeds"][:, 77:])
    long_region = ", ".join(["a small red fishing boat with white sails"] * 12)
    long, long_tokens = encode(("a tower", ""), (long_region, "fog"))
    assert tokens == [77, 77] and long_tokens[:2] == [77, 77]
    assert long_tokens[2] > 77 and long_tokens[2] % 77 == 0  # chunks of 77, not truncated
    assert long["prompt_embeds"].shape[1] == long["negative_prompt_embeds"].shape[1] == sum(long_tokens)
    with pytest.raises(InvalidCanvasError, match="prompt of region 2: unbalanced parentheses"):
        encode(("a tower", ""), ("a boat :)", ""))


def test_weighted_region_prompt_changes_the_job(engine):
    mask = box(0, 64, 0, 32)
    plain = run1(engine, [region_layer(mask, prompt="a red boat")])
    weighted = run1(engine, [region_layer(mask, prompt="a (red)1.5 boat")])
    long = run1(engine, [region_layer(mask, prompt=", ".join(["a red boat with white sails"] * 15))])
    assert not np.array_equal(plain.image, weighted.image) and not np.array_equal(plain.image, long.image)
