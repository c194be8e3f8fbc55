"""What the web processes and the workers share on Redis: the Celery app, wake-ups, cancels, presence.

Keys are under PREFIX; the Socket.IO message queue uses its own channel (SOCKETIO_CHANNEL).
"""

from __future__ import annotations

import json
import time
from typing import Any

PREFIX = "invoke_canvas"
CELERY_QUEUE = "invoke_canvas.jobs"
RUN_NEXT = "invoke_canvas.run_next"  # the task: "claim and run the next queue item"
SOCKETIO_CHANNEL = "invoke_canvas.socketio"
# A message that was taken and never acknowledged (its worker died) is delivered again after this; the
# lease has long since handed the item to another worker by then, so a second delivery finds no work.
VISIBILITY_TIMEOUT_S = 600
CANCEL_TTL_S = 24 * 3600


def make_celery(broker_url: str):
    from celery import Celery

    app = Celery("invoke_canvas", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=CELERY_QUEUE,
        task_acks_late=True,  # acknowledged once the job is over: a worker killed mid-job loses no message
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy worker holds no second message another worker could run
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


def redis_client(broker_url: str):
    import redis

    return redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)


def wake(celery: Any, count: int = 1) -> None:
    """Tell the workers that `count` items may be waiting (each message runs at most one)."""
    for _ in range(max(0, count)):
        celery.send_task(RUN_NEXT, queue=CELERY_QUEUE)


def cancel_key(item_id: int) -> str:
    return f"{PREFIX}:cancel:{item_id}"


def request_cancel(client: Any, item_id: int) -> None:
    client.set(cancel_key(item_id), b"1", ex=CANCEL_TTL_S)


def forget_cancel(client: Any, item_ids) -> None:
    keys = [cancel_key(i) for i in item_ids]
    if keys:
        client.delete(*keys)


def cancel_requested(client: Any, item_id: int) -> bool:
    return bool(client.exists(cancel_key(item_id)))


def _worker_key(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def announce_worker(client: Any, info: dict[str, Any], ttl_s: float) -> None:
    """A worker's presence, renewed with each heartbeat; gone `ttl_s` after its last one."""
    client.set(_worker_key(info["name"]), json.dumps({**info, "seen": time.time()}), px=int(ttl_s * 1000))


def retire_worker(client: Any, name: str) -> None:
    client.delete(_worker_key(name))


def live_workers(client: Any) -> list[dict[str, Any]]:
    found = []
    for key in client.scan_iter(match=f"{PREFIX}:worker:*", count=100):
        raw = client.get(key)
        if raw:
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
    return sorted(found, key=lambda w: w.get("name", ""))
