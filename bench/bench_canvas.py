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
  (3b) --frames frames of a pan along a circle zoomed out at a fixed 0.2x (mip level 2);
  (4) JS heap used (performance.memory, precise) before the layers, after them and at the end, and
      the bytes held by layer tiles.

Each of (2), (3b) and (3) runs twice in the same page: first with the renderer's composite and mip
caches off (`renderer.setCaching(false)`: every visible layer tile drawn at full resolution, as
before the caches existed), then on; the ratios off/on are printed. Then the stage's pixels are
compared with the caches off and on at 100% zoom (max channel difference, pixels that differ) and
at 0.3x (mean difference: mips are a 2x2-box pyramid, plain drawing is bilinear).

    python bench/bench_canvas.py [--layers 20] [--side 2048] [--frames 300] [--moves 200] [--only on|off] [--headed]

Numbers are from software rendering (--disable-gpu) on this machine's CPUs: compare runs on the same
machine only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser_session import browser_session

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

PAN_ZOOM = """async ([frames, fixedScale]) => {
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
      const scale = fixedScale || Math.exp(Math.log(0.1) + (Math.log(2) - Math.log(0.1)) * (0.5 - 0.5 * Math.cos(phase * 4 * Math.PI)));
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
  if (window.__strokeWatching) return;
  window.__strokeWatching = true;
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => { const out = window.__stroke; const now = performance.now(); out.draws.push(stats.lastFrameMs); for (const t of waiting.splice(0)) out.latency.push(now - t); };
  let start = 0;
  // capture: before the canvas's own listener; bubbling on window: after it (handler time)
  el.addEventListener('pointermove', (e) => {
    if (!e.buttons) return;
    start = performance.now();
    waiting.push(e.timeStamp);
    requestAnimationFrame(() => channel.port2.postMessage(0));
  }, { capture: true });
  window.addEventListener('pointermove', (e) => { if (e.buttons && start) { window.__stroke.handler.push(performance.now() - start); start = 0; } });
}"""


COMPARE = """async (scale) => {
  const c = window.__bench.canvas, r = c.renderer;
  c.zoomTo(scale);
  const v = c.viewport.view();
  c.viewport.setView({ x: Math.round(v.x), y: Math.round(v.y), scale: v.scale });
  const grab = (on) => {
    r.setCaching(on); r.flush();
    const cv = r.pixelLayer.getCanvas()._canvas;
    return cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
  };
  const was = r.caching;
  const off = grab(false), on = grab(true);
  r.setCaching(was); r.flush();
  let max = 0, differ = 0, sum = 0;
  for (let i = 0; i < off.length; i += 4) {
    let m = 0;
    for (let k = 0; k < 3; k++) { const d = Math.abs(off[i + k] - on[i + k]); sum += d; if (d > m) m = d; }
    if (m) differ++;
    if (m > max) max = m;
  }
  return { max, differ, pixels: off.length / 4, mean: sum / (off.length / 4 * 3) };
}"""


def pan(page, frames: int, scale: float) -> dict:
    page.evaluate("() => { const r = window.__bench.canvas.renderer; r.stats.tilesDrawn = 0; }")
    return page.evaluate(PAN_ZOOM, [frames, scale])


