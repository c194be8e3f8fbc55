"""IP-Adapter reference layers in a job (SD 1.x, SDXL): put the adapters on the UNet, encode the pictures, set
each adapter's scale per step, and take everything off afterwards. The models: invoke_core/ip_adapter.py.

- Loading: diffusers' own `UNet2DConditionModel._load_ip_adapter_weights` (what `pipe.load_ip_adapter`
  calls after reading the file; `load_adapter_weights`, which leaves a model kept in fp8 in fp8) with each
  distinct adapter's state dict, kept in the model cache
  (`AdapterWeights`, loaded with safetensors); then one adapter slot per reference layer, slots of the same
  file sharing its modules, so each reference has its own scale, step range and mask.
- The pictures go through the pipeline's own `encode_image` (its `image_encoder` and `feature_extractor`
  set for the call: adapters of one job may read different encoders) once per job, into the pipeline's
  `ip_adapter_image_embeds` (negative first when the job runs CFG, as `prepare_ip_adapter_image_embeds`
  lays them out).
- Weight: the adapter's scale (`set_ip_adapter_scale`); outside [begin, end] of the steps it is 0, by the rule
  of ControlNet's control_guidance_start/end (step i of n runs while begin <= i/n and (i+1)/n <= end), set
  before each UNet forward. At scale 0 diffusers skips the adapter's attention: a reference at weight 0
  gives the pixels of the job without it.
- Per region: a reference over regional-guidance layers gets their mask as its `ip_adapter_masks` entry
  (diffusers' IPAdapterMaskProcessor at the generation size); the regional attention processor
  (invoke_core/attention.py) runs the adapters' attention too when the job has regions.
- Afterwards the UNet's attention processors (the very objects), `encoder_hid_proj` and
  `config.encoder_hid_dim_type` are put back: the cached UNet is the base model again for the next job.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .errors import UnsupportedError
from .ip_adapter import adapter_file, adapter_info


class AdapterWeights(torch.nn.Module):
    """An IP-Adapter file's tensors as buffers (so the model cache counts and moves them), by their names."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        super().__init__()
        self.names = list(tensors)
        for index, name in enumerate(self.names):
            self.register_buffer(f"t{index}", tensors[name], persistent=False)

    def diffusers_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """{"image_proj": {...}, "ip_adapter": {...}}: what `_load_ip_adapter_weights` takes."""
        out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for index, name in enumerate(self.names):
            group, _, key = name.partition(".")
            if group in out:
                out[group][key] = getattr(self, f"t{index}")
        return out


def load_adapter(path: str | Path, dtype: torch.dtype) -> AdapterWeights:
    """An adapter record's file read with safetensors (never a pickle), at `dtype`; an XLabs FLUX file's names
    become diffusers' (families/flux_ip_adapter.py)."""
    from safetensors.torch import load_file

    from .families import flux_ip_adapter

    file = adapter_file(path)
    info = adapter_info(file)  # a FaceID or malformed file is refused before anything is built
    rename = flux_ip_adapter.diffusers_name if info.variant == flux_ip_adapter.VARIANT else str
    return AdapterWeights({rename(k): v.to(dtype) for k, v in load_file(str(file)).items()})


def load_image_encoder(path: str | Path, dtype: torch.dtype) -> Any:
    """An image encoder folder as CLIPVisionModelWithProjection, offline, from safetensors only."""
    from transformers import CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection.from_pretrained(Path(path), dtype=dtype, local_files_only=True, use_safetensors=True).eval()


def feature_extractor(encoder: Any) -> Any:
    """The encoder's picture preprocessing (CLIP's resize, centre crop and normalisation at its image size)."""
    try:
        from transformers import CLIPImageProcessorPil as Processor  # no torchvision needed
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as Processor
    side = int(encoder.config.image_size)
    return Processor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


def active(step: int, total: int, begin: float, end: float) -> bool:
    """Whether step `step` (0-based) of `total` lies in [begin, end] (diffusers' ControlNet rule)."""
    total = max(1, total)
    return not (step / total < begin or (step + 1) / total > end)


