"""The live lane's clean-up (db/live_cleanup.py) against the size of the history around it.

A live job's end purges the superseded live generations and the layer assets only they named; an asset
any other generation's request names stays, which is a text search of requests. This measures one purge
(--superseded superseded live jobs, one layer asset each) on a SQLite database holding --history older
ordinary generations (each request naming its own layer assets, ~2 KB of JSON, as the web's do), against
the same purge on an empty history, in one process: the ratio says how the clean-up grows with history.

    python bench/bench_live_cleanup.py [--history 5000] [--superseded 8] [--rounds 5]

Prints the median purge time of each and their ratio (history / empty); 1.0x: it does not grow.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from db import images as db_images  # noqa: E402
from db import live_cleanup, queue  # noqa: E402
from db.assets import AssetStore  # noqa: E402
from db.models import Generation, utcnow  # noqa: E402
from db.queue import NewJob  # noqa: E402
from db.session import Database  # noqa: E402

LANE = 1000  # server/live.py LIVE_PRIORITY (not imported: the server package pulls in Flask)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _request(asset_ids: list[str]) -> dict:
    layers = [{"id": f"layer-{n}", "kind": "raster", "image_id": a, "x": 0, "y": 0, "opacity": 1.0} for n, a in enumerate(asset_ids)]
    return {"bbox": {"x": 0, "y": 0, "width": 512, "height": 512}, "layers": layers,
            "params": {"prompt": "a lighthouse on a cliff at dusk, oil painting, " * 12, "steps": 20, "cfg_scale": 7.0}}


def _fill_history(db: Database, n: int) -> None:
    """`n` finished ordinary generations a day old, each naming three assets that are not in the lane."""
    jobs = [NewJob(request=_request([uuid.uuid4().hex for _ in range(3)])) for _ in range(n)]
    for start in range(0, n, 500):
        queue.enqueue(db, jobs[start : start + 500])
    with db.write() as s:
        s.query(Generation).update({Generation.created_at: utcnow() - timedelta(days=1), Generation.status: "completed"})


def _one_purge(db: Database, store: AssetStore, superseded: int, png: bytes) -> float:
    for _ in range(superseded + 1):  # each supersedes the last; the newest stays
        layer = db_images.add_image(db, store, png, category="layer")
        queue.enqueue_superseding(db, NewJob(request=_request([layer.id])), LANE)
    started = time.perf_counter()
    purged = live_cleanup.purge_lane(db, store, LANE)
    took = time.perf_counter() - started
    assert len(purged.image_ids) in (superseded, superseded + 1), purged  # + the last round's newest
    return took


def measure(history: int, superseded: int, rounds: int) -> float:
    png = _png()
    with tempfile.TemporaryDirectory() as tmp:
        db, store = Database(Path(tmp)), AssetStore(Path(tmp))
        try:
            _fill_history(db, history)
            _one_purge(db, store, superseded, png)  # warm
            return statistics.median(_one_purge(db, store, superseded, png) for _ in range(rounds))
        finally:
            db.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=int, default=5000)
    ap.add_argument("--superseded", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    empty = measure(0, args.superseded, args.rounds)
    full = measure(args.history, args.superseded, args.rounds)
    print(f"purge of {args.superseded} superseded live jobs: empty history {empty * 1000:.1f} ms, "
          f"{args.history} older generations {full * 1000:.1f} ms: {full / empty:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
