"""Parsers of text from outside run in linear time (issue 10): A1111 `parameters` text, PNG text chunks,
InvokeAI's and our JSON metadata, prompt weighting syntax, search queries.

Each property test times a parser on ~100k characters built from the worst shapes for it (mixed by
hypothesis) against a benign text of the same length, and asserts a small ratio, never an absolute time:
a backtracking regex or a quadratic loop shows as a ratio in the hundreds. The measured ratios are
printed at the end of the module (the worst one per parser).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from db.images import fts_query, metadata_from_chunks
from db.png_metadata import (
    _a1111_fields,
    normalise,
    parse_a1111,
    parse_invokeai,
    read_png_text,
    recall_extras,
    recall_parameters,
)
from invoke_core import prompt_syntax
from invoke_core.errors import InvalidCanvasError
from invoke_core.prompt_syntax import check_syntax, to_compel

API = "/api/v1"
SIZE = 100_000
MAX_RATIO = 20  # a superlinear parser on 100k characters gives thousands; dense shapes cost ~7x prose per character
FLOOR = 0.005  # seconds: a benign parse faster than this counts as this (timer noise on loaded cores)
RATIOS: dict[str, tuple[float, float, float, float]] = {}  # name -> worst (ratio, raw ratio, bad s, benign s)
PROPERTY = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

PROSE = "masterpiece, a lighthouse on a rocky cliff at dusk, (golden hour:1.2), [fog], dramatic clouds, "
A1111_TAIL = (
    "\nNegative prompt: lowres, blurry, (bad anatomy:1.3)\n"
    'Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, Model: sd15, Lora hashes: "a: 1, b: 2"'
)


# --- helpers --------------------------------------------------------------------------------------


def stretch(text: str, size: int, whole: bool = False) -> str:
    """`text` repeated to `size` characters; `whole`: only whole repetitions (when one fits), so that
    balanced parentheses stay balanced."""
    if whole and len(text) <= size:
        return text * (size // len(text))
    return (text * (size // max(1, len(text)) + 1))[:size]


def build(parts: list[tuple[str, int]], size: int = SIZE, whole: bool = False) -> str:
    return stretch("".join(shape * count for shape, count in parts), size, whole)


def shapes(*options: str):
    """Lists of (shape, repeat count): concatenated, then repeated to the wanted size."""
    return st.lists(st.tuples(st.sampled_from(options), st.integers(1, 3000)), min_size=1, max_size=6)


def timed(fn, arg) -> float:
    start = time.perf_counter()
    try:
        fn(arg)
    except InvalidCanvasError:
        pass  # a refused prompt is a fine answer; what counts is how long it took
    return time.perf_counter() - start


def check_ratio(name: str, fn, adversarial, benign, repeat: int = 3) -> None:
    bad = good = math.inf
    for _ in range(repeat):  # interleaved, so that a burst of load on the shared cores hits both alike
        bad = min(bad, timed(fn, adversarial))
        good = min(good, timed(fn, benign))
    ratio = bad / max(good, FLOOR)
    RATIOS[name] = max(RATIOS.get(name, (0.0, 0.0, 0.0, 0.0)), (ratio, bad / max(good, 1e-9), bad, good))
    assert ratio < MAX_RATIO, f"{name}: {bad:.4f}s against {good:.4f}s for a benign text of the same length"


def png_with(chunks: dict[str, str], compressed: bool = True) -> bytes:
    """A 4x4 PNG carrying the chunks as zTXt (or tEXt), written by hand (any size, any bytes)."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buffer, format="PNG")
    data = buffer.getvalue()
    extra = b""
    for key, text in chunks.items():
        raw = text.encode("latin-1", errors="replace")
        ctype, body = (b"zTXt", key.encode() + b"\0\0" + zlib.compress(raw)) if compressed else (b"tEXt", key.encode() + b"\0" + raw)
        extra += struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)
    return data[:33] + extra + data[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def strict_json(data: bytes):
    """JSON as browsers read it: NaN and Infinity are not JSON."""

    def refuse(token):
        raise ValueError(f"{token} in the response")

    return json.loads(data, parse_constant=refuse)


@pytest.fixture(scope="module", autouse=True)
def report_ratios(request):
    yield
    if not RATIOS:
        return
    lines = [
        f"linear-time parsing: worst adversarial/benign time ratio per parser (benign floored at {FLOOR * 1000:g} ms)",
        f"  {'parser':<28} {'ratio':>6} {'raw':>7} {'adversarial':>12} {'benign':>9}",
    ]
    lines += [
        f"  {name:<28} {ratio:6.2f} {raw:7.2f} {bad * 1000:9.2f} ms {good * 1000:6.2f} ms"
        for name, (ratio, raw, bad, good) in sorted(RATIOS.items())
    ]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print("\n" + "\n".join(lines))
        return
    with capture.global_and_fixture_disabled():  # shown without -s
        print("\n" + "\n".join(lines))


# --- A1111 parameters text ------------------------------------------------------------------------

# The pattern A1111 itself uses (and we used): the scanner must find the same fields.
_OLD_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def old_a1111_fields(line: str) -> dict[str, str]:
    return _a1111_fields(_OLD_PARAM_RE.findall(line))  # the same value handling, on the pattern's pairs


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list('ab1 :,"\\-/\t_é') + ["Steps", ": ", ', "']), max_size=30).map("".join))
def test_a1111_field_scanner_finds_what_the_a1111_pattern_finds(line):
    assert _a1111_fields(line) == old_a1111_fields(line)


