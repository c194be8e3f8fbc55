import { test } from "node:test";
import assert from "node:assert/strict";
import { Composite, MAX_MIP, MipPyramid, compositeKey, createCompositeCache, mipKeysForRect, mipLevel, planLayers } from "../canvas/cache.js";
import { TiledBitmap, createPixelRegistry } from "../canvas/tiles.js";
import { fakeCanvasFactory } from "./fakes.js";

/** A canvas that only records what was drawn into it (enough for the pyramid's bookkeeping). */
function recordingCanvas(width, height) {
  const calls = [];
  const ctx = { imageSmoothingEnabled: false, globalAlpha: 1, drawImage: (...args) => calls.push(args) };
  return { width, height, calls, getContext: () => ctx };
}

test("mipLevel: full resolution from 0.5 up, then the coarsest level with a source pixel per screen pixel", () => {
  assert.equal(mipLevel(2), 0);
  assert.equal(mipLevel(1), 0);
  assert.equal(mipLevel(0.5), 0);
  assert.equal(mipLevel(0.49), 1);
  assert.equal(mipLevel(0.26), 1);
  assert.equal(mipLevel(0.25), 2);
  assert.equal(mipLevel(0.2), 2);
  assert.equal(mipLevel(0.125), 3);
  assert.equal(mipLevel(0.1), 3);
  assert.equal(mipLevel(1 / 32), 5);
  assert.equal(mipLevel(1 / 1000), MAX_MIP);
  assert.equal(mipLevel(0.01, 2), 2);
  for (const bad of [0, -1, NaN, Infinity]) assert.equal(mipLevel(bad), 0);
  // the chosen level never magnifies: scale * 2^level stays in [0.5, 1]
  for (let s = 0.49; s > 1 / 32; s *= 0.93) {
    const l = mipLevel(s), k = s * 2 ** l;
    assert.ok(k > 0.5 - 1e-9 && k <= 1 + 1e-9, `scale ${s} level ${l}`);
  }
});

test("mipKeysForRect: level L tiles span 256 * 2^L source pixels", () => {
  assert.deepEqual(mipKeysForRect({ x: 0, y: 0, width: 1, height: 1 }, 1), ["0,0"]);
  assert.deepEqual(mipKeysForRect({ x: 511, y: 0, width: 2, height: 1 }, 1), ["0,0", "1,0"]);
  assert.deepEqual(mipKeysForRect({ x: -1, y: 1023, width: 1, height: 1 }, 2), ["-1,0"]);
  assert.deepEqual(mipKeysForRect({ x: 0, y: 0, width: 0, height: 5 }, 3), []);
});

test("MipPyramid builds lazily from the four children, caches, and drops only what a change covers", () => {
  const painted = new Set(["0,0", "1,0", "3,3", "-1,-1"]); // level-0 tiles that exist
  const base0 = new Map([...painted].map((k) => [k, recordingCanvas(256, 256)]));
  let baseCalls = 0;
  const p = new MipPyramid({ base: (tx, ty) => { baseCalls++; return base0.get(`${tx},${ty}`) ?? null; }, createCanvas: recordingCanvas });

  const t = p.tile(1, 0, 0); // children 0,0 1,0 0,1 1,1: two painted
  assert.ok(t);
  assert.deepEqual(t.calls.map((c) => c.slice(1)), [[0, 0, 128, 128], [128, 0, 128, 128]]);
  assert.equal(t.calls[0][0], base0.get("0,0"));
  assert.equal(p.built, 1);
  assert.equal(p.tile(1, 0, 0), t, "cached");
  assert.equal(p.tile(1, 5, 5), null, "nothing painted there");
  const calls = baseCalls;
  assert.equal(p.tile(1, 5, 5), null);
  assert.equal(baseCalls, calls, "an empty mip tile is remembered too");

  const top = p.tile(2, 0, 0); // level-1 children 0,0 (built) 1,0 0,1 (empty) 1,1 (has 3,3)
  assert.equal(top.calls.length, 2);
  assert.equal(top.calls[0][0], t, "built from the cached level-1 tile");
  assert.equal(p.built, 3);
  assert.equal(p.tile(2, -1, -1).calls.length, 1, "negative tiles");

  // A change inside level-0 tile 3,3 drops level-1 1,1 and level-2 0,0, nothing else.
  p.invalidate({ x: 3 * 256 + 10, y: 3 * 256 + 10, width: 4, height: 4 });
  assert.equal(p.tile(1, 0, 0), t, "untouched tile kept");
  const top2 = p.tile(2, 0, 0);
  assert.notEqual(top2, top);
  assert.equal(top2.calls[0][0], t);
  assert.equal(p.built, 7); // 3, then -1,-1 at levels 1 and 2, then level-1 1,1 and level-2 0,0 again
  p.clear();
  assert.equal(p.cached, 0);
});

