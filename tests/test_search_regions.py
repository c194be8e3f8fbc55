"""Gallery search covers region prompts: the text itself, images saved with a generation (db and a real
worker job through the API), and the 0002 migration that backfills a database made at 0001."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from alembic import command
from alembic.migration import MigrationContext
from PIL import Image as PILImage
from sqlalchemy import inspect, text

from db import history, images
from db.assets import AssetStore
from db.migrate import alembic_config
from db.search_text import region_prompts_text
from db.session import Database
from invoke_core.limits import MAX_LAYERS, PROMPT_MAX_CHARS
from invoke_core.metadata import png_bytes

API = "/api/v1"
SIZE = 64


def region_layer(prompt: str, negative: str = "", **extra) -> dict:
    return {"id": f"reg-{prompt[:8]}", "kind": "regional_guidance", "image_id": "0" * 32,
            "region": {"prompt": prompt, "negative_prompt": negative, "strength": 0.8}, **extra}  # fmt: skip


def request_with(*layers: dict, prompt: str = "a quiet harbour") -> dict:
    return {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": list(layers),
            "params": {"prompt": prompt, "negative_prompt": "blurry"}}  # fmt: skip


def noise_png(seed: int = 0) -> bytes:
    return png_bytes(np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8), None)


def found(db: Database, search: str) -> list[str]:
    return [r.id for r in images.list_images(db, search=search, limit=500).items]


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path)
    yield database
    database.dispose()


# --- the text ------------------------------------------------------------------------------------


def test_region_text_is_the_visible_region_layers_prompts():
    request = request_with(
        region_layer("crimson lighthouse", "foggy sky"),
        region_layer("hidden tower", visible=False),
        {"id": "r1", "kind": "raster", "region": {"prompt": "not a region layer"}},
        region_layer("   "),  # blank: no line
        region_layer("green boat"),
    )
    assert region_prompts_text(request) == "crimson lighthouse\nfoggy sky\ngreen boat"


@pytest.mark.parametrize(
    "request_",
    [None, [], "text", {}, {"layers": "x"}, {"layers": [1, None, "a", []]},
     {"layers": [{"kind": "regional_guidance", "region": "x"}]},
     {"layers": [{"kind": "regional_guidance", "region": {"prompt": 5, "negative_prompt": ["a"]}}]}],
)  # fmt: skip
def test_region_text_of_odd_requests_is_empty(request_):
    assert region_prompts_text(request_) == ""


def test_region_text_is_capped():
    long = "w" * (PROMPT_MAX_CHARS + 50)
    request = request_with(*[region_layer(long) for _ in range(MAX_LAYERS + 5)])
    lines = region_prompts_text(request).split("\n")
    assert len(lines) == MAX_LAYERS and all(len(line) == PROMPT_MAX_CHARS for line in lines)


# --- saved images ----------------------------------------------------------------------------------


def test_an_image_is_found_by_its_generations_region_prompts(db, tmp_path):
    store = AssetStore(tmp_path)
    gen = history.record_generation(db, request_with(region_layer("crimson lighthouse", "foggy sky")))
    made = images.add_image(db, store, noise_png(1), metadata={"prompt": "a quiet harbour"}, generation_id=gen.id)
    plain = images.add_image(db, store, noise_png(2), metadata={"prompt": "a quiet harbour"})
    hidden_gen = history.record_generation(db, request_with(region_layer("secret lighthouse", visible=False)))
    hidden = images.add_image(db, store, noise_png(3), metadata={"prompt": "x"}, generation_id=hidden_gen.id)

    assert found(db, "lighthouse") == [made.id]  # the hidden layer's prompt was never a region
    assert found(db, "LIGHT crims") == [made.id]  # prefixes, any case, all words, across lines
    assert found(db, "foggy") == [made.id]  # region negative prompts too
    assert found(db, "harbour lighthouse") == [made.id]  # main prompt and region prompt together
    assert set(found(db, "harbour")) == {made.id, plain.id}
    assert found(db, "secret") == []
    assert not hasattr(images.get_image(db, made.id), "region_prompts")  # not in the record the API shows

    images.delete_images(db, store, [made.id, hidden.id])  # the delete trigger knows the column
    assert found(db, "lighthouse") == []
    assert found(db, "harbour") == [plain.id]


def test_hostile_search_over_long_region_prompts(db, tmp_path):
    store = AssetStore(tmp_path)
    long = " ".join(["lighthouse"] * (PROMPT_MAX_CHARS // 11))
    gen = history.record_generation(db, request_with(*[region_layer(long) for _ in range(20)]))
    rec = images.add_image(db, store, noise_png(), metadata={}, generation_id=gen.id)
    start = time.monotonic()
    assert found(db, '"lighthouse*" -(:^' + "(*" * 200) == [rec.id]
    assert found(db, "lighthouse " * 200) == [rec.id]  # only the first words are read
    assert time.monotonic() - start < 5


# --- a real job through the server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from server.app import create_app, shutdown

    app = create_app({"root": str(tmp_path_factory.mktemp("search-root")), "device": "cpu"})
    yield app
    shutdown(app)


def _upload_mask(client) -> str:
    mask = np.zeros((SIZE, SIZE, 4), np.uint8)
    mask[:, : SIZE // 2, 3] = 255
    buffer = io.BytesIO()
    PILImage.fromarray(mask).save(buffer, format="PNG")
    response = client.post(
        f"{API}/images", data={"file": (io.BytesIO(buffer.getvalue()), "mask.png"), "category": "mask"},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["id"]


def test_api_search_finds_a_generated_image_by_region_prompt(app):
    client = app.test_client()
    layer = {**region_layer("crimson lighthouse", "stormy"), "image_id": _upload_mask(client), "id": "reg-1"}
    document = {"bbox": {"x": 0, "y": 0, "width": SIZE, "height": SIZE}, "layers": [layer],
                "params": {"prompt": "a quiet harbour", "model": "demo", "steps": 1, "seed": 5}}  # fmt: skip
    response = client.post(f"{API}/canvas/jobs", json={"document": document})
    assert response.status_code == 201, response.get_data(as_text=True)
    item_id = response.json["item_ids"][0]
    deadline = time.monotonic() + 120
    while (item := client.get(f"{API}/queue/items/{item_id}").json)["status"] in ("pending", "in_progress"):
        assert time.monotonic() < deadline, item
        time.sleep(0.05)
    assert item["status"] == "completed", item
    (image_id,) = item.get("image_ids") or client.get(f"{API}/history/{response.json['generation_ids'][0]}").json["image_ids"]

    page = client.get(f"{API}/images", query_string={"search": "lighthouse"}).json
    assert [i["id"] for i in page["items"]] == [image_id]
    assert "region_prompts" not in page["items"][0]  # the image payload is unchanged
    assert [i["id"] for i in client.get(f"{API}/images?search=stormy").json["items"]] == [image_id]
    assert client.get(f"{API}/images?search=zeppelin").json["items"] == []


# --- the migration ---------------------------------------------------------------------------------------


def _revision(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _insert_at_0001(db: Database) -> None:
    """Rows as a 0001 database held them: generations with requests, images pointing at them."""
    requests = {
        "g1": json.dumps(request_with(region_layer("crimson lighthouse", "foggy sky"))),
        "g2": json.dumps(request_with(region_layer("hidden tower", visible=False))),
        "g3": json.dumps({"layers": "not a list"}),
    }
    with db.write() as s:
        for gen_id, request in requests.items():
            s.execute(text(
                "INSERT INTO generations (id, request, status, created_at)"
                " VALUES (:id, :request, 'completed', '2026-01-01 00:00:00')"
            ), {"id": gen_id, "request": request})  # fmt: skip
        for n, gen_id in enumerate(["g1", "g2", "g3", None, "g1"]):
            s.execute(text(
                "INSERT INTO images (id, file_name, width, height, file_size, content_hash, origin, category,"
                " starred, created_at, prompt, negative_prompt, metadata, generation_id)"
                " VALUES (:id, :file, 1, 1, 1, 'h', 'generated', 'general', 0, :at, 'a quiet harbour', '', '{}', :gen)"
            ), {"id": f"{n:032x}", "file": f"{n}.png", "at": f"2026-01-01 00:00:0{n}", "gen": gen_id})  # fmt: skip


def test_upgrade_from_0001_backfills_region_prompts_and_downgrade_works(tmp_path):
    db = Database(tmp_path, upgrade=False)
    config = alembic_config(db.write_engine)
    command.upgrade(config, "0001")
    _insert_at_0001(db)
    with db.read() as s:  # before: the region prompt is not searchable
        assert s.execute(text("SELECT rowid FROM images_fts WHERE images_fts MATCH 'lighthouse'")).all() == []

    command.upgrade(config, "0002")
    assert _revision(db.write_engine) == "0002"
    assert found(db, "lighthouse") == [f"{4:032x}", f"{0:032x}"]  # both images of g1, newest first
    assert found(db, "foggy") == [f"{4:032x}", f"{0:032x}"]
    assert found(db, "tower") == []
    assert len(found(db, "harbour")) == 5  # the old index content was rebuilt, not lost
    with db.write() as s:
        assert s.execute(text("SELECT region_prompts FROM images WHERE generation_id IS NULL")).scalar() == ""
        s.execute(text("INSERT INTO images_fts(images_fts) VALUES ('integrity-check')"))  # raises if out of step

    command.downgrade(config, "0001")
    assert _revision(db.write_engine) == "0001"
    assert "region_prompts" not in {c["name"] for c in inspect(db.read_engine).get_columns("images")}
    with db.read() as s:
        assert s.execute(text("SELECT count(*) FROM images_fts WHERE images_fts MATCH 'harbour'")).scalar() == 5
        assert s.execute(text("SELECT count(*) FROM images_fts WHERE images_fts MATCH 'lighthouse'")).scalar() == 0
    with db.write() as s:  # the 0001 triggers work again
        s.execute(text("UPDATE images SET prompt = 'a red fox' WHERE id = :id"), {"id": f"{3:032x}"})
    with db.read() as s:
        assert s.execute(text("SELECT rowid FROM images_fts WHERE images_fts MATCH 'fox'")).all() != []

    command.upgrade(config, "head")  # and up again backfills again
    assert found(db, "lighthouse") == [f"{4:032x}", f"{0:032x}"]
    db.dispose()
