"""FLUX.1 reference layers through FLUX Redux (diffusers' FluxPriorReduxPipeline).

- The model (kind `redux`): a FluxPriorReduxPipeline folder as black-forest-labs/FLUX.1-Redux-dev ships it
  (image_encoder: SigLIP vision tower, feature_extractor: its SiglipImageProcessor, image_embedder:
  ReduxImageEncoder into T5's width), installed by path; `demo-flux-redux` (random weights) for demo-flux.
- The pictures: each reference layer's picture through the Redux pipeline itself, built for the call on the
  Redux folder's modules and the job's own text encoders (shared, never loaded twice). We hand it an empty
  T5 sequence and a zero pooled embedding, so what it returns is the picture's image tokens alone, times
  `prompt_embeds_scale` (the layer's weight); the job's pooled prompt stays as it is.
- The call: the image tokens of every reference (in layer order) after the job's T5 tokens. With true CFG
  the negative prompt's tokens get them too (FluxPipeline needs both branches of one shape, and zero tokens
  would still take attention): the reference conditions both branches, true CFG guides by the prompts.
  A reference at weight 0 adds no tokens: the job's exact pixels without it.
- Refused (UnsupportedError): a partial step range (the tokens are part of the prompt, every step), a reference
  over regional guidance layers, and a reference beside regions (FLUX.1's regional attention mask covers a
  fixed [text slots, image] token layout).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

KIND = "redux"
WITH_REGIONS = (
    "FLUX.1 reference layers (FLUX Redux) cannot run with regional prompts (their attention mask covers a"
    " fixed token layout): hide the regional guidance layers or the reference layers"
)
DEMO_ID = "demo-flux-redux"


def claims_folder(read_config: Any) -> str:
    from ..errors import ModelInstallError

    if (read_config("image_embedder/config.json") or {}).get("_class_name") != "ReduxImageEncoder":
        raise ModelInstallError("a FLUX Redux folder without image_embedder/config.json (ReduxImageEncoder): the folder is incomplete")
    if not read_config("image_encoder/config.json"):
        raise ModelInstallError(
            "a FLUX Redux folder without its image_encoder (the SigLIP vision tower): install the whole"
            " black-forest-labs/FLUX.1-Redux-dev folder"
        )
    return KIND


def default_redux_id(records: Sequence[Any], family: str) -> str | None:
    """The Redux a reference layer without one uses: the first installed one of the family, else the demo's."""
    found = [r for r in records if r.kind == KIND and r.family == family]
    chosen = next((r for r in found if not r.builtin), None) or next(iter(found), None)
    return chosen.id if chosen else None


def resolve(registry: Any, settings: Sequence[Any], main: Any, label: str, build: bool = True, names: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """(Redux record,) of each reference layer, checked against the main model `main` (see the module's text)."""
    from ..errors import InvalidCanvasError, ModelNotFoundError, UnsupportedError

    records = registry.list()
    by_id = {r.id: r for r in records}
    out: list[tuple[Any, ...]] = []
    for where, reference in zip(names or [f"reference {n}" for n in range(1, len(settings) + 1)], settings):
        if reference.begin != 0 or reference.end != 1:
            raise UnsupportedError(
                f"{where}: {label} takes a FLUX Redux reference over every step (its image tokens are part of the"
                " prompt): set begin 0 and end 1"
            )
        model_id = reference.model or default_redux_id(records, main.family)
        if model_id is None:
            raise UnsupportedError(f"{where}: no FLUX Redux model is installed: install one (FLUX.1-Redux-dev) to use reference layers")
        record = by_id.get(model_id)
        if record is None:
            installed = [r.id for r in records if r.kind == KIND and r.family == main.family]
            known = f"installed FLUX Redux models are {', '.join(installed)}" if installed else "no FLUX Redux model is installed"
            raise ModelNotFoundError(f"{where}: unknown FLUX Redux model {model_id!r}: {known}")
        if record.kind != KIND:
            raise InvalidCanvasError(f"{where}: model {record.id!r} is a {record.kind} model, not a FLUX Redux: choose a redux model")
        if record.family != main.family:
            raise InvalidCanvasError(f"{where}: FLUX Redux {record.id!r} is for {record.family}, the model {main.id!r} is {main.family}")
        out.append((registry.get(record.id) if build and record.builtin else record,))
    return out


class ReduxRun:
    """One job's Redux image tokens: `inputs` appends them to the call's `prompt_embeds`."""

    def __init__(self, tokens: list[Any]):
        self.tokens = tokens

    def inputs(self, call: dict[str, Any]) -> dict[str, Any]:
        from ..errors import UnsupportedError

        if not self.tokens:
            return call  # every reference at weight 0: the job without them
        if "prompt_embeds" not in call:
            raise UnsupportedError("FLUX Redux references need the job's prompt as embeddings")
        if (call.get("joint_attention_kwargs") or {}).get("attention_mask") is not None:
            raise UnsupportedError(WITH_REGIONS)
        import torch

        out = dict(call)
        for key in ("prompt_embeds", "negative_prompt_embeds"):  # true CFG's negative branch too (see above)
            if (embeds := call.get(key)) is not None:
                tokens = [t.to(device=embeds.device, dtype=embeds.dtype).expand(embeds.shape[0], -1, -1) for t in self.tokens]
                out[key] = torch.cat([embeds, *tokens], dim=1)
        return out

    def step_end(self, step: int) -> None:
        pass


@contextmanager
def redux_references(pipe: Any, request: Any, reduxes: Sequence[Any]) -> Iterator[ReduxRun]:
    """The references' image tokens (`reduxes`: per reference, its loaded FluxPriorReduxPipeline), through
    diffusers' Redux pipeline on the job's text encoders."""
    import torch
    from diffusers import FluxPriorReduxPipeline
    from PIL import Image

    from ..errors import UnsupportedError

    for reference in request.references:
        if reference.mask is not None:
            raise UnsupportedError(
                f"FLUX.1 reference images (FLUX Redux) steer the whole box: move reference layer {reference.layer_id!r}"
                " off the regional guidance layers"
            )
    config = pipe.transformer.config
    width, pooled_width = int(config.joint_attention_dim), int(config.pooled_projection_dim)
    tokens = []
    for reference, loaded in zip(request.references, reduxes):
        if float(reference.settings.weight) == 0:
            continue  # adds nothing: the job's exact pixels without it
        made_for = int(loaded.image_embedder.config.txt_in_features)
        if made_for != width:
            raise UnsupportedError(
                f"reference layer {reference.layer_id!r}: its FLUX Redux makes {made_for}-wide tokens, this model's"
                f" text tokens are {width} wide: it is for another model"
            )
        redux = FluxPriorReduxPipeline(
            image_encoder=loaded.image_encoder, feature_extractor=loaded.feature_extractor, image_embedder=loaded.image_embedder,
            text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, text_encoder_2=pipe.text_encoder_2, tokenizer_2=pipe.tokenizer_2,
        )
        redux.set_progress_bar_config(disable=True)
        device, dtype = loaded.image_embedder.device, loaded.image_embedder.dtype
        with torch.inference_mode():
            out = redux(
                image=Image.fromarray(np.asarray(reference.image)).convert("RGB"),
                prompt_embeds=torch.zeros((1, 0, width), device=device, dtype=dtype),  # the image tokens alone
                pooled_prompt_embeds=torch.zeros((1, pooled_width), device=device, dtype=dtype),
                prompt_embeds_scale=float(reference.settings.weight),
                pooled_prompt_embeds_scale=0.0,
            )
        tokens.append(out.prompt_embeds)
    yield ReduxRun(tokens)
