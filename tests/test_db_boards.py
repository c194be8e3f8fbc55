"""Boards on a real SQLite file: nesting, ordering, archiving, covers, deletion with and without images."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db import boards
from db.errors import Conflict, InvalidInput, NotFound
from db.models import Board, Generation, Image, new_id
from db.session import Database

MISSING = "0" * 32


@pytest.fixture
def db(tmp_path, db_url):
    database = Database(tmp_path / "root", url=db_url)
    yield database
    database.dispose()


def add_row(db: Database, board_id: str | None = None, **kw) -> str:
    """An image row without a file (enough where only rows matter)."""
    image_id = new_id()
    with db.write() as s:
        s.add(Image(id=image_id, file_name=f"{image_id}.png", width=8, height=8, file_size=10,
                    content_hash="h" * 64, board_id=board_id, **kw))  # fmt: skip
    return image_id


def names(nodes) -> list:
    return [(n.record.name, names(n.children)) for n in nodes]


def snapshot(db: Database) -> list[tuple]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(select(Board.id, Board.parent_id, Board.position).order_by(Board.id))]


# --- names and ids -------------------------------------------------------------------------------


def test_create_strips_name_and_appends_at_end(db):
    a = boards.create_board(db, "  Portraits \n")
    b = boards.create_board(db, "Landscapes")
    assert a.name == "Portraits" and a.parent_id is None and a.image_count == 0 and not a.archived
    assert (a.position, b.position) == (0, 1)
    assert boards.get_board(db, a.id) == a


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "x" * 201, None, 5])
def test_bad_names_rejected(db, bad):
    with pytest.raises(InvalidInput):
        boards.create_board(db, bad)
    board = boards.create_board(db, "ok")
    with pytest.raises(InvalidInput):
        boards.rename_board(db, board.id, bad)
    assert boards.get_board(db, board.id).name == "ok"
    assert len(snapshot(db)) == 1


def test_name_of_200_chars_is_fine_and_rename_works(db):
    board = boards.create_board(db, "x" * 200)
    renamed = boards.rename_board(db, board.id, " y ")
    assert renamed.name == "y" and renamed.updated_at >= board.updated_at


def test_unknown_ids_raise_not_found_naming_the_id(db):
    board = boards.create_board(db, "b")
    calls = [
        lambda: boards.get_board(db, MISSING),
        lambda: boards.rename_board(db, MISSING, "x"),
        lambda: boards.create_board(db, "x", parent_id=MISSING),
        lambda: boards.move_board(db, MISSING, None),
        lambda: boards.move_board(db, board.id, MISSING),
        lambda: boards.reorder_boards(db, MISSING, []),
        lambda: boards.set_archived(db, MISSING, True),
        lambda: boards.set_cover(db, MISSING, None),
        lambda: boards.set_cover(db, board.id, MISSING),
        lambda: boards.board_with_descendants(db, MISSING),
        lambda: boards.delete_board(db, None, MISSING, include_images=False),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=MISSING):
            call()
    assert snapshot(db) == [(board.id, None, 0)]


# --- nesting, moving, ordering ---------------------------------------------------------------------


def test_nesting_tree_and_descendants(db):
    root = boards.create_board(db, "root")
    b = boards.create_board(db, "b", root.id)
    a = boards.create_board(db, "a", root.id)
    leaf = boards.create_board(db, "leaf", a.id)
    other = boards.create_board(db, "other")
    assert names(boards.board_tree(db)) == [("root", [("b", []), ("a", [("leaf", [])])]), ("other", [])]
    assert boards.board_with_descendants(db, root.id) == [root.id, b.id, a.id, leaf.id]
    assert boards.board_with_descendants(db, leaf.id) == [leaf.id]
    assert boards.board_with_descendants(db, other.id) == [other.id]


def test_tree_ties_on_position_break_by_name(db):
    boards.create_board(db, "zeta")
    boards.create_board(db, "alpha")
    with db.write() as s:
        for board in s.scalars(select(Board)):
            board.position = 3
    assert [n.record.name for n in boards.board_tree(db)] == ["alpha", "zeta"]


def test_move_nests_unnests_and_closes_gaps(db):
    p = boards.create_board(db, "p")
    x, y, z = (boards.create_board(db, n) for n in "xyz")
    moved = boards.move_board(db, x.id, p.id)
    assert moved.parent_id == p.id and moved.position == 0
    assert [(n.record.name, n.record.position) for n in boards.board_tree(db)] == [("p", 0), ("y", 1), ("z", 2)]
    boards.move_board(db, y.id, p.id, position=0)
    assert names(boards.board_tree(db)) == [("p", [("y", []), ("x", [])]), ("z", [])]
    back = boards.move_board(db, x.id, None, position=1)
    assert back.parent_id is None
    assert names(boards.board_tree(db)) == [("p", [("y", [])]), ("x", []), ("z", [])]
    assert [n.record.position for n in boards.board_tree(db)] == [0, 1, 2]
    # a position past the end means last; reordering within the same parent
    boards.move_board(db, p.id, None, position=99)
    assert [n.record.name for n in boards.board_tree(db)] == ["x", "z", "p"]
    with pytest.raises(InvalidInput):
        boards.move_board(db, p.id, None, position=-1)


def test_move_under_itself_or_a_descendant_conflicts_and_changes_nothing(db):
    a = boards.create_board(db, "a")
    b = boards.create_board(db, "b", a.id)
    c = boards.create_board(db, "c", b.id)
    boards.create_board(db, "d")
    before = snapshot(db)
    for target in (a.id, b.id, c.id):
        with pytest.raises(Conflict):
            boards.move_board(db, a.id, target, position=0)
    with pytest.raises(Conflict):
        boards.move_board(db, b.id, c.id)
    assert snapshot(db) == before


def test_reorder_requires_exactly_the_children(db):
    p = boards.create_board(db, "p")
    kids = [boards.create_board(db, n, p.id) for n in "abc"]
    top = boards.create_board(db, "top")
    ids = [k.id for k in kids]
    out = boards.reorder_boards(db, p.id, [ids[2], ids[0], ids[1]])
    assert [(r.name, r.position) for r in out] == [("c", 0), ("a", 1), ("b", 2)]
    assert [n.record.name for n in boards.board_tree(db)[0].children] == ["c", "a", "b"]
    before = snapshot(db)
    for bad in ([ids[0], ids[1]], ids + [top.id], [ids[0], ids[0], ids[1], ids[2]], ids + [MISSING], []):
        with pytest.raises(InvalidInput):
            boards.reorder_boards(db, p.id, bad)
    assert snapshot(db) == before
    out = boards.reorder_boards(db, None, [top.id, p.id])
    assert [r.name for r in out] == ["top", "p"]
    assert boards.reorder_boards(db, kids[0].id, []) == []


def test_archived_boards_and_their_subtrees_hidden_on_request(db):
    a = boards.create_board(db, "a")
    boards.create_board(db, "a1", a.id)
    boards.create_board(db, "b")
    assert boards.set_archived(db, a.id, True).archived
    assert names(boards.board_tree(db, include_archived=False)) == [("b", [])]
    assert names(boards.board_tree(db)) == [("a", [("a1", [])]), ("b", [])]
    assert not boards.set_archived(db, a.id, False).archived


def test_cover_and_image_counts(db):
    a = boards.create_board(db, "a")
    child = boards.create_board(db, "child", a.id)
    image = add_row(db, a.id)
    add_row(db, a.id)
    add_row(db, child.id)
    add_row(db, None)
    rec = boards.set_cover(db, a.id, image)
    assert rec.cover_image_id == image and rec.image_count == 2
    assert boards.set_cover(db, a.id, None).cover_image_id is None
    tree = boards.board_tree(db)
    assert tree[0].record.image_count == 2 and tree[0].children[0].record.image_count == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 5), st.none() | st.integers(0, 6)), max_size=25))
def test_random_moves_keep_a_forest(moves):
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp))
        ids = [boards.create_board(db, f"b{i}").id for i in range(6)]
        for src, dst, pos in moves:
            parent = None if dst < 0 else ids[dst]
            before = snapshot(db)
            try:
                boards.move_board(db, ids[src], parent, pos)
            except Conflict:
                assert snapshot(db) == before
                assert parent in boards.board_with_descendants(db, ids[src])
        seen: list[str] = []

        def walk(nodes, parent):
            assert [n.record.position for n in nodes] == list(range(len(nodes)))  # dense, in order
            for n in nodes:
                assert n.record.parent_id == parent
                seen.append(n.record.id)
                walk(n.children, n.record.id)

        walk(boards.board_tree(db), None)
        assert sorted(seen) == sorted(ids)  # every board reachable once: no cycle, nothing lost
        db.dispose()


# --- deletion ----------------------------------------------------------------------------------


def test_delete_without_images_uncategorises_them_and_removes_sub_boards(db):
    a = boards.create_board(db, "a")
    b = boards.create_board(db, "b", a.id)
    c = boards.create_board(db, "c", b.id)
    keep = boards.create_board(db, "keep")
    images = [add_row(db, a.id), add_row(db, b.id), add_row(db, c.id)]
    kept_image = add_row(db, keep.id)
    with db.write() as s:
        gen = Generation(request={}, board_id=b.id)
        s.add(gen)
        s.flush()
        gen_id = gen.id
    result = boards.delete_board(db, None, a.id, include_images=False)
    assert set(result.board_ids) == {a.id, b.id, c.id}
    assert (result.images_deleted, result.images_uncategorised) == (0, 3)
    assert names(boards.board_tree(db)) == [("keep", [])]
    with db.read() as s:
        rows = dict(s.execute(select(Image.id, Image.board_id)).all())
        assert rows == {images[0]: None, images[1]: None, images[2]: None, kept_image: keep.id}
        assert s.get(Generation, gen_id).board_id is None
    assert boards.get_board(db, keep.id).position == 1  # siblings are not renumbered by a delete


def test_delete_empty_leaf_board(db):
    a = boards.create_board(db, "a")
    b = boards.create_board(db, "b", a.id)
    assert boards.delete_board(db, None, b.id, include_images=True).board_ids == (b.id,)
    assert names(boards.board_tree(db)) == [("a", [])]


def png_bytes(seed: int) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (4 + seed, 4), (seed * 20 % 256, 10, 200)).save(buf, "PNG")
    return buf.getvalue()


def test_delete_with_images_removes_rows_and_files_of_the_whole_subtree(db, tmp_path):
    from db import images as images_mod
    from db.assets import AssetStore

    store = AssetStore(tmp_path / "root")
    a = boards.create_board(db, "a")
    b = boards.create_board(db, "b", a.id)
    keep = boards.create_board(db, "keep")
    doomed = [images_mod.add_image(db, store, png_bytes(i), board_id=bid) for i, bid in enumerate([a.id, b.id, b.id])]
    kept = images_mod.add_image(db, store, png_bytes(7), board_id=keep.id)
    loose = images_mod.add_image(db, store, png_bytes(8))
    boards.set_cover(db, keep.id, doomed[0].id)  # a cover elsewhere pointing into the subtree
    files_before = {p.name for p in (tmp_path / "root").rglob("*") if p.is_file()}
    result = boards.delete_board(db, store, a.id, include_images=True)
    assert (result.images_deleted, result.images_uncategorised) == (3, 0)
    assert set(result.board_ids) == {a.id, b.id}
    with db.read() as s:
        assert set(s.scalars(select(Image.id))) == {kept.id, loose.id}
        assert s.scalar(select(func.count()).select_from(Board)) == 1
    assert boards.get_board(db, keep.id).cover_image_id is None
    files_after = {p.name for p in (tmp_path / "root").rglob("*") if p.is_file()}
    gone = files_before - files_after
    for img in doomed:
        assert any(img.id in name for name in gone), f"file of {img.id} still there"
    for img in (kept, loose):
        assert any(img.id in name for name in files_after)
