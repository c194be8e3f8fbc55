"""A family's transformer alone in one `.safetensors` file, as the weights are distributed (FLUX.1 in Black
Forest Labs' layout, SD 3.x in Stability AI's, Chroma, HiDream-I1, Z-Image and Qwen-Image as their makers
and ComfyUI name them), run with the text encoders, tokenizers, VAE and scheduler of an installed diffusers
model of the family (its "base").

The file says the architecture (depth, width, channels: read from its tensor shapes, never assumed); the
base's transformer config says the rest (rope axes, sample size). A family describes its layout by
subclassing `TransformerFile`; the reading, checking and loading here are the same for every family.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelInstallError

Shapes = dict[str, tuple[int, ...]]
ReadConfig = Callable[[str], "dict[str, Any] | None"]  # a JSON file of the base folder by relative path; None if absent


class TransformerFile:
    """One family's single-file transformer layout. Subclasses fill in the hooks."""

    model_class: str = ""  # the diffusers transformer class
    layout: str = ""  # for messages, e.g. "Black Forest Labs"
    prefixes: tuple[str, ...] = ("model.diffusion_model.",)  # stripped from the file's transformer keys

    # ---- hooks ------------------------------------------------------------------------------------------
    def is_transformer(self, shapes: Shapes) -> bool:
        """Whether these (prefix-stripped) tensors are a transformer of this layout."""
        raise NotImplementedError

    def owns(self, key: str) -> bool:
        """Whether a (prefix-stripped) key is the transformer's (not a bundled text encoder's or VAE's)."""
        raise NotImplementedError

    def kind(self, shapes: Shapes) -> str:
        """The record kind ("main", "inpaint"); ModelInstallError for a variant that is not supported."""
        raise NotImplementedError

    def config(self, shapes: Shapes, base: dict[str, Any]) -> dict[str, Any]:
        """The diffusers transformer config: the architecture from the shapes, the rest from `base` (the base
        model's transformer config)."""
        raise NotImplementedError

    def misfit(self, shapes: Shapes, read_config: ReadConfig) -> list[str]:
        """Why a base folder's text encoders and VAE do not fit the transformer ([] when they do)."""
        raise NotImplementedError

    def convert(self, state: dict[str, Any]) -> dict[str, Any]:
        """The file's transformer tensors in diffusers' layout."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------------------
    def strip(self, key: str) -> str:
        for prefix in self.prefixes:
            if key.startswith(prefix):
                return key[len(prefix):]
        return key

    def transformer_shapes(self, shapes: Shapes) -> Shapes:
        stripped = {self.strip(k): v for k, v in shapes.items()}
        return {k: v for k, v in stripped.items() if self.owns(k)}

    def claims(self, shapes: Shapes) -> str | None:
        """The kind of a single file holding this layout's transformer, or None when it holds none."""
        own = self.transformer_shapes(shapes)
        if not own or not self.is_transformer(own):
            return None
        # ComfyUI's scaled fp8 (each weight times its own scale): refused at install, not at the first job
        if any(self.strip(k) == "scaled_fp8" or k.endswith((".scale_weight", ".weight_scale")) for k in shapes):
            raise ModelInstallError(
                "scaled fp8 files (ComfyUI's `scaled_fp8`, a scale per weight) are not supported: install the bf16 or plain fp8 file"
            )
        return self.kind(own)


def block_count(shapes: Iterable[str], prefix: str) -> int:
    """How many `prefix.N.` blocks the keys hold (N from 0, none missing)."""
    found = {int(k[len(prefix):].split(".", 1)[0]) for k in shapes if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()}
    if found and found != set(range(len(found))):
        raise ModelInstallError(f"the file's {prefix.rstrip('.')} are numbered {sorted(found)[:8]}...: blocks are missing")
    return len(found)


def rope_axes(base: dict[str, Any], key: str, head_dim: int, default: tuple[int, ...]) -> list[int]:
    """The base transformer's rope axes (`key` of its config), which must add up to the file's head width."""
    axes = list(base.get(key) or default)
    if sum(axes) != head_dim:
        raise ModelInstallError(f"the base transformer's rope axes {axes} do not fit the file's {head_dim}-wide attention heads")
    return axes


def mismatches(facts: Iterable[tuple[str, Any, Any]]) -> list[str]:
    """`misfit`'s reasons from (what, the file's value, the base's value) facts that differ."""
    return [f"{what} {want} (the file's transformer takes {got})" for what, got, want in facts if got != want]


