import { test } from "node:test";
import assert from "node:assert/strict";
import * as g from "../canvas/geometry.js";

test("snap8 rounds to the nearest multiple of 8, translation-invariantly", () => {
  assert.equal(g.snap8(0), 0);
  assert.equal(g.snap8(3), 0);
  assert.equal(g.snap8(4), 8);
  assert.equal(g.snap8(515), 512);
  assert.equal(g.snap8(-3), 0);
  assert.equal(g.snap8(-5), -8);
  for (let v = -100; v < 100; v += 0.7) assert.equal(g.snap8(v + 64), g.snap8(v) + 64);
});

test("snapBBox: multiples of 8, minimum size, optional aspect", () => {
  assert.deepEqual(g.snapBBox({ x: 3, y: 13, width: 509, height: 2 }), { x: 0, y: 16, width: 512, height: 8 });
  const r = g.snapBBox({ x: 0, y: 0, width: 771, height: 100 }, { keepAspect: true, aspect: 16 / 9 });
  assert.equal(r.width, 768);
  assert.equal(r.height, 432);
  for (const v of [r.x, r.y, r.width, r.height]) assert.equal(Math.abs(v % 8), 0);
});

test("aspect presets include squares, landscapes and portraits", () => {
  const ids = g.ASPECT_PRESETS.map((p) => p.id);
  for (const id of ["1:1", "3:2", "4:3", "16:9", "2:3", "3:4", "9:16"]) assert.ok(ids.includes(id), id);
  assert.equal(g.aspectRatio("16:9"), 16 / 9);
  assert.equal(g.aspectRatio("free"), null);
});

test("bboxForAspect keeps the area roughly, the centre, and snaps", () => {
  const b = { x: 0, y: 0, width: 512, height: 512 };
  for (const p of g.ASPECT_PRESETS) {
    const r = g.bboxForAspect(b, p.id);
    for (const v of [r.x, r.y, r.width, r.height]) assert.equal(Math.abs(v % 8), 0, `${p.id} ${JSON.stringify(r)}`);
    assert.ok(Math.abs(r.width / r.height - p.w / p.h) < 0.05, p.id);
    assert.ok(Math.abs(r.width * r.height - 512 * 512) / (512 * 512) < 0.06, p.id);
    assert.ok(Math.abs(r.x + r.width / 2 - 256) <= 8 && Math.abs(r.y + r.height / 2 - 256) <= 8);
  }
  assert.throws(() => g.bboxForAspect(b, "5:7"), /unknown aspect/);
});

test("fitBBoxToRect contains the rect on the 8 grid", () => {
  const r = g.fitBBoxToRect({ x: -13, y: 5, width: 100, height: 1 });
  assert.deepEqual(r, { x: -16, y: 0, width: 104, height: 8 });
  assert.ok(r.x <= -13 && r.x + r.width >= 87);
});

test("rect unions, intersections and containment", () => {
  assert.deepEqual(g.unionRect({ x: 0, y: 0, width: 10, height: 10 }, null, { x: 20, y: -5, width: 5, height: 5 }), { x: 0, y: -5, width: 25, height: 15 });
  assert.equal(g.unionRect(null, { x: 0, y: 0, width: 0, height: 5 }), null);
  assert.deepEqual(g.intersectRect({ x: 0, y: 0, width: 10, height: 10 }, { x: 5, y: 5, width: 10, height: 10 }), { x: 5, y: 5, width: 5, height: 5 });
  assert.equal(g.intersectRect({ x: 0, y: 0, width: 10, height: 10 }, { x: 10, y: 0, width: 10, height: 10 }), null);
  assert.ok(g.rectContains({ x: 0, y: 0, width: 10, height: 10 }, { x: 9.9, y: 0 }));
  assert.ok(!g.rectContains({ x: 0, y: 0, width: 10, height: 10 }, { x: 10, y: 0 }));
  assert.deepEqual(g.roundOut({ x: 0.5, y: -0.5, width: 1, height: 1 }), { x: 0, y: -1, width: 2, height: 2 });
  assert.deepEqual(g.rectFromPoints(5, 5, 1, 9), { x: 1, y: 5, width: 4, height: 4 });
});

test("screen <-> canvas round trip and zoomAt keeps the cursor point fixed", () => {
  const view = { x: 120, y: -40, scale: 1.7 };
  const p = { x: 33, y: 77 };
  const back = g.canvasToScreen(view, g.screenToCanvas(view, p));
  assert.ok(Math.abs(back.x - p.x) < 1e-9 && Math.abs(back.y - p.y) < 1e-9);
  const before = g.screenToCanvas(view, p);
  const z = g.zoomAt(view, p, 1.25);
  assert.ok(Math.abs(z.scale - 1.7 * 1.25) < 1e-12);
  const after = g.screenToCanvas(z, p);
  assert.ok(Math.abs(after.x - before.x) < 1e-9 && Math.abs(after.y - before.y) < 1e-9);
  assert.equal(g.zoomAt(view, p, 1e9).scale, g.MAX_SCALE);
  assert.equal(g.zoomAt(view, p, 1e-9).scale, g.MIN_SCALE);
});

test("fitView centres the rect inside the padding; visibleRect inverts it", () => {
  const v = g.fitView({ x: 100, y: 100, width: 400, height: 200 }, { width: 1000, height: 600 }, 50);
  assert.equal(v.scale, 2.25);
  const c = g.canvasToScreen(v, { x: 300, y: 200 });
  assert.deepEqual(c, { x: 500, y: 300 });
  const vis = g.visibleRect({ x: -100, y: -50, scale: 2 }, { width: 800, height: 600 });
  assert.deepEqual(vis, { x: 50, y: 25, width: 400, height: 300 });
});

