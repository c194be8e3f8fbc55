"""Image to image, inpaint and outpaint for a flow-matching family without native pipelines for them
(HiDream-I1): the family's own text-to-image pipeline runs its own loop, started part way and steered
from outside.

- img2img: the loop starts at the strength's sigma (`sigmas`: the tail of the schedule the native
  pipelines use, `linspace(1, 1/N, N)`, which the pipeline shifts as it shifts its own) from the encoded
  image noised to that sigma (`latents`).
- inpaint and outpaint: the same start; after every step the latents outside the mask are replaced by the
  encoded image noised to the step's new sigma (the step callback), so the last step leaves them the
  image itself; the canvas paste-back (invoke_core/masks.py) keeps the pixels, as in every mode.

A flow model's latent at sigma is `sigma * noise + (1 - sigma) * image`. The family says how its pipeline
lays latents out (`Family.pack_latents`: Flux packs 2x2 patches; `start_latents`: as its pipeline takes
them), how its VAE's latents are normalised (`normalise_latents`) and which resolution shift its pipeline
applies (`Family.flow_mu`); the rest is the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Blend = Callable[[Any, Any], Any]  # (pipeline, latents after a step) -> latents


@dataclass(frozen=True)
class FlowStart:
    """The text-to-image pipeline call's arguments for the task, and the per-step blend (inpaint only)."""

    call_args: dict[str, Any]
    blend: Blend | None


def schedule(steps: int, strength: float) -> np.ndarray:
    """The unshifted sigmas the job runs: the last `strength` of the native pipelines' schedule (at least
    one step, as a strength of 0 would leave nothing to run)."""
    full = np.linspace(1.0, 1.0 / steps, steps)
    start = min(int(max(steps - min(steps * strength, steps), 0)), steps - 1)
    return full[start:]


def _shifted_first_sigma(pipe: Any, sigmas: np.ndarray, mu: float | None) -> float:
    """The first sigma the pipeline's scheduler will run, after its shift (a scratch copy of it)."""
    scratch = type(pipe.scheduler).from_config(pipe.scheduler.config)
    kwargs = {"mu": mu} if getattr(scratch.config, "use_dynamic_shifting", False) else {}
    scratch.set_timesteps(sigmas=list(sigmas), device="cpu", **kwargs)
    return float(scratch.sigmas[0])


def _encode(pipe: Any, family: Any, image: Any, width: int, height: int, generator: Any):
    """The image's normalised VAE latents (1, C, h, w), sampled with the job's generator."""
    import torch

    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(image, height=height, width=width).to(device=vae.device, dtype=vae.dtype)
    with torch.inference_mode():
        latents = vae.encode(pixels).latent_dist.sample(generator)
    return family.normalise_latents(pipe, latents)


def _latent_mask(mask_image: Any, latent_size: tuple[int, int]):
    """The mask (255: repaint) at the latent size, 1 where the job repaints: (1, 1, h, w)."""
    import torch
    import torch.nn.functional as F

    mask = torch.from_numpy((np.asarray(mask_image.convert("L")) >= 128).astype(np.float32))[None, None]
    return F.interpolate(mask, size=latent_size)  # nearest, as the native inpaint pipelines


def flow_start(pipe: Any, family: Any, inputs: dict[str, Any], steps: int, generator: Any) -> FlowStart:
    """The call arguments of an img2img or inpaint job (`inputs`: its image, strength, size and mask as
    invoke_core.engine prepares them) on the family's text-to-image pipeline `pipe`."""
    import torch

    width, height = inputs.get("width"), inputs.get("height")
    if width is None or height is None:
        width, height = inputs["image"].size
    sigmas = schedule(steps, float(inputs["strength"]))
    dtype = pipe.transformer.dtype
    device = pipe.transformer.device
    # the draws of the native pipelines, in their order: the image's latent sample, then the noise
    image = _encode(pipe, family, inputs["image"], width, height, generator).to(dtype)
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=generator.device).to(device)
    image = image.to(device)
    sigma = _shifted_first_sigma(pipe, sigmas, family.flow_mu(pipe, (width, height), steps))
    latents = family.start_latents(pipe, sigma * noise + (1.0 - sigma) * image)
    call_args = {"width": width, "height": height, "latents": latents, "sigmas": list(sigmas)}
    if "mask_image" not in inputs:
        return FlowStart(call_args, None)

    keep_image = family.pack_latents(pipe, image)
    keep_noise = family.pack_latents(pipe, noise)
    mask = _latent_mask(inputs["mask_image"], tuple(image.shape[-2:])).to(device=device, dtype=dtype)
    repaint = family.pack_latents(pipe, mask.expand(image.shape[0], image.shape[1], -1, -1).contiguous())
    first = sigma

    def blend(p: Any, after_step: Any) -> Any:
        scheduler = p.scheduler
        if scheduler.step_index == 1 and abs(float(scheduler.sigmas[0]) - first) > 1e-6:
            # our start and the pipeline's schedule disagree: the family's flow_mu is not its pipeline's
            raise RuntimeError(f"{type(p).__name__} started at sigma {float(scheduler.sigmas[0])}, not {first}")
        now = float(scheduler.sigmas[scheduler.step_index])
        kept = now * keep_noise + (1.0 - now) * keep_image
        return repaint * after_step + (1.0 - repaint) * kept.to(after_step.dtype)

    return FlowStart(call_args, blend)
