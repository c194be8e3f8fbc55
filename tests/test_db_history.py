"""Generation history on a real SQLite file: recording, updates, keyset pages, per image and per canvas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from db import boards, canvases, history
from db.errors import InvalidInput, NotFound
from db.models import Generation, Image, new_id
from db.session import Database

MISSING = "0" * 32
T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def db(tmp_path, db_url):
    database = Database(tmp_path / "root", url=db_url)
    yield database
    database.dispose()


def set_created(db: Database, generation_id: str, when: datetime) -> None:
    with db.write() as s:
        s.execute(update(Generation).where(Generation.id == generation_id).values(created_at=when))


def add_image(db: Database, generation_id: str | None) -> str:
    image_id = new_id()
    with db.write() as s:
        s.add(Image(id=image_id, file_name=f"{image_id}.png", width=8, height=8, file_size=1,
                    content_hash="0" * 64, generation_id=generation_id))  # fmt: skip
    return image_id


def test_record_get_and_update(db):
    board = boards.create_board(db, "b")
    canvas = canvases.save_canvas(db, "c", {"layers": []})
    req = {"prompt": "a cat", "layers": [{"image_id": "f" * 32}], "steps": 4}
    rec = history.record_generation(
        db, req, canvas_id=canvas.id, canvas_version=1, board_id=board.id, model_id="demo",
        model_name="Demo", model_hash="ab" * 32, seed=2**40, mode="txt2img",
    )  # fmt: skip
    assert rec.status == "pending" and rec.request == req and rec.seed == 2**40 and rec.image_ids == ()
    assert history.get_generation(db, rec.id) == rec
    started = datetime.now(UTC)
    done = history.update_generation(db, rec.id, status="in_progress", started_at=started)
    assert done.status == "in_progress" and done.started_at == started.replace(tzinfo=None)
    image = add_image(db, rec.id)
    final = history.update_generation(
        db, rec.id, status="failed", finished_at=started + timedelta(seconds=2),
        timings={"total_s": 2.0}, error_type="OutOfMemory", error_message="too big",
    )  # fmt: skip
    assert (final.status, final.timings, final.error_type, final.error_message) == (
        "failed", {"total_s": 2.0}, "OutOfMemory", "too big"
    )
    assert final.image_ids == (image,)
    assert history.get_generation(db, rec.id) == final


def test_tz_aware_times_stored_as_utc(db):
    rec = history.record_generation(db, {})
    plus2 = timezone(timedelta(hours=2))
    out = history.update_generation(db, rec.id, started_at=datetime(2026, 5, 1, 14, 0, tzinfo=plus2))
    assert out.started_at == datetime(2026, 5, 1, 12, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "done"},
        {"seed": -1},
        {"seed": "42"},
        {"seed": True},
        {"canvas_version": 1},
        {"mode": "x" * 17},
        {"model_hash": 5},
    ],
)
def test_record_rejects_bad_fields(db, kwargs):
    with pytest.raises(InvalidInput):
        history.record_generation(db, {"prompt": "x"}, **kwargs)
    assert history.list_generations(db).items == []


@pytest.mark.parametrize("request_", [[], "x", {"f": float("nan")}, {"o": object()}])
def test_record_rejects_bad_requests(db, request_):
    with pytest.raises(InvalidInput):
        history.record_generation(db, request_)


def test_update_rejects_bad_fields(db):
    rec = history.record_generation(db, {})
    for kwargs in ({"seed": 3}, {"request": {}}, {"status": "nope"}, {"started_at": "yesterday"},
                   {"timings": [1]}, {"error_type": "x" * 101}):  # fmt: skip
        with pytest.raises(InvalidInput):
            history.update_generation(db, rec.id, **kwargs)
    assert history.get_generation(db, rec.id) == rec


def test_unknown_ids(db):
    for call in (
        lambda: history.get_generation(db, MISSING),
        lambda: history.update_generation(db, MISSING, status="completed"),
        lambda: history.record_generation(db, {}, canvas_id=MISSING),
        lambda: history.record_generation(db, {}, board_id=MISSING),
        lambda: history.history_for_image(db, MISSING),
        lambda: history.history_for_canvas(db, MISSING),
        lambda: history.list_generations(db, board_id=MISSING),
    ):
        with pytest.raises(NotFound, match=MISSING):
            call()


def test_keyset_pages_cover_everything_once_newest_first_with_ties(db):
    board = boards.create_board(db, "b")
    ids = []
    for i in range(23):
        rec = history.record_generation(db, {"i": i}, board_id=board.id if i % 2 else None)
        set_created(db, rec.id, T0 + timedelta(minutes=i // 3))  # groups of 3 share a timestamp
        ids.append(rec.id)
    expected = sorted(ids, key=lambda g: (T0 + timedelta(minutes=ids.index(g) // 3), g), reverse=True)

    def walk(**kw):
        got, cursor, pages = [], None, 0
        while True:
            page = history.list_generations(db, limit=5, cursor=cursor, **kw)
            got += [g.id for g in page.items]
            pages += 1
            if page.next_cursor is None:
                return got, pages
            cursor = page.next_cursor

    got, pages = walk()
    assert got == expected and pages == 5
    odd, _ = walk(board_id=board.id)
    assert odd == [g for g in expected if ids.index(g) % 2]
    # a cursor stays valid while rows change: delete the row it points at, insert a newer one
    first = history.list_generations(db, limit=5)
    with db.write() as s:
        s.delete(s.get(Generation, first.items[-1].id))
    history.record_generation(db, {"new": True})
    second = history.list_generations(db, limit=5, cursor=first.next_cursor)
    assert [g.id for g in second.items] == expected[5:10]


def test_exact_multiple_of_limit_has_no_empty_last_page(db):
    for i in range(4):
        set_created(db, history.record_generation(db, {"i": i}).id, T0 + timedelta(seconds=i))
    page = history.list_generations(db, limit=2)
    page = history.list_generations(db, limit=2, cursor=page.next_cursor)
    assert len(page.items) == 2 and page.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "not-base64!", "bm9waXBl", "MjAyNi0wMS0wMXx4fHk"])
def test_malformed_cursor(db, cursor):
    with pytest.raises(InvalidInput):
        history.list_generations(db, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 501, "10", True])
def test_bad_limit(db, limit):
    with pytest.raises(InvalidInput):
        history.list_generations(db, limit=limit)


def test_history_for_canvas_and_image(db):
    c1 = canvases.save_canvas(db, "one", {})
    c2 = canvases.save_canvas(db, "two", {})
    gens = []
    for i in range(6):
        rec = history.record_generation(db, {"i": i}, canvas_id=c1.id if i < 4 else c2.id, canvas_version=1)
        set_created(db, rec.id, T0 + timedelta(seconds=i))
        gens.append(rec.id)
    loose = history.record_generation(db, {"loose": True})
    page = history.history_for_canvas(db, c1.id, limit=10)
    assert [g.id for g in page.items] == gens[3::-1] and page.next_cursor is None
    page = history.history_for_canvas(db, c1.id, limit=3)
    assert [g.id for g in page.items] == gens[3:0:-1]
    assert [g.id for g in history.history_for_canvas(db, c1.id, 3, page.next_cursor).items] == [gens[0]]

    img = add_image(db, gens[1])
    h = history.history_for_image(db, img)
    assert h.generation.id == gens[1] and h.generation.image_ids == (img,)
    assert [g.id for g in h.canvas_generations] == [gens[3], gens[2], gens[0]]
    assert [g.id for g in history.history_for_image(db, img, limit=1).canvas_generations] == [gens[3]]

    no_canvas = add_image(db, loose.id)
    h = history.history_for_image(db, no_canvas)
    assert h.generation.id == loose.id and h.canvas_generations == []
    uploaded = add_image(db, None)
    assert history.history_for_image(db, uploaded) == history.ImageHistory(uploaded, None, [])


def test_generations_survive_board_and_canvas_deletion(db):
    board = boards.create_board(db, "b")
    canvas = canvases.save_canvas(db, "c", {})
    rec = history.record_generation(db, {}, board_id=board.id, canvas_id=canvas.id)
    boards.delete_board(db, None, board.id, include_images=False)
    canvases.delete_canvas(db, canvas.id)
    out = history.get_generation(db, rec.id)
    assert (out.board_id, out.canvas_id) == (None, None)
    assert [g.id for g in history.list_generations(db).items] == [rec.id]
