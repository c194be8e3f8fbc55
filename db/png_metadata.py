"""Generation parameters from PNG text chunks: ours, InvokeAI's and Automatic1111's.

`recall_parameters` turns whatever an image carries into our parameter names:
prompt, negative_prompt, steps, cfg_scale, scheduler, seed, width, height, strength, model_name,
model_hash. Sources, strongest first: our `invoke_canvas` JSON, InvokeAI's `invokeai_metadata`
(and the older `sd-metadata`), Automatic1111's `parameters` text. Nothing here raises on bad input:
a malformed chunk gives what could be read from it, an empty dict at worst.

Every parser here runs in linear time on any text (a PNG chunk is untrusted input): hand-written scanners or
`re` patterns without nested or overlapping quantifiers, and caps on what is parsed. Recalled values outside
the ranges the app accepts (invoke_core.limits) are dropped, and JSON's non-finite numbers read as None.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from itertools import islice
from pathlib import Path
from typing import Any

from invoke_core import limits
from invoke_core.lora import MAX_LORAS
from invoke_core.lora import WEIGHT_RANGE as LORA_WEIGHT_RANGE
from invoke_core.metadata import _A1111_SAMPLERS, A1111_LATENT_MODES, A1111_RESIZES, METADATA_KEY

PARAMETER_KEYS = (
    "prompt",
    "negative_prompt",
    "steps",
    "cfg_scale",
    "true_cfg_scale",
    "scheduler",
    "seed",
    "width",
    "height",
    "strength",
    "model_name",
    "model_hash",
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_TEXT = 1 << 20  # per chunk, after decompression (Pillow's own limit is the same)
_MAX_TEXT_TOTAL = 8 << 20

# ---------------------------------------------------------------------------------------------
# PNG text chunks


def read_png_text(source: bytes | bytearray | memoryview | str | Path) -> dict[str, str]:
    """All tEXt, zTXt and iTXt chunks of a PNG (before or after the image data) as {key: text}.

    Reads chunk headers only; never decodes pixels. Not a PNG, or a damaged one: what was read
    before the damage (an empty dict at worst). The first chunk with a given key wins.
    """
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    except OSError:
        return {}
    out: dict[str, str] = {}
    if not data.startswith(_PNG_SIGNATURE):
        return out
    pos, total = len(_PNG_SIGNATURE), 0
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            break
        pos += 12 + length
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        try:
            item = _text_chunk(ctype, body)
        except Exception:  # noqa: BLE001, S112 - a malformed chunk is skipped, the rest kept
            continue
        if item is None:
            continue
        key, text = item
        total += len(text)
        if total > _MAX_TEXT_TOTAL:
            break
        out.setdefault(key, text)
    return out


def _inflate(data: bytes) -> bytes | None:
    d = zlib.decompressobj()
    raw = d.decompress(data, _MAX_TEXT)
    if d.unconsumed_tail:  # a zlib bomb or just too long: skip
        return None
    return raw


def _text_chunk(ctype: bytes, body: bytes) -> tuple[str, str] | None:
    key, sep, rest = body.partition(b"\0")
    if not sep or not key:
        return None
    name = key.decode("latin-1")
    if ctype == b"tEXt":
        return name, rest.decode("latin-1")
    if ctype == b"zTXt":
        raw = _inflate(rest[1:])  # compression method byte, then the stream
        return None if raw is None else (name, raw.decode("latin-1"))
    # iTXt: flag, method, language\0, translated keyword\0, text (UTF-8)
    compressed = rest[0]
    _lang, _, rest2 = rest[2:].partition(b"\0")
    _tkey, _, text = rest2.partition(b"\0")
    if compressed:
        raw = _inflate(text)
        if raw is None:
            return None
        text = raw
    return name, text.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# value helpers


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        f = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and abs(f) < 2**63 and f == int(f) else None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        f = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _to_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != ""}


def _items(value: Any, limit: int) -> list[Any]:
    """The first `limit` items of a JSON list (anything else: none)."""
    return value[:limit] if isinstance(value, list) else []


_MAX_JSON_DEPTH = 32  # ours nests 5 deep; deeper JSON is refused before it reaches storage or a response


class _TooDeep(Exception):
    pass


def _finite(value: Any, depth: int) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list)):
        if depth >= _MAX_JSON_DEPTH:
            raise _TooDeep
        if isinstance(value, dict):
            return {key: _finite(item, depth + 1) for key, item in value.items()}
        return [_finite(item, depth + 1) for item in value]
    return value


def finite_json(value: Any) -> Any:
    """`value` with NaN and the infinities replaced by None (they are not JSON: a browser cannot read a
    response holding them); None when it nests deeper than _MAX_JSON_DEPTH levels."""
    try:
        return _finite(value, 0)
    except (_TooDeep, RecursionError):
        return None


def loads_json(text: Any) -> Any:
    """JSON text from a PNG chunk, read safely: NaN, Infinity and numbers beyond the float range (which
    Python's json accepts) as None; None for text that is not JSON or nests too deep (json.loads raises
    RecursionError on 100k brackets). Linear time: json.loads is, and so is the walk."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text, parse_constant=lambda _constant: None)
    except (ValueError, RecursionError):
        return None
    return finite_json(value)


