import { test } from "node:test";
import assert from "node:assert/strict";
import { TILE, TiledBitmap, alphaBounds, createPixelRegistry, parseTileKey, tileKey, tileKeysForRect, tileRange } from "../canvas/tiles.js";
import { fakeCanvasFactory } from "./fakes.js";

test("tile keys and ranges cover negative coordinates and fractional edges", () => {
  assert.equal(TILE, 256);
  assert.deepEqual(parseTileKey(tileKey(-3, 7)), { tx: -3, ty: 7 });
  assert.deepEqual(tileRange({ x: -1, y: 0, width: 2, height: 256 }), { tx0: -1, ty0: 0, tx1: 0, ty1: 0 });
  assert.deepEqual(tileKeysForRect({ x: 255.5, y: 255.5, width: 1, height: 1 }), ["0,0", "1,0", "0,1", "1,1"]);
  assert.deepEqual(tileKeysForRect({ x: 0, y: 0, width: 256, height: 256 }), ["0,0"]);
  assert.deepEqual(tileKeysForRect({ x: 0, y: 0, width: 0, height: 10 }), []);
  assert.deepEqual(tileKeysForRect({ x: -512, y: -1, width: 1, height: 1 }), ["-2,-1"]);
});

test("alphaBounds finds the painted box, exclusive", () => {
  const w = 5, h = 4, d = new Uint8ClampedArray(w * h * 4);
  assert.equal(alphaBounds(d, w, h), null);
  d[(1 * w + 3) * 4 + 3] = 1;
  d[(2 * w + 1) * 4 + 3] = 255;
  assert.deepEqual(alphaBounds(d, w, h), { x0: 1, y0: 1, x1: 4, y1: 3 });
});

const red = (ctx) => { ctx.fillStyle = "#ff0000"; };

test("TiledBitmap draws across tiles, reports exact bounds and exports exactly", () => {
  const b = new TiledBitmap({ createCanvas: fakeCanvasFactory });
  b.draw({ x: 250, y: -3, width: 10, height: 6 }, (ctx) => { red(ctx); ctx.fillRect(250, -3, 10, 6); });
  assert.deepEqual(b.keys().sort(), ["0,-1", "0,0", "1,-1", "1,0"]);
  assert.deepEqual(b.bounds(), { x: 250, y: -3, width: 10, height: 6 });
  assert.equal(b.bytes, 4 * TILE * TILE * 4);
  const c = b.toCanvas();
  assert.equal(c.width, 10);
  assert.deepEqual([...c.getContext().getImageData(0, 0, 1, 1).data], [255, 0, 0, 255]);
  assert.deepEqual(b.sample(259, 2), [255, 0, 0, 255]);
  assert.deepEqual(b.sample(260, 2), [0, 0, 0, 0]);
  assert.deepEqual(b.sample(-1000, 2), [0, 0, 0, 0]);
});

test("beginEdit announces tiles before they change; tilesIn only returns existing ones", () => {
  const seen = [];
  const b = new TiledBitmap({ createCanvas: fakeCanvasFactory, onEdit: (bm, keys) => seen.push(keys.map((k) => [k, bm.has(k)])) });
  b.beginEdit({ x: 0, y: 0, width: 300, height: 10 });
  assert.deepEqual(seen, [[["0,0", false], ["1,0", false]]]);
  assert.equal(b.tilesIn({ x: -1000, y: -1000, width: 5000, height: 5000 }).length, 2);
  assert.equal(b.tilesIn({ x: 0, y: 0, width: 10, height: 10 }).length, 1);
});

test("snapshot/restore of a tile is exact and independent; null removes", () => {
  const b = new TiledBitmap({ createCanvas: fakeCanvasFactory });
  b.draw({ x: 0, y: 0, width: 4, height: 4 }, (ctx) => { red(ctx); ctx.fillRect(0, 0, 4, 4); });
  const snap = b.snapshotTile("0,0");
  b.draw({ x: 0, y: 0, width: 8, height: 8 }, (ctx) => { ctx.fillStyle = "#00ff00"; ctx.fillRect(0, 0, 8, 8); });
  assert.deepEqual(b.bounds(), { x: 0, y: 0, width: 8, height: 8 });
  b.restoreTile("0,0", snap);
  assert.deepEqual(b.bounds(), { x: 0, y: 0, width: 4, height: 4 });
  assert.deepEqual(b.sample(1, 1), [255, 0, 0, 255]);
  b.restoreTile("0,0", null);
  assert.equal(b.bounds(), null);
  assert.equal(b.snapshotTile("0,0"), null);
});

test("registry: export/import speak canvas coordinates (layer offset applied)", () => {
  const reg = createPixelRegistry({ createCanvas: fakeCanvasFactory, createExportCanvas: fakeCanvasFactory, origin: () => ({ x: 100, y: -50 }) });
  const src = fakeCanvasFactory(3, 2);
  const sctx = src.getContext(); sctx.fillStyle = "#0000ff"; sctx.fillRect(0, 0, 3, 2);
  reg.importLayer("L", src, 110, -40);
  assert.deepEqual(reg.get("L").bounds(), { x: 10, y: 10, width: 3, height: 2 });
  const e = reg.exportLayer("L");
  assert.deepEqual([e.x, e.y, e.width, e.height], [110, -40, 3, 2]);
  assert.equal(reg.exportLayer("nope"), null);
  reg.importLayer("L", src, 100, -50);
  assert.deepEqual(reg.get("L").bounds(), { x: 0, y: 0, width: 3, height: 2 }, "replace clears first");
  reg.importLayer("L", src, 110, -40, { replace: false });
  assert.deepEqual(reg.get("L").bounds(), { x: 0, y: 0, width: 13, height: 12 });
  const changes = [];
  reg.subscribe((c) => changes.push(c.layerId));
  reg.drop("L");
  assert.equal(reg.get("L"), undefined);
  assert.deepEqual(changes, ["L"]);
});

test("registry: withoutHistory silences the edit listener", () => {
  const reg = createPixelRegistry({ createCanvas: fakeCanvasFactory });
  const seen = [];
  reg.setEditListener((id, _b, keys) => seen.push([id, keys.length]));
  reg.ensure("A").beginEdit({ x: 0, y: 0, width: 1, height: 1 });
  reg.withoutHistory(() => reg.ensure("A").beginEdit({ x: 0, y: 0, width: 1, height: 1 }));
  assert.deepEqual(seen, [["A", 1]]);
});

test("roughBounds never reads pixels and covers the exact bounds", () => {
  const b = new TiledBitmap({ createCanvas: fakeCanvasFactory });
  b.draw({ x: 10, y: 10, width: 20, height: 20 }, (ctx) => { ctx.fillStyle = "#ff0000"; ctx.fillRect(12, 12, 5, 5); });
  assert.deepEqual(b.roughBounds(), { x: 10, y: 10, width: 20, height: 20 });
  assert.deepEqual(b.bounds(), { x: 12, y: 12, width: 5, height: 5 });
  assert.deepEqual(b.roughBounds(), { x: 12, y: 12, width: 5, height: 5 }, "exact after a scan");
  b.draw({ x: 0, y: 0, width: 40, height: 40 }, (ctx) => ctx.clearRect(0, 0, 40, 40));
  assert.deepEqual(b.roughBounds(), { x: 0, y: 0, width: 40, height: 40 });
  assert.equal(b.bounds(), null);
});
