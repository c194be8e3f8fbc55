import { test } from "node:test";
import assert from "node:assert/strict";
import { createStore } from "../state/store.js";
import { createHistory } from "../state/history.js";
import { createPixelRegistry } from "../canvas/tiles.js";
import { createFakePixels, fakeCanvasFactory } from "./fakes.js";

const layer = (id, z, extra = {}) => ({ id, type: "layer", kind: "raster", name: id, z, x: 0, y: 0, opacity: 1, visible: true, locked: false, ...extra });
const tick = () => new Promise((r) => setTimeout(r, 0));

test("a gesture of many store changes is one step; undo and redo invert it", () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  h.mark("drag");
  for (let x = 1; x <= 50; x++) s.update("a", { x });
  s.apply({ put: [layer("b", 2)] });
  h.commit();
  assert.equal(h.size, 1);
  assert.ok(h.undo());
  assert.equal(s.get("a").x, 0);
  assert.equal(s.get("b"), undefined);
  assert.ok(h.canRedo);
  assert.ok(h.redo());
  assert.equal(s.get("a").x, 50);
  assert.equal(s.get("b").z, 2);
  assert.ok(!h.redo());
});

test("undo/redo are unlimited and a new change clears redo", () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  for (let i = 1; i <= 300; i++) { h.mark(); s.update("a", { opacity: i / 300 }); h.commit(); }
  assert.equal(h.size, 300);
  for (let i = 0; i < 300; i++) assert.ok(h.undo());
  assert.equal(s.get("a").opacity, 1);
  assert.ok(!h.undo());
  h.redo();
  s.update("a", { name: "x" });
  assert.equal(h.canRedo, false);
});

test("changes outside a gesture group per tick into one step", async () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  s.update("a", { x: 1 });
  s.update("a", { y: 1 });
  await tick();
  s.update("a", { x: 2 });
  assert.equal(h.size, 2, "the pending step counts");
  h.undo();
  assert.deepEqual([s.get("a").x, s.get("a").y], [1, 1]);
  h.undo();
  assert.deepEqual([s.get("a").x, s.get("a").y], [0, 0]);
});

test("ephemeral records (view, selection, tool) and history:false changes are not recorded", () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  h.mark();
  s.apply({ put: [{ id: "view", type: "view", x: 1, y: 1, scale: 2 }, { id: "selection", type: "selection", layer_id: "a" }, { id: "tool", type: "tool", name: "brush" }] });
  s.update("a", { name: "quiet" }, { history: false });
  assert.equal(h.commit(), false);
  assert.equal(h.size, 0);
});

test("cancel restores the gesture's before state; undo during a gesture cancels it", () => {
  const s = createStore([layer("a", 1)]);
  const px = createFakePixels();
  const h = createHistory(s, px);
  h.mark(); s.update("a", { x: 5 }); h.commit();
  h.mark();
  s.update("a", { x: 9 });
  px.ensure("a").paint("0,0", 7);
  assert.ok(h.undo(), "cancels the open stroke");
  assert.equal(s.get("a").x, 5);
  assert.equal(px.get("a").read("0,0"), null);
  assert.equal(h.size, 1);
  assert.equal(h.inGesture, false);
});

test("pixel steps keep only touched tiles, before and after; undo/redo restore them", () => {
  const s = createStore([layer("a", 1)]);
  const px = createFakePixels(4);
  const h = createHistory(s, px);
  const L = px.ensure("a");
  h.mark(); L.paint("0,0", 1); h.commit();
  const tileBytes = 4 * 4 * 4;
  assert.equal(h.bytes, tileBytes, "new tile: no before, one after");
  h.mark();
  for (let i = 0; i < 20; i++) { L.paint("0,0", 2 + i); L.paint("1,0", 2 + i); }
  h.commit();
  assert.equal(h.size, 2);
  assert.equal(h.bytes, tileBytes + 3 * tileBytes, "first touch snapshot only, not per event");
  h.undo();
  assert.deepEqual(L.read("0,0"), new Array(64).fill(1));
  assert.equal(L.read("1,0"), null);
  h.redo();
  assert.deepEqual(L.read("0,0"), new Array(64).fill(21));
  assert.deepEqual(L.read("1,0"), new Array(64).fill(21));
  h.undo(); h.undo();
  assert.equal(L.read("0,0"), null);
  // A new step drops the redo steps and their bytes.
  h.mark(); L.paint("5,5", 3); h.commit();
  assert.equal(h.bytes, tileBytes);
});

test("store and pixels changed in one gesture undo together (new layer + stroke)", () => {
  const s = createStore();
  const px = createFakePixels();
  const h = createHistory(s, px);
  h.mark("brush");
  s.apply({ put: [layer("n", 1)] });
  px.ensure("n").paint("0,0", 9);
  h.commit();
  h.undo();
  assert.equal(s.get("n"), undefined);
  assert.equal(px.get("n").read("0,0"), null);
  h.redo();
  assert.ok(s.get("n"));
  assert.equal(px.get("n").read("0,0")[0], 9);
});

test("load clears history; undo listeners hear events", () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  const events = [];
  h.subscribe((e) => events.push(e.type));
  h.mark(); s.update("a", { x: 1 }); h.commit();
  h.undo(); h.redo();
  s.load([layer("b", 1)]);
  assert.equal(h.size, 0);
  assert.equal(h.canRedo, false);
  assert.deepEqual(events, ["commit", "undo", "redo", "clear"]);
});

test("with real tiled bitmaps, undo restores pixels identically and bytes follow touched tiles", () => {
  const s = createStore([layer("a", 1)]);
  const reg = createPixelRegistry({ createCanvas: fakeCanvasFactory, createExportCanvas: fakeCanvasFactory });
  const h = createHistory(s, reg);
  const b = reg.ensure("a");
  const fill = (color, x, y, w, hh) => b.draw({ x, y, width: w, height: hh }, (ctx) => { ctx.fillStyle = color; ctx.fillRect(x, y, w, hh); });
  h.mark(); fill("#ff0000", 10, 10, 100, 100); h.commit();
  const dump = () => b.keys().sort().map((k) => [k, [...b.tile(k).canvas.data]]);
  const before = dump();
  h.mark(); fill("#00ff00", 200, 200, 100, 100); h.commit();
  assert.equal(h.size, 2);
  // Step 2 touched 4 tiles: 0,0 existed (before+after), 3 new (after only) => 5 tile copies.
  const T = 256 * 256 * 4;
  assert.equal(h.bytes, T + 5 * T);
  h.undo();
  assert.deepEqual(dump(), before);
  h.redo();
  assert.deepEqual(b.bounds(), { x: 10, y: 10, width: 290, height: 290 });
});

test("reading getters mid-tick does not split the pending step", async () => {
  const s = createStore([layer("a", 1)]);
  const h = createHistory(s);
  const seen = [];
  s.subscribe(() => seen.push([h.canUndo, h.canRedo, h.size]));
  s.update("a", { x: 1 });
  s.update("a", { y: 1 });
  await tick();
  assert.equal(h.size, 1);
  assert.deepEqual(seen, [[true, false, 1], [true, false, 1]]);
  h.undo();
  assert.deepEqual([s.get("a").x, s.get("a").y], [0, 0]);
});
