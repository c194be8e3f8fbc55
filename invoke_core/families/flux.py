"""Flux.1 (dev, schnell): an MMDiT of double and single blocks with joint attention over [text, image]
tokens, a CLIP text encoder for the pooled prompt and a T5 for the token embeddings, a 16-channel VAE
whose latents are packed in 2x2 patches (B, tokens, 64), flow matching, distilled guidance.

Text to image, image to image, inpaint and outpaint on diffusers' Flux pipelines; the guidance slider is
the distilled guidance of dev (schnell has none and ignores it); the models are guidance-distilled, so
the negative prompt counts only with true CFG above 1 (a second branch, `true_cfg_scale`); regional prompts through an attention mask that Flux's own processor
passes to SDPA in every block (`joint_attention_kwargs`); Flux ControlNets (FluxControlNetModel, several
at once) on every task; LoRA stacks (diffusers, kohya and XLabs files); FLUX.1 Fill models run every
task through FluxFillPipeline (as SD's inpainting models do through theirs); FLUX.1 Kontext models (kind
edit) run edit jobs through FluxKontextPipeline: the pixels under the box are the reference, the prompt
an instruction, a mask keeps the edit inside it (an empty box: text to image); reference layers through
FLUX Redux (families/flux_redux.py: the picture's image tokens after the prompt's T5 tokens) or XLabs' FLUX
IP-Adapters (families/flux_ip_adapter.py: image attention in the double blocks, per region), and on
Kontext as its own reference picture, beside the one under the box (families/edit_references.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import ip_adapter
from . import flux_demo, flux_file, flux_redux
from .base import Defaults, DemoModel, Family, cached_config, controlnet_config
from .sd3 import rough_rgb, transformer_control_inputs

_T5_MAX = 512  # Flux.1's longest prompt, in T5 tokens
_FILL_CHANNELS = 384  # FLUX.1 Fill: 64 latent + 64 masked-image latent + 256 packed mask channels
_UNSUPPORTED_PIPELINES = {"FluxControlPipeline": "FLUX.1 Canny/Depth control models"}


# What a FLUX.1 Union ControlNet's control modes are (InstantX's and Shakker-Labs' Union models, by index)
UNION_TYPES = ("canny", "tile", "depth", "blur", "pose", "gray", "low_quality")


# FLUX.1 schnell: timestep-distilled to a few steps, no guidance input (its value is ignored)
SCHNELL = Defaults(steps=4, cfg_scale=1.0, scheduler="euler", width=1024, height=1024)


@functools.lru_cache(maxsize=256)
def _without_guidance(path: str, _mtime: int) -> bool:
    from ..model_probe import read_weight_shapes

    try:
        shapes = read_weight_shapes(Path(path))
    except Exception:  # noqa: BLE001 (an unreadable file: no defaults of its own; loading says why)
        return False
    own = flux_file.TRANSFORMER_FILE.transformer_shapes(shapes)
    return bool(own) and "guidance_in.in_layer.weight" not in own


def _file_without_guidance(path: str) -> bool:
    try:
        return _without_guidance(path, Path(path).stat().st_mtime_ns)
    except OSError:
        return False


def _is_kontext(pipe: Any) -> bool:
    return type(pipe).__name__.startswith("FluxKontext")


def default_reference_id(records: list[Any], family: str, kinds: tuple[str, ...]) -> str | None:
    """The model a reference layer without one uses: the first installed one of `kinds` (in that order: a FLUX
    Redux before an IP-Adapter), else the first built-in demo of them."""
    for builtin in (False, True):
        for kind in kinds:
            found = next((r for r in records if r.kind == kind and r.family == family and r.builtin == builtin), None)
            if found is not None:
                return found.id
    return None


@contextlib.contextmanager
def _references(pipe: Any, request: Any, models: list[tuple[Any, ...]]):
    """A job's Redux and IP-Adapter reference layers together (`models`: per layer, its (record, module) pairs)."""
    from .flux_ip_adapter import combined, flux_ip_adapter_references

    pairs = list(zip(request.references, models))
    redux = [(r, m) for r, m in pairs if m[0][0].kind == flux_redux.KIND]
    adapters = [(r, m) for r, m in pairs if m[0][0].kind == ip_adapter.ADAPTER_KIND]
    with contextlib.ExitStack() as stack:
        runs = []
        if redux:
            only = dataclasses.replace(request, references=tuple(r for r, _m in redux))
            runs.append(stack.enter_context(flux_redux.redux_references(pipe, only, [m[0][1] for _r, m in redux])))
        if adapters:
            run = stack.enter_context(flux_ip_adapter_references(
                pipe, request, [r for r, _m in adapters], [(m[0][0], m[0][1], m[1][1]) for _r, m in adapters],
            ))
            if run is not None:
                runs.append(run)
        yield combined(runs)


