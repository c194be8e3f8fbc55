"""FLUX.1 reference layers through XLabs' FLUX IP-Adapter (diffusers' FluxIPAdapterMixin and
FluxIPAdapterAttnProcessor), beside FLUX Redux (families/flux_redux.py): a layer runs through the kind of model
it chooses.

- The file (kind `ip_adapter`, family flux): one `.safetensors` in XLabs' layout (XLabs-AI/flux-ip-adapter,
  -v2): `ip_adapter_proj_model.proj.*` and `.norm.*` (a CLIP image embedding into 4 or 16 tokens of T5's
  width) and `double_blocks.<n>.processor.ip_adapter_double_stream_{k,v}_proj.{weight,bias}` (one pair per
  double block). Shapes are read here without torch (the probe imports this); on load the names become
  diffusers' (`image_proj.*`, `ip_adapter.<n>.to_k_ip.*`), as diffusers' own `load_ip_adapter` renames them.
- Its image encoder: a CLIP vision model with projection (openai/clip-vit-large-patch14 for XLabs': 768 wide),
  installed as kind `image_encoder` and chosen as for SD's adapters (invoke_core/ip_adapter.py).
- The job: diffusers' `FluxTransformer2DModel._load_ip_adapter_weights` puts one FluxIPAdapterAttnProcessor on
  each double block, with one slot per reference layer (slots of one file share its modules). The pictures go
  through the encoder once per job. Where the pipeline takes `ip_adapter_image_embeds` (FluxPipeline,
  img2img, inpaint, ControlNet text to image) they go in as the pipeline's own inputs, with a black picture's
  embedding as the negative one for true CFG (diffusers' default); elsewhere (Fill, ControlNet img2img and
  inpaint) a pre-forward hook hands them to the transformer in `joint_attention_kwargs`, as those pipelines
  would. Weight: the slot's scale; outside [begin, end] of the steps 0 (ControlNet's rule), set before each
  transformer forward. Over regional guidance layers a reference steers that region only: its scale is the
  region's mask on the image tokens (the processor's IP attention output is per image token). Regional
  prompts stay the joint attention's mask, untouched by the adapter's separate attention.
- A reference at weight 0 adds no slot: the job's exact pixels without it (the processors are the base
  model's again when no slot is left). Afterwards the transformer's processors (the very objects) and its
  `encoder_hid_proj` are put back.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

VARIANT = "flux"  # AdapterInfo.variant of these files (invoke_core/ip_adapter.py)
_PROJ = "ip_adapter_proj_model."
_DOUBLE = "double_blocks."
_K, _V = "ip_adapter_double_stream_k_proj", "ip_adapter_double_stream_v_proj"
_DIFFUSERS_TOKENS = {65536: 16}  # diffusers reads 4 image tokens, 16 when the projection makes 16 x 4096


def is_flux_ip_adapter(shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether a .safetensors file's keys are an XLabs FLUX IP-Adapter's."""
    return any(k.startswith(_PROJ) for k in shapes) and any(k.startswith(_DOUBLE) and f".processor.{_K}." in k for k in shapes)


def describe(shapes: dict[str, tuple[int, ...]], name: str) -> tuple[int, int, int, int]:
    """(text-token width it writes, encoder projection width it reads, double blocks it adapts, their hidden
    width) of an XLabs FLUX IP-Adapter; ModelInstallError for a malformed one or one diffusers cannot load."""
    from ..errors import ModelInstallError

    proj, norm = shapes.get(f"{_PROJ}proj.weight", ()), shapes.get(f"{_PROJ}norm.weight", ())
    if len(proj) != 2 or len(norm) != 1:
        raise ModelInstallError(f"{name} is a FLUX IP-Adapter without its image projection ({_PROJ}proj.weight, norm.weight)")
    width = int(norm[0])
    tokens = _DIFFUSERS_TOKENS.get(int(proj[0]), 4)
    if proj[0] != tokens * width:
        raise ModelInstallError(
            f"{name}: its image projection makes {proj[0] // max(width, 1)} tokens of {width}; diffusers loads FLUX"
            " IP-Adapters of 4 (or 16 x 4096) image tokens"
        )
    blocks = sorted({int(k.split(".")[1]) for k in shapes if k.startswith(_DOUBLE) and f".processor.{_K}.weight" in k and k.split(".")[1].isdigit()})
    if not blocks or blocks != list(range(len(blocks))):
        raise ModelInstallError(f"{name}: a FLUX IP-Adapter whose double blocks are not numbered 0..n-1")
    for n in blocks:
        for part in (_K, _V):
            for tensor in ("weight", "bias"):
                if f"{_DOUBLE}{n}.processor.{part}.{tensor}" not in shapes:
                    raise ModelInstallError(f"{name}: a FLUX IP-Adapter without {_DOUBLE}{n}.processor.{part}.{tensor}")
    k = shapes[f"{_DOUBLE}0.processor.{_K}.weight"]
    if len(k) != 2 or k[1] != width:
        raise ModelInstallError(f"{name}: a FLUX IP-Adapter whose attention reads {k[1:] or '?'}-wide tokens, its projection makes {width}")
    return width, int(proj[1]), len(blocks), int(k[0])


