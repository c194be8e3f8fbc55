// Unit tests of a reference layer's settings in the document (node --test): weight, step range, IP-Adapter.
import test from "node:test";
import assert from "node:assert/strict";

import { DEFAULT_REFERENCE, layerToJson, newLayer, recordsFromDocument, referenceSettings } from "../document.js";

const asset = { image_id: "a".repeat(32), x: 600, y: 0 };

test("a new reference layer has the server's defaults and sends them, its model only once chosen", () => {
  const ref = newLayer("reference", { id: "r" });
  assert.deepEqual(ref.reference, { model: null, weight: 1, begin: 0, end: 1 });
  assert.deepEqual(layerToJson(ref, asset).reference, { weight: 1, begin: 0, end: 1 });
  const chosen = { ...ref, reference: { model: "demo-ip-adapter", weight: 0.6, begin: 0.2, end: 0.8 } };
  assert.deepEqual(layerToJson(chosen, asset).reference, { model: "demo-ip-adapter", weight: 0.6, begin: 0.2, end: 0.8 });
  assert.equal(layerToJson(newLayer("raster", { id: "x" }), asset).reference, undefined, "other kinds carry none");
});

test("reference settings are clamped into the server's ranges", () => {
  assert.deepEqual(referenceSettings({ weight: 9, begin: -1, end: 3 }), { weight: 2, begin: 0, end: 1 });
  assert.deepEqual(referenceSettings({ weight: "x", begin: 0.7, end: 0.3 }), { weight: 1, begin: 0, end: 1 }, "a reversed range is the whole range");
  assert.deepEqual(referenceSettings(null), { weight: 1, begin: 0, end: 1 });
  assert.deepEqual(referenceSettings({ model: "" }), { weight: 1, begin: 0, end: 1 });
});

test("a saved reference layer comes back with its settings; an older one with the defaults", () => {
  const doc = (reference) => ({
    bbox: { x: 0, y: 0, width: 64, height: 64 },
    params: {},
    layers: [{ id: "r", kind: "reference", image_id: "b".repeat(32), x: 80, y: 0, ...(reference ? { reference } : {}) }],
  });
  const { layers } = recordsFromDocument(doc({ model: "ipa", weight: 0.5, begin: 0.25, end: 0.75 }));
  assert.deepEqual(layers[0].reference, { model: "ipa", weight: 0.5, begin: 0.25, end: 0.75 });
  assert.deepEqual(recordsFromDocument(doc(null)).layers[0].reference, { ...DEFAULT_REFERENCE });
  const roundTrip = layerToJson(layers[0], asset);
  assert.deepEqual(roundTrip.reference, { model: "ipa", weight: 0.5, begin: 0.25, end: 0.75 });
});
