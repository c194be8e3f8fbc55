"""Scale-out: the queue's jobs on `invoke-canvas worker` processes on any machine, through Celery with Redis.

The queue item row (db/queue.py) stays the source of truth: a Celery message only says "there is work";
the worker that receives it claims the next item in the database (priority order, affinity to its loaded
models, SKIP LOCKED), holds it with heartbeats, and finishes it. Cancels reach it through Redis between
denoising steps; events go out through Flask-SocketIO's Redis message queue, so every web process emits
what the workers publish.
"""