def diffusers_name(key: str) -> str:
    """An XLabs tensor name -> the one diffusers' loader reads (`image_proj.proj.weight`, `ip_adapter.3.to_k_ip.bias`)."""
    if key.startswith(_PROJ):
        return "image_proj." + key[len(_PROJ):]
    if key.startswith(_DOUBLE):
        block, _, rest = key[len(_DOUBLE):].partition(".")
        rest = rest.removeprefix("processor.").replace(_K, "to_k_ip").replace(_V, "to_v_ip")
        return f"ip_adapter.{block}.{rest}"
    return key


def token_mask(mask: np.ndarray | None, size: tuple[int, int], patch: int) -> np.ndarray | None:
    """A reference's region mask on the image tokens, (1, tokens, 1) in the packed order (row by row of
    `patch`-pixel squares), or None for a reference over the whole box."""
    if mask is None:
        return None
    from .. import masks

    width, height = size
    grid = masks.resize_mask(np.asarray(mask, np.float32), (width // patch, height // patch))
    return grid.reshape(1, -1, 1).astype(np.float32)


class FluxIPAdapterRun:
    """One job's FLUX IP-Adapter slots: `inputs` adds the embeddings (the pipeline's own inputs, or a hook's),
    `step_end` is told each finished step; scales are set before each transformer forward."""

    def __init__(self, pipe: Any, settings: list[Any], embeds: list[Any], negatives: list[Any], masks: list[Any], processors: list[Any]):
        self.pipe, self.settings, self.embeds, self.negatives, self.masks = pipe, settings, embeds, negatives, masks
        self.processors = processors
        self.step = 0
        self.inject = False  # the pipeline takes no IP-Adapter inputs: the hook hands the embeddings over

    def inputs(self, call: dict[str, Any]) -> dict[str, Any]:
        import inspect

        self.step = 0
        taken = inspect.signature(self.pipe.__call__).parameters
        self.inject = "ip_adapter_image_embeds" not in taken
        if self.inject:
            return call
        # the negative too, always: given the positive alone, diffusers would encode a black picture itself
        return call | {"ip_adapter_image_embeds": list(self.embeds), "negative_ip_adapter_image_embeds": list(self.negatives)}

    def step_end(self, step: int) -> None:
        self.step = step

    def scales(self, device: Any, dtype: Any) -> list[Any]:
        from ..ip_adapter_run import active

        total = getattr(self.pipe, "_num_timesteps", None) or 1
        out = []
        for settings, mask in zip(self.settings, self.masks):
            weight = float(settings.weight) if active(self.step, total, settings.begin, settings.end) else 0.0
            out.append(weight if mask is None else mask.to(device=device, dtype=dtype) * weight)
        return out

    def before_forward(self, _module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        scales = self.scales(hidden.device, hidden.dtype)
        for processor in self.processors:
            processor.scale = list(scales)
        if self.inject:
            kwargs = dict(kwargs)
            kwargs["joint_attention_kwargs"] = {**(kwargs.get("joint_attention_kwargs") or {}), "ip_adapter_image_embeds": list(self.embeds)}
        return args, kwargs


class _Combined:
    """Several reference mechanisms of one job (Redux tokens, IP-Adapter slots) as one."""

    def __init__(self, runs: list[Any]):
        self.runs = runs

    def inputs(self, call: dict[str, Any]) -> dict[str, Any]:
        for run in self.runs:
            call = run.inputs(call)
        return call

    def step_end(self, step: int) -> None:
        for run in self.runs:
            run.step_end(step)


def combined(runs: Sequence[Any]) -> _Combined:
    return _Combined(list(runs))


def _encode(encoder: Any, picture: Any) -> Any:
    """A picture's CLIP image embedding as FluxPipeline.encode_image makes it, laid out (1 prompt, 1 picture, D)."""
    import torch

    from ..ip_adapter_run import feature_extractor

    parameter = next(encoder.parameters())
    pixels = feature_extractor(encoder)(picture, return_tensors="pt").pixel_values.to(device=parameter.device, dtype=parameter.dtype)
    with torch.inference_mode():
        return encoder(pixels).image_embeds[None]


@contextmanager
def flux_ip_adapter_references(pipe: Any, request: Any, references: Sequence[Any], adapters: Sequence[tuple[Any, Any, Any]]) -> Iterator[FluxIPAdapterRun | None]:
    """While the block runs: the FLUX IP-Adapters of `references` (reference inputs of `request`) on
    `pipe.transformer` (see the module's text); `adapters`: per reference, (adapter record, its loaded weights
    (ip_adapter_run.AdapterWeights), its loaded image encoder). Yields None when every one is at weight 0."""
    import torch
    from diffusers.models.embeddings import MultiIPAdapterImageProjection
    from diffusers.models.transformers.transformer_flux import FluxIPAdapterAttnProcessor
    from PIL import Image

    from ..errors import UnsupportedError
    from ..ip_adapter import adapter_info
    from ..ip_adapter_run import adapter_slots, load_adapter_weights, quantized

    kept = [(r, a) for r, a in zip(references, adapters) if float(r.settings.weight) != 0]
    if not kept:
        yield None
        return
    transformer = pipe.transformer
    config = transformer.config
    if getattr(transformer, "encoder_hid_proj", None) is not None:
        raise UnsupportedError("this FLUX.1 transformer has an image projection of its own: FLUX IP-Adapters do not fit it")
    if quantized(transformer):  # diffusers' adapter layers are not built for quantised weights
        raise UnsupportedError(
            "FLUX IP-Adapter reference layers need the model's transformer weights unquantised (native or fp8, not nf4,"
            " int8 or a GGUF file): set them in the Memory dialog (PATCH /api/v1/models/<id> {\"weights\": \"fp8\"}),"
            " or use a FLUX Redux"
        )
    hidden = int(config.num_attention_heads) * int(config.attention_head_dim)
    for reference, (record, weights, _encoder) in kept:
        info = adapter_info(record.path)
        k = weights.diffusers_state_dict()["ip_adapter"]["0.to_k_ip.weight"]
        if (info.layers, info.cross_attention_dim, int(k.shape[0])) != (int(config.num_layers), int(config.joint_attention_dim), hidden):
            raise UnsupportedError(
                f"reference layer {reference.layer_id!r}: FLUX IP-Adapter {record.id!r} adapts {info.layers} double blocks of"
                f" width {k.shape[0]} reading {info.cross_attention_dim}-wide tokens; this model has {config.num_layers} of"
                f" {hidden} reading {config.joint_attention_dim}: it is for another model"
            )
    state_dicts, slots = adapter_slots([a for _r, a in kept])
    saved = dict(transformer.attn_processors)
    hook = None
    try:
        with torch.no_grad():
            load_adapter_weights(transformer, state_dicts)
        layers = transformer.encoder_hid_proj.image_projection_layers
        transformer.encoder_hid_proj = MultiIPAdapterImageProjection([layers[i] for i in slots])
        processors = [p for p in transformer.attn_processors.values() if isinstance(p, FluxIPAdapterAttnProcessor)]
        for processor in processors:  # one slot per reference; one file's slots share its modules
            processor.to_k_ip = torch.nn.ModuleList([processor.to_k_ip[i] for i in slots])
            processor.to_v_ip = torch.nn.ModuleList([processor.to_v_ip[i] for i in slots])
            processor.scale = [1.0] * len(slots)
        width, height = request.size
        black = Image.fromarray(np.zeros((height, width, 3), np.uint8))  # diffusers' negative picture
        embeds, negatives, masks = [], [], []
        patch = pipe.vae_scale_factor * 2  # 8x VAE, 2x2 packed patches: one token each
        for reference, (_record, _weights, encoder) in kept:
            embeds.append(_encode(encoder, Image.fromarray(np.asarray(reference.image)).convert("RGB")))
            negatives.append(_encode(encoder, black))
            mask = token_mask(reference.mask, request.size, patch)
            masks.append(None if mask is None else torch.from_numpy(mask))
        run = FluxIPAdapterRun(pipe, [r.settings for r, _a in kept], embeds, negatives, masks, processors)
        hook = transformer.register_forward_pre_hook(run.before_forward, with_kwargs=True)
        yield run
    finally:
        if hook is not None:
            hook.remove()
        transformer.encoder_hid_proj = None
        transformer.config.encoder_hid_dim_type = None
        transformer.set_attn_processor(dict(saved))
