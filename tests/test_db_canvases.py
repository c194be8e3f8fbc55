"""Saved canvases on a real SQLite file: versions, the autosave cap, document validation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import canvases, history
from db.canvases import MAX_DOCUMENT_BYTES
from db.errors import InvalidInput, NotFound
from db.models import CanvasVersion, Generation
from db.session import Database

MISSING = "0" * 32


@pytest.fixture
def db(tmp_path, db_url):
    database = Database(tmp_path / "root", url=db_url)
    yield database
    database.dispose()


def doc(n: int) -> dict:
    return {
        "bbox": {"x": 0, "y": 0, "width": 512, "height": 512},
        "layers": [{"id": f"l{n}", "type": "raster", "image_id": "a" * 32, "x": n, "y": 0, "opacity": 0.5}],
        "params": {"prompt": f"save {n}", "steps": 20, "cfg": 7.5, "seed": None},
    }


def test_save_new_then_load_round_trips(db):
    rec = canvases.save_canvas(db, "  My canvas ", doc(1))
    assert rec.name == "My canvas" and rec.current_version == 1 and rec.version_count == 1
    loaded, document = canvases.load_canvas(db, rec.id)
    assert loaded == rec and document == doc(1)


def test_each_save_is_a_new_version_and_old_ones_load(db):
    rec = canvases.save_canvas(db, "c", doc(1))
    rec2 = canvases.save_canvas(db, None, doc(2), canvas_id=rec.id)
    rec3 = canvases.save_canvas(db, "renamed", doc(3), canvas_id=rec.id, autosave=False)
    assert (rec2.current_version, rec3.current_version) == (2, 3)
    assert rec2.name == "c" and rec3.name == "renamed"
    assert canvases.load_canvas(db, rec.id)[1] == doc(3)
    assert canvases.load_canvas(db, rec.id, version=1)[1] == doc(1)
    assert [(v.version, v.autosave) for v in canvases.list_versions(db, rec.id)] == [(3, False), (2, True), (1, True)]
    with pytest.raises(NotFound, match="version 9"):
        canvases.load_canvas(db, rec.id, version=9)


def test_autosaves_pruned_oldest_first_named_saves_kept(db):
    rec = canvases.save_canvas(db, "c", doc(0), autosave=False)  # version 1, named
    for i in range(1, 30):
        canvases.save_canvas(db, None, doc(i), canvas_id=rec.id, autosave=(i != 5))  # version 6 named
    versions = canvases.list_versions(db, rec.id)
    autos = [v.version for v in versions if v.autosave]
    named = [v.version for v in versions if not v.autosave]
    assert named == [6, 1]
    assert autos == list(range(30, 10, -1))  # the newest 20 autosaves
    rec = canvases.load_canvas(db, rec.id)[0]
    assert rec.current_version == 30 and rec.version_count == 22
    assert canvases.load_canvas(db, rec.id, version=6)[1] == doc(5)
    with pytest.raises(NotFound):
        canvases.load_canvas(db, rec.id, version=10)


def test_autosave_cap_is_per_canvas_and_configurable(db):
    a = canvases.save_canvas(db, "a", doc(0))
    b = canvases.save_canvas(db, "b", doc(0))
    for i in range(5):
        canvases.save_canvas(db, None, doc(i), canvas_id=a.id, autosave_cap=3)
    assert [v.version for v in canvases.list_versions(db, a.id)] == [6, 5, 4]
    assert [v.version for v in canvases.list_versions(db, b.id)] == [1]
    with pytest.raises(InvalidInput):
        canvases.save_canvas(db, None, doc(0), canvas_id=a.id, autosave_cap=0)


@pytest.mark.parametrize(
    "bad",
    [
        [1, 2],
        "text",
        None,
        {"layers": [object()]},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {1: "int key"},
        {"nested": {2: "x"}},
        {"pixels": "x" * (MAX_DOCUMENT_BYTES + 1)},
    ],
)
def test_bad_documents_rejected_and_nothing_saved(db, bad):
    with pytest.raises(InvalidInput):
        canvases.save_canvas(db, "c", bad)
    assert canvases.list_canvases(db) == []


def test_deeply_nested_document_rejected(db):
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidInput):
        canvases.save_canvas(db, "c", deep)


def test_document_just_under_the_cap_is_fine(db):
    big = {"blob": "é" * ((MAX_DOCUMENT_BYTES - 20) // 2)}  # 2 UTF-8 bytes each
    rec = canvases.save_canvas(db, "big", big)
    assert canvases.load_canvas(db, rec.id)[1] == big


@pytest.mark.parametrize("bad", ["", "  ", "x" * 201, None])
def test_bad_names(db, bad):
    with pytest.raises(InvalidInput):
        canvases.save_canvas(db, bad, doc(0))
    rec = canvases.save_canvas(db, "ok", doc(0))
    if bad is not None:
        with pytest.raises(InvalidInput):
            canvases.save_canvas(db, bad, doc(1), canvas_id=rec.id)
        with pytest.raises(InvalidInput):
            canvases.rename_canvas(db, rec.id, bad)
    assert [(c.name, c.current_version) for c in canvases.list_canvases(db)] == [("ok", 1)]


def test_unknown_ids(db):
    for call in (
        lambda: canvases.load_canvas(db, MISSING),
        lambda: canvases.save_canvas(db, None, doc(0), canvas_id=MISSING),
        lambda: canvases.rename_canvas(db, MISSING, "x"),
        lambda: canvases.delete_canvas(db, MISSING),
        lambda: canvases.list_versions(db, MISSING),
    ):
        with pytest.raises(NotFound, match=MISSING):
            call()


def test_list_rename_delete(db):
    a = canvases.save_canvas(db, "a", doc(0))
    b = canvases.save_canvas(db, "b", doc(0))
    canvases.save_canvas(db, None, doc(1), canvas_id=a.id)
    assert [c.name for c in canvases.list_canvases(db)] == ["a", "b"]  # most recently updated first
    assert canvases.rename_canvas(db, b.id, "bee").name == "bee"
    assert [c.name for c in canvases.list_canvases(db)] == ["bee", "a"]
    gen = history.record_generation(db, {"prompt": "p"}, canvas_id=a.id, canvas_version=2)
    canvases.delete_canvas(db, a.id)
    assert [c.name for c in canvases.list_canvases(db)] == ["bee"]
    with db.read() as s:
        assert s.scalars(select(CanvasVersion).where(CanvasVersion.canvas_id == a.id)).all() == []
        assert s.get(Generation, gen.id).canvas_id is None  # history survives its canvas
    assert history.get_generation(db, gen.id).canvas_id is None
