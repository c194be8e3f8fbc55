// The box never exceeds the server's largest side (GET /api/v1/config), whichever way it is resized.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bboxForAspect, bboxMaxSides, capBBox } from "../canvas/geometry.js";
import { applyServerConfig } from "../document.js";
import { createBBoxTool } from "../tools/bbox.js";
import { createStore } from "../state/store.js";

const CONFIG = { numbers: { bbox_width: { min: 0, max: 4096, exclusive_min: true, step: 8 }, bbox_height: { min: 0, max: 2000, step: 8 } } };

test("bboxMaxSides reads the config's bbox_width/bbox_height max, on the grid; Infinity without one", () => {
  assert.deepEqual(bboxMaxSides(CONFIG), { maxWidth: 4096, maxHeight: 2000 });
  assert.deepEqual(bboxMaxSides({ numbers: { bbox_width: { max: 1003 } } }), { maxWidth: 1000, maxHeight: Infinity });
  assert.deepEqual(bboxMaxSides(null), { maxWidth: Infinity, maxHeight: Infinity });
  assert.deepEqual(bboxMaxSides({ numbers: { bbox_width: { max: "x" }, bbox_height: { max: 0 } } }), { maxWidth: Infinity, maxHeight: Infinity });
});

test("capBBox keeps the anchored sides in place and leaves a box within the limits alone", () => {
  const lim = { maxWidth: 1024, maxHeight: 512 };
  const ok = { x: 8, y: 16, width: 1024, height: 512 };
  assert.equal(capBBox(ok, lim), ok);
  // dragging the east/south handle: the left and top edges stay
  assert.deepEqual(capBBox({ x: 0, y: 0, width: 5000, height: 3000 }, { ...lim, anchor: "se" }), { x: 0, y: 0, width: 1024, height: 512 });
  // dragging the west/north handle: the right and bottom edges stay
  assert.deepEqual(capBBox({ x: -4000, y: -2000, width: 5000, height: 3000 }, { ...lim, anchor: "nw" }), { x: -24, y: 488, width: 1024, height: 512 });
  // an edge handle: the other axis is untouched when within its limit
  assert.deepEqual(capBBox({ x: 0, y: 0, width: 8000, height: 256 }, { ...lim, anchor: "e" }), { x: 0, y: 0, width: 1024, height: 256 });
  // unanchored axes shrink about the centre, on the grid
  assert.deepEqual(capBBox({ x: 0, y: 0, width: 2048, height: 256 }, lim), { x: 512, y: 0, width: 1024, height: 256 });
});

test("capBBox with keepAspect shrinks both sides by one factor, never past a limit", () => {
  const r = capBBox({ x: 0, y: 0, width: 8192, height: 4608 }, { maxWidth: 4096, maxHeight: 4096, anchor: "se", keepAspect: true });
  assert.deepEqual(r, { x: 0, y: 0, width: 4096, height: 2304 });
  for (let w = 4104; w < 20000; w += 1336) {
    for (const ratio of [1, 16 / 9, 9 / 16, 3 / 2]) {
      const h = Math.max(8, Math.round(w / ratio / 8) * 8);
      const c = capBBox({ x: 0, y: 0, width: w, height: h }, { maxWidth: 4096, maxHeight: 2000, keepAspect: true });
      assert.ok(c.width <= 4096 && c.height <= 2000 && c.width % 8 === 0 && c.height % 8 === 0, JSON.stringify(c));
      assert.ok(Math.abs(c.width / c.height - w / h) < 0.05 * (w / h) + 8 / c.height, `${w}x${h} -> ${c.width}x${c.height}`);
    }
  }
});

test("bboxForAspect keeps the area unless that would pass the limit", () => {
  const big = { x: 0, y: 0, width: 4096, height: 4096 };
  const free = bboxForAspect(big, "16:9");
  assert.ok(free.width > 4096, "the area-keeping reshape alone passes the limit");
  const capped = bboxForAspect(big, "16:9", { maxWidth: 4096, maxHeight: 4096 });
  assert.equal(capped.width, 4096);
  assert.equal(capped.height, 2304);
  assert.deepEqual(bboxForAspect({ x: 0, y: 0, width: 512, height: 512 }, "1:1", { maxWidth: 4096, maxHeight: 4096 }), { x: 0, y: 0, width: 512, height: 512 });
});

/** Drive the real bbox tool with a store and a fake history: canvas coordinates at scale 1. */
function drag(tool, ctx, from, to, opts = {}) {
  const ev = (p) => ({ x: p.x, y: p.y, sx: p.x, sy: p.y, button: 0, pressure: 1, pointerType: "mouse", shiftKey: !!opts.shift, ctrlKey: false, metaKey: false });
  tool.onPointerDown(ctx, ev(from));
  tool.onPointerMove(ctx, ev({ x: (from.x + to.x) / 2, y: (from.y + to.y) / 2 }));
  tool.onPointerMove(ctx, ev(to));
  tool.onPointerUp(ctx, ev(to));
}

test("the bbox tool caps handle drags and new boxes at the config's max", () => {
  applyServerConfig(CONFIG);
  const store = createStore([{ id: "bbox", type: "bbox", x: 0, y: 0, width: 512, height: 512 }, { id: "tool", type: "tool", name: "bbox" }]);
  const ctx = {
    store, view: () => ({ x: 0, y: 0, scale: 1 }), settings: () => store.get("tool") ?? {},
    history: { mark() {}, commit() {}, cancel() {} }, setCursor() {},
  };
  const tool = createBBoxTool();
  drag(tool, ctx, { x: 512, y: 512 }, { x: 90000, y: 70000 }); // the south-east corner, far out
  assert.deepEqual({ ...store.get("bbox") }, { id: "bbox", type: "bbox", x: 0, y: 0, width: 4096, height: 2000 });
  drag(tool, ctx, { x: 0, y: 1000 }, { x: -90000, y: 1000 }); // the west edge: the east edge stays
  const b = store.get("bbox");
  assert.equal(b.width, 4096);
  assert.equal(b.x + b.width, 4096);
  drag(tool, ctx, { x: 20000, y: 20000 }, { x: -50000, y: -60000 }); // a new box drawn up-left from outside
  const n = store.get("bbox");
  assert.deepEqual([n.x + n.width, n.y + n.height, n.width, n.height], [20000, 20000, 4096, 2000]);
  drag(tool, ctx, { x: 30000, y: 30000 }, { x: 90000, y: 80000 }, { shift: true }); // Shift: square, capped
  const s = store.get("bbox");
  assert.deepEqual([s.x, s.y, s.width, s.height], [30000, 30000, 2000, 2000]);
});
