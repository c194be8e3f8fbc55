"""The generic flow-matching path (invoke_core/flow_tasks.py) against a family's native pipelines: on the
tiny FLUX.1 demo, image to image and inpaint run on FluxPipeline's own loop, started part way and
blended per step, give the pixels of FluxImg2ImgPipeline and FluxInpaintPipeline (same seed, same
inputs): the same size, and here the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invoke_core import families
from invoke_core.flow_tasks import flow_start, schedule
from invoke_core.model_records import ModelRegistry

W, H = 64, 48


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    from diffusers import FluxPipeline

    record = ModelRegistry(Path(tmp_path_factory.mktemp("flow"))).get("demo-flux")
    pipe = FluxPipeline.from_pretrained(record.path, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inputs(task: str, strength: float) -> dict:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    if task == "img2img":
        return {"image": image, "strength": strength, "width": W, "height": H}
    mask = np.zeros((H, W), np.uint8)
    mask[8:40, 16:48] = 255
    return {"image": image, "mask_image": Image.fromarray(mask), "strength": strength, "width": W, "height": H}


def run_generic(pipe, task: str, strength: float, steps: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    start = flow_start(pipe, families.get("flux"), inputs(task, strength), steps, generator)

    def on_step_end(p, step, timestep, kwargs):
        if start.blend is not None:
            kwargs["latents"] = start.blend(p, kwargs["latents"])
        return kwargs

    out = pipe(prompt="a lighthouse at dusk", num_inference_steps=steps, guidance_scale=3.5, generator=generator,
               output_type="np", callback_on_step_end=on_step_end, **start.call_args)
    return out.images[0]


def run_native(pipe, task: str, strength: float, steps: int, seed: int) -> np.ndarray:
    from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline

    cls = FluxImg2ImgPipeline if task == "img2img" else FluxInpaintPipeline
    native = cls(**pipe.components)
    native.set_progress_bar_config(disable=True)
    out = native(prompt="a lighthouse at dusk", num_inference_steps=steps, guidance_scale=3.5,
                 generator=torch.Generator().manual_seed(seed), output_type="np", **inputs(task, strength))
    return out.images[0]


@pytest.mark.parametrize("strength", [1.0, 0.6])
@pytest.mark.parametrize("task", ["img2img", "inpaint"])
def test_the_generic_path_gives_fluxs_native_pixels(flux, task, strength):
    generic = run_generic(flux, task, strength, steps=4, seed=5)
    native = run_native(flux, task, strength, steps=4, seed=5)
    assert generic.shape == native.shape == (H, W, 3)
    difference = np.abs(generic - native)
    print(f"{task} strength {strength}: max |generic - native| = {difference.max():.3g}, mean {difference.mean():.3g}")
    assert difference.max() == 0, "the same schedule, draws and blend as the native pipeline"
    assert not np.array_equal(run_generic(flux, task, strength, steps=4, seed=6), generic), "the seed matters"


def test_inpaint_on_the_generic_path_ends_on_the_image_outside_the_mask_in_latent_space(flux):
    """Before the VAE decode: the last step's blend leaves the encoded image itself outside the mask."""
    steps = 3
    generator = torch.Generator().manual_seed(2)
    start = flow_start(flux, families.get("flux"), inputs("inpaint", 0.8), steps, generator)
    last = {}

    def on_step_end(p, step, timestep, kwargs):
        kwargs["latents"] = last["latents"] = start.blend(p, kwargs["latents"])
        return kwargs

    flux(prompt="a cat", num_inference_steps=steps, guidance_scale=3.5, generator=generator, output_type="latent",
         callback_on_step_end=on_step_end, **start.call_args)
    # the image's latents as the native pipelines encode them (the job's first draw)
    pixels = flux.image_processor.preprocess(inputs("inpaint", 0.8)["image"], height=H, width=W)
    with torch.inference_mode():
        sample = flux.vae.encode(pixels).latent_dist.sample(torch.Generator().manual_seed(2))
    image = (sample - flux.vae.config.shift_factor) * flux.vae.config.scaling_factor
    packed = families.get("flux").pack_latents(flux, image)
    mask = np.zeros((H // 8, W // 8), bool)
    mask[1:5, 2:6] = True  # the 8x8-pixel latent cells of the mask rows 8:40, columns 16:48
    keep = torch.from_numpy(~mask)[None, None].expand(1, 16, -1, -1).float()
    keep = families.get("flux").pack_latents(flux, keep.contiguous()) > 0
    assert torch.equal(last["latents"][keep], packed[keep])
    assert not torch.equal(last["latents"][~keep], packed[~keep])


def test_the_schedule_is_the_tail_of_the_native_one():
    assert np.allclose(schedule(4, 1.0), [1.0, 0.75, 0.5, 0.25])
    assert np.allclose(schedule(10, 0.3), np.linspace(1.0, 0.1, 10)[7:])
    assert len(schedule(10, 0.01)) == 1, "a tiny strength still runs one step"