def stroke(page, moves: int) -> dict:
    page.evaluate(
        "() => { const c = window.__bench.canvas; c.zoomTo(1); c.setTool('brush'); "
        "window.__bench.store.apply({put: [{...window.__bench.store.get('tool'), brush_size: 40, brush_color: '#ff00ff'}]}, {history: false}); }"
    )
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.evaluate(WATCH_STROKE)
    version0 = page.evaluate("() => window.__bench.canvas.pixels.get(window.__bench.store.get('selection').layer_id).version")
    steps0 = page.evaluate("() => window.__bench.history.size")
    cx, cy, r = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2, 250
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for i in range(1, moves + 1):
        a = 2 * math.pi * i / moves * 1.5
        page.mouse.move(cx + r * math.cos(a) * (1 - i / (2 * moves)), cy + r * math.sin(a) * (1 - i / (2 * moves)))
    page.mouse.up()
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    out = page.evaluate("() => window.__stroke")
    version1 = page.evaluate("() => window.__bench.canvas.pixels.get(window.__bench.store.get('selection').layer_id).version")
    steps1 = page.evaluate("() => window.__bench.history.size")
    assert version1 > version0 and steps1 == steps0 + 1, "the stroke did not paint"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--only", choices=["on", "off"], help="run only with the caches on (or off)")
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()

    with browser_session(["--enable-precise-memory-info", "--js-flags=--expose-gc"]) as session:
        server, browser, page, errors = session.server, session.browser, session.page, session.errors
        # The bench page is not part of the app, so the server does not serve it: the browser gets it
        # from the checkout, under the server's origin, and the page's modules from the server.
        bench_page = HERE.parent / "web" / "bench" / "canvas-bench.html"
        page.route(server.url + "/bench/canvas-bench.html", lambda route: route.fulfill(path=str(bench_page)))
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

        modes = [m for m in ("off", "on") if not args.only or args.only == m]
        results: dict[str, dict] = {}
        for mode in modes:
            page.evaluate("(on) => window.__bench.canvas.renderer.setCaching(on)", mode == "on")
            page.evaluate("() => window.__bench.canvas.fit()")
            print(f"-- caches {mode}")
            sweep = pan(page, args.frames, 0)
            print(summary(f"pan+zoom frame interval ({args.frames} fr)", sweep["intervals"]))
            print(summary("  renderer draw time per frame", sweep["draws"]))
            print(
                f"  {sweep['tilesDrawn']} tile draws in all; {sum(1 for v in sweep['intervals'] if v > 1000 / 30):d} frames over 33 ms; slowest draw {max(sweep['draws']):.1f} ms"
            )
            out = pan(page, args.frames, 0.2)
            print(summary("pan at 0.2x frame interval", out["intervals"]))
            print(summary("  renderer draw time per frame", out["draws"]))
            print(f"  {out['tilesDrawn']} tile draws in all; slowest draw {max(out['draws']):.1f} ms")
            brush = stroke(page, args.moves)
            print(summary("brush: pointermove -> painted frame", brush["latency"]))
            print(summary("brush: pointermove handler", brush["handler"]))
            print(summary("brush: renderer draw time per frame", brush["draws"]))
            results[mode] = {
                "sweep": sweep["intervals"],
                "sweep draw": sweep["draws"],
                "pan 0.2x": out["intervals"],
                "pan 0.2x draw": out["draws"],
                "brush latency": brush["latency"],
                "brush draw": brush["draws"],
            }
        if len(results) == 2:
            print("-- off / on (median, p95)")
            for key in results["off"]:
                a, b = results["off"][key], results["on"][key]
                print(
                    f"  {key:<16} {statistics.median(a) / statistics.median(b):5.2f}x   {percentile(a, 0.95) / percentile(b, 0.95):5.2f}x"
                )
        info = page.evaluate("() => window.__bench.canvas.renderer.cacheInfo()")
        print(f"composites held: {info['composites']}, their tiles (all levels): {info['tiles']}")
        for scale in (1, 0.3):
            d = page.evaluate(COMPARE, scale)
            print(
                f"stage pixels caches off vs on at {scale}x: max channel difference {d['max']}, "
                f"{d['differ']} of {d['pixels']} pixels differ, mean difference {d['mean']:.3f}"
            )

        heap2 = page.evaluate(HEAP)
        if heap0 is not None:
            print(
                f"JS heap used: before {heap0 / 2**20:.1f} MiB, after layers {heap1 / 2**20:.1f} MiB, at the end {heap2 / 2**20:.1f} MiB"
            )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