A1111_SHAPES = ("a", " ", ":", ",", '"', "\\", "a:", 'k: "', "a: 1, ", "<lora:", "<lora:a:1>", "<lora:a:", ">", "\n",
                "Negative prompt: ", "1x1", "\t", "-", "/", "Steps: 1, Size: 1x")


@PROPERTY
@given(shapes(*A1111_SHAPES))
@example([("a", 1)])
@example([("a:", 1)])
@example([("<lora:a:1>", 1)])
@example([('k: "', 1), ("a", 5)])
@example([("\n", 1)])
def test_parse_a1111_is_linear(parts):
    benign = stretch(PROSE, SIZE - len(A1111_TAIL)) + A1111_TAIL
    check_ratio("parse_a1111", parse_a1111, build(parts), benign)


def test_probe_30000_a_in_a_ztxt_parameters_chunk_is_fast():
    data = png_with({"parameters": "a" * 30_000})
    assert len(data) < 400  # the probe's PNG was 154 bytes
    start = time.perf_counter()
    chunks = read_png_text(data)
    params = recall_parameters(chunks)
    meta = metadata_from_chunks(chunks)
    elapsed = time.perf_counter() - start
    assert chunks == {"parameters": "a" * 30_000}
    assert params == {"prompt": "a" * 30_000, "negative_prompt": ""}
    assert meta["prompt"] == "a" * 30_000 and meta["source"] == "a1111"
    assert elapsed < 0.5, f"{elapsed:.2f}s"


# --- PNG chunks through the upload path -----------------------------------------------------------


