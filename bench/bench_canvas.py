"""The canvas in headless Chromium: frame times while panning and zooming over big layers, brush latency.

Starts `invoke-canvas` on a free loopback port (temporary data root), opens web/bench/canvas-bench.html
(the canvas modules alone: store, history, Konva stage, renderer, tools; no panels, no autosave) in
Debian Chromium, then

  (1) creates --layers raster layers of --side x --side opaque noise (canvas.pixels.importLayer) and
      fits them in view;
  (2) --frames animation frames, each changing the view through the viewport API (a pan along a
      circle and a zoom sweeping 0.1x .. 2x): frame interval (requestAnimationFrame timestamps) and
      the renderer's own draw time per frame, median and p95;
  (3) one brush stroke of --moves mouse moves (real input events through CDP) on the top layer:
      latency from each pointermove's timestamp to the end of the next frame that shows it
      (requestAnimationFrame, then a MessageChannel task after it), median and p95; and the
      stroke's event-handler time (dab + tile composite);
  (4) JS heap used (performance.memory, precise) before the layers, after them and at the end, and
      the bytes held by layer tiles.

    python bench/bench_canvas.py [--layers 20] [--side 2048] [--frames 300] [--moves 200] [--headed]

Numbers are from software rendering (--disable-gpu) on this machine's CPUs: compare runs on the same
machine only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser_helpers import launch
from server_process import ServerProcess

VIEWPORT = {"width": 1400, "height": 900}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return f"{name:<34} median {statistics.median(values):8.2f} {unit}   p95 {percentile(values, 0.95):8.2f} {unit}   (n={len(values)})"


HEAP = """async () => { if (window.gc) { window.gc(); await new Promise((r) => setTimeout(r, 50)); window.gc(); }
  return performance.memory ? performance.memory.usedJSHeapSize : null; }"""

PAN_ZOOM = """async (frames) => {
  const { canvas, store } = window.__bench;
  const vp = canvas.viewport;
  const stats = canvas.renderer.stats;
  const { width, height } = vp.size();
  const stamps = [], draws = [];
  let lastFrames = stats.frames;
  await new Promise((done) => {
    let k = 0;
    function frame(ts) {
      stamps.push(ts);
      if (stats.frames !== lastFrames) { draws.push(stats.lastFrameMs); lastFrames = stats.frames; }
      if (k >= frames) return done();
      // zoom sweeps 0.1x .. 2x and back; the canvas point under the centre drifts along a circle
      const phase = k / frames;
      const scale = Math.exp(Math.log(0.1) + (Math.log(2) - Math.log(0.1)) * (0.5 - 0.5 * Math.cos(phase * 4 * Math.PI)));
      const cx = 1200 + 700 * Math.cos(phase * 6 * Math.PI), cy = 1150 + 700 * Math.sin(phase * 6 * Math.PI);
      vp.setView({ x: width / 2 - cx * scale, y: height / 2 - cy * scale, scale });
      k++;
      requestAnimationFrame(frame);
    }
    requestAnimationFrame(frame);
  });
  const intervals = stamps.slice(2).map((t, i) => t - stamps[i + 1]);
  return { intervals, draws, tilesDrawn: stats.tilesDrawn };
}"""

WATCH_STROKE = """() => {
  const el = window.__bench.canvas.stage.content;
  const stats = window.__bench.canvas.renderer.stats;
  const out = window.__stroke = { latency: [], handler: [], draws: [] };
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => { const now = performance.now(); out.draws.push(stats.lastFrameMs); for (const t of waiting.splice(0)) out.latency.push(now - t); };
  let start = 0;
  // capture: before the canvas's own listener; bubbling on window: after it (handler time)
  el.addEventListener('pointermove', (e) => {
    if (!e.buttons) return;
    start = performance.now();
    waiting.push(e.timeStamp);
    requestAnimationFrame(() => channel.port2.postMessage(0));
  }, { capture: true });
  window.addEventListener('pointermove', (e) => { if (e.buttons && start) { out.handler.push(performance.now() - start); start = 0; } });
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = launch(p, ["--enable-precise-memory-info", "--js-flags=--expose-gc"])
                page = browser.new_page(viewport=VIEWPORT)
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.goto(server.url + "/bench/canvas-bench.html")
                page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000, polling=100)
                print(
                    f"chromium {browser.version}, viewport {VIEWPORT['width']}x{VIEWPORT['height']}, software rendering"
                )

                heap0 = page.evaluate(HEAP)
                t0 = time.perf_counter()
                page.evaluate(
                    "([n, side]) => { window.__bench.addNoiseLayers(n, side); window.__bench.canvas.fit(); }",
                    [args.layers, args.side],
                )
                page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
                made = time.perf_counter() - t0
                tile_bytes = page.evaluate("() => window.__bench.canvas.pixels.bytes")
                heap1 = page.evaluate(HEAP)
                print(
                    f"{args.layers} layers of {args.side}x{args.side} noise created and drawn in {made:.2f} s; tiles hold {tile_bytes / 2**20:.0f} MiB"
                )

                res = page.evaluate(PAN_ZOOM, args.frames)
                print(summary(f"pan+zoom frame interval ({args.frames} fr)", res["intervals"]))
                print(summary("  renderer draw time per frame", res["draws"]))
                print(
                    f"  {res['tilesDrawn']} tile draws in all; {sum(1 for v in res['intervals'] if v > 1000 / 30):d} frames over 33 ms"
                )

                # brush stroke on the top layer at 100% zoom, real mouse input
                page.evaluate(
                    "() => { const c = window.__bench.canvas; c.zoomTo(1); c.setTool('brush'); "
                    "window.__bench.store.apply({put: [{...window.__bench.store.get('tool'), brush_size: 40, brush_color: '#ff00ff'}]}, {history: false}); }"
                )
                page.evaluate(WATCH_STROKE)
                version0 = page.evaluate(
                    "() => window.__bench.canvas.pixels.get(window.__bench.store.get('selection').layer_id).version"
                )
                cx, cy, r = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2, 250
                page.mouse.move(cx + r, cy)
                page.mouse.down()
                for i in range(1, args.moves + 1):
                    a = 2 * math.pi * i / args.moves * 1.5
                    page.mouse.move(
                        cx + r * math.cos(a) * (1 - i / (2 * args.moves)),
                        cy + r * math.sin(a) * (1 - i / (2 * args.moves)),
                    )
                page.mouse.up()
                page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
                stroke = page.evaluate("() => window.__stroke")
                version1 = page.evaluate(
                    "() => window.__bench.canvas.pixels.get(window.__bench.store.get('selection').layer_id).version"
                )
                steps = page.evaluate("() => window.__bench.history.size")
                assert version1 > version0 and steps == 1, "the stroke did not paint"
                print(summary("brush: pointermove -> painted frame", stroke["latency"]))
                print(summary("brush: pointermove handler", stroke["handler"]))
                print(summary("brush: renderer draw time per frame", stroke["draws"]))

                heap2 = page.evaluate(HEAP)
                if heap0 is not None:
                    print(
                        f"JS heap used: before {heap0 / 2**20:.1f} MiB, after layers {heap1 / 2**20:.1f} MiB, at the end {heap2 / 2**20:.1f} MiB"
                    )
                if errors:
                    print("browser errors:", *errors, sep="\n  ")
                browser.close()
        finally:
            server.stop()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
