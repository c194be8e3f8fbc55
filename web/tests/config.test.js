// document.js takes its defaults and LoRA limits from the server's config (GET /api/v1/config).
import assert from "node:assert/strict";
import test from "node:test";

import * as doc from "../document.js";

test("clampToLimit keeps a value inside the published range", () => {
  const side = { min: 0, max: 4096, exclusive_min: true, step: 8, integer: true };
  assert.equal(doc.clampToLimit("8192", side), 4096);
  assert.equal(doc.clampToLimit("0", side), 8, "an exclusive min: one step above it");
  assert.equal(doc.clampToLimit("12.4", { min: 1, max: 500, step: 1, integer: true }), 12);
  assert.equal(doc.clampToLimit("0.333", { min: 0, max: 50, step: 0.5, integer: false }), 0.333);
  assert.equal(doc.clampToLimit("", side), undefined);
  assert.equal(doc.clampToLimit("abc", side), undefined);
  assert.equal(doc.lowestAccepted({ min: 0, max: 1, exclusive_min: true, step: 0.01 }), 0.01);
  assert.equal(doc.lowestAccepted({ min: 1, max: 64, step: 1 }), 1);
});

test("before any config: no SERVER_CONFIG", () => {
  assert.equal(doc.SERVER_CONFIG, null);
});

test("applyServerConfig replaces the defaults and LoRA limits (live bindings), keeping what it lacks", () => {
  const before = doc.DEFAULT_SETTINGS;
  doc.applyServerConfig({
    numbers: {
      steps: { default: 12 },
      cfg_scale: { default: 3 },
      seed: { default: null },
      bbox_width: { default: 256 },
      bbox_height: { default: 384 },
      region_strength: { default: 0.5 },
      lora_weight: { min: -1, max: 3, default: 1 },
    },
    max_loras: 4,
    defaults: { params: { scheduler: "ddim", infill: "tile" } },
  });
  assert.equal(doc.SERVER_CONFIG.max_loras, 4);
  assert.notEqual(doc.DEFAULT_SETTINGS, before);
  assert.ok(Object.isFrozen(doc.DEFAULT_SETTINGS));
  assert.equal(doc.DEFAULT_SETTINGS.steps, 12);
  assert.equal(doc.DEFAULT_SETTINGS.cfg_scale, 3);
  assert.equal(doc.DEFAULT_SETTINGS.seed, 0, "a null (random) seed default keeps the field's 0");
  assert.equal(doc.DEFAULT_SETTINGS.scheduler, "ddim");
  assert.equal(doc.DEFAULT_SETTINGS.infill, "tile");
  assert.equal(doc.DEFAULT_SETTINGS.batch_size, before.batch_size, "absent: unchanged");
  assert.deepEqual([doc.DEFAULT_BBOX.width, doc.DEFAULT_BBOX.height], [256, 384]);
  assert.equal(doc.DEFAULT_REGION_STRENGTH, 0.5);
  assert.deepEqual([doc.LORA_WEIGHT_MIN, doc.LORA_WEIGHT_MAX, doc.LORA_MAX], [-1, 3, 4]);
  assert.equal(doc.clampLoraWeight(5), 3);
  assert.equal(doc.paramsFromSettings({}).steps, 12);
  doc.applyServerConfig(null); // ignored
  assert.equal(doc.DEFAULT_SETTINGS.steps, 12);
});
