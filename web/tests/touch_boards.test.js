import { test } from "node:test";
import assert from "node:assert/strict";
import { pinchView } from "../canvas/viewport.js";
import { boardDropZone, planBoardDrop } from "../panels/gallery.js";
import { screenToCanvas, MAX_SCALE } from "../canvas/geometry.js";

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("two-finger pan moves the view with the midpoint, scale unchanged", () => {
  const v = { id: "view", type: "view", x: 10, y: 20, scale: 2, grid: true };
  const out = pinchView(v, { mid: { x: 100, y: 100 }, dist: 50 }, { mid: { x: 130, y: 90 }, dist: 50 });
  assert.deepEqual(out, { id: "view", type: "view", x: 40, y: 10, scale: 2, grid: true });
});

test("spreading zooms about the midpoint: the canvas point under the fingers stays under them", () => {
  const v = { x: -35, y: 12, scale: 0.75 };
  const prev = { mid: { x: 300, y: 200 }, dist: 100 };
  const now = { mid: { x: 340, y: 180 }, dist: 250 };
  const anchor = screenToCanvas(v, prev.mid);
  const out = pinchView(v, prev, now);
  near(out.scale, 0.75 * 2.5);
  const under = screenToCanvas(out, now.mid);
  near(under.x, anchor.x, 1e-6);
  near(under.y, anchor.y, 1e-6);
  // many small steps compose to the same as one big step
  let w = v;
  const steps = 10;
  for (let k = 0; k < steps; k++) {
    const t0 = k / steps, t1 = (k + 1) / steps;
    const at = (t) => ({ mid: { x: 300 + 40 * t, y: 200 - 20 * t }, dist: 100 + 150 * t });
    w = pinchView(w, at(t0), at(t1));
  }
  near(w.scale, out.scale, 1e-9);
  near(w.x, out.x, 1e-6);
  near(w.y, out.y, 1e-6);
});

test("pinch zoom respects the scale limits; degenerate spreads only pan", () => {
  const v = { x: 0, y: 0, scale: MAX_SCALE / 2 };
  assert.equal(pinchView(v, { mid: { x: 0, y: 0 }, dist: 10 }, { mid: { x: 0, y: 0 }, dist: 100 }).scale, MAX_SCALE);
  const still = pinchView(v, { mid: { x: 5, y: 5 }, dist: 0 }, { mid: { x: 6, y: 5 }, dist: 40 });
  assert.deepEqual(still, { x: 1, y: 0, scale: MAX_SCALE / 2 });
});

test("drop zones: upper quarter before, lower quarter after, middle into; no after on an open parent", () => {
  assert.equal(boardDropZone(2, 30), "before");
  assert.equal(boardDropZone(15, 30), "into");
  assert.equal(boardDropZone(28, 30), "after");
  assert.equal(boardDropZone(28, 30, { after: false }), "into");
  assert.equal(boardDropZone(3, 8), "before"); // a tiny row still has a 4 px edge
});

const node = (id, parent_id = null, children = []) => ({ board: { id, parent_id }, children });
const tree = [
  node("a"),
  node("b", null, [node("b1", "b"), node("b2", "b", [node("b2x", "b2")])]),
  node("c"),
];

test("reorder among siblings lists every sibling once in the new order", () => {
  assert.deepEqual(planBoardDrop(tree, "c", "a", "before"), { op: "reorder", parent_id: null, ordered_ids: ["c", "a", "b"] });
  assert.deepEqual(planBoardDrop(tree, "a", "c", "after"), { op: "reorder", parent_id: null, ordered_ids: ["b", "c", "a"] });
  assert.deepEqual(planBoardDrop(tree, "a", "b", "after"), { op: "reorder", parent_id: null, ordered_ids: ["b", "a", "c"] });
  assert.deepEqual(planBoardDrop(tree, "b2", "b1", "before"), { op: "reorder", parent_id: "b", ordered_ids: ["b2", "b1"] });
});

test("drops that change nothing or are impossible give no plan", () => {
  assert.equal(planBoardDrop(tree, "a", "a", "before"), null);
  assert.equal(planBoardDrop(tree, "a", "b", "before"), null); // already just before b
  assert.equal(planBoardDrop(tree, "b", "a", "after"), null); // already just after a
  assert.equal(planBoardDrop(tree, "b", "b2x", "before"), null); // into its own sub-boards
  assert.equal(planBoardDrop(tree, "b", "b1", "after"), null);
  assert.equal(planBoardDrop(tree, "zz", "a", "before"), null);
});

test("before/after a row under another parent moves the board there at that index", () => {
  assert.deepEqual(planBoardDrop(tree, "c", "b1", "after"), { op: "move", parent_id: "b", position: 1 });
  assert.deepEqual(planBoardDrop(tree, "b2x", "a", "before"), { op: "move", parent_id: null, position: 0 });
  assert.deepEqual(planBoardDrop(tree, "b1", "c", "after"), { op: "move", parent_id: null, position: 3 });
});
