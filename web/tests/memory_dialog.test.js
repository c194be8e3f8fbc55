import assert from "node:assert/strict";
import { test } from "node:test";

test("bytes read as people read them", async () => {
  const { formatBytes } = await import("../panels/memory_dialog.js");
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(3.5 * 1024 * 1024), "3.5 MB");
  assert.equal(formatBytes(12 * 1024 ** 3), "12 GB");
  assert.equal(formatBytes(-5), "0 B");
});

test("a model's row counts its components, shared ones included, and says which it shares", async () => {
  const { memoryRows } = await import("../panels/memory_dialog.js");
  const models = [
    { id: "a", name: "A", keep_loaded: true, format: "diffusers", kind: "main", weights: "fp8", memory_bytes: 900 },
    { id: "b", name: "B", format: "diffusers", kind: "main" },
    { id: "c", name: "C", format: "diffusers", kind: "controlnet" },
  ];
  const cache = {
    loaded: ["a", "b"],
    components: [
      { name: "text_encoder", bytes: 100, tier: "ram", models: ["a", "b"] },
      { name: "unet", bytes: 50, tier: "ram", models: ["a"] },
      { name: "unet", bytes: 70, tier: "vram", models: ["b"] },
    ],
  };
  const [a, b, c] = memoryRows(models, cache);
  assert.deepEqual([a.loaded, a.bytes, a.shared, a.tiers, a.keep], [true, 150, ["text_encoder"], ["ram"], true]);
  assert.deepEqual([b.bytes, b.tiers], [170, ["ram", "vram"]]);
  assert.deepEqual([c.loaded, c.bytes, c.keep], [false, 0, false]);
  assert.deepEqual([a.weights, a.estimate, a.storable], ["fp8", 900, true]);
  assert.deepEqual([b.weights, b.estimate, c.storable], ["native", null, false], "a ControlNet keeps its weights as loaded");
});