@PROPERTY
@given(shapes(*A1111_SHAPES, "[", "{", '{"a": ', "NaN", "1e999", '"prompt": '))
@example([("a", 1)])
@example([("[", 1)])
def test_png_chunks_to_metadata_are_linear(parts):
    text = build(parts, SIZE // 2)
    adversarial = png_with({"parameters": text, "invokeai_metadata": text, "invoke_canvas": text})
    benign_text = stretch(PROSE, SIZE // 2)
    benign = png_with({"parameters": benign_text, "invokeai_metadata": benign_text, "invoke_canvas": benign_text})

    def upload_path(data: bytes):
        chunks = read_png_text(data)
        return metadata_from_chunks(chunks), recall_parameters(chunks)

    check_ratio("png chunks -> metadata", upload_path, adversarial, benign)


# --- JSON: InvokeAI's and ours --------------------------------------------------------------------


def _json_doc(parts: list[tuple[str, int]]) -> str:
    """JSON that parses: long lists and strings of the drawn shapes in the fields the parsers walk."""
    filler = build(parts, SIZE // 4)
    count = max(1, SIZE // 200)
    return json.dumps(
        {
            "positive_prompt": filler,
            "prompt": filler,
            "steps": 30,
            "loras": [{"model": {"name": "a", "key": "k"}, "weight": 0.5}] * count,
            "regions": {"items": [{"layer_id": "l", "layer": {"color": filler[:50]}, "prompt": "p"}] * count},
            "controls": [{"model": {"id": "c"}, "weight": 1}] * count,
            "nested": json.loads("[" * 30 + "1" + "]" * 30),
        }
    )[:SIZE]


def json_paths(text: str):
    return parse_invokeai(text), normalise(text), recall_extras(text)


@PROPERTY
@given(shapes("[", "{", "]", '"', "\\", "a", ":", ",", '{"a": ', "NaN", "-Infinity", "1e999", "0", " ", "\\u00e9"))
@example([("[", 1)])
@example([('{"a": ', 1)])
def test_json_metadata_parsers_are_linear(parts):
    benign = json.dumps({"positive_prompt": stretch(PROSE, SIZE - 40), "steps": 30})
    check_ratio("invokeai/our JSON (raw)", json_paths, build(parts), benign)
    check_ratio("invokeai/our JSON (lists)", json_paths, _json_doc(parts), benign)


def test_probe_100k_brackets_in_our_chunk_give_a_clean_result():
    text = "[" * 100_000
    start = time.perf_counter()
    meta = metadata_from_chunks(read_png_text(png_with({"invoke_canvas": text})))
    assert (parse_invokeai(text), normalise(text), recall_extras(text)) == ({}, {}, {})
    assert time.perf_counter() - start < 0.5
    assert isinstance(meta, dict)
    json.dumps(meta, allow_nan=False)


def test_non_finite_numbers_are_not_kept():
    own = '{"prompt": "a boat", "steps": NaN, "cfg_scale": Infinity, "seed": 7, "x": [1e999, -Infinity, 0.5]}'
    meta = metadata_from_chunks({"invoke_canvas": own})
    json.dumps(meta, allow_nan=False)
    assert meta == {"prompt": "a boat", "steps": None, "cfg_scale": None, "seed": 7, "x": [None, None, 0.5]}
    assert normalise(own) == {"prompt": "a boat", "seed": 7}
    invokeai = '{"positive_prompt": "a", "steps": NaN, "cfg_scale": -Infinity, "width": 1e999, "height": 512}'
    assert parse_invokeai(invokeai) == {"prompt": "a", "height": 512}


@pytest.mark.parametrize(
    "raw, dropped",
    [
        ({"steps": -5, "cfg_scale": 7.0}, {"steps"}),
        ({"steps": 501, "cfg_scale": 50.5, "seed": 2**32, "strength": 0}, {"steps", "cfg_scale", "seed", "strength"}),
        ({"width": 0, "height": 100_000, "strength": 1.5, "seed": -1}, {"width", "height", "strength", "seed"}),
        ({"steps": 1, "cfg_scale": 0, "seed": 2**32 - 1, "width": 4096, "height": 8, "strength": 1}, set()),
    ],
)
def test_recalled_values_outside_the_accepted_ranges_are_dropped(raw, dropped):
    meta = {"prompt": "p", **raw}
    kept = {k: v for k, v in raw.items() if k not in dropped}
    assert normalise(meta) == {"prompt": "p", **kept}
    assert parse_invokeai(json.dumps(meta)) == {"prompt": "p", **kept}


def test_a1111_values_outside_the_accepted_ranges_are_dropped():
    params = parse_a1111("a cat\nSteps: -5, Sampler: Euler, CFG scale: 99, Seed: 4294967296, Size: 0x100000, Denoising strength: 2")
    assert params == {"prompt": "a cat", "negative_prompt": "", "scheduler": "euler"}
    params = parse_a1111("a cat\nSteps: 500, Sampler: Euler, CFG scale: 0, Seed: 0, Size: 4096x8, Denoising strength: 0.5")
    assert (params["steps"], params["cfg_scale"], params["seed"], params["width"], params["height"], params["strength"]) == (
        500, 0.0, 0, 4096, 8, 0.5
    )


# --- prompt weighting syntax ----------------------------------------------------------------------

_OLD_WEIGHT = re.compile(r"(?<!\\)\(((?:[^()\\]|\\.|\([^()]*\)[-+.\d]*)+?):\s*(-?\d+(?:\.\d+)?)\s*\)")
_OLD_DOWN = re.compile(r"(?<!\\)\[([^\[\]:\\]+)\]")


def old_to_compel(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _OLD_DOWN.sub(r"(\1)0.9091", _OLD_WEIGHT.sub(r"(\1)\2", text))
    return text


def _nesting(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(list("()[]:a1. \\") + [":1.2", "(a:1)", "[a]"]), max_size=14).map("".join))
def test_to_compel_converts_what_the_old_regexes_converted(text):
    # The old regexes read parentheses nested at most two deep (a weight inside a weight); beyond, the
    # scanner goes on converting innermost first where they stopped. And they converted their own output
    # again: `(a:1.2:1.3)` became `(a)1.21.3`; the scanner reads the number after the last colon, as A1111
    # does: `(a:1.2)1.3`. Their lookbehind also took the `(` of `\\(` (an escaped backslash, then a real
    # parenthesis, as check_syntax counts it) for an escaped one.
    if _nesting(text) <= 2 and not re.search(r":\s*-?\d+(?:\.\d+)?\s*:", text) and "\\\\" not in text:
        assert to_compel(text) == old_to_compel(text)
    assert to_compel("(a:1.2:1.3)") == "(a:1.2)1.3"


def test_to_compel_reads_escapes_as_check_syntax_does():
    assert to_compel("\\\\(a:1.2)") == "\\\\(a)1.2"  # an escaped backslash, then a weight
    assert to_compel("\\(a:1.2\\)") == "\\(a:1.2\\)"  # escaped parentheses: words
    assert to_compel("(\\\\(a:1)") == "(\\\\(a)1"  # unbalanced either way: check_syntax refuses it
    with pytest.raises(InvalidCanvasError, match="unbalanced"):
        check_syntax("(\\\\(a:1)", "prompt")


def test_to_compel_examples():
    assert to_compel("a (red:1.5) boat, ((sails:1.2) white:0.8)") == "a (red)1.5 boat, ((sails)1.2 white)0.8"
    assert to_compel("smile :) at 10:30 \\(a:1.2\\)") == "smile :) at 10:30 \\(a:1.2\\)"
    assert to_compel("a [foggy] sea, [[rain]], [cat:dog:0.5]") == "a (foggy)0.9091 sea, ((rain)0.9091)0.9091, [cat:dog:0.5]"
    assert to_compel("(((a:1.2) b:1.1) c:1.05)") == "(((a)1.2 b)1.1 c)1.05"
    assert to_compel("[(a:1.2)] [a (b:1.1)]") == "((a)1.2)0.9091 (a (b)1.1)0.9091"
    assert to_compel("(a: 1.5 ) (:1) (a:) (a:x) [] [a\\]") == "(a)1.5 (:1) (a:) (a:x) [] [a\\]"


COMPEL_SHAPES = ("a", " ", "(a)", "(", ")", "((((", "))))", ":", "1", ".", "[", "]", "\\", "(a:1)", "((a)1111",
                 ":1)", "[a", "a]", '"', "a+", "-", ",", ".blend(", ".and(", "withLora(", ".swap(")


@PROPERTY
@given(shapes(*COMPEL_SHAPES))
@example([("((a)1111", 1)])
@example([("[", 1), ("a", 1), ("]", 1)])
@example([("(a:", 1)])
def test_to_compel_is_linear(parts):
    check_ratio("to_compel", to_compel, build(parts), stretch(PROSE, SIZE))


def _check(text: str) -> None:
    prompt_syntax._parse.cache_clear()  # time the parse, not the cache
    check_syntax(text, "prompt")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes(*COMPEL_SHAPES))
@example([("(a)", 1)])
@example([("(" * 12, 1), ("a", 1), (")" * 12, 1)])
@example([('"a"', 1)])
def test_check_syntax_is_linear_up_to_its_limit(parts):
    size = min(prompt_syntax.WEIGHTED_PROMPT_MAX_CHARS, 1000)  # linear: the ratio at 1000 is the ratio at the limit
    benign = stretch(PROSE, size, whole=True)
    check_ratio("check_syntax (at its limit)", _check, build(parts, size, whole=True), benign, repeat=3)


@PROPERTY
@given(shapes(*COMPEL_SHAPES))
@example([("(a)", 1)])
@example([("a ", 1)])
def test_check_syntax_is_linear_beyond_its_limit(parts):
    check_ratio("check_syntax (100k)", _check, build(parts), stretch(PROSE, SIZE), repeat=2)


def test_probe_2500_groups_at_the_prompt_check_is_fast():
    start = time.perf_counter()
    with pytest.raises(InvalidCanvasError, match="characters"):
        _check("(a)" * 2500)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("depth", [20, 40, 4000])
def test_deep_parentheses_are_refused_fast(depth):
    start = time.perf_counter()
    with pytest.raises(InvalidCanvasError, match="nested"):
        _check("(" * depth + "a" + ")" * depth)
    assert time.perf_counter() - start < 0.5


def test_worst_prompts_under_the_limits_are_checked_fast():
    limit, nest = prompt_syntax.WEIGHTED_PROMPT_MAX_CHARS, prompt_syntax.MAX_NESTING
    deep = "(" * nest + "a" + ")" * nest
    for text in (stretch("(a)", limit, True), stretch(deep, limit, True), stretch('"a"', limit, True), "a " * 5000):
        start = time.perf_counter()
        _check(text)
        assert time.perf_counter() - start < 10, text[:20]  # seconds at worst (an exponential parse took minutes)


def test_plain_long_prompts_are_not_limited_by_the_syntax_cap():
    check_syntax("a lighthouse, at dusk: 8k, high-detail " * 250, "prompt")  # 9750 characters, no weighting syntax
    with pytest.raises(InvalidCanvasError, match="10000"):
        check_syntax("a " * 5001, "prompt")


def test_the_job_budget_covers_all_prompts_together():
    budget = prompt_syntax.SyntaxBudget()
    weighted = stretch("(a) ", prompt_syntax.WEIGHTED_PROMPT_MAX_CHARS - 1)
    with pytest.raises(InvalidCanvasError, match="in all"):
        for number in range(10):
            prompt_syntax.check_prompts(weighted + str(number), "", f"prompt {number}", budget)


# --- search ---------------------------------------------------------------------------------------


@PROPERTY
@given(shapes("a", " ", '"', "*", "-", "(", ")", "NEAR", "OR", ":", "é", "a b ", "\\", "\n"))
@example([("a", 1)])
@example([("a ", 1)])
def test_fts_query_is_linear(parts):
    check_ratio("fts_query", fts_query, build(parts), stretch("lighthouse dusk ", SIZE))


def test_fts_query_caps_its_input():
    query = fts_query("word " * 100_000)
    assert query.count('"word"*') == 32
    assert fts_query(" " * 100_000 + "late") is None  # only the start of a very long query is read


# --- through the API ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path_factory.mktemp("linear")), "device": "cpu", "start_worker": False})
    yield app.test_client()
    shutdown(app)


def _upload(client, data: bytes) -> str:
    response = client.post(
        f"{API}/images", data={"file": (io.BytesIO(data), "probe.png")}, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def test_api_upload_with_100k_brackets_in_our_chunk(client):
    start = time.perf_counter()
    image_id = _upload(client, png_with({"invoke_canvas": "[" * 100_000}, compressed=False))
    for what in ("metadata", "recall"):
        response = client.get(f"{API}/images/{image_id}/{what}")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert isinstance(strict_json(response.data), dict)
    assert time.perf_counter() - start < 2


def test_api_upload_of_the_30000_a_probe(client):
    start = time.perf_counter()
    image_id = _upload(client, png_with({"parameters": "a" * 30_000}))
    recalled = strict_json(client.get(f"{API}/images/{image_id}/recall").data)
    assert recalled["prompt"] == "a" * 30_000
    assert time.perf_counter() - start < 2


def test_api_metadata_and_recall_hold_no_nan_and_no_out_of_range_values(client):
    own = '{"prompt": "a boat", "steps": -5, "cfg_scale": NaN, "width": Infinity, "height": 512, "seed": 3, "mask_blur": 1e999}'
    image_id = _upload(client, png_with({"invoke_canvas": own}))
    meta = strict_json(client.get(f"{API}/images/{image_id}/metadata").data)
    assert meta["cfg_scale"] is None and meta["width"] is None and meta["mask_blur"] is None and meta["steps"] == -5
    recalled = strict_json(client.get(f"{API}/images/{image_id}/recall").data)
    assert recalled["prompt"] == "a boat" and recalled["height"] == 512 and recalled["seed"] == 3
    assert not {"steps", "cfg_scale", "width", "mask_blur"} & recalled.keys()
