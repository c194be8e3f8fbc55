"""What the browser journal costs per stroke, in the real app in headless Chromium.

Starts `invoke-canvas` on a free loopback port (temporary data root), opens the app, and paints
--strokes brush strokes of --moves mouse moves each (real input events), each across a tile border,
waiting after each for its journal write to be durable (IndexedDB committed). Prints, per stroke:
the journal's main-thread time (reading the changed tiles, building the entry, queuing the write),
the time until the write is durable, the tiles and the bytes written; and, as the baseline in the same
page, what the server autosave spends on the main thread for the same layer after the same strokes
(export the layer, read its pixels for the fingerprint, encode the PNG), which the journal's write
precedes.

    python bench/bench_journal.py [--strokes 40] [--moves 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser_helpers import VIEWPORT, App
from browser_session import browser_session

AUTOSAVE_COST = """async () => {
  const { canvas, store } = window.__app;
  const id = store.layers()[0].id;
  const t0 = performance.now();
  const e = canvas.pixels.exportLayer(id);
  e.canvas.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, e.width, e.height);
  const t1 = performance.now();
  const blob = await (e.canvas.convertToBlob ? e.canvas.convertToBlob({ type: 'image/png' })
    : new Promise((r) => e.canvas.toBlob(r, 'image/png')));
  return { read: t1 - t0, encode: performance.now() - t1, bytes: blob.size, width: e.width, height: e.height };
}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strokes", type=int, default=40)
    ap.add_argument("--moves", type=int, default=12)
    args = ap.parse_args()
    with browser_session() as session:
        page, errors = session.page, session.errors
        app = App(page, session.server, session.root, "bench-journal").open()
        print(f"chromium {session.browser.version}, viewport {VIEWPORT['width']}x{VIEWPORT['height']}")
        main_ms, durable_ms, tiles, sizes = [], [], [], []
        for i in range(args.strokes):
            before = app.js("() => window.__app.journal()")
            # a stroke crossing the 256 px tile border of the layer (two tiles or more)
            y = 40 + (i % 8) * 24
            points = [(200 + k * (120 / args.moves), y + (k % 3) * 4) for k in range(args.moves + 1)]
            app.drag(points, steps=1)
            app.wait("(n) => { const s = window.__app.journal(); return s.writes > n && s.durableMs > 0; }", before["writes"])
            app.wait(
                "(d) => window.__app.journal().durableMs > d || document.querySelector('[data-testid=save-status]').dataset.state !== 'dirty'",
                before["durableMs"],
            )
            after = app.js("() => window.__app.journal()")
            writes = after["writes"] - before["writes"]
            main_ms.append(after["mainMs"] - before["mainMs"])
            durable_ms.append((after["durableMs"] - before["durableMs"]) / max(1, writes))
            tiles.append(after["tiles"] - before["tiles"])
            sizes.append(after["bytes"] - before["bytes"])
        base = [app.js(AUTOSAVE_COST) for _ in range(5)]
        med = statistics.median
        print(f"{args.strokes} strokes of {args.moves} moves, each crossing a tile border")
        print(f"journal main-thread time per stroke: median {med(main_ms):.2f} ms, max {max(main_ms):.2f} ms")
        print(f"journal write durable after: median {med(durable_ms):.1f} ms (off the main thread)")
        print(f"journal per stroke: median {med(tiles):.0f} tiles, {med(sizes) / 1024:.0f} KiB written (PNG tiles + the entry)")
        read = med([b["read"] for b in base])
        encode = med([b["encode"] for b in base])
        w, h = base[0]["width"], base[0]["height"]
        print(
            f"baseline, the autosave's main-thread work for the same layer ({w}x{h}): read {read:.2f} ms + PNG encode {encode:.2f} ms (async)"
            f" ({base[0]['bytes'] / 1024:.0f} KiB)"
        )
        print(f"journal / autosave main-thread time: {med(main_ms) / max(1e-6, read + encode):.2f}x")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
