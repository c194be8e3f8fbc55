"""Inpainting ControlNets of the transformer families (SD 3.x: alimama-creative's; Qwen-Image: InstantX's):
they condition on the job's own image under the box and its inpaint mask, not on their layer's pixels; they
run alone, and repaint the mask from noise (their pipelines have no strength). The rules and the call
inputs, the same for every family that has them; each family says which ControlNets are such."""

from __future__ import annotations

from typing import Any, Callable


def check(settings: list[Any], records: list[Any], strength: float, is_inpainting: Callable[[Any], bool]) -> None:
    """Refuse an inpainting ControlNet with others, below strength 1, or with a preprocessor."""
    from ..errors import UnsupportedError

    inpainting = [(s, r) for s, r in zip(settings, records) if is_inpainting(r)]
    if not inpainting:
        return
    (chosen, record), *_ = inpainting
    if len(records) > 1:
        raise UnsupportedError(f"inpainting ControlNet {record.id!r} runs alone: hide the other control layers")
    if strength < 1:
        raise UnsupportedError(f"inpainting ControlNet {record.id!r} repaints the masked area from noise: set strength to 1")
    if chosen.preprocessor != "none":
        raise UnsupportedError(
            f"inpainting ControlNet {record.id!r} conditions on the canvas under the box and the inpaint mask,"
            " not on a preprocessed layer: set its preprocessor to none"
        )


def check_task(label: str, task: str, controlnets: list[Any], inpainting: bool, example: str) -> None:
    """An inpainting ControlNet only on inpaint, and inpaint only with one (`example`: one to name)."""
    from ..errors import UnsupportedError

    if inpainting and task != "inpaint":
        raise UnsupportedError(
            f"a {label} inpainting ControlNet repaints a mask: paint an inpaint mask, or choose another ControlNet for {task}"
        )
    if controlnets and task == "inpaint" and not inpainting:
        raise UnsupportedError(
            f"{label} ControlNets steer text to image; inpaint and outpaint take a {label} inpainting"
            f" ControlNet (such as {example}) on the control layer"
        )


def call_inputs(label: str, request: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The pipeline call's inputs: the job's image and mask as the ControlNet's; it starts from noise."""
    from .sd3 import transformer_control_inputs

    (control,) = request.controls  # check: an inpainting ControlNet runs alone
    s = control.settings
    if s.mode.value != "balanced":
        transformer_control_inputs(label, request)  # its error names the modes
    return {
        "width": inputs["width"],
        "height": inputs["height"],
        "control_image": inputs["image"],
        "control_mask": inputs["mask_image"],
        "controlnet_conditioning_scale": float(s.weight),
        "control_guidance_start": float(s.begin),
        "control_guidance_end": float(s.end),
    }