class IPAdapterRun:
    """One job's adapters on the UNet: `inputs` adds the pipeline arguments (per batch item), `step_end` is
    told each finished step; the scales are set before each UNet forward."""

    def __init__(self, pipe: Any, settings: list[Any], embeds: list[torch.Tensor], masks: list[torch.Tensor | None], processors: list[Any]):
        self.pipe, self.settings, self.embeds, self.masks, self.processors = pipe, settings, embeds, masks, processors
        self.step = 0

    def inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.step = 0
        out = inputs | {"ip_adapter_image_embeds": list(self.embeds)}
        if any(m is not None for m in self.masks):
            out["cross_attention_kwargs"] = {**(inputs.get("cross_attention_kwargs") or {}), "ip_adapter_masks": list(self.masks)}
        return out

    def step_end(self, step: int) -> None:
        self.step = step

    def scales(self) -> list[float]:
        total = getattr(self.pipe, "_num_timesteps", None) or 1
        return [float(s.weight) if active(self.step, total, s.begin, s.end) else 0.0 for s in self.settings]

    def before_forward(self, _module: Any, _args: Any) -> None:
        scales = self.scales()
        for processor in self.processors:
            processor.scale = list(scales)


def adapter_slots(adapters: Sequence[tuple[Any, AdapterWeights, Any]]) -> tuple[list[dict], list[int]]:
    """(each distinct adapter file's state dict, in first-use order; per reference, the index of its file's):
    diffusers loads each file once, and a reference's slot reuses its file's modules."""
    distinct: dict[str, int] = {}
    state_dicts = []
    for record, weights, _encoder in adapters:
        if record.id not in distinct:
            distinct[record.id] = len(state_dicts)
            state_dicts.append(weights.diffusers_state_dict())
    return state_dicts, [distinct[record.id] for record, _w, _e in adapters]


def _ip_processors(unet: Any) -> list[Any]:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0

    return [p for p in unet.attn_processors.values() if isinstance(p, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0))]


def quantized(model: Any) -> bool:
    """Whether the model's weights are quantised (bitsandbytes, GGUF): diffusers' IP-Adapter layers are not
    built for those. A model kept in fp8 (layerwise casting) takes them (`load_adapter_weights`)."""
    return bool(getattr(model, "is_quantized", False))


def load_adapter_weights(model: Any, state_dicts: list[dict[str, Any]]) -> None:
    """diffusers' `_load_ip_adapter_weights` of a UNet or a FLUX transformer (its own converters of the
    attention processors and image projections), less the UNet's last step, `self.to(self.dtype)`: on a model
    kept in fp8 that would hold every layer at the compute dtype at once (the fp8 saving gone at the peak).
    Only the adapter's new layers move, to the model's device and compute dtype (what `model.dtype` reads
    under layerwise casting)."""
    from diffusers.models.embeddings import MultiIPAdapterImageProjection

    model.encoder_hid_proj = None  # first: a plus adapter's resampler has attention processors of its own
    processors = model._convert_ip_adapter_attn_to_diffusers(state_dicts, low_cpu_mem_usage=False)
    model.set_attn_processor(processors)
    layers = [model._convert_ip_adapter_image_proj_to_diffusers(sd["image_proj"], low_cpu_mem_usage=False) for sd in state_dicts]
    device, dtype = model.device, model.dtype
    model.encoder_hid_proj = MultiIPAdapterImageProjection(layers).to(device=device, dtype=dtype)
    model.config.encoder_hid_dim_type = "ip_image_proj"
    for processor in processors.values():
        if isinstance(processor, torch.nn.Module):
            processor.to(device=device, dtype=dtype)


def _cross_attention_layers(unet: Any) -> int:
    return sum(1 for name in unet.attn_processors if not name.endswith("attn1.processor"))


def _mask(mask: np.ndarray | None, size: tuple[int, int]) -> torch.Tensor | None:
    """A reference's region mask at the generation size, as diffusers' IPAdapterMaskProcessor makes it
    ((1, 1, H, W): one picture for its adapter)."""
    if mask is None:
        return None
    from diffusers.image_processor import IPAdapterMaskProcessor
    from PIL import Image

    from . import masks as mask_ops

    width, height = size
    resized = mask_ops.resize_mask(np.asarray(mask, np.float32), (width, height))
    picture = Image.fromarray(np.clip(np.rint(resized * 255), 0, 255).astype(np.uint8), mode="L")
    processed = IPAdapterMaskProcessor().preprocess([picture], height=height, width=width)
    return processed.reshape(1, processed.shape[0], processed.shape[2], processed.shape[3])


