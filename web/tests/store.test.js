import { test } from "node:test";
import assert from "node:assert/strict";
import { createStore } from "../state/store.js";

const layer = (id, z, extra = {}) => ({ id, type: "layer", kind: "raster", name: id, z, x: 0, y: 0, opacity: 1, visible: true, locked: false, ...extra });

test("get, list and layers sorted by z", () => {
  const s = createStore([layer("b", 2), layer("a", 1), { id: "bbox", type: "bbox", x: 0, y: 0, width: 512, height: 512 }]);
  assert.equal(s.get("bbox").width, 512);
  assert.deepEqual(s.layers().map((l) => l.id), ["a", "b"]);
  assert.equal(s.list("bbox").length, 1);
  s.apply({ put: [layer("c", 0)] });
  assert.deepEqual(s.layers().map((l) => l.id), ["c", "a", "b"]);
});

test("records are frozen and replaced, never mutated", () => {
  const s = createStore([layer("a", 1)]);
  const a = s.get("a");
  assert.ok(Object.isFrozen(a));
  assert.throws(() => { a.z = 5; });
  s.apply({ put: [{ ...a, z: 5 }] });
  assert.equal(a.z, 1);
  assert.equal(s.get("a").z, 5);
});

test("subscribers get diff, source, history flag and the previous records", () => {
  const s = createStore([layer("a", 1)]);
  const seen = [];
  const off = s.subscribe((c) => seen.push(c));
  const a0 = s.get("a");
  s.apply({ put: [{ ...a0, opacity: 0.5 }], remove: ["nope"] });
  s.apply({ remove: ["a"] }, { history: false });
  off();
  s.apply({ put: [layer("z", 9)] });
  assert.equal(seen.length, 2);
  assert.equal(seen[0].source, "user");
  assert.equal(seen[0].history, true);
  assert.equal(seen[0].before.get("a"), a0);
  assert.deepEqual(seen[0].diff.remove, []);
  assert.deepEqual(seen[1].diff.remove, ["a"]);
  assert.equal(seen[1].history, false);
});

test("empty or identical diffs do not notify", () => {
  const s = createStore([layer("a", 1)]);
  let n = 0;
  s.subscribe(() => n++);
  assert.equal(s.apply({}), null);
  assert.equal(s.apply({ put: [s.get("a")] }), null);
  assert.equal(s.apply({ remove: ["missing"] }), null);
  assert.equal(n, 0);
});

test("bad records are refused with a clear error", () => {
  const s = createStore();
  assert.throws(() => s.apply({ put: [{ type: "layer" }] }), /string id/);
  assert.throws(() => s.apply({ put: [{ id: "x" }] }), /string type/);
});

test("update merges fields; snapshot and load replace everything", () => {
  const s = createStore([layer("a", 1)]);
  s.update("a", { name: "Sky" });
  assert.equal(s.get("a").name, "Sky");
  s.update("view", { x: 1, y: 2, scale: 1 }, { type: "view", history: false });
  assert.equal(s.get("view").type, "view");
  assert.throws(() => s.update("nope", { a: 1 }), /no record/);
  const snap = s.snapshot();
  const seen = [];
  s.subscribe((c) => seen.push(c));
  s.load([layer("q", 0)]);
  assert.deepEqual(s.layers().map((l) => l.id), ["q"]);
  assert.equal(seen[0].source, "load");
  assert.deepEqual(seen[0].diff.remove.sort(), ["a", "view"]);
  s.load(snap);
  assert.equal(s.get("a").name, "Sky");
});