test("hitBBox finds handles (tolerance in screen pixels), edges, inside and outside", () => {
  const bbox = { x: 0, y: 0, width: 100, height: 100 };
  const view = { x: 10, y: 10, scale: 2 };
  assert.equal(g.hitBBox(bbox, view, { x: 12, y: 8 }), "nw");
  assert.equal(g.hitBBox(bbox, view, { x: 210, y: 210 }), "se");
  assert.equal(g.hitBBox(bbox, view, { x: 110, y: 10 }), "n");
  assert.equal(g.hitBBox(bbox, view, { x: 210, y: 60 }), "e");
  assert.equal(g.hitBBox(bbox, view, { x: 100, y: 100 }), "inside");
  assert.equal(g.hitBBox(bbox, view, { x: 300, y: 100 }), null);
});

test("resizeRect moves only the dragged sides, never flips, and can keep the aspect", () => {
  const s = { x: 0, y: 0, width: 200, height: 100 };
  assert.deepEqual(g.resizeRect(s, "se", 40, 10), { x: 0, y: 0, width: 240, height: 110 });
  assert.deepEqual(g.resizeRect(s, "w", 30, 99), { x: 30, y: 0, width: 170, height: 100 });
  assert.deepEqual(g.resizeRect(s, "n", 0, 500), { x: 0, y: 92, width: 200, height: 8 });
  const k = g.resizeRect(s, "se", 100, 0, { keepAspect: true });
  assert.equal(k.width / k.height, 2);
  assert.deepEqual([k.x, k.y], [0, 0]);
  const e = g.resizeRect(s, "e", 100, 0, { keepAspect: true });
  assert.equal(e.width, 300); assert.equal(e.height, 150); assert.equal(e.y, -25);
  const nw = g.resizeRect(s, "nw", -100, 0, { keepAspect: true });
  assert.deepEqual(nw, { x: -100, y: -50, width: 300, height: 150 });
});

test("gridStep stays readable at any zoom", () => {
  assert.equal(g.gridStep(4), 8);
  assert.equal(g.gridStep(1), 16);
  assert.equal(g.gridStep(0.1), 256);
});

test("dabsAlong spaces dabs evenly across many small segments", () => {
  const spacing = () => 2;
  let carry = 0;
  const all = [];
  let prev = { x: 0, y: 0, pressure: 1 };
  for (let i = 1; i <= 67; i++) {
    const next = { x: 0.3 * i, y: 0, pressure: 1 };
    const r = g.dabsAlong(prev, next, spacing, carry);
    all.push(...r.dabs); carry = r.carry; prev = next;
  }
  assert.equal(all.length, 10);
  all.forEach((d, i) => assert.ok(Math.abs(d.x - 2 * (i + 1)) < 1e-9, `${d.x}`));
  const one = g.dabsAlong({ x: 0, y: 0, pressure: 0 }, { x: 10, y: 0, pressure: 1 }, (p) => 1 + p, 0);
  assert.ok(one.dabs.length >= 5);
  assert.ok(one.dabs.every((d, i, a) => i === 0 || d.pressure > a[i - 1].pressure));
});

test("matrices: multiply, invert, transformRect", () => {
  const t = [1, 0, 0, 1, 10, 20], s = [2, 0, 0, 3, 0, 0];
  const m = g.multiply(t, s);
  assert.deepEqual(g.applyMatrix(m, { x: 1, y: 1 }), { x: 12, y: 23 });
  const p = g.applyMatrix(g.invert(m), { x: 12, y: 23 });
  assert.ok(Math.abs(p.x - 1) < 1e-12 && Math.abs(p.y - 1) < 1e-12);
  const rot = [0, 1, -1, 0, 0, 0];
  assert.deepEqual(g.transformRect(rot, { x: 0, y: 0, width: 10, height: 5 }), { x: -5, y: 0, width: 5, height: 10 });
});

test("isMouseWheel tells wheel notches from trackpad scrolls", () => {
  assert.equal(g.isMouseWheel({ deltaMode: 0, deltaX: 0, deltaY: 100 }), true);
  assert.equal(g.isMouseWheel({ deltaMode: 0, deltaX: 0, deltaY: -120 }), true);
  assert.equal(g.isMouseWheel({ deltaMode: 1, deltaX: 0, deltaY: 3 }), true);
  assert.equal(g.isMouseWheel({ deltaMode: 0, deltaX: 0, deltaY: 4.5 }), false);
  assert.equal(g.isMouseWheel({ deltaMode: 0, deltaX: 2, deltaY: 60 }), false);
});

test("snapResize snaps to 8 and keeps the opposite side fixed", () => {
  const s = { x: 64, y: 32, width: 512, height: 512 };
  const a = g.snapResize(s, "se", 13, -5);
  assert.deepEqual(a, { x: 64, y: 32, width: 528, height: 504 });
  const b = g.snapResize(s, "nw", 13, -5);
  assert.deepEqual([b.x + b.width, b.y + b.height], [576, 544]);
  for (const v of [b.x, b.y, b.width, b.height]) assert.equal(Math.abs(v % 8), 0);
  const c = g.snapResize(s, "se", 200, 3, { keepAspect: true, aspect: 16 / 9 });
  assert.equal(c.width, 712); assert.equal(c.height, 400);
  assert.deepEqual([c.x, c.y], [64, 32]);
  const d = g.snapResize(s, "w", 1000, 0);
  assert.equal(d.width, 8); assert.equal(d.x + d.width, 576);
});
