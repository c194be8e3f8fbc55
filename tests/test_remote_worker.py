"""A remote worker's own rules, in this process (its Celery loop left out; each message is one `run_next`):
it finishes only what it holds, drops a job whose lease it lost, waits while paused, and wakes itself for
work nobody announced. Real PostgreSQL and Redis."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from db import queue
from db.models import QueueItem, utcnow
from server.config import load_config
from server.jobs import split_batch
from server.schemas import JobDocumentIn


@pytest.fixture()
def worker(tmp_path, pg_server, pg_template, redis_server):
    import redis

    from conftest import new_pg_database
    from server.scale.worker_process import RemoteWorker

    redis.Redis.from_url(redis_server.url).flushdb()
    cfg = load_config({"root": tmp_path, "device": "cpu", "database_url": new_pg_database(pg_server, pg_template),
                       "broker_url": redis_server.url, "lease_seconds": 1.0})
    w = RemoteWorker(cfg, "gpu-t")
    yield w
    w.s.db.dispose()


def enqueue(w, steps: int = 2) -> int:
    document = JobDocumentIn.model_validate(
        {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "a harbour", "steps": steps, "model": "demo"}}
    )
    (item,) = queue.enqueue(w.s.db, split_batch(document, w.s.registry))
    return item.id


def test_a_message_runs_the_next_item_to_completion(worker):
    item_id = enqueue(worker)
    assert worker.run_next() == item_id
    done = queue.get_item(worker.s.db, item_id)
    assert (done.status, done.worker, done.attempts) == ("completed", "gpu-t", 1)
    assert worker.run_next() is None  # a spare message finds no work


def test_paused_it_takes_nothing(worker):
    item_id = enqueue(worker)
    queue.set_setting(worker.s.db, "paused", "1")
    assert worker.run_next() is None
    assert queue.get_item(worker.s.db, item_id).status == "pending"
    queue.set_setting(worker.s.db, "paused", "0")
    assert worker.run_next() == item_id


def test_a_lost_lease_stops_the_job_and_drops_its_result(worker):
    item_id = enqueue(worker, steps=400)
    runner = threading.Thread(target=worker.run_next)
    runner.start()
    deadline = time.monotonic() + 60
    while worker.current is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # as if this worker had been cut off: its lease expires, another worker takes the item over
    with worker.s.db.write() as s:
        s.execute(update(QueueItem).where(QueueItem.id == item_id).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
    assert [i.id for i in queue.reclaim_expired(worker.s.db, 1.0)] == [item_id]
    assert queue.claim_next(worker.s.db, "gpu-z").id == item_id
    worker.beat()  # its next heartbeat finds the item gone
    runner.join(60)
    assert not runner.is_alive()
    item = queue.get_item(worker.s.db, item_id)
    assert (item.status, item.worker) == ("in_progress", "gpu-z")  # untouched: gpu-z's to finish
    with worker.s.db.read() as s:
        from db.models import Image

        assert s.query(Image).count() == 0  # no image from the run that lost its lease


def test_an_idle_worker_wakes_itself_for_unannounced_work(worker):
    from server.scale import broker

    client = broker.redis_client(worker.cfg.broker_url)
    enqueue(worker)  # queued with no message sent (as after a Redis restart)
    assert client.llen(broker.CELERY_QUEUE) == 0
    worker.beat()
    worker.beat()
    assert client.llen(broker.CELERY_QUEUE) == 1
    assert {w["name"] for w in broker.live_workers(client)} == {"gpu-t"}


def test_keep_loaded_set_anywhere_reaches_the_worker_at_its_next_message(worker):
    assert "demo-inpaint" not in worker.engine.cache.stats().loaded
    worker.s.registry.set_options("demo-inpaint", keep_loaded=True)  # as the Memory dialog of any web process
    assert worker.run_next() is None  # no work, but it looked
    assert "demo-inpaint" in worker.engine.cache.stats().loaded and "demo-inpaint" in worker.engine.cache.resident
    worker.s.registry.set_options("demo-inpaint", keep_loaded=False)
    worker.run_next()
    assert "demo-inpaint" not in worker.engine.cache.resident  # evictable again