test("TiledBitmap.mip: level 0 is the tile itself; mips are dropped with the tiles they came from", () => {
  const b = new TiledBitmap({ createCanvas: fakeCanvasFactory });
  b.draw({ x: 0, y: 0, width: 10, height: 10 }, (g) => { g.fillStyle = "#ff0000"; g.fillRect(0, 0, 10, 10); });
  assert.equal(b.mip(0, 0, 0), b.tile("0,0").canvas);
  assert.equal(b.mip(0, 1, 0), null);
  const m1 = b.mip(1, 0, 0), m3 = b.mip(3, 0, 0);
  assert.ok(m1 && m3);
  assert.equal(b.mip(1, 0, 0), m1);
  assert.equal(b.mip(1, 4, 4), null);
  // far away (another level-1 and level-3 tile): kept
  b.draw({ x: 3000, y: 0, width: 4, height: 4 }, (g) => { g.fillStyle = "#00ff00"; g.fillRect(3000, 0, 4, 4); });
  assert.equal(b.mip(1, 0, 0), m1);
  assert.equal(b.mip(3, 0, 0), m3);
  assert.ok(b.mip(3, 1, 0));
  // inside level-1 tile 0,0 (level-0 tile 1,1): both levels rebuilt
  b.draw({ x: 300, y: 300, width: 4, height: 4 }, (g) => { g.fillStyle = "#00ff00"; g.fillRect(300, 300, 4, 4); });
  assert.notEqual(b.mip(1, 0, 0), m1);
  assert.notEqual(b.mip(3, 0, 0), m3);
  // undo-style restore of a removed tile invalidates as well
  const m1b = b.mip(1, 0, 0);
  b.restoreTile("1,1", null);
  assert.notEqual(b.mip(1, 0, 0), m1b);
});

const L = (id, extra = {}) => ({ id, type: "layer", kind: "raster", z: 0, x: 0, y: 0, opacity: 1, visible: true, ...extra });
const shape = (plan) => plan.map((it) => (it.type === "group" ? it.layers.map((l) => l.id) : it.layer.id));

test("planLayers: runs of untouched raster layers become composites; the edited layer, masks, control, transforms and fractional offsets stand alone", () => {
  const layers = [
    L("a"), L("b"), L("c"), L("act"), L("d"), L("e"),
    L("mask", { kind: "inpaint_mask" }), L("f"), L("g"),
    L("ctl", { kind: "control" }), L("h"), L("hidden", { visible: false }), L("zero", { opacity: 0 }), L("i"),
    L("frac", { x: 0.5 }), L("j"), L("moving"), L("k"),
  ];
  const plan = planLayers(layers, { active: "act", transformed: new Set(["moving"]) });
  assert.deepEqual(shape(plan), [["a", "b", "c"], "act", ["d", "e"], "mask", ["f", "g"], "ctl", ["h", "i"], "frac", "j", "moving", "k"]);
  assert.deepEqual(plan[0].members, [{ id: "a", x: 0, y: 0, opacity: 1 }, { id: "b", x: 0, y: 0, opacity: 1 }, { id: "c", x: 0, y: 0, opacity: 1 }]);
  // no active layer: one run of everything cacheable
  assert.deepEqual(shape(planLayers([L("a"), L("b"), L("c")])), [["a", "b", "c"]]);
  assert.deepEqual(shape(planLayers([L("a"), L("b")], { active: "b" })), ["a", "b"]);
  assert.deepEqual(planLayers([]), []);
});

test("a run's key changes exactly when what it draws changes: members, order, opacity, offset, visibility", () => {
  const base = [L("a"), L("b", { opacity: 0.5, x: 24, y: -16 }), L("c")];
  const key = (layers, opts) => planLayers(layers, opts).find((it) => it.type === "group")?.key;
  const k0 = key(base);
  assert.equal(k0, compositeKey([{ id: "a", x: 0, y: 0, opacity: 1 }, { id: "b", x: 24, y: -16, opacity: 0.5 }, { id: "c", x: 0, y: 0, opacity: 1 }]));
  assert.equal(key(base.map((l) => ({ ...l, name: "renamed", locked: true }))), k0, "names and locks do not matter");
  assert.notEqual(key([base[1], base[0], base[2]]), k0, "order");
  assert.notEqual(key([base[0], { ...base[1], opacity: 0.6 }, base[2]]), k0, "opacity");
  assert.notEqual(key([base[0], { ...base[1], x: 25 }, base[2]]), k0, "offset");
  assert.notEqual(key([base[0], { ...base[1], visible: false }, base[2]]), k0, "visibility");
  assert.equal(key([...base, L("hidden", { visible: false })]), k0, "a hidden layer adds nothing");
});

