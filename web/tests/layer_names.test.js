import { test } from "node:test";
import assert from "node:assert/strict";
import { nextLayerIndex } from "../panels/layers.js";

const raster = (name) => ({ kind: "raster", name });

test("a new layer is numbered one past the highest default name of its kind", () => {
  assert.equal(nextLayerIndex("raster", []), 1);
  assert.equal(nextLayerIndex("raster", [raster("Raster 1")]), 2);
  assert.equal(nextLayerIndex("raster", [raster("Raster 1"), raster("Raster 2")]), 3);
});

test("a dropped or renamed layer does not push the number past the default names", () => {
  // "Raster 1" and a dropped photo: the next is "Raster 2", not "Raster 3"
  assert.equal(nextLayerIndex("raster", [raster("Raster 1"), raster("harbour")]), 2);
  assert.equal(nextLayerIndex("raster", [raster("harbour"), raster("Raster 1"), raster("Raster 1 copy")]), 2);
});

test("after a delete the number is never one already taken", () => {
  // Raster 1 deleted, Raster 2 left: the count would give "Raster 2" again
  assert.equal(nextLayerIndex("raster", [raster("Raster 2")]), 3);
});

test("all renamed: count plus one; other kinds and names are not counted", () => {
  assert.equal(nextLayerIndex("raster", [raster("sky"), raster("sea")]), 3);
  const layers = [raster("Raster 4"), { kind: "regional_guidance", name: "Region 1" }, { kind: "inpaint_mask", name: "Raster 9" }];
  assert.equal(nextLayerIndex("regional_guidance", layers), 2);
  assert.equal(nextLayerIndex("inpaint_mask", layers), 2);
  assert.equal(nextLayerIndex("control", layers), 1);
  assert.equal(nextLayerIndex("raster", [raster("Raster 07"), raster("Raster x")]), 3);
});
