"""db.assets and db.png_metadata: upload checks, atomic files, thumbnails, safe paths, PNG metadata."""

from __future__ import annotations

import os
import hashlib
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from db.assets import AssetStore, inspect_upload, make_thumbnail
from db.errors import InvalidInput, TooLarge, UnsupportedMedia
from db.png_metadata import (
    a1111_scheduler,
    invokeai_scheduler,
    parse_a1111,
    parse_invokeai,
    read_png_text,
    recall_parameters,
)
from invoke_core.metadata import a1111_parameters, png_bytes

ID = "0123456789abcdef0123456789abcdef"


def noise(w: int, h: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def encode(fmt: str, w: int = 32, h: int = 24, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(w, h)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_with_text(chunks: dict[str, str], w: int = 16, h: int = 16) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(noise(w, h)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def patched_ihdr(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims width x height (CRC fixed up): a decompression bomb header."""
    data = bytearray(encode("PNG", 4, 4))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def files_in(store: AssetStore) -> list[str]:
    return sorted(p.name for d in (store.images_dir, store.thumbnails_dir) for p in d.iterdir())


@pytest.fixture
def store(tmp_path):
    return AssetStore(tmp_path)


# -- inspect_upload ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, name", [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_accepts_png_jpeg_webp(fmt, name):
    info = inspect_upload(encode(fmt, 40, 30))
    assert (info.format, info.width, info.height) == (name, 40, 30)
    assert info.ext == {"png": "png", "jpeg": "jpg", "webp": "webp"}[name]


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_unsupported(fmt):
    with pytest.raises(UnsupportedMedia, match="PNG, JPEG or WebP"):
        inspect_upload(encode(fmt))


@pytest.mark.parametrize("data", [b"hello, world\n", b"", b"\x89PNG\r\n\x1a\n", b"<svg></svg>"])
def test_non_images_are_unsupported(data):
    with pytest.raises(UnsupportedMedia):
        inspect_upload(data)


def test_truncated_png_is_unsupported_with_one_line_message():
    data = encode("PNG", 128, 128)
    with pytest.raises(UnsupportedMedia, match="truncated") as err:
        inspect_upload(data[: len(data) // 2])
    assert "\n" not in str(err.value)


def test_truncated_jpeg_is_unsupported():
    data = encode("JPEG", 128, 128)
    with pytest.raises(UnsupportedMedia):
        inspect_upload(data[: len(data) // 3])


def test_corrupt_png_data_is_unsupported():
    data = bytearray(encode("PNG", 64, 64))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 400] = b"\xff" * 390
    with pytest.raises(UnsupportedMedia):
        inspect_upload(bytes(data))


def test_too_many_bytes_refused_before_decoding():
    with pytest.raises(TooLarge, match="bytes"):
        inspect_upload(b"not even an image" * 100, max_bytes=1000)


@pytest.mark.parametrize("size", [(100_000, 100_000), (9000, 9000)])
def test_decompression_bomb_refused_from_header(size):
    # 10^10 pixels trips Pillow's own guard; 81M pixels is under Pillow's but over ours (64M).
    with pytest.raises(TooLarge, match="pixels"):
        inspect_upload(patched_ihdr(*size))


def test_max_pixels_is_configurable():
    data = encode("PNG", 64, 64)
    with pytest.raises(TooLarge):
        inspect_upload(data, max_pixels=64 * 64 - 1)
    assert inspect_upload(data, max_pixels=64 * 64).width == 64


# -- writes, thumbnails -----------------------------------------------------------------------


def test_write_is_whole_and_leaves_no_temp_files(store):
    data = encode("PNG", 50, 40)
    stored = store.write(ID, data, "png")
    assert stored.file_name == f"{ID}.png"
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.path(stored.file_name).read_bytes() == data
    assert store.temp_files() == []
    assert files_in(store) == [f"{ID}.png"]
    assert store.image_files() == {f"{ID}.png": len(data)}


def test_write_overwrites_atomically(store):
    store.write(ID, b"old", "png")
    store.write(ID, b"new bytes", "png")
    assert store.path(f"{ID}.png").read_bytes() == b"new bytes"
    assert store.temp_files() == []


def test_thumbnail_is_webp_longest_side_256(store):
    store.write_thumbnail(ID, encode("PNG", 600, 300))
    with Image.open(store.thumbnail_path(ID)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (256, 128)
    assert store.thumbnail_ids() == {ID}


def test_thumbnail_never_enlarges_and_keeps_alpha():
    buf = io.BytesIO()
    Image.fromarray(noise(40, 20, channels=4)).save(buf, format="PNG")
    with Image.open(io.BytesIO(make_thumbnail(buf.getvalue()))) as thumb:
        assert thumb.size == (40, 20)
        assert thumb.mode == "RGBA"


def test_thumbnail_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    buf = io.BytesIO()
    Image.fromarray(noise(300, 150)).save(buf, format="JPEG", exif=exif)
    with Image.open(io.BytesIO(make_thumbnail(buf.getvalue()))) as thumb:
        assert thumb.size == (128, 256)


def test_thumbnails_of_palette_and_grey_images():
    for mode in ("P", "L", "LA", "I;16"):
        buf = io.BytesIO()
        Image.new(mode, (30, 10)).save(buf, format="PNG")
        with Image.open(io.BytesIO(make_thumbnail(buf.getvalue()))) as thumb:
            assert thumb.size == (30, 10)


def test_delete_removes_file_and_thumbnail_missing_ok(store):
    data = encode("PNG")
    store.write(ID, data, "png")
    store.write_thumbnail(ID, data)
    store.delete(f"{ID}.png")
    assert files_in(store) == []
    store.delete(f"{ID}.png")  # already gone: fine


# -- names and paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x.png",
        f"../{ID}.png",
        f"{ID}.png/../../etc/passwd",
        f"{ID}.gif",
        f"{ID.upper()}.png",
        f"{ID}.PNG",
        f"{ID[:-1]}.png",
        f"/{ID}.png",
        f"{ID}.png\n",
        f"sub/{ID}.png",
        "..",
        "",
        None,
        f"{ID}.png\x00",
    ],
)
def test_bad_file_names_are_invalid(store, name):
    with pytest.raises(InvalidInput):
        store.path(name)
    with pytest.raises(InvalidInput):
        store.delete(name)


@pytest.mark.parametrize("image_id", ["../" + ID[3:], ID + "0", "", "x" * 32, ID.upper(), None])
def test_bad_ids_are_invalid(store, image_id):
    with pytest.raises(InvalidInput):
        store.thumbnail_path(image_id)
    with pytest.raises(InvalidInput):
        store.write(image_id, b"x", "png")
    assert files_in(store) == []


def test_bad_extension_is_invalid(store):
    with pytest.raises(InvalidInput):
        store.write(ID, b"x", "gif")
    with pytest.raises(InvalidInput):
        store.write(ID, b"x", "../png")
    assert files_in(store) == []


def test_symlink_out_of_the_folder_is_refused(store, tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    (store.images_dir / f"{ID}.png").symlink_to(outside)
    with pytest.raises(InvalidInput):
        store.path(f"{ID}.png")
    assert outside.read_bytes() == b"secret"


def test_listings_ignore_foreign_files(store):
    (store.images_dir / "notes.txt").write_text("mine")
    (store.images_dir / ".tmp-abc.part").write_bytes(b"partial")
    (store.thumbnails_dir / ".tmp-def.part").write_bytes(b"partial")
    assert store.image_files() == {}
    assert store.thumbnail_ids() == set()
    assert [p.name for p in store.temp_files()] == [".tmp-abc.part", ".tmp-def.part"]


# -- PNG metadata -----------------------------------------------------------------------------

OUR_META = {
    "app": "invoke-canvas",
    "mode": "img2img",
    "prompt": "a lighthouse, at dusk",
    "negative_prompt": "blurry, low quality",
    "model": {"id": "m1", "name": "Dream Model v2", "hash": "0123456789abcdef", "family": "sd-1"},
    "steps": 25,
    "cfg_scale": 6.5,
    "scheduler": "dpmpp_2m_karras",
    "seed": 1234567,
    "strength": 0.6,
    "width": 512,
    "height": 768,
}

OUR_PARAMS = {
    "prompt": "a lighthouse, at dusk",
    "negative_prompt": "blurry, low quality",
    "steps": 25,
    "cfg_scale": 6.5,
    "scheduler": "dpmpp_2m_karras",
    "seed": 1234567,
    "width": 512,
    "height": 768,
    "strength": 0.6,
    "model_name": "Dream Model v2",
    "model_hash": "0123456789abcdef",
}


def test_our_png_round_trips():
    data = png_bytes(noise(8, 8), OUR_META)
    chunks = read_png_text(data)
    assert json.loads(chunks["invoke_canvas"]) == OUR_META
    assert chunks["parameters"] == a1111_parameters(OUR_META)
    assert recall_parameters(chunks) == OUR_PARAMS


def test_our_a1111_text_reads_back_alone():
    # What another tool sees: the `parameters` text only (model hash cut to 10 characters there).
    params = parse_a1111(a1111_parameters(OUR_META))
    family = {"extra": {"Model family": OUR_META["model"]["family"]}}  # ours, beside A1111's fields
    assert params == {**OUR_PARAMS, "model_hash": "0123456789", **family}


def test_read_png_text_from_path_and_compressed_chunks(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("plain", "latin é")
    info.add_text("zipped", "z" * 5000, zip=True)
    info.add_itxt("intl", "日本語 ✓", zip=False)
    info.add_itxt("intlz", "ünïcode " * 100, zip=True)
    path = tmp_path / "x.png"
    Image.fromarray(noise(8, 8)).save(path, pnginfo=info)
    chunks = read_png_text(path)
    assert chunks == {"plain": "latin é", "zipped": "z" * 5000, "intl": "日本語 ✓", "intlz": "ünïcode " * 100}


@pytest.mark.parametrize(
    "data", [b"", b"garbage", encode("JPEG"), encode("PNG")[:40], b"\x89PNG\r\n\x1a\n\xff\xff\xff\xff"]
)
def test_read_png_text_never_raises(data):
    assert isinstance(read_png_text(data), dict)


def test_read_png_text_skips_zlib_bomb_chunk():
    bomb = zlib.compress(b"a" * (8 << 20))
    body = b"huge\0\0" + bomb
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    data = png_with_text({"ok": "yes"})
    data = data[:33] + chunk + data[33:]
    assert read_png_text(data) == {"ok": "yes"}


A1111 = """masterpiece, a castle on a hill,
(dramatic lighting:1.2), detailed
Negative prompt: lowres, bad anatomy,
extra fingers
Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 3141592653, Size: 640x448, Model hash: 6ce0161689, \
Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Lora hashes: "detail: abc123, style: def456", Version: v1.7.0"""


def test_parse_a1111_multiline_prompt_negative_and_quoted_commas():
    params = parse_a1111(A1111)
    assert params["prompt"] == "masterpiece, a castle on a hill,\n(dramatic lighting:1.2), detailed"
    assert params["negative_prompt"] == "lowres, bad anatomy,\nextra fingers"
    assert params["steps"] == 30
    assert params["scheduler"] == "euler_a"
    assert params["cfg_scale"] == 7.5
    assert params["seed"] == 3141592653
    assert (params["width"], params["height"]) == (640, 448)
    assert params["model_hash"] == "6ce0161689"
    assert params["model_name"] == "v1-5-pruned-emaonly"
    assert params["strength"] == 0.45
    assert params["extra"] == {"Lora hashes": "detail: abc123, style: def456", "Version": "v1.7.0"}


def test_parse_a1111_without_negative_or_parameters():
    assert parse_a1111("just a prompt") == {"prompt": "just a prompt", "negative_prompt": ""}
    only = parse_a1111("a cat\nSteps: 5, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1")
    assert only["prompt"] == "a cat" and only["steps"] == 5 and only["seed"] == 1
    assert only["scheduler"] == "dpmpp_2m_karras"


def test_a1111_lora_tags_become_loras():
    text = (
        "a castle, <lora:ink style:0.7> on a hill <lora:sharp:-1.25:0.5>, <lora:bad:9>\n"
        'Steps: 5, Sampler: Euler, Seed: 1, Lora hashes: "ink style: 0123456789, sharp: abcdef0123"'
    )
    params = parse_a1111(text)
    assert params["prompt"] == "a castle, on a hill , <lora:bad:9>"  # out-of-range weights stay text
    assert params["loras"] == [
        {"name": "ink style", "weight": 0.7, "hash": "0123456789"},
        {"name": "sharp", "weight": -1.25, "hash": "abcdef0123"},
    ]
    # our own A1111 text reads back the same LoRAs
    ours = parse_a1111(a1111_parameters({**OUR_META, "loras": [{"id": "ink", "name": "Ink", "hash": "ab" * 32, "weight": 0.5}]}))
    assert ours["loras"] == [{"name": "Ink", "weight": 0.5, "hash": "ab" * 5}] and "<lora" not in ours["prompt"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Steps: x, Sampler: , Seed: y",
        "Negative prompt:",
        "\n\n\n",
        "Size: 9x, Steps: 1e400, CFG scale: nan",
        "\x00" * 10,
    ],
)
def test_parse_a1111_malformed_never_raises(text):
    params = parse_a1111(text)
    assert isinstance(params, dict)
    assert "steps" not in params and "cfg_scale" not in params


def test_sampler_names():
    assert a1111_scheduler("Euler a") == "euler_a"
    assert a1111_scheduler("DPM++ 2M Karras") == "dpmpp_2m_karras"
    assert a1111_scheduler("DPM++ 2M SDE Karras") == "dpmpp_2m_sde_karras"
    assert a1111_scheduler("UniPC") == "unipc"
    assert a1111_scheduler("Some New Sampler") == "Some New Sampler"
    assert invokeai_scheduler("dpmpp_2m_k") == "dpmpp_2m_karras"
    assert invokeai_scheduler("euler_a") == "euler_a"


INVOKEAI = {
    "generation_mode": "sd1_img2img",
    "positive_prompt": "a red fox in snow",
    "negative_prompt": "cartoon",
    "width": 768,
    "height": 512,
    "seed": 99,
    "rand_device": "cpu",
    "cfg_scale": 5,
    "steps": 40,
    "scheduler": "dpmpp_2m_k",
    "model": {"key": "abc-key", "hash": "blake3:ffee", "name": "Juggernaut", "base": "sd-1", "type": "main"},
    "strength": 0.7,
}


def test_parse_invokeai():
    assert parse_invokeai(json.dumps(INVOKEAI)) == {
        "prompt": "a red fox in snow",
        "negative_prompt": "cartoon",
        "steps": 40,
        "cfg_scale": 5.0,
        "scheduler": "dpmpp_2m_karras",
        "seed": 99,
        "width": 768,
        "height": 512,
        "strength": 0.7,
        "model_name": "Juggernaut",
        "model_hash": "blake3:ffee",
    }
    v3 = {"positive_prompt": "x", "model": {"model_name": "old", "base_model": "sd-1"}, "denoising_strength": 0.3}
    assert parse_invokeai(json.dumps(v3)) == {"prompt": "x", "model_name": "old", "strength": 0.3}
    with_loras = {**INVOKEAI, "loras": [
        {"model": {"key": "k1", "hash": "blake3:aa", "name": "Ink", "base": "sd-1", "type": "lora"}, "weight": 0.75},
        {"model": {"key": "k2", "name": "Too strong"}, "weight": 5},
        {"weight": 0.5},
    ]}
    assert parse_invokeai(json.dumps(with_loras))["loras"] == [{"name": "Ink", "weight": 0.75, "hash": "blake3:aa"}]


@pytest.mark.parametrize("text", ["", "{", "[1,2]", "null", '{"seed": "abc", "steps": [1]}', '{"model": 5}'])
def test_parse_invokeai_malformed_never_raises(text):
    params = parse_invokeai(text)
    assert isinstance(params, dict)
    assert "seed" not in params and "steps" not in params


def test_recall_prefers_ours_then_invokeai_then_a1111():
    a1111 = "a1111 prompt\nSteps: 3, Sampler: Euler, Seed: 1, Size: 8x8"
    assert recall_parameters({"parameters": a1111})["prompt"] == "a1111 prompt"
    both = {"parameters": a1111, "invokeai_metadata": json.dumps(INVOKEAI)}
    assert recall_parameters(both)["prompt"] == "a red fox in snow"
    assert recall_parameters(both)["steps"] == 40
    ours = {**both, "invoke_canvas": json.dumps(OUR_META)}
    assert recall_parameters(ours) == OUR_PARAMS
    # A broken stronger chunk does not hide a good weaker one.
    assert recall_parameters({**both, "invoke_canvas": "{broken"})["prompt"] == "a red fox in snow"
    assert recall_parameters({}) == {}
    assert recall_parameters({"invoke_canvas": "[]", "parameters": ""}) == {}


@pytest.mark.parametrize(
    "meta",
    [
        None,
        "{broken",
        [],
        {"regions": "x", "controls": 5, "loras": {"a": 1}},
        {"regions": {"items": [None, 3, {"layer": "x", "strength": "nan"}]}, "controls": [None, {"model": 7}]},
        {"loras": [{"id": 5, "weight": "heavy"}, {"name": "ok", "weight": 9}], "bbox": [1, 2, "x", 4], "scale": 99},
        {"controls": [{"begin": 0.9, "end": 0.1, "mode": "loud", "weight": -3, "layer": {"color": "red", "x": "a"}}]},
    ],
)
def test_recall_extras_of_malformed_metadata_never_raise(meta):
    from db.png_metadata import recall_extras

    out = recall_extras(meta)
    assert isinstance(out, dict)
    for region in out.get("regions", ()):
        assert 0 <= region["strength"] <= 1 and isinstance(region["prompt"], str)
    for control in out.get("controls", ()):
        assert 0 <= control["begin"] < control["end"] <= 1 and control["mode"] in ("balanced", "prompt", "control")
        assert 0 <= control["weight"] <= 2 and control["color"] is None and isinstance(control["x"], int)
    for lora in out.get("loras", ()):
        assert -2 <= lora["weight"] <= 2
    assert "scale" not in out and "bbox" not in out


def test_written_files_follow_the_umask(tmp_path):
    """A plain open() gives 0666 less the umask; mkstemp's private 0600 would hide a user's images from
    their other tools (and from a shared folder's other machines)."""
    old = os.umask(0o022)
    try:
        store = AssetStore(tmp_path)
        stored = store.write("a" * 32, encode("png"), "png")
        assert (store.path(stored.file_name).stat().st_mode & 0o777) == 0o644
        os.umask(0o027)
        stored = store.write("b" * 32, encode("png"), "png")
        assert (store.path(stored.file_name).stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