def _encode(pipe: Any, encoder: Any, picture: Any, hidden_states: bool, do_cfg: bool) -> torch.Tensor:
    """One reference's embeddings through the pipeline's `encode_image` (on the encoder's device; the pipeline
    moves them to its own), laid out as `ip_adapter_image_embeds`."""
    device = next(encoder.parameters()).device
    saved = {name: getattr(pipe, name, None) for name in ("image_encoder", "feature_extractor")}
    try:
        pipe.image_encoder, pipe.feature_extractor = encoder, feature_extractor(encoder)
        positive, negative = pipe.encode_image(picture, device, 1, hidden_states)
    finally:
        for name, value in saved.items():
            setattr(pipe, name, value)
    positive, negative = positive[None], negative[None]  # (1 prompt, 1 picture, ...)
    return torch.cat([negative, positive]) if do_cfg else positive


@contextmanager
def ip_adapter_references(
    pipe: Any, request: Any, adapters: Sequence[tuple[Any, AdapterWeights, Any]], do_cfg: bool
) -> Iterator[IPAdapterRun]:
    """While the block runs: the references' adapters on `pipe.unet` (see the module's text). `adapters`: per
    reference of `request`, (adapter record, its loaded weights, its loaded image encoder)."""
    from diffusers.models.embeddings import MultiIPAdapterImageProjection
    from PIL import Image

    unet = pipe.unet
    references = list(request.references)
    if getattr(unet.config, "encoder_hid_dim_type", None) is not None or getattr(unet, "encoder_hid_proj", None) is not None:
        raise UnsupportedError(f"this UNet has its own encoder projection ({unet.config.encoder_hid_dim_type}): IP-Adapters do not fit it")
    if quantized(unet):
        raise UnsupportedError(
            "reference layers (IP-Adapters) need the model's UNet weights unquantised (native or fp8, not nf4 or int8):"
            " set them in the Memory dialog (PATCH /api/v1/models/<id> {\"weights\": \"fp8\"})"
        )
    layers = _cross_attention_layers(unet)
    for reference, (record, _weights, _encoder) in zip(references, adapters):
        info = adapter_info(record.path)
        if info.layers != layers or info.cross_attention_dim != unet.config.cross_attention_dim:
            raise UnsupportedError(
                f"reference layer {reference.layer_id!r}: IP-Adapter {record.id!r} adapts {info.layers} attention layers of a"
                f" {info.cross_attention_dim}-wide text embedding; this model has {layers} of"
                f" {unet.config.cross_attention_dim}: it is for another model"
            )
    state_dicts, slots = adapter_slots(adapters)
    saved_processors = dict(unet.attn_processors)
    hook = None
    try:
        with torch.no_grad():
            load_adapter_weights(unet, state_dicts)
        projection = unet.encoder_hid_proj
        unet.encoder_hid_proj = MultiIPAdapterImageProjection([projection.image_projection_layers[i] for i in slots])
        processors = _ip_processors(unet)
        for processor in processors:  # one slot per reference; the same file's slots share its modules
            processor.to_k_ip = torch.nn.ModuleList([processor.to_k_ip[i] for i in slots])
            processor.to_v_ip = torch.nn.ModuleList([processor.to_v_ip[i] for i in slots])
            processor.num_tokens = [processor.num_tokens[i] for i in slots]
            processor.scale = [1.0] * len(slots)
        pipe.set_ip_adapter_scale([float(r.settings.weight) for r in references])
        embeds = []
        with torch.inference_mode():
            for reference, (record, _weights, encoder) in zip(references, adapters):
                picture = Image.fromarray(np.asarray(reference.image))
                embeds.append(_encode(pipe, encoder, picture, adapter_info(record.path).hidden_states, do_cfg))
        run = IPAdapterRun(pipe, [r.settings for r in references], embeds, [_mask(r.mask, request.size) for r in references], processors)
        hook = unet.register_forward_pre_hook(run.before_forward)
        yield run
    finally:
        if hook is not None:
            hook.remove()
        unet.encoder_hid_proj = None  # first: a plus adapter's resampler has attention processors of its own
        unet.config.encoder_hid_dim_type = None
        unet.set_attn_processor(dict(saved_processors))

