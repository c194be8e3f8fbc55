"""Live painting's latency in the real app, headless Chromium, the demo model (its LCM live settings).

Starts `invoke-canvas` on a free loopback port (temporary data root), opens the app, sets a --box px
generation box over a painted layer, turns Live on (the first render, which loads the model, is left
out), then paints --strokes brush strokes one at a time, each waiting for its render to be on screen.
Per stroke, from the end of the stroke (the pointerup's time, in the page) to the render drawn over the
box (the renderer's live slot drawn, in the page):

  debounce   stroke end -> the live job is built (the web waits `live.debounce_ms` after the last change)
  request    building the job (the layer's PNG export and upload) and POST /live/jobs
  queue      the item's wait in the queue: created_at -> started_at (the queue item's timestamps)
  run        started_at -> finished_at: compile, denoise, decode, PNG save ("denoise": the engine's own
             timing of its denoising steps, a part of it)
  deliver    the rest: the status event, the browser loading the image and drawing it (the queue wait starts
             inside the request, when the item is committed: the two overlap by the reply's few ms)

Prints median and p95 of each and of the total, and the share of the total spent queueing (queue /
total, per stroke, then its median); writes the figures as JSON (--json, default
bench/results/live.json).

    python bench/live.py [--strokes 20] [--box 256] [--json bench/results/live.json]

Numbers are from this machine's CPUs and Chromium's software rendering: compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser_helpers import VIEWPORT, App, fill_rect, set_up_job
from browser_session import browser_session

STROKE_ENDS = """() => {
  window.__strokeEnds = [];
  window.addEventListener('pointerup', () => window.__strokeEnds.push(performance.now()), { capture: true });
}"""

CAUGHT_UP = """(rev) => { const s = window.__app.live.state();
  return s.on && s.revision > rev && s.phase === 'done' && s.current && s.current.revision === s.revision; }"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def measure(args) -> dict:
    with browser_session() as session:
        app = App(session.page, session.server, session.root, "bench-live").open()
        server = session.server
        set_up_job(app, "a lighthouse on a cliff at dusk", width=args.box, height=args.box)
        fill_rect(app, -8, -8, args.box + 8, args.box + 8, color="#4a78c8")
        app.js(STROKE_ENDS)
        app.click("live-toggle")
        app.wait(CAUGHT_UP, 0, timeout=120_000)  # the first render (the model loads): not measured
        app.page.locator('[data-testid="canvas-stage"]').focus()
        app.key("b")
        app.tid("brush-color").fill("#f2d35b")
        rows = []
        for k in range(args.strokes):
            before = app.js("() => window.__app.live.state().revision")
            y = 8 + (k * 13) % (args.box - 16)
            app.drag([(8, y), (args.box / 2, y + 6), (args.box - 8, y)], steps=4)
            app.wait(CAUGHT_UP, before, timeout=60_000)
            state = app.js("() => window.__app.live.state()")
            end = app.js("() => window.__strokeEnds.at(-1)")
            t = next(e for e in state["timeline"] if e["revision"] == state["current"]["revision"])
            item = server.get(f"/api/v1/queue/items/{t['item_id']}").json()
            timings = server.get(f"/api/v1/history/{item['generation_id']}").json().get("timings") or {}
            total = t["shownAt"] - end
            queue_s = seconds_between(item["created_at"], item["started_at"]) * 1000
            run_s = seconds_between(item["started_at"], item["finished_at"]) * 1000
            debounce = t["sentAt"] - end
            request = t["queuedAt"] - t["sentAt"]
            rows.append({
                "total": total, "debounce": debounce, "request": request, "queue": queue_s, "run": run_s,
                "deliver": total - debounce - request - queue_s - run_s, "queue_share": queue_s / total,
                "denoise": 1000 * timings.get("denoise", 0.0),
                "item_id": item["id"], "revision": t["revision"],
            })
        config = server.get("/api/v1/config").json()["live"]
        demo = next(m for m in server.get("/api/v1/models").json() if m["id"] == "demo")
        return {
            "strokes": rows, "box": args.box, "debounce_ms": config["debounce_ms"], "settings": demo["live_defaults"],
            "chromium": session.browser.version, "errors": list(session.errors),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strokes", type=int, default=20)
    ap.add_argument("--box", type=int, default=256, help="generation box side, px (a multiple of 8)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "live.json")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    result = measure(args)
    result["load_average"] = [load_before, os.getloadavg()[0]]
    rows = result["strokes"]
    s = result["settings"]
    print(f"live latency, demo model {args.box}x{args.box}, {s['scheduler']} {s['steps']} steps x strength {s['strength']},"
          f" CFG {s['cfg_scale']}, debounce {result['debounce_ms']} ms; {len(rows)} strokes; chromium {result['chromium']},"
          f" viewport {VIEWPORT['width']}x{VIEWPORT['height']}")
    print(f"{'stage':<12}{'median ms':>12}{'p95 ms':>12}")
    summary = {}
    for key in ("debounce", "request", "queue", "run", "denoise", "deliver", "total"):
        values = [r[key] for r in rows]
        summary[key] = {"median": statistics.median(values), "p95": percentile(values, 0.95)}
        name = "  denoise" if key == "denoise" else key  # a part of run: the engine's denoising steps
        print(f"{name:<12}{summary[key]['median']:>12.1f}{summary[key]['p95']:>12.1f}")
    shares = [r["queue_share"] for r in rows]
    summary["queue_share"] = {"median": statistics.median(shares), "p95": percentile(shares, 0.95)}
    print(f"queueing share of the total: median {100 * summary['queue_share']['median']:.1f} %,"
          f" p95 {100 * summary['queue_share']['p95']:.1f} %")
    result["summary"] = summary
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"1-minute load average before / after: {load_before:.2f} / {result['load_average'][1]:.2f}"
          f" on {os.cpu_count()} CPUs (other work on the machine slows `run`)")
    print(f"figures: {args.json}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