# recalled values outside these ranges would be refused by a job: they are dropped
_RANGES = {
    "steps": limits.STEPS,
    "cfg_scale": limits.CFG_SCALE,
    "true_cfg_scale": limits.TRUE_CFG_SCALE,
    "seed": limits.SEED,
    "width": limits.BBOX_SIDE,
    "height": limits.BBOX_SIDE,
    "strength": limits.STRENGTH,
}


def _typed(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw values under our names -> the types we use; values that do not convert, or fall outside the
    ranges a job accepts, are dropped."""
    out = {
        "prompt": _to_str(raw.get("prompt")),
        "negative_prompt": _to_str(raw.get("negative_prompt")),
        "steps": _to_int(raw.get("steps")),
        "cfg_scale": _to_float(raw.get("cfg_scale")),
        "true_cfg_scale": _to_float(raw.get("true_cfg_scale")),
        "scheduler": _to_str(raw.get("scheduler")),
        "seed": _to_int(raw.get("seed")),
        "width": _to_int(raw.get("width")),
        "height": _to_int(raw.get("height")),
        "strength": _to_float(raw.get("strength")),
        "model_name": _to_str(raw.get("model_name")),
        "model_hash": _to_str(raw.get("model_hash")),
    }
    for key, allowed in _RANGES.items():
        if out[key] is not None and not allowed.holds(out[key]):
            out[key] = None
    out = _clean(out)
    # Prompts may legitimately be empty strings; keep them when given.
    for key in ("prompt", "negative_prompt"):
        if key not in out and isinstance(raw.get(key), str):
            out[key] = raw[key]
    return out


# ---------------------------------------------------------------------------------------------
# Automatic1111


# A1111 display name (lower case) -> our scheduler name
_SAMPLER_NAMES = {display.lower(): ours for ours, display in _A1111_SAMPLERS.items()}
_SAMPLER_NAMES.update(
    {
        "k_euler": "euler",
        "k_euler_a": "euler_a",
        "k_euler_ancestral": "euler_a",
        "euler ancestral": "euler_a",
        "k_heun": "heun",
        "k_lms": "lms",
        "lms karras": "lms",
        "plms": "pndm",
        "ddpm": "ddpm",
        "deis": "deis",
        "dpm2 karras": "kdpm_2",
        "dpm2 a karras": "kdpm_2_a",
        "dpm++ 2m sde karras": "dpmpp_2m_sde_karras",
    }
)

# The fields line, `Key: value, Key: "quoted, value", ...`, is read as A1111's own pattern
# `\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)` reads it with findall, but by a scanner: that pattern
# retries its key at every character of a run of key characters and backtracks along the run each time:
# quadratic, holding the GIL (every thread froze): 30,000 "a" took 3 s on a 2-core VM (30 s in the security
# probe), 100,000 took 34 s, a megabyte would take hours.
_KEY_RUN = re.compile(r"[\w \-/]*")  # matched on the reversed line: the key characters before a colon
_WORD_CHAR = re.compile(r"\w")
_SPACES = re.compile(r"\s*")
_BACKSLASHES = re.compile(r"\\*")  # matched on the reversed line: the backslashes before a quote
_FIELDS_MAX = 16 * 1024  # the fields line is read this far (A1111's own holds a few hundred characters)
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")
# the first line starting `Negative prompt:` (any case; only ASCII letters, as str.lower() would match)
_NEGATIVE_LINE = re.compile(
    r"^[^\S\n]*" + "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in "negative prompt:"),
    re.MULTILINE,
)
# `<lora:name:weight>` (optionally `:te weight` after it) as A1111 puts LoRAs in the prompt
_LORA_TAG = re.compile(r"<lora:([^:<>]+):(-?\d+(?:\.\d+)?)(?::[^<>]*)?>")
_MAX_LORA_TAGS = 4 * MAX_LORAS  # tags looked at; a job applies at most MAX_LORAS


def _a1111_loras(prompt: str, hashes: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The prompt without its LoRA tags, and the LoRAs as [{name, weight, hash}] (hash from `Lora hashes`).
    At most MAX_LORAS are taken, from the first _MAX_LORA_TAGS tags; the others stay in the prompt."""
    by_name = {}
    for part in (hashes or "").split(","):
        name, _, value = part.partition(":")
        if name.strip() and value.strip():
            by_name[name.strip()] = value.strip()
    loras, pieces, last = [], [], 0
    low, high = LORA_WEIGHT_RANGE
    for match in islice(_LORA_TAG.finditer(prompt), _MAX_LORA_TAGS):
        weight = _to_float(match.group(2))
        if weight is None or not low <= weight <= high:
            continue  # a weight we cannot apply stays visible in the prompt
        name = match.group(1).strip()
        loras.append({"name": name, "weight": weight, "hash": by_name.get(name)})
        pieces.append(prompt[last : match.start()])
        last = match.end()
        if len(loras) == MAX_LORAS:
            break
    if not loras:
        return prompt, []
    stripped = "".join(pieces) + prompt[last:]
    stripped = re.sub(r"[ \t]{2,}", " ", stripped).strip().strip(",").strip()
    return stripped, loras


def a1111_scheduler(sampler: str, schedule_type: str | None = None) -> str:
    """Sampler names: "Euler a" -> "euler_a", "DPM++ 2M" + "Karras" -> "dpmpp_2m_karras"; unknown names kept as given."""
    name = sampler.strip()
    if schedule_type and schedule_type.strip().lower() not in ("automatic", "", "uniform", "normal"):
        combined = f"{name} {schedule_type.strip()}".lower()
        if combined in _SAMPLER_NAMES:
            return _SAMPLER_NAMES[combined]
    return _SAMPLER_NAMES.get(name.lower(), name)


def _quote_end(line: str, backward: str, start: int) -> int | None:
    """Where the quoted value opening at `start` closes, when its closing quote (the first one not escaped by
    an odd run of backslashes, with something between) is followed by a comma or the end; else None."""
    size = len(line)
    if start >= size or line[start] != '"':
        return None
    end = start
    while True:
        end = line.find('"', end + 1)
        if end < 0:
            return None
        slashes = _BACKSLASHES.match(backward, size - end).end() - (size - end)
        if slashes % 2 == 0:
            break
    if end == start + 1 or (end + 1 < size and line[end + 1] != ","):
        return None
    return end


def _scan_fields(line: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs of a fields line: what A1111's pattern (above) finds with findall, in linear time.

    From each position: the key ends at the next colon and starts at the first word character of the run of
    key characters before it (not before the position); the value is a quoted one when it closes before a
    comma or the end, else everything up to the next comma. Each colon, quote and key character is looked at
    a bounded number of times."""
    line = line[:_FIELDS_MAX]
    size = len(line)
    backward = line[::-1]
    pairs: list[tuple[str, str]] = []
    pos = 0
    while (colon := line.find(":", pos)) >= 0:
        run = _KEY_RUN.match(backward, size - colon).end() - (size - colon)
        word = _WORD_CHAR.search(line, max(pos, colon - run), colon - 1)  # a key is two characters at least
        if word is None:
            pos = colon + 1
            continue
        start = _SPACES.match(line, colon + 1).end()
        end = _quote_end(line, backward, start)
        if end is not None:
            pairs.append((line[word.start() : colon], line[start : end + 1]))
            pos = end + 2  # past the comma
        else:
            comma = line.find(",", start)
            end = size if comma < 0 else comma
            pairs.append((line[word.start() : colon], line[start:end]))
            pos = end + 1
    return pairs


def _a1111_fields(line: str | list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in _scan_fields(line) if isinstance(line, str) else line:
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields.setdefault(key.strip(), str(value))
    return fields


def parse_a1111(parameters: str) -> dict[str, Any]:
    """Automatic1111's `parameters` text -> our parameter names (plus `extra`: the other fields).

    Layout: prompt lines; optionally `Negative prompt: ...` and its continuation lines; then one
    line of `Key: value, ...` (Steps, Sampler, CFG scale, Seed, Size, Model hash, Model,
    Denoising strength, ...). The last line counts as that line only if it holds at least three
    fields, as in A1111; otherwise it is part of the prompt.
    """
    if not isinstance(parameters, str) or not parameters.strip():
        return {}
    try:
        text = parameters.strip("\n")
        body, _, last = text.rpartition("\n")
        pairs = _scan_fields(last)
        fields = _a1111_fields(pairs) if len(pairs) >= 3 else {}
        if len(pairs) < 3:
            body = text  # the last line is part of the prompt
        negative_line = _NEGATIVE_LINE.search(body)
        if negative_line:
            prompt = body[: negative_line.start()]
            first, newline, rest = body[negative_line.end() :].partition("\n")
            negative = first.strip() + newline + rest
        else:
            prompt, negative = body, ""
        raw: dict[str, Any] = {"prompt": prompt.strip(), "negative_prompt": negative.strip()}
        known = {
            "Steps": "steps",
            "CFG scale": "cfg_scale",
            "True CFG scale": "true_cfg_scale",
            "Seed": "seed",
            "Model hash": "model_hash",
            "Model": "model_name",
            "Denoising strength": "strength",
        }
        for key, ours in known.items():
            if key in fields:
                raw[ours] = fields[key]
        if "Sampler" in fields:
            raw["scheduler"] = a1111_scheduler(fields["Sampler"], fields.get("Schedule type"))
        size = _SIZE_RE.match(fields.get("Size", ""))
        if size:
            raw["width"], raw["height"] = size.group(1), size.group(2)
        raw["prompt"], loras = _a1111_loras(raw["prompt"], fields.get("Lora hashes"))
        out = _typed(raw)
        if loras:
            out["loras"] = loras
        hires = _a1111_hires(fields, out)
        if hires is not None:
            out["hires_fix"] = hires
        used = set(known) | {"Sampler", "Size", "Schedule type", *_A1111_HIRES_FIELDS}
        extra = {k: v for k, v in fields.items() if k not in used}
        if extra:
            out["extra"] = extra
        return out
    except Exception:  # noqa: BLE001 - malformed metadata never raises
        return {}


_A1111_HIRES_FIELDS = ("Hires upscale", "Hires resize", "Hires upscaler")


def _a1111_hires(fields: dict[str, str], out: dict[str, Any]) -> dict[str, Any] | None:
    """A1111's hires fix as ours (its Size is the first pass, its Denoising strength the refine's): `out`
    gets the final size and loses the strength. None when there is none, or it is out of our range."""
    scale = _to_float(fields.get("Hires upscale"))
    strength = out.get("strength", 0.7)
    if scale is None or not limits.HIRES_SCALE.holds(scale) or not limits.HIRES_STRENGTH.holds(strength):
        return None
    out.pop("strength", None)
    resized = _SIZE_RE.match(fields.get("Hires resize", ""))
    if resized:
        out["width"], out["height"] = int(resized.group(1)), int(resized.group(2))
    elif "width" in out and "height" in out:
        step = limits.BBOX_MULTIPLE
        out["width"], out["height"] = (max(step, round(out[k] * scale / step) * step) for k in ("width", "height"))
    name = fields.get("Hires upscaler", "").strip()
    plain = name in A1111_RESIZES or name in A1111_LATENT_MODES or not name
    return {"scale": scale, "strength": strength, "upscaler": None if plain else {"name": name}}  # as our metadata records one


# ---------------------------------------------------------------------------------------------
# InvokeAI

_INVOKEAI_SCHEDULERS = {
    "k_euler": "euler",
    "k_euler_a": "euler_a",
    "k_heun": "heun",
    "k_lms": "lms",
    "k_dpm_2": "kdpm_2",
    "k_dpm_2_a": "kdpm_2_a",
    "k_dpmpp_2": "dpmpp_2m",
    "plms": "pndm",
}


def invokeai_scheduler(name: str) -> str:
    """InvokeAI's names are ours, except the `_k` suffix for Karras sigmas ("dpmpp_2m_k")."""
    name = name.strip()
    if name in _INVOKEAI_SCHEDULERS:
        return _INVOKEAI_SCHEDULERS[name]
    if name.endswith("_k"):
        return name[:-2] + "_karras"
    return name


def _first(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if d.get(key) not in (None, ""):
            return d[key]
    return None


def _loads_dict(json_text: Any) -> dict[str, Any]:
    value = json_text if isinstance(json_text, dict) else loads_json(json_text)
    return value if isinstance(value, dict) else {}


def parse_invokeai(json_text: str) -> dict[str, Any]:
    """InvokeAI's `invokeai_metadata` JSON (v3 to v5) -> our parameter names."""
    try:
        meta = _loads_dict(json_text)
        if not meta:
            return {}
        model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
        raw: dict[str, Any] = {
            "prompt": _first(meta, "positive_prompt", "prompt"),
            "negative_prompt": _first(meta, "negative_prompt"),
            "steps": meta.get("steps"),
            "cfg_scale": meta.get("cfg_scale"),
            "seed": meta.get("seed"),
            "width": meta.get("width"),
            "height": meta.get("height"),
            "strength": _first(meta, "strength", "denoising_strength", "denoise_strength", "img2img_strength"),
            "model_name": _first(model, "name", "model_name") if model else _to_str(meta.get("model")),
            "model_hash": _first(model, "hash", "key") if model else None,
        }
        if isinstance(meta.get("scheduler"), str):
            raw["scheduler"] = invokeai_scheduler(meta["scheduler"])
        if isinstance(raw["prompt"], list):  # prompts given as [{"prompt": ..., "weight": ...}]
            raw["prompt"] = " ".join(str(p.get("prompt", "")) for p in raw["prompt"] if isinstance(p, dict))
        out = _typed(raw)
        loras = []  # v3-v5: [{"model": {"key" | "model_name", "name", "hash"}, "weight"}] (other installs: by name)
        low, high = LORA_WEIGHT_RANGE
        for lora in _items(meta.get("loras"), MAX_LORAS):
            lora_model = lora.get("model") or lora.get("lora") if isinstance(lora, dict) else None
            weight = _to_float(lora.get("weight")) if isinstance(lora, dict) else None
            if isinstance(lora_model, dict) and weight is not None and low <= weight <= high:
                name = _to_str(_first(lora_model, "name", "model_name"))
                if name:
                    loras.append({"name": name, "weight": weight, "hash": _to_str(lora_model.get("hash"))})
        if loras:
            out["loras"] = loras
        return out
    except Exception:  # noqa: BLE001 - malformed metadata never raises
        return {}


def parse_sd_metadata(json_text: str) -> dict[str, Any]:
    """InvokeAI 2.x's `sd-metadata` chunk: {"model_weights": ..., "image": {prompt, sampler, ...}}."""
    try:
        meta = _loads_dict(json_text)
        image = meta.get("image") if isinstance(meta.get("image"), dict) else {}
        if not image:
            return {}
        prompt = image.get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
        raw = {
            "prompt": prompt,
            "steps": image.get("steps"),
            "cfg_scale": image.get("cfg_scale"),
            "seed": image.get("seed"),
            "width": image.get("width"),
            "height": image.get("height"),
            "strength": image.get("strength"),
            "model_name": meta.get("model_weights"),
            "model_hash": meta.get("model_hash"),
        }
        if isinstance(image.get("sampler"), str):
            raw["scheduler"] = invokeai_scheduler(image["sampler"])
        return _typed(raw)
    except Exception:  # noqa: BLE001 - malformed metadata never raises
        return {}


# ---------------------------------------------------------------------------------------------
# ours


def normalise(meta: Any) -> dict[str, Any]:
    """Our metadata (as `invoke_core` writes it: `model` is {name, hash, ...}) or an already flat
    parameter dict -> our parameter names."""
    try:
        meta = _loads_dict(meta)
        if not meta:
            return {}
        model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
        raw = dict(meta)
        raw["model_name"] = _first(meta, "model_name") or model.get("name")
        raw["model_hash"] = _first(meta, "model_hash") or model.get("hash")
        return _typed(raw)
    except Exception:  # noqa: BLE001 - malformed metadata never raises
        return {}


_INFILLS = ("patchmatch", "telea", "navier_stokes", "tile", "color")
_CONTROL_MODES = ("balanced", "prompt", "control")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _layer_ref(item: dict[str, Any]) -> dict[str, Any]:
    layer = item.get("layer") if isinstance(item.get("layer"), dict) else {}
    color = _to_str(layer.get("color"))
    return {
        "layer_id": _to_str(item.get("layer_id")),
        "name": _to_str(layer.get("name")),
        "color": color if color and _COLOR_RE.match(color) else None,
        "image_id": _to_str(layer.get("image_id")),
        "x": _to_int(layer.get("x")) or 0,
        "y": _to_int(layer.get("y")) or 0,
    }


def _in_range(value: Any, low: float, high: float, default: float) -> float:
    number = _to_float(value)
    return number if number is not None and low <= number <= high else default


def recall_extras(meta: Any) -> dict[str, Any]:
    """What our own metadata holds beyond the flat parameters, for recall: model_id, mask_blur, infill, scale,
    bbox, and the lists loras [{model, name, hash, weight}], regions [{layer_id, name, color, prompt,
    negative_prompt, strength, image_id, x, y}] and controls [{layer_id, name, model, model_name, preprocessor,
    weight, begin, end, mode, image_id, x, y}] and references [{layer_id, name, image_id, x, y, weight, begin, end,
    and for an IP-Adapter's model, model_name, model_hash}]. Keys without
    a value are left out; never raises."""
    try:
        meta = _loads_dict(meta)
        out: dict[str, Any] = {}
        model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
        out["model_id"] = _to_str(model.get("id"))
        blur = _to_int(meta.get("mask_blur"))
        out["mask_blur"] = blur if blur is not None and limits.MASK_BLUR.holds(blur) else None
        out["infill"] = meta.get("infill") if meta.get("infill") in _INFILLS else None
        scale = _to_float(meta.get("scale"))
        out["scale"] = scale if scale is not None and limits.SCALE.holds(scale) else None
        bbox = meta.get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4 and all(_to_int(v) is not None for v in bbox):
            out["bbox"] = [_to_int(v) for v in bbox]
        loras = []
        for lora in _items(meta.get("loras"), MAX_LORAS):
            if isinstance(lora, dict) and _to_str(lora.get("id") or lora.get("name")):
                loras.append(
                    {
                        "model": _to_str(lora.get("id")),
                        "name": _to_str(lora.get("name")) or _to_str(lora.get("id")),
                        "hash": _to_str(lora.get("hash")),
                        "weight": _in_range(lora.get("weight"), *LORA_WEIGHT_RANGE, 1.0),
                    }
                )
        out["loras"] = loras
        regions = meta.get("regions") if isinstance(meta.get("regions"), dict) else {}
        out["regions"] = [
            {
                **_layer_ref(item),
                "prompt": _to_str(item.get("prompt")) or "",
                "negative_prompt": _to_str(item.get("negative_prompt")) or "",
                "strength": _in_range(item.get("strength"), 0, 1, 0.8),
            }
            for item in _items(regions.get("items"), limits.MAX_LAYERS)
            if isinstance(item, dict)
        ]
        controls = []
        for item in _items(meta.get("controls"), limits.MAX_LAYERS):
            if not isinstance(item, dict):
                continue
            control_model = item.get("model") if isinstance(item.get("model"), dict) else {}
            begin, end = _in_range(item.get("begin"), 0, 1, 0.0), _in_range(item.get("end"), 0, 1, 1.0)
            controls.append(
                {
                    **_layer_ref(item),
                    "model": _to_str(control_model.get("id")),
                    "model_name": _to_str(control_model.get("name")),
                    "model_hash": _to_str(control_model.get("hash")),
                    "preprocessor": _to_str(item.get("preprocessor")) or "none",
                    "weight": _in_range(item.get("weight"), 0, 2, 1.0),
                    "begin": begin if begin < end else 0.0,
                    "end": end if begin < end else 1.0,
                    "mode": item.get("mode") if item.get("mode") in _CONTROL_MODES else "balanced",
                    # a Union ControlNet's (checked against the model when a job runs)
                    "control_type": _to_str(item.get("control_type")),
                }
            )
        out["controls"] = controls
        references = []
        for item in _items(meta.get("references"), limits.MAX_REFERENCES):
            if not isinstance(item, dict):
                continue
            begin, end = _in_range(item.get("begin"), 0, 1, 0.0), _in_range(item.get("end"), 0, 1, 1.0)
            reference = {
                **{k: v for k, v in _layer_ref(item).items() if k != "color"},
                "weight": _in_range(item.get("weight"), limits.REFERENCE_WEIGHT.low, limits.REFERENCE_WEIGHT.high, 1.0),
                "begin": begin if begin < end else 0.0,
                "end": end if begin < end else 1.0,
            }
            model = item.get("model") if isinstance(item.get("model"), dict) else None
            if model is not None:  # its IP-Adapter (SD 1.x, SDXL); none where the family takes the picture itself
                reference.update(
                    model=_to_str(model.get("id")), model_name=_to_str(model.get("name")), model_hash=_to_str(model.get("hash"))
                )
            references.append(reference)
        out["references"] = references
        out["hires_fix"] = _hires_fix(meta.get("hires_fix"))
        return {k: v for k, v in out.items() if v not in (None, [], "")}
    except Exception:  # noqa: BLE001 - malformed metadata never raises
        return {}


def _hires_fix(item: Any) -> dict[str, Any] | None:
    """A recorded hires fix {scale, strength, upscaler, upscaler_name, upscaler_hash}, its numbers in range; None."""
    if not isinstance(item, dict):
        return None
    scale, strength = _to_float(item.get("scale")), _to_float(item.get("strength"))
    if scale is None or strength is None or not limits.HIRES_SCALE.holds(scale) or not limits.HIRES_STRENGTH.holds(strength):
        return None
    upscaler = item.get("upscaler") if isinstance(item.get("upscaler"), dict) else {}
    return {
        "scale": scale,
        "strength": strength,
        "upscaler": _to_str(upscaler.get("id")),
        "upscaler_name": _to_str(upscaler.get("name")),
        "upscaler_hash": _to_str(upscaler.get("hash")),
    }


def recall_parameters(text_chunks: dict[str, str]) -> dict[str, Any]:
    """Text chunks -> our parameter names; a stronger source wins each key it has."""
    if not isinstance(text_chunks, dict):
        return {}
    sources = (
        (parse_a1111, "parameters"),
        (parse_sd_metadata, "sd-metadata"),
        (parse_invokeai, "invokeai_metadata"),
        (normalise, METADATA_KEY),
    )
    out: dict[str, Any] = {}
    for parse, key in sources:  # weakest first, so the strongest is applied last
        text = text_chunks.get(key)
        if isinstance(text, str) and text:
            params = parse(text)
            params.pop("extra", None)
            out.update(params)
    return out


def recall_source(text_chunks: dict[str, str]) -> str | None:
    """Which known chunk the parameters chiefly come from: "invoke_canvas", "invokeai", "a1111" or None."""
    if normalise(text_chunks.get(METADATA_KEY, "")):
        return METADATA_KEY
    if parse_invokeai(text_chunks.get("invokeai_metadata", "")) or parse_sd_metadata(
        text_chunks.get("sd-metadata", "")
    ):
        return "invokeai"
    if parse_a1111(text_chunks.get("parameters", "")):
        return "a1111"
    return None
