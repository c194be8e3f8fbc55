"""Queue items held by workers on other machines: claims, leases, heartbeats, lost runs, affinity.

On both databases (the `db_url` fixture): SQLite for the embedded default, PostgreSQL for scale-out.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update

from db import queue
from db.errors import Conflict
from db.models import QueueItem, utcnow
from db.session import Database


@pytest.fixture()
def db(tmp_path, db_url):
    database = Database(tmp_path, url=db_url)
    yield database
    database.dispose()


def jobs(n: int, model_id: str = "demo") -> list[queue.NewJob]:
    return [queue.NewJob(request={"prompt": f"p{i}"}, seed=i, model_id=model_id) for i in range(n)]


def age_heartbeat(db: Database, item_id: int, seconds: float) -> None:
    from datetime import timedelta

    with db.write() as s:
        s.execute(update(QueueItem).where(QueueItem.id == item_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def test_a_claim_names_its_worker_and_opens_an_attempt(db):
    (item,) = queue.enqueue(db, jobs(1))
    claimed = queue.claim_next(db, "gpu-a")
    assert (claimed.id, claimed.worker, claimed.attempts, claimed.status) == (item.id, "gpu-a", 1, "in_progress")
    assert claimed.heartbeat_at is not None
    (attempt,) = queue.list_attempts(db, item.id)
    assert (attempt.worker, attempt.status, attempt.finished_at) == ("gpu-a", "in_progress", None)
    done = queue.finish(db, item.id, "completed", worker="gpu-a")
    assert done.status == "completed" and done.worker == "gpu-a"
    assert [a.status for a in queue.list_attempts(db, item.id)] == ["completed"]


def test_only_the_holder_finishes_or_heartbeats(db):
    (item,) = queue.enqueue(db, jobs(1))
    queue.claim_next(db, "gpu-a")
    assert queue.heartbeat(db, "gpu-a", item.id)
    assert not queue.heartbeat(db, "gpu-b", item.id)
    with pytest.raises(Conflict):
        queue.finish(db, item.id, "completed", worker="gpu-b")
    assert queue.get_item(db, item.id).status == "in_progress"


def test_an_expired_lease_fails_that_run_and_the_item_runs_again_elsewhere(db):
    (item,) = queue.enqueue(db, jobs(1))
    queue.claim_next(db, "gpu-a")
    assert queue.reclaim_expired(db, lease_seconds=30) == []  # a live lease is never taken away
    age_heartbeat(db, item.id, 60)
    (back,) = queue.reclaim_expired(db, lease_seconds=30)
    assert (back.status, back.worker) == ("pending", None)
    again = queue.claim_next(db, "gpu-b")
    assert (again.id, again.worker, again.attempts) == (item.id, "gpu-b", 2)
    assert not queue.heartbeat(db, "gpu-a", item.id)  # the dead worker, should it wake, has lost it
    with pytest.raises(Conflict):
        queue.finish(db, item.id, "completed", worker="gpu-a")
    queue.finish(db, item.id, "completed", worker="gpu-b")
    attempts = queue.list_attempts(db, item.id)
    assert [(a.worker, a.status) for a in attempts] == [("gpu-a", "failed"), ("gpu-b", "completed")]
    assert attempts[0].error_type == "WorkerLost" and "gpu-a stopped responding" in attempts[0].error_message


def test_an_item_that_keeps_losing_its_worker_fails_in_the_end(db):
    (item,) = queue.enqueue(db, jobs(1))
    for n in range(queue.MAX_LOST_ATTEMPTS):
        queue.claim_next(db, f"gpu-{n}")
        age_heartbeat(db, item.id, 60)
        queue.reclaim_expired(db, lease_seconds=30)
    failed = queue.get_item(db, item.id)
    assert failed.status == "failed" and failed.error_type == "WorkerLost"
    assert queue.claim_next(db, "gpu-x") is None
    (retried,) = queue.retry(db, [item.id])
    assert retried.attempts == 0 and retried.status == "pending"


def test_embedded_items_are_never_reclaimed(db):
    (item,) = queue.enqueue(db, jobs(1))
    queue.claim_next(db)  # the in-process worker: no heartbeats, the root lock guards it
    age_heartbeat(db, item.id, 3600)
    assert queue.reclaim_expired(db, lease_seconds=1) == []


def test_a_clean_stop_gives_the_item_back(db):
    (item,) = queue.enqueue(db, jobs(1))
    queue.claim_next(db, "gpu-a")
    back = queue.requeue(db, item.id, worker="gpu-a")
    assert (back.status, back.worker) == ("pending", None)
    assert [a.status for a in queue.list_attempts(db, item.id)] == ["requeued"]


def test_affinity_prefers_a_loaded_model_within_the_window(db):
    queue.enqueue(db, jobs(2, "demo"))
    (flux,) = queue.enqueue(db, jobs(1, "demo-flux"))
    assert queue.claim_next(db, "gpu-a", prefer_models={"demo-flux"}).id == flux.id
    first = queue.claim_next(db, "gpu-a", prefer_models={"demo-flux"})  # none left for it: the oldest
    assert first.id == flux.id - 2
    (urgent,) = queue.enqueue(db, jobs(1, "demo"), priority=5)
    queue.enqueue(db, jobs(1, "demo-flux"))
    assert queue.claim_next(db, "gpu-a", prefer_models={"demo-flux"}).id == urgent.id  # priority first


def test_settings_are_shared(db):
    assert queue.get_setting(db, "paused") is None
    queue.set_setting(db, "paused", "1")
    queue.set_setting(db, "paused", "0")
    assert queue.get_setting(db, "paused") == "0"


def test_concurrent_claims_never_take_one_item_twice(db):
    queue.enqueue(db, jobs(40))
    taken: list[list[int]] = [[] for _ in range(4)]

    def work(n: int) -> None:
        while (item := queue.claim_next(db, f"gpu-{n}")) is not None:
            taken[n].append(item.id)
            queue.finish(db, item.id, "completed", worker=f"gpu-{n}")
            time.sleep(0.001)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [i for part in taken for i in part]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert queue.status_counts(db)["completed"] == 40


def test_a_claim_beside_another_in_flight_still_finds_work(db):
    """While one worker's claim holds its row (mid-transaction), another worker with the same loaded models
    gets the next item, not None: only the chosen row is locked, never the whole affinity window."""
    if db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    first, second = queue.enqueue(db, jobs(2))
    with db.write() as s:
        s.get(QueueItem, first.id, with_for_update=True)  # another worker's claim, not yet committed
        other = queue.claim_next(db, "gpu-b", prefer_models={"demo"})
        assert other is not None and other.id == second.id
        plain = queue.claim_next(db, "gpu-c")
        assert plain is None  # the only pending row left is the locked one: skipped, not waited for
    assert queue.claim_next(db, "gpu-a", prefer_models={"demo"}).id == first.id


def test_an_affinity_claim_locks_only_the_row_it_takes(db):
    """Locking the whole window made a second worker claiming at the same moment skip every row in it and
    take nothing (seen in bench/bench_scale.py: two workers slower than one). Each locking statement of a
    claim names one row."""
    from sqlalchemy import event

    if db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    queue.enqueue(db, jobs(3, "demo"))
    queue.enqueue(db, jobs(3, "demo-flux"))
    locking: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FOR UPDATE" in statement:
            locking.append(statement)

    event.listen(db.write_engine, "before_cursor_execute", record)
    try:
        claimed = queue.claim_next(db, "gpu-a", prefer_models={"demo-flux"})
    finally:
        event.remove(db.write_engine, "before_cursor_execute", record)
    assert claimed.id == 4
    assert locking and all("queue_items.id = " in sql for sql in locking), locking
