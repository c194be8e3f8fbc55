"""The model registry's records in the database: one registry for every web process and worker.

The same interface as `invoke_core.model_records.JsonRecordStore` (load/save the records, load/save the
per-model options). On first use of a database the root's JSON files, if any, are imported once (a
setting records it), so a single-user data folder moved to PostgreSQL keeps its models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from invoke_core.model_records import JsonRecordStore

from .models import ModelOptionsRow, ModelRow, QueueSetting
from .session import Database

_IMPORTED = "model_registry_imported"


class DatabaseRecordStore:
    def __init__(self, db: Database, import_from: JsonRecordStore | None = None):
        self.db = db
        if import_from is not None:
            self._import_once(import_from)

    def _import_once(self, source: JsonRecordStore) -> None:
        with self.db.write() as s:
            if s.get(QueueSetting, _IMPORTED, with_for_update=True) is not None:
                return
            rows, options = source.load(), source.load_options()
            have = set(s.scalars(select(ModelRow.id)))
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"] not in have:
                    s.add(ModelRow(id=row["id"], record=row))
            for model_id, value in options.items():
                if isinstance(value, dict) and s.get(ModelOptionsRow, model_id) is None:
                    s.add(ModelOptionsRow(id=model_id, options=value))
            s.add(QueueSetting(key=_IMPORTED, value=str(len(rows))))

    def load(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [row.record for row in s.scalars(select(ModelRow).order_by(ModelRow.id))]

    def save(self, rows: list[dict[str, Any]]) -> None:
        """The registry becomes `rows`: one transaction, so readers see the old set or the new one."""
        with self.db.write() as s:
            ids = [row["id"] for row in rows]
            s.execute(delete(ModelRow).where(ModelRow.id.not_in(ids)))
            for row in rows:
                s.merge(ModelRow(id=row["id"], record=row))

    def load_options(self) -> dict[str, Any]:
        with self.db.read() as s:
            return {row.id: row.options for row in s.scalars(select(ModelOptionsRow))}

    def save_options(self, options: dict[str, dict[str, Any]]) -> None:
        with self.db.write() as s:
            s.execute(delete(ModelOptionsRow).where(ModelOptionsRow.id.not_in(list(options))))
            for model_id, value in options.items():
                s.merge(ModelOptionsRow(id=model_id, options=value))
