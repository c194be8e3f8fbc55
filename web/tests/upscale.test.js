// Unit tests of the Upscale group's pure parts and the hires-fix params (node --test).
import test from "node:test";
import assert from "node:assert/strict";

import { hiresParams, paramsFromSettings } from "../document.js";
import { HIRES_SCALES, UPSCALE_SCALES, snapOut, upscaleChoices, upscaleDocument, upscaledRect, upscales } from "../panels/upscale.js";

const doc = () => ({
  bbox: { x: 8, y: 16, width: 64, height: 64 },
  layers: [
    { id: "a", kind: "raster", x: 0, y: 0, image_id: "1".repeat(32), visible: true },
    { id: "m", kind: "inpaint_mask", x: 0, y: 0, image_id: "2".repeat(32), visible: true },
    { id: "c", kind: "control", x: 0, y: 0, image_id: "3".repeat(32), visible: true, control: { model: "x" } },
    { id: "b", kind: "raster", x: 5, y: 7, image_id: "4".repeat(32), visible: false },
  ],
  params: { prompt: "p", steps: 10, loras: [{ model: "l", weight: 1 }], hires_fix: { scale: 2, strength: 0.4 } },
});

test("an upscale of the box keeps its raster layers only, with the upscale params and no hires fix", () => {
  const job = upscaleDocument(doc(), { scale: 4, model: "demo-upscaler", refine_strength: 0.3 });
  assert.deepEqual(job.bbox, { x: 8, y: 16, width: 64, height: 64 });
  assert.deepEqual(job.layers.map((l) => l.id), ["a", "b"]);
  assert.deepEqual(job.params.upscale, { scale: 4, refine_strength: 0.3, model: "demo-upscaler" });
  assert.equal(job.params.hires_fix, undefined);
  assert.deepEqual(job.params.loras, [{ model: "l", weight: 1 }], "a refine keeps the LoRA stack");
  const plain = upscaleDocument(doc(), { scale: 2 });
  assert.deepEqual(plain.params.upscale, { scale: 2, refine_strength: 0 }, "no model: the server's default upscaler");
  assert.equal(plain.params.loras, undefined, "nothing refined: no LoRAs sent");
});

test("an upscale of a layer: that layer alone, shown, under a box snapped around it", () => {
  const job = upscaleDocument(doc(), { scale: 2, layer: { id: "b", x: 5, y: 7, width: 30, height: 20 } });
  assert.deepEqual(job.layers.map((l) => [l.id, l.visible]), [["b", true]]);
  assert.deepEqual(job.bbox, { x: 0, y: 0, width: 40, height: 32 });
  assert.throws(() => upscaleDocument(doc(), { scale: 2, layer: { id: "m", x: 0, y: 0, width: 8, height: 8 } }), /no pixels to upscale/);
  const empty = { ...doc(), layers: [doc().layers[1]] };
  assert.throws(() => upscaleDocument(empty, { scale: 2 }), /Nothing to upscale/);
});

test("the result's rectangle and the snapping", () => {
  assert.deepEqual(upscaledRect({ x: -8, y: 8, width: 64, height: 32 }, 4), { x: -8, y: 8, width: 256, height: 128 });
  assert.deepEqual(snapOut({ x: -3, y: 9, width: 10, height: 1 }), { x: -8, y: 8, width: 16, height: 8 });
  assert.ok(upscales({ kind: "upscaler" }) && !upscales({ kind: "main" }) && !upscales(null));
});

test("hires fix goes into a job's params only when on, its numbers kept in range", () => {
  assert.equal(paramsFromSettings({}).hires_fix, undefined);
  assert.deepEqual(paramsFromSettings({ hires_fix: { scale: 1.5, strength: 0.3, upscaler: "demo-upscaler" } }).hires_fix, { scale: 1.5, strength: 0.3, upscaler: "demo-upscaler" });
  assert.deepEqual(hiresParams({ scale: 9, strength: 0, upscaler: "" }), { scale: 2, strength: 0.45 });
  assert.equal(hiresParams(null), null);
});

test("the panel's choices and limits come from the server's config, the fallbacks before it", () => {
  const before = upscaleChoices(null);
  assert.deepEqual(before.scales, UPSCALE_SCALES);
  assert.deepEqual(before.hiresScales, HIRES_SCALES);
  const cfg = {
    upscale_scales: [2, 4, 8],
    hires_scale_choices: [1.25, 2],
    numbers: { upscale_refine_strength: { min: 0, max: 0.9, step: 0.1 }, hires_strength: { min: 0, max: 1, step: 0.01, exclusive_min: true } },
  };
  const after = upscaleChoices(cfg);
  assert.deepEqual(after.scales, [2, 4, 8]);
  assert.deepEqual(after.hiresScales, [1.25, 2]);
  assert.equal(after.refine.max, 0.9);
  assert.equal(after.hiresStrength.step, 0.01);
});
