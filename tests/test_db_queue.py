"""The persistent queue on real SQLite and PostgreSQL databases: order, transitions, recovery, concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from db import queue
from db.errors import Conflict, InvalidInput, NotFound
from db.models import Generation
from db.session import Database


@pytest.fixture()
def db(tmp_path, db_url):
    database = Database(tmp_path, url=db_url)
    yield database
    database.dispose()


def jobs(n: int, **kw) -> list[queue.NewJob]:
    return [queue.NewJob(request={"prompt": f"p{i}"}, seed=i, mode="txt2img", **kw) for i in range(n)]


def test_enqueue_makes_one_item_and_generation_per_job(db):
    items = queue.enqueue(db, jobs(3))
    assert [i.position for i in items] == [0, 1, 2]
    assert len({i.batch_id for i in items}) == 1
    assert all(i.status == "pending" for i in items)
    with db.read() as s:
        assert len(s.scalars(select(Generation)).all()) == 3
    with pytest.raises(InvalidInput):
        queue.enqueue(db, [])


def test_claim_takes_highest_priority_then_oldest(db):
    low = queue.enqueue(db, jobs(2))
    high = queue.enqueue(db, jobs(1), priority=5)
    order = [queue.claim_next(db).id for _ in range(3)]
    assert order == [high[0].id, low[0].id, low[1].id]
    assert queue.claim_next(db) is None
    assert queue.get_item(db, order[0]).status == "in_progress"


def test_transitions_are_guarded_and_mirrored_on_the_generation(db):
    [item] = queue.enqueue(db, jobs(1))
    with pytest.raises(Conflict):
        queue.finish(db, item.id, "completed")  # not started
    claimed = queue.claim_next(db)
    done = queue.finish(db, claimed.id, "failed", "OutOfMemoryError", "CUDA out of memory")
    assert (done.status, done.error_type) == ("failed", "OutOfMemoryError") and done.finished_at
    with db.read() as s:
        generation = s.get(Generation, item.generation_id)
        assert (generation.status, generation.error_message) == ("failed", "CUDA out of memory")
    with pytest.raises(Conflict):
        queue.finish(db, claimed.id, "completed")
    with pytest.raises(InvalidInput):
        queue.finish(db, claimed.id, "pending")
    [again] = queue.retry(db, [claimed.id])
    assert again.status == "pending" and again.error_type is None
    with pytest.raises(Conflict):
        queue.retry(db, [claimed.id])


def test_cancel_pending_and_running(db):
    a, b = queue.enqueue(db, jobs(2))
    assert queue.cancel(db, b.id).status == "canceled"
    running = queue.claim_next(db)
    assert running.id == a.id
    assert queue.cancel(db, a.id).status == "in_progress"  # the worker stops it
    queue.finish(db, a.id, "canceled")
    with pytest.raises(Conflict):
        queue.cancel(db, a.id)
    with pytest.raises(NotFound):
        queue.cancel(db, 12345)


def test_cancel_all_clear_counts(db):
    queue.enqueue(db, jobs(4))
    first = queue.claim_next(db)
    assert len(queue.cancel_all_pending(db)) == 3
    queue.finish(db, first.id, "completed")
    assert queue.status_counts(db) == {"pending": 0, "in_progress": 0, "completed": 1, "failed": 0, "canceled": 3}
    assert queue.clear_finished(db) == 4
    assert queue.list_items(db) == []


def test_recover_interrupted_fails_in_progress_items(tmp_path):
    db = Database(tmp_path)
    queue.enqueue(db, jobs(2))
    running = queue.claim_next(db)
    db.dispose()
    reopened = Database(tmp_path)  # as after a crash
    assert queue.recover_interrupted(reopened) == [running.id]
    item = queue.get_item(reopened, running.id)
    assert item.status == "failed" and "interrupted" in item.error_message
    assert queue.status_counts(reopened)["pending"] == 1
    reopened.dispose()


def test_list_items_filters_and_pages(db):
    items = queue.enqueue(db, jobs(5))
    page = queue.list_items(db, limit=2)
    rest = queue.list_items(db, limit=10, after_id=page[-1].id)
    assert [i.id for i in page + rest] == [i.id for i in items]
    assert queue.list_items(db, status="canceled") == []
    with pytest.raises(InvalidInput):
        queue.list_items(db, status="bogus")


def test_concurrent_workers_never_claim_the_same_item(db):
    queue.enqueue(db, jobs(40))
    claimed: list[int] = []
    lock = threading.Lock()

    def worker():
        while (item := queue.claim_next(db)) is not None:
            with lock:
                claimed.append(item.id)
            queue.finish(db, item.id, "completed")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 40 and len(set(claimed)) == 40
    assert queue.status_counts(db)["completed"] == 40


def test_requeue_puts_a_running_item_back(db):
    [item] = queue.enqueue(db, jobs(1))
    with pytest.raises(Conflict):
        queue.requeue(db, item.id)
    queue.claim_next(db)
    assert queue.requeue(db, item.id).status == "pending"
    assert queue.claim_next(db).id == item.id


def test_unsigned_32_bit_seeds_round_trip(db):
    (item,) = queue.enqueue(db, [queue.NewJob(request={}, seed=(1 << 32) - 1)])
    with db.read() as s:
        assert s.get(Generation, item.generation_id).seed == (1 << 32) - 1
