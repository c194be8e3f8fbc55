"""The model registry in the shared database (scale-out): the same registry behaviour as the JSON files,
one registry for every process, and the data folder's JSON imported once on the first start."""

from __future__ import annotations

import pytest

from db.model_store import DatabaseRecordStore
from db.session import Database
from invoke_core.errors import ModelInstallError, ModelNotFoundError
from invoke_core.model_records import JsonRecordStore, ModelRecord, ModelRegistry


@pytest.fixture()
def db(tmp_path, db_url):
    database = Database(tmp_path / "root", url=db_url)
    yield database
    database.dispose()


def record(name: str, path: str = "/models/x") -> ModelRecord:
    return ModelRecord(id="", name=name, family="sd-1", kind="main", format="diffusers", path=path, hash="h" * 64, size=5)


def test_add_list_options_and_remove_through_the_database(db, tmp_path):
    registry = ModelRegistry(tmp_path / "root", DatabaseRecordStore(db))
    first = registry.add(record("Dream Shaper"))
    second = registry.add(record("Dream Shaper"))
    assert (first.id, second.id) == ("dream-shaper", "dream-shaper-2")
    other = ModelRegistry(tmp_path / "root", DatabaseRecordStore(db))  # another process, same database
    assert [r.id for r in other.list() if not r.builtin] == ["dream-shaper", "dream-shaper-2"]
    assert other.default_model_id() == "dream-shaper"
    other.set_options("dream-shaper", keep_loaded=True, weights="fp8")
    assert registry.options("dream-shaper") == {"keep_loaded": True, "weights": "fp8"}
    assert registry.resident_ids() == {"dream-shaper"}
    registry.remove("dream-shaper")
    assert [r.id for r in other.list() if not r.builtin] == ["dream-shaper-2"]
    with pytest.raises(ModelNotFoundError):
        other.get("dream-shaper")
    with pytest.raises(ModelInstallError):
        other.remove("demo")  # built in


def test_the_folders_json_registry_is_imported_once(db, tmp_path):
    root = tmp_path / "root"
    json_registry = ModelRegistry(root)  # the single-user default's files
    json_registry.add(record("Old Friend"))
    json_registry.set_options("old-friend", keep_loaded=True)
    imported = ModelRegistry(root, DatabaseRecordStore(db, import_from=JsonRecordStore(root / "models")))
    assert [r.id for r in imported.list() if not r.builtin] == ["old-friend"]
    assert imported.options("old-friend")["keep_loaded"] is True
    imported.remove("old-friend")
    again = ModelRegistry(root, DatabaseRecordStore(db, import_from=JsonRecordStore(root / "models")))
    assert [r.id for r in again.list() if not r.builtin] == []  # removed stays removed: imported only once
