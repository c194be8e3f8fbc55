"""Gallery queries at 1k and at 100k images: do pages stay flat as the library grows?

Fills a fresh database per size with image rows only (no files): one bulk executemany INSERT in one
transaction, prompts drawn from a small word list, ~20 boards, created_at spread over a year in random
insertion order. Then times, as the median of several interleaved runs through `db.images.list_images`:
  first   the first page (newest first)
  deep    the page after ~80% of the library (cursor followed there first, then timed)
  search  the first page of a full-text search for one word
and prints each in ms with the ratio 100k/1k. Goal: first and deep page at 100k within 1.5x of 1k.

    python bench/bench_db.py [--sizes 1000 100000] [--runs 21] [--limit 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from db.images import list_images  # noqa: E402
from db.models import Board, Image, new_id  # noqa: E402
from db.session import Database  # noqa: E402

WORDS = (
    "castle sunset forest portrait dragon river mountain city night neon robot cat dog ocean storm"
    " garden ancient futuristic painting photo watercolor misty golden dark bright winter summer"
    " knight wizard flower ruins desert spaceship cyberpunk lighthouse village bridge moon stars"
).split()
MODELS = ("sd15-demo", "sdxl-base", "dreamshaper-8")
SEARCH = "lighthouse"
START = datetime(2025, 1, 1)


def fill(db: Database, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    board_ids = [new_id() for _ in range(20)]
    year_us = 365 * 24 * 3600 * 1_000_000
    rows = []
    for _ in range(n):
        image_id = new_id()
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(4, 12)))
        rows.append(
            {
                "id": image_id,
                "file_name": f"{image_id}.png",
                "board_id": rng.choice(board_ids) if rng.random() < 0.7 else None,
                "width": 512,
                "height": 512,
                "file_size": 400_000,
                "content_hash": image_id * 2,
                "origin": "generated",
                "category": "general",
                "starred": rng.random() < 0.05,
                "created_at": START + timedelta(microseconds=rng.randrange(year_us)),
                "prompt": prompt,
                "negative_prompt": "blurry, low quality" if rng.random() < 0.5 else "",
                "model_name": rng.choice(MODELS),
                "metadata": {"prompt": prompt, "seed": rng.randrange(2**32), "steps": 30, "cfg_scale": 7.0},
                "generation_id": None,
            }
        )
    with db.write() as s:
        s.execute(insert(Board.__table__), [
            {"id": b, "name": f"board {i}", "parent_id": None, "cover_image_id": None, "position": i,
             "archived": False, "created_at": START, "updated_at": START}
            for i, b in enumerate(board_ids)
        ])  # fmt: skip
        s.execute(insert(Image.__table__), rows)  # Core executemany, one transaction
    with db.write_engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def deep_cursor(db: Database, n: int, limit: int) -> str:
    """Follow the cursor (big pages, to get there quickly) until ~80% of the rows are behind it."""
    target = int(n * 0.8)
    seen, cursor = 0, None
    while seen < target:
        page = list_images(db, limit=min(500, target - seen), cursor=cursor)
        seen += len(page.items)
        cursor = page.next_cursor
    return cursor


def prepare(n: int, limit: int, root: Path) -> tuple[Database, dict]:
    """Fill a database and return it with its three queries (each checked once)."""
    db = Database(root)
    t0 = time.perf_counter()
    fill(db, n)
    fill_s = time.perf_counter() - t0
    cursor = deep_cursor(db, n, limit)
    queries = {
        "first": lambda: list_images(db, limit=limit),
        "deep": lambda: list_images(db, limit=limit, cursor=cursor),
        "search": lambda: list_images(db, search=SEARCH, limit=limit),
    }
    pages = {k: q() for k, q in queries.items()}
    assert all(len(p.items) == limit for p in pages.values())
    assert all(SEARCH in r.prompt for r in pages["search"].items)
    with db.read() as s:
        hits = s.connection().exec_driver_sql(
            "SELECT count(*) FROM images_fts WHERE images_fts MATCH ?", (f'"{SEARCH}"*',)
        ).scalar()
    print(f"  {n:>7,} rows ({hits:,} match {SEARCH!r}): filled in {fill_s:.1f} s", flush=True)
    return db, queries


def measure(prepared: dict[int, tuple[Database, dict]], runs: int) -> dict[int, dict[str, list[float]]]:
    """Milliseconds of each query at each size, every run. Sizes and queries interleave run by run, so
    machine noise falls on both sides of a ratio."""
    times: dict[int, dict[str, list[float]]] = {n: {k: [] for k in q} for n, (_, q) in prepared.items()}
    for _ in range(runs):
        for n, (_, queries) in prepared.items():
            for key, query in queries.items():
                t0 = time.perf_counter()
                query()
                times[n][key].append((time.perf_counter() - t0) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None, help="build the databases here and keep them")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        print(f"list_images, page size {args.limit}, median of {args.runs} runs; search {SEARCH!r}")
        prepared = {n: prepare(n, args.limit, base / f"db-{n}") for n in args.sizes}
        results = {n: {k: statistics.median(v) for k, v in per.items()} for n, per in measure(prepared, args.runs).items()}
        for db, _ in prepared.values():
            db.dispose()

    small, big = min(args.sizes), max(args.sizes)
    if small != big:
        print(f"\n{'query':<8}{small:>12,}{big:>12,}{'ratio':>9}")
        for key in ("first", "deep", "search"):
            a, b = results[small][key], results[big][key]
            print(f"{key:<8}{a:>10.2f}ms{b:>10.2f}ms{b / a:>8.2f}x")
        ok = all(results[big][k] <= 1.5 * results[small][k] for k in ("first", "deep"))
        print(f"\nfirst and deep page at {big:,} within 1.5x of {small:,}: {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