def folder_config(folder: Path) -> ReadConfig:
    def read(relative: str) -> dict[str, Any] | None:
        file = Path(folder) / relative
        try:
            return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
        except (OSError, ValueError):
            return None

    return read


def check_base(spec: TransformerFile, shapes: Shapes, folder: Path, label: str, name: str) -> None:
    """ModelInstallError unless the diffusers folder's encoders and VAE fit the file's transformer."""
    wrong = spec.misfit(spec.transformer_shapes(shapes), folder_config(folder))
    if wrong:
        raise ModelInstallError(f"{name} does not fit the {label} model at {folder}: " + "; ".join(wrong))


def choose_base(spec: TransformerFile, shapes: Shapes, candidates: list[tuple[str, Path]], label: str, name: str) -> tuple[str, Path]:
    """The first (id, folder) of `candidates` whose encoders and VAE fit; ModelInstallError naming why none does."""
    own = spec.transformer_shapes(shapes)
    reasons = []
    for model_id, folder in candidates:
        wrong = spec.misfit(own, folder_config(folder))
        if not wrong:
            return model_id, folder
        reasons.append(f"{model_id}: {'; '.join(wrong)}")
    why = f" ({' | '.join(reasons)})" if reasons else ""
    raise ModelInstallError(
        f"{name} is a {label} transformer alone: it runs with the text encoders and VAE of an installed {label}"
        f" diffusers model, and none fits{why}; install one (a diffusers folder) first, or name it with --base"
    )


def load_transformer(spec: TransformerFile, path: Path, base_folder: Path, dtype: Any) -> Any:
    """The file's transformer as a diffusers model in `dtype`, its config from the shapes and the base."""
    import diffusers
    import torch
    from accelerate import init_empty_weights
    from safetensors import safe_open

    from ..gguf_file import is_gguf
    from ..model_probe import read_weight_shapes

    shapes = spec.transformer_shapes(read_weight_shapes(path))
    base = folder_config(base_folder)("transformer/config.json") or {}
    config = spec.config(shapes, base)
    cls = getattr(diffusers, spec.model_class)
    if is_gguf(path):
        return _load_gguf(cls, path, config, dtype)
    state = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (not a dict)
            own = spec.strip(key)
            if own in shapes:
                # fp8 and bf16 files alike load into the device's dtype, one tensor at a time
                state[own] = f.get_tensor(key).to(dtype or torch.float32)
    converted = spec.convert(state)
    with init_empty_weights():
        model = cls.from_config(config)
    try:
        model.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise ModelInstallError(f"{path.name} does not fit a {spec.model_class} of its own shapes: {detail}") from None
    return model.to(dtype).eval() if dtype is not None else model.eval()


def _load_gguf(cls: Any, path: Path, config: dict[str, Any], dtype: Any) -> Any:
    """A GGUF file's transformer through diffusers' GGUF quantiser (its weights stay quantised, each layer's
    dequantised to `dtype` as it runs), its config (from the file's shapes) written where diffusers reads it.
    diffusers maps the keys with its own converter for the family."""
    import tempfile

    import torch
    from diffusers import GGUFQuantizationConfig

    compute = dtype or torch.float32
    with tempfile.TemporaryDirectory(prefix="gguf-config-") as folder:
        (Path(folder) / "transformer").mkdir()
        (Path(folder) / "transformer" / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **config}))
        try:
            model = cls.from_single_file(
                str(path), config=folder, subfolder="transformer", local_files_only=True, torch_dtype=compute,
                quantization_config=GGUFQuantizationConfig(compute_dtype=compute),
            )
        except (ValueError, RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelInstallError(f"{path.name} could not be loaded as a GGUF {cls.__name__}: {first}") from None
    return model.eval()


def load_pipeline(family: Any, path: Path, kind: str, base_folder: Path, dtype: Any) -> Any:
    """The base model's pipeline with the file's transformer in place of its own (which is never read)."""
    import diffusers

    transformer = load_transformer(family.transformer_file, path, base_folder, dtype)
    return diffusers.DiffusionPipeline.from_pretrained(
        base_folder, transformer=transformer, dtype=dtype, local_files_only=True, use_safetensors=True,
        **family.load_extras(kind, base_folder),
    )
