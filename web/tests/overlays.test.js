// Masks and regions are lifted above a staged result without changing the plan (so the composites
// built without staging are the ones drawn with it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { isOverlay, planLayers, splitOverlays } from "../canvas/cache.js";

const layer = (id, kind, z) => ({ id, type: "layer", kind, z, x: 0, y: 0, opacity: 1, visible: true });

test("splitOverlays: masks and regions over, composites, raster and control layers under, each in plan order", () => {
  const layers = [
    layer("r1", "raster", 1), layer("r2", "raster", 2), layer("m", "inpaint_mask", 3),
    layer("r3", "raster", 4), layer("r4", "raster", 5), layer("g", "regional_guidance", 6),
    layer("c", "control", 7), layer("top", "raster", 8),
  ];
  const plan = planLayers(layers, { active: "top" });
  const { under, over } = splitOverlays(plan);
  assert.deepEqual(over.map((i) => i.type === "layer" && i.layer.id), ["m", "g"]);
  assert.deepEqual(under.map((i) => (i.type === "group" ? i.key : i.layer.id)),
    [plan[0].type === "group" && plan[0].key, plan[2].type === "group" && plan[2].key, "c", "top"]);
  // nothing lost or duplicated, and the groups are the plan's own objects (same composite keys)
  assert.equal(under.length + over.length, plan.length);
  for (const item of under) assert.ok(plan.includes(item));
});

test("splitOverlays: a plan without masks is all under; isOverlay names the tinted kinds", () => {
  const plan = planLayers([layer("a", "raster", 1), layer("b", "control", 2)]);
  assert.deepEqual(splitOverlays(plan), { under: plan, over: [] });
  assert.equal(isOverlay(layer("x", "inpaint_mask", 0)), true);
  assert.equal(isOverlay(layer("x", "regional_guidance", 0)), true);
  assert.equal(isOverlay(layer("x", "raster", 0)), false);
  assert.equal(isOverlay(layer("x", "control", 0)), false);
});
