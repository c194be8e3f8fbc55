"""Cheap progress previews: a fixed linear map from the 4 latent channels to RGB, no VAE decode."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Least-squares fits of latent channels to RGB, as used by several SD front ends; good enough to show
# composition while denoising.
_FACTORS = {
    "sd-1": (
        np.array(
            [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
            dtype=np.float32,
        ),
        np.zeros(3, dtype=np.float32),
    ),
    "sdxl": (
        np.array(
            [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
            dtype=np.float32,
        ),
        np.array([0.1084, -0.0175, -0.0011], dtype=np.float32),
    ),
}


def latents_to_rgb(latents: np.ndarray, family: str) -> np.ndarray:
    """(4, h, w) float latents -> (h, w, 3) uint8."""
    weights, bias = _FACTORS.get(family, _FACTORS["sd-1"])
    rgb = np.einsum("chw,cr->hwr", latents[:4].astype(np.float32), weights) + bias
    return np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)


def preview_image(latents_tensor, family: str) -> Image.Image:
    """A small PIL preview (latent resolution: 1/8 of the generation size) from a torch latent batch."""
    first = latents_tensor[0].detach().float().cpu().numpy()
    return Image.fromarray(latents_to_rgb(first, family))