/** Registry + cache wired the way the renderer wires them. */
function setup() {
  const pixels = createPixelRegistry({ createCanvas: fakeCanvasFactory, createExportCanvas: fakeCanvasFactory });
  const cache = createCompositeCache({ bitmapOf: (id) => pixels.get(id), createCanvas: fakeCanvasFactory });
  pixels.subscribe(({ layerId, rect }) => cache.invalidate(layerId, rect));
  /** @param {string} id @param {number} x @param {number} y @param {number} w @param {number} h @param {string} color */
  const paint = (id, x, y, w, h, color) => pixels.ensure(id).draw({ x, y, width: w, height: h }, (g) => { g.fillStyle = color; g.fillRect(x, y, w, h); });
  const px = (canvas, x, y) => [...canvas.getContext("2d").getImageData(x, y, 1, 1).data];
  return { pixels, cache, paint, px };
}

test("Composite tiles stack the members bottom first at their offsets, lazily, in canvas coordinates", () => {
  const { cache, paint, px } = setup();
  paint("a", 0, 0, 300, 20, "#ff0000");
  paint("b", 0, 0, 10, 10, "#00ff00");
  const plan = planLayers([L("a"), L("b", { x: 250, y: 5 })]);
  const comp = cache.sync(plan).get(plan[0].key);
  assert.ok(comp instanceof Composite);
  assert.equal(comp.built, 0, "nothing built before it is drawn");
  const t0 = comp.tile(0, 0, 0), t1 = comp.tile(0, 1, 0);
  assert.deepEqual(px(t0, 5, 5), [255, 0, 0, 255]);
  assert.deepEqual(px(t0, 252, 7), [0, 255, 0, 255], "b on top, at its offset");
  assert.deepEqual(px(t1, 2, 7), [0, 255, 0, 255], "b crosses into the next composite tile");
  assert.deepEqual(px(t1, 40, 7), [255, 0, 0, 255], "a under it");
  assert.deepEqual(px(t1, 60, 7), [0, 0, 0, 0]);
  assert.equal(comp.tile(0, 3, 3), null);
  assert.equal(comp.built, 2);
  assert.equal(comp.tile(0, 0, 0), t0, "cached");
});

test("the composite cache drops exactly the tiles a member's change covers, ignores other layers, and follows the plan", () => {
  const { pixels, cache, paint } = setup();
  paint("a", 0, 0, 600, 600, "#ff0000");
  paint("b", 0, 0, 600, 600, "#0000ff");
  paint("other", 0, 0, 600, 600, "#00ff00");
  const plan = planLayers([L("a"), L("b", { x: 256, y: 0 }), L("other")], { active: "other" });
  assert.equal(plan.length, 2);
  const comp = cache.sync(plan).get(plan[0].key);
  const before = new Map();
  for (let ty = 0; ty < 3; ty++) for (let tx = 0; tx < 4; tx++) before.set(`${tx},${ty}`, comp.tile(0, tx, ty));
  const mip = comp.tile(1, 0, 0);
  assert.ok(mip);

  paint("other", 10, 10, 5, 5, "#ffffff"); // not a member: nothing dropped
  for (const [k, t] of before) assert.equal(comp.tile(0, ...k.split(",").map(Number)), t, k);
  assert.equal(comp.tile(1, 0, 0), mip);

  paint("b", 10, 10, 5, 5, "#ffffff"); // b's (10, 10) is canvas (266, 10): composite tile 1,0 only
  for (const [k, t] of before) {
    const now = comp.tile(0, ...k.split(",").map(Number));
    if (k === "1,0") assert.notEqual(now, t, k); else assert.equal(now, t, k);
  }
  assert.notEqual(comp.tile(1, 0, 0), mip, "and the mips over it");

  // a pixel undo (tile restore) is a change like any other
  const t10 = comp.tile(0, 1, 0);
  pixels.get("b").restoreTile("0,0", null);
  assert.notEqual(comp.tile(0, 1, 0), t10);

  // dropping a member's bitmap drops the composite; a new plan drops composites it does not use
  assert.equal(cache.composites.size, 1);
  pixels.drop("a");
  assert.equal(cache.composites.size, 0);
  const p2 = planLayers([L("a"), L("b", { x: 256, y: 0 })]);
  cache.sync(p2);
  assert.deepEqual([...cache.composites.keys()], [p2[0].key]);
  cache.sync(planLayers([L("a"), L("b", { x: 256, y: 0, opacity: 0.5 })]));
  assert.equal(cache.composites.size, 1);
  assert.ok(!cache.composites.has(p2[0].key), "the old key is gone");
  cache.sync([]);
  assert.equal(cache.composites.size, 0);
});