@dataclass(frozen=True)
class FluxFamily(Family):
    def model_defaults(self, record: Any) -> Defaults | None:
        """schnell's, for a model whose transformer has no guidance embedding (a folder's config says it; a
        transformer file's shapes)."""
        declared = super().model_defaults(record)
        if declared:
            return declared
        # schnell is timestep-distilled: no guidance embedding
        if record.format == "diffusers":
            schnell = cached_config(Path(record.path) / "transformer" / "config.json").get("guidance_embeds") is False
        else:
            schnell = record.kind == "main" and _file_without_guidance(record.path)
        return SCHNELL if schnell else None

    def claims_folder(self, index: dict[str, Any], read_config: Any) -> str | None:
        cls = str(index.get("_class_name", ""))
        if not cls.startswith("Flux"):
            return None
        from ..errors import ModelInstallError

        if cls == "FluxPriorReduxPipeline":
            return flux_redux.claims_folder(read_config)  # a FLUX Redux folder: reference layers
        if cls in _UNSUPPORTED_PIPELINES:
            raise ModelInstallError(
                f"{_UNSUPPORTED_PIPELINES[cls]} are not supported yet: install their Control LoRA"
                " (flux1-canny-dev-lora, flux1-depth-dev-lora) and use it on a control layer"
            )
        transformer = read_config("transformer/config.json") or {}
        if transformer.get("_class_name") != "FluxTransformer2DModel":
            raise ModelInstallError("a Flux pipeline folder without transformer/config.json: the folder is incomplete")
        channels = transformer.get("in_channels", 64)
        if cls == "FluxKontextPipeline":
            return "edit"  # FLUX.1 Kontext: the pixels under the box are the reference, the prompt an instruction
        if cls == "FluxFillPipeline" or channels == _FILL_CHANNELS:
            if channels != _FILL_CHANNELS:
                raise ModelInstallError(f"a FLUX.1 Fill folder whose transformer takes {channels} channels, not {_FILL_CHANNELS}")
            return "inpaint"  # FLUX.1 Fill: runs every task through FluxFillPipeline, as SD's inpainting models
        if channels != 64:
            raise ModelInstallError(
                f"a Flux transformer with {channels} input channels (a control model) is not supported yet:"
                " install FLUX.1 dev, schnell or Fill"
            )
        return "main"

    def claims_controlnet(self, config: dict[str, Any]) -> bool:
        return config.get("_class_name") == "FluxControlNetModel"

    def claims_lora(self, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> bool:
        """diffusers, kohya, XLabs and BFL layouts (diffusers converts them on load); a LoRA of double blocks
        only is told from SD 3's by its width (3072) or its header."""
        from . import transformer_lora as tl

        if not tl.is_lora(shapes):
            return False
        return tl.flux_markers(shapes) or tl.transformer_width(shapes) in tl.FLUX_WIDTHS or "flux" in tl.declared(metadata)

    def lora_kind(self, shapes: dict[str, tuple[int, ...]]) -> str:
        from . import transformer_lora as tl

        channels = tl.input_channels(shapes)
        return "control_lora" if channels is not None and channels > 64 else "lora"

    def uses_cfg(self, pipe: Any, params: Any) -> bool:
        # guidance-distilled: one branch, the guidance goes in as an embedding; true CFG adds a negative one
        return params.true_cfg_scale > 1

    def guidance_args(self, pipe: Any, params: Any) -> dict[str, Any]:
        args = {"guidance_scale": params.cfg_scale}
        if params.true_cfg_scale > 1:
            if "true_cfg_scale" not in inspect.signature(pipe.__call__).parameters:
                from ..errors import UnsupportedError

                raise UnsupportedError(f"{type(pipe).__name__} has no true CFG: set True CFG to 1")
            args["true_cfg_scale"] = params.true_cfg_scale
        return args

    def _max_tokens(self, pipe: Any) -> int:
        return min(_T5_MAX, int(getattr(pipe.tokenizer_2, "model_max_length", _T5_MAX)))

    def encode_prompts(self, pipe: Any, prompt: str, negative_prompt: str | None, do_cfg: bool) -> dict[str, Any]:
        # The pipeline's own encoding (CLIP's pooled embedding and T5's tokens, up to 512), kept between jobs;
        # with true CFG, the negative prompt's too ("" when none: the pipeline runs the second branch only
        # when it has one).
        import torch

        from .. import conditioning_cache
        from ..prompts import _execution_device

        tokens = self._max_tokens(pipe)
        memo = conditioning_cache.shared([pipe.text_encoder, pipe.text_encoder_2], _execution_device(pipe), pipe.transformer.dtype)

        def encode(text: str) -> tuple[Any, Any]:
            def compute() -> tuple[Any, Any]:
                with torch.inference_mode():
                    embeds, pooled, _ids = pipe.encode_prompt(prompt=text, prompt_2=None, max_sequence_length=tokens)
                return embeds, pooled

            return conditioning_cache.get(memo, ("flux", text, tokens), compute)

        embeds, pooled = encode(prompt)
        args = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if do_cfg:
            negative, negative_pooled = encode(negative_prompt or "")
            args |= {"negative_prompt_embeds": negative, "negative_pooled_prompt_embeds": negative_pooled}
        return args

    def regional(self, pipe: Any, request: Any, plan: Any) -> tuple[dict[str, Any], Any]:
        """The T5 tokens of [main | region 1 | ...] side by side, the pooled embedding of the main prompt,
        and the region bias (token order [text, image]) as the attention mask of every block."""
        import torch

        if _is_kontext(pipe):
            from ..errors import UnsupportedError

            # its reference image's tokens join the sequence: a region would need them masked too
            raise UnsupportedError("FLUX.1 Kontext edit jobs have no regional prompts: hide the regional guidance layers")

        from .. import masks
        from .joint_attention import region_bias

        def encode(slots: list[str]) -> tuple[list[Any], Any]:
            embeds, pooled = [], None
            with torch.inference_mode():
                for index, text in enumerate(slots):
                    e, pool, _ids = pipe.encode_prompt(prompt=text, prompt_2=None, max_sequence_length=self._max_tokens(pipe))
                    embeds.append(e)
                    if index == 0:
                        pooled = pool
            return embeds, pooled

        embeds, pooled = encode([plan.prompt] + [r.prompt for r in plan.regions])
        width, height = request.size
        region_masks = np.stack([masks.resize_mask(np.asarray(r.mask), (width, height)) for r in plan.regions])
        patch = pipe.vae_scale_factor * 2  # 8x VAE, 2x2 packing
        bias = region_bias(
            region_masks, [e.shape[1] for e in embeds], (height // patch, width // patch),
            [r.strength for r in plan.regions], text_first=True,
        )
        bias = bias.to(device=embeds[0].device, dtype=pipe.transformer.dtype)[None, None]
        args = {
            "prompt_embeds": torch.cat(embeds, dim=1),
            "pooled_prompt_embeds": pooled,
            "joint_attention_kwargs": {"attention_mask": bias},
        }
        if self.uses_cfg(pipe, request.params):
            # true CFG: the negative branch has the same slots, under the same mask (a region's slot holds
            # its own negative prompt, or the main one)
            main = plan.negative_prompt or ""
            negatives, negative_pooled = encode([main] + [r.negative_prompt or main for r in plan.regions])
            args |= {"negative_prompt_embeds": torch.cat(negatives, dim=1), "negative_pooled_prompt_embeds": negative_pooled}
        return args, bias  # the bias stands for the processor: Flux's own one applies it

    def attention(self, pipe: Any, controlnets: list[Any], processor: Any):
        return contextlib.nullcontext()  # the mask travels in the call's joint_attention_kwargs

    def reference_kinds(self, record: Any) -> tuple[str, ...] | None:
        """Kontext (kind edit) takes the pictures itself, with the one under the box; the others a FLUX Redux
        (the default) or a FLUX IP-Adapter, per layer."""
        return () if record.kind == "edit" else (flux_redux.KIND, ip_adapter.ADAPTER_KIND)

    def reference_models(
        self, settings: list[Any], registry: Any, main: Any, build: bool = True, names: list[str] | None = None,
        regions: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Each reference layer's models by the kind it chose: (FLUX Redux folder,) (families/flux_redux.py) or
        (FLUX IP-Adapter, its image encoder) (families/flux_ip_adapter.py); a layer without one gets the
        default (`default_reference_id`). None for Kontext. A Redux beside regional prompts is refused."""
        kinds = self.reference_kinds(main)
        if kinds == ():
            return super().reference_models(settings, registry, main, build=build, names=names, regions=regions)
        from ..errors import ModelNotFoundError, UnsupportedError

        records = registry.list()
        by_id = {r.id: r for r in records}
        out: list[tuple[Any, ...]] = []
        for where, reference in zip(names or [f"reference {n}" for n in range(1, len(settings) + 1)], settings):
            chosen = dataclasses.replace(reference, model=reference.model or default_reference_id(records, main.family, kinds))
            record = by_id.get(chosen.model) if chosen.model else None
            if chosen.model and record is None:
                installed = [r.id for r in records if r.kind in kinds and r.family == main.family]
                raise ModelNotFoundError(
                    f"{where}: unknown FLUX Redux or IP-Adapter model {chosen.model!r}: installed ones are {', '.join(installed) or 'none'}"
                )
            if record is not None and record.kind == ip_adapter.ADAPTER_KIND:
                out += ip_adapter.resolve_adapters(registry, [chosen], main, self.label, build, [where])
                continue
            if regions:
                raise UnsupportedError(flux_redux.WITH_REGIONS)
            out += flux_redux.resolve(registry, [chosen], main, self.label, build=build, names=[where])
        return out

    def references(self, pipe: Any, request: Any, models: list[tuple[Any, ...]], do_cfg: bool):
        """The reference layers by the kind of model each chose: Redux image tokens after the job's T5 tokens
        (families/flux_redux.py), FLUX IP-Adapter slots on the double blocks (families/flux_ip_adapter.py); for
        Kontext, its own reference picture (`reference_inputs`)."""
        if not request.references or _is_kontext(pipe):
            return super().references(pipe, request, models, do_cfg)
        return _references(pipe, request, models)

    def reference_inputs(self, pipe: Any, request: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Kontext's `image`: the picture under the box and the reference layers' side by side
        (families/edit_references.py); it reads them at their own size."""
        from .edit_references import pictures, side_by_side

        return inputs | {"image": side_by_side(pictures(inputs.get("image"), request.references, request.size, self.size_multiple), self.size_multiple)}

    def control_inputs(self, request: Any, task: str, records: list[Any], inputs: dict[str, Any]) -> dict[str, Any]:
        if any(r.kind == "control_lora" for r in records):
            # the Control LoRA's weight is its adapter weight (invoke_core/lora.py); the image goes in as latents
            (image,) = transformer_control_inputs(self.label, request, images_only=True)
            return inputs | {"control_image": image}
        args = inputs | transformer_control_inputs(self.label, request)
        if any(self.control_types(r) for r in records):
            # Union ControlNets: each control's type as the model's mode index (None for a ControlNet of one kind)
            modes = [
                None if (t := self.control_type(c.settings, r, f"control {n}")) is None else UNION_TYPES.index(t)
                for n, (c, r) in enumerate(zip(request.controls, records), 1)
            ]
            args["control_mode"] = modes[0] if len(modes) == 1 else modes
        return args

    def control_types(self, record: Any) -> tuple[str, ...]:
        """A Union ControlNet's (its config's `num_mode`), in InstantX's numbering."""
        modes = controlnet_config(record).get("num_mode")
        return UNION_TYPES[:modes] if isinstance(modes, int) and modes > 0 else ()

    def control_modes(self, controlnets: list[Any], controls: tuple) -> Any:
        return contextlib.nullcontext()

    def pack_latents(self, pipe: Any, latents: Any) -> Any:
        b, c, h, w = latents.shape
        return pipe._pack_latents(latents, b, c, h, w)  # 2x2 patches: (B, tokens, 4C)

    def flow_mu(self, pipe: Any, size: tuple[int, int], steps: int) -> float | None:
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        width, height = size
        c = pipe.scheduler.config
        return calculate_shift(
            (height // 16) * (width // 16), c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
            c.get("base_shift", 0.5), c.get("max_shift", 1.15),
        )

    def preview(self, latents: Any, size: tuple[int, int]) -> Image.Image:
        """Unpack the (B, tokens, 64) latents of 2x2 patches to (16, h, w), then the 16-channel preview."""
        width, height = size
        h, w = height // 16, width // 16
        first = latents[0].detach().float().cpu().numpy()
        grid = first.reshape(h, w, 16, 2, 2).transpose(2, 0, 3, 1, 4).reshape(16, h * 2, w * 2)
        return rough_rgb(grid)


FAMILY = FluxFamily(
    name="flux",
    label="FLUX.1",
    # dev's defaults (schnell: 4 steps; it ignores the guidance)
    defaults=Defaults(steps=28, cfg_scale=3.5, scheduler="euler", width=1024, height=1024),
    size_multiple=16,  # 8x VAE and 2x2 packed patches
    sampling="flow-sigmas",  # the Flux pipelines pass their own sigmas and resolution shift
    # the negative prompt counts with true CFG above 1 (a second branch; the models are guidance-distilled)
    features=frozenset({"negative_prompt", "true_cfg", "regions", "controlnet", "lora", "inpaint_model", "reference"}),
    reference_model_kind="redux",  # FLUX Redux: the picture's image tokens after the prompt's (families/flux_redux.py)
    pipelines={
        ("txt2img", False): "FluxPipeline",
        ("img2img", False): "FluxImg2ImgPipeline",
        ("inpaint", False): "FluxInpaintPipeline",
        ("txt2img", True): "FluxControlNetPipeline",
        ("img2img", True): "FluxControlNetImg2ImgPipeline",
        ("inpaint", True): "FluxControlNetInpaintPipeline",
    },
    kind_pipelines={("inpaint", False): "FluxFillPipeline", ("edit", False): "FluxKontextPipeline"},
    controlnet_class="FluxControlNetModel",
    # the maps of our preprocessors a Union ControlNet knows; others (a depth map painted or made
    # elsewhere: "none") name their control type
    preprocessor_control_types={"canny": "canny", "tile": "tile", "blur": "blur"},
    control_lora_pipelines={
        "txt2img": "FluxControlPipeline",
        "img2img": "FluxControlImg2ImgPipeline",
        "inpaint": "FluxControlInpaintPipeline",
    },
    guidance_label="Guidance",  # distilled: an input of the model, not CFG's two branches
    transformer_file=flux_file.TRANSFORMER_FILE,
    demos=(
        DemoModel("demo-flux", "Demo FLUX.1 (tiny)", "flux", "main", flux_demo.build_main),
        DemoModel("demo-flux-schnell", "Demo FLUX.1 schnell (tiny)", "flux-schnell", "main", flux_demo.build_schnell, SCHNELL),
        DemoModel("demo-flux-fill", "Demo FLUX.1 Fill (tiny)", "flux-fill", "inpaint", flux_demo.build_fill),
        DemoModel("demo-flux-kontext", "Demo FLUX.1 Kontext (tiny)", "flux-kontext", "edit", flux_demo.build_kontext),
        DemoModel("demo-flux-controlnet", "Demo FLUX.1 ControlNet (tiny)", "flux-controlnet", "controlnet", flux_demo.build_controlnet),
        DemoModel("demo-flux-redux", "Demo FLUX Redux (tiny)", "flux-redux", "redux", flux_demo.build_redux),
        DemoModel("demo-flux-ip-adapter", "Demo FLUX IP-Adapter (tiny)", "flux-ip-adapter", "ip_adapter", flux_demo.build_ip_adapter),
    ),
)
