// Unit tests of the pure parts of the document builder (node --test).
import test from "node:test";
import assert from "node:assert/strict";

import {
  DEFAULT_SETTINGS,
  clampLoraWeight,
  loraMisfit,
  mainModel,
  normaliseLoraRows,
  buildDocument,
  canonicalJson,
  createAssetTracker,
  fingerprint,
  layerToJson,
  migrateExtras,
  newLayer,
  paramsFromSettings,
  recordsFromDocument,
  referenceRect,
  uiState,
} from "../document.js";

/** A fake exported layer: `fill` bytes, w x h at (x, y). */
function exported(x, y, w, h, fill = 7) {
  const data = new Uint8ClampedArray(w * h * 4).fill(fill);
  return { x, y, width: w, height: h, canvas: { data } };
}

/** A fake pixels module holding exported layers by id. */
function fakeCanvas(initial) {
  const store = new Map(Object.entries(initial));
  return {
    exportLayer: (id) => store.get(id) ?? null,
    readPixels: (e) => e.canvas.data,
    set: (id, e) => store.set(id, e),
    get: (id) => store.get(id),
  };
}

function fakeUploader() {
  const calls = [];
  let n = 0;
  return {
    calls,
    upload: async (e, layer) => {
      calls.push(layer.id);
      n += 1;
      return n.toString(16).padStart(32, "0");
    },
  };
}

const BBOX = { id: "bbox", x: 8, y: 16, width: 512, height: 768 };

test("layerToJson maps a raster layer to the server's LayerIn fields only", () => {
  const layer = { ...newLayer("raster", { id: "r1" }), opacity: 0.5, visible: false, name: "Sky", locked: true, z: 4 };
  const json = layerToJson(layer, { image_id: "a".repeat(32), x: 10.4, y: -3 });
  assert.deepEqual(json, { id: "r1", kind: "raster", x: 10, y: -3, image_id: "a".repeat(32), opacity: 0.5, visible: false, name: "Sky", locked: true });
});

test("layerToJson: an empty layer has no image_id or position; names are clamped, colours checked", () => {
  const mask = { ...newLayer("inpaint_mask", { id: "m" }), name: "  " + "n".repeat(300), color: "#A0B1C2" };
  const json = layerToJson(mask, null, { strict: false });
  assert.deepEqual(Object.keys(json), ["id", "kind", "opacity", "visible", "name", "locked", "color"]);
  assert.equal(json.name.length, 200);
  assert.equal(json.color, "#a0b1c2");
  assert.equal(layerToJson({ ...mask, color: "red", name: " " }, null).color, undefined, "not #rrggbb: left out");
  assert.equal("name" in layerToJson({ ...mask, name: " " }, null), false, "a blank name is left out (the server needs 1..200)");
});

test("layerToJson adds region prompts and control settings", () => {
  const region = { ...newLayer("regional_guidance", { id: "g" }), prompt: "a cat", negative_prompt: "blurry" };
  assert.deepEqual(layerToJson(region, { image_id: "b".repeat(32), x: 0, y: 0 }).region, { prompt: "a cat", negative_prompt: "blurry", strength: 0.8 });
  assert.equal(layerToJson({ ...region, strength: 0.35 }, null).region.strength, 0.35);
  assert.equal(layerToJson({ ...region, strength: 1.7 }, null).region.strength, 1, "clamped to [0, 1]");
  assert.equal(layerToJson({ ...region, strength: undefined }, null).region.strength, 0.8, "an older layer gets the default");
  const control = newLayer("control", { id: "c", control_model: "demo-controlnet" });
  control.control = { ...control.control, preprocessor: "canny", weight: 0.8, begin: 0.1, end: 0.9, mode: "prompt" };
  assert.deepEqual(layerToJson(control, { image_id: "c".repeat(32), x: 0, y: 0 }).control, {
    model: "demo-controlnet",
    preprocessor: "canny",
    weight: 0.8,
    begin: 0.1,
    end: 0.9,
    mode: "prompt",
  });
  const mask = layerToJson(newLayer("inpaint_mask", { id: "m" }), { image_id: "d".repeat(32), x: 0, y: 0 });
  assert.equal(mask.region, undefined);
  assert.equal(mask.control, undefined);
  assert.equal(mask.color, "#e0533d", "the mask tint is saved");
});

test("a reference layer carries no settings, and a picture loaded into one keeps its shape beside the box", () => {
  const ref = newLayer("reference", { id: "f", index: 2 });
  assert.equal(ref.name, "Reference 2");
  const json = layerToJson(ref, { image_id: "f".repeat(32), x: 600, y: 0 });
  assert.deepEqual([json.kind, json.region, json.control], ["reference", undefined, undefined]);
  const box = { x: 0, y: 0, width: 512, height: 512 };
  assert.deepEqual(referenceRect({ width: 1600, height: 1024 }, box), { x: 528, y: 0, width: 800, height: 512 });
  assert.deepEqual(referenceRect({ width: 200, height: 100 }, { ...box, x: -64, y: 32 }), { x: 464, y: 32, width: 200, height: 100 }, "not enlarged");
});

test("a control layer without a model is a clear error for a job, and saved without control", () => {
  const control = newLayer("control", { id: "c", name: "Pose" });
  assert.throws(() => layerToJson(control, { image_id: "e".repeat(32), x: 0, y: 0 }), /Pose.*no ControlNet model/);
  const saved = layerToJson(control, { image_id: "e".repeat(32), x: 0, y: 0 }, { strict: false });
  assert.equal(saved.kind, "control");
  assert.equal("control" in saved, false, "the server's ControlIn needs a model: left out until one is chosen");
});

test("params leave the seed out when it is random and keep it when fixed", () => {
  const random = paramsFromSettings({ ...DEFAULT_SETTINGS, seed: 42, random_seed: true, prompt: "p" });
  assert.equal("seed" in random, false);
  assert.equal(random.prompt, "p");
  assert.equal("random_seed" in random, false);
  assert.equal("id" in random, false);
  const fixed = paramsFromSettings({ ...DEFAULT_SETTINGS, seed: 42, random_seed: false, steps: "12" });
  assert.equal(fixed.seed, 42);
  assert.equal(fixed.steps, 12);
  assert.equal(fixed.model, null);
});

test("fingerprint changes with pixels and position, not otherwise", () => {
  const a = exported(0, 0, 4, 4, 1);
  const b = exported(0, 0, 4, 4, 1);
  const fa = fingerprint(a.canvas.data, 4, 4, 0, 0);
  assert.equal(fa, fingerprint(b.canvas.data, 4, 4, 0, 0));
  b.canvas.data[37] = 2;
  assert.notEqual(fa, fingerprint(b.canvas.data, 4, 4, 0, 0));
  assert.notEqual(fa, fingerprint(a.canvas.data, 4, 4, 8, 0));
  assert.notEqual(fa, fingerprint(a.canvas.data, 2, 8, 0, 0));
  // a plain array (no buffer) hashes the same bytes the same way
  assert.equal(fa, fingerprint(Array.from(a.canvas.data), 4, 4, 0, 0));
});

test("a job for a family without negative prompts goes without them; a save keeps them", async () => {
  const region = { ...newLayer("regional_guidance", { id: "g", z: 1 }), prompt: "a boat", negative_prompt: "fog" };
  const canvas = fakeCanvas({ g: exported(0, 0, 8, 8, 255) });
  const settings = { ...DEFAULT_SETTINGS, prompt: "p", negative_prompt: "blur" };
  const args = { layers: [region], bbox: BBOX, settings, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: fakeUploader().upload, tracker: createAssetTracker() };
  const job = (await buildDocument({ ...args, forJob: true, negatives: false })).document;
  assert.equal(job.params.negative_prompt, "");
  assert.equal(job.layers[0].region.negative_prompt, "");
  assert.equal(job.layers[0].region.prompt, "a boat");
  const kept = (await buildDocument({ ...args, forJob: true })).document;
  assert.equal(kept.params.negative_prompt, "blur");
  const saved = (await buildDocument({ ...args, negatives: false })).document;
  assert.equal(saved.params.negative_prompt, "blur", "the text stays for another model");
  assert.equal(saved.layers[0].region.negative_prompt, "fog");
});

test("buildDocument uploads each layer once and re-uploads only changed layers", async () => {
  const r1 = newLayer("raster", { id: "r1", z: 1 });
  const m1 = newLayer("inpaint_mask", { id: "m1", z: 2 });
  const canvas = fakeCanvas({ r1: exported(0, 0, 8, 8, 10), m1: exported(16, 16, 8, 8, 200) });
  const tracker = createAssetTracker();
  const up = fakeUploader();
  const args = { layers: [r1, m1], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker };

  const first = await buildDocument(args);
  assert.deepEqual(up.calls, ["r1", "m1"]);
  assert.deepEqual(first.document.bbox, { x: 8, y: 16, width: 512, height: 768 });
  assert.deepEqual(first.document.layers.map((l) => [l.id, l.kind, l.x, l.y]), [
    ["r1", "raster", 0, 0],
    ["m1", "inpaint_mask", 16, 16],
  ]);

  const second = await buildDocument(args);
  assert.deepEqual(up.calls, ["r1", "m1"], "nothing changed: nothing uploaded");
  assert.deepEqual(second.document, first.document);

  canvas.get("m1").canvas.data[5] = 0; // paint on the mask
  const third = await buildDocument(args);
  assert.deepEqual(up.calls, ["r1", "m1", "m1"], "only the changed layer is uploaded again");
  assert.equal(third.document.layers[0].image_id, first.document.layers[0].image_id);
  assert.notEqual(third.document.layers[1].image_id, first.document.layers[1].image_id);

  // moving a layer changes its position, so it is a new asset placement too
  const moved = canvas.get("r1");
  canvas.set("r1", { ...moved, x: 24 });
  await buildDocument(args);
  assert.deepEqual(up.calls, ["r1", "m1", "m1", "r1"]);
  // undoing the move returns to pixels already uploaded: no upload
  canvas.set("r1", moved);
  await buildDocument(args);
  assert.equal(up.calls.length, 4);
});

test("assets the server deleted are uploaded again, by layer and after an undo (tracker.drop)", async () => {
  const r1 = newLayer("raster", { id: "r1", z: 1 });
  const canvas = fakeCanvas({ r1: exported(0, 0, 8, 8, 10) });
  const tracker = createAssetTracker();
  const up = fakeUploader();
  const args = { layers: [r1], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker };
  const first = (await buildDocument(args)).document.layers[0].image_id;
  const before = canvas.get("r1");
  canvas.set("r1", { ...before, x: 24 }); // a change: a second asset
  const second = (await buildDocument(args)).document.layers[0].image_id;
  tracker.drop([first]); // a superseded live job's layer, deleted by the server (event assets_deleted)
  canvas.set("r1", before); // undo: the first pixels again, their asset gone
  const again = (await buildDocument(args)).document.layers[0].image_id;
  assert.equal(up.calls.length, 3);
  assert.ok(![first, second].includes(again));
  tracker.drop([again]); // the layer's current asset
  await buildDocument(args);
  assert.equal(up.calls.length, 4);
});

test("layer settings changes need no upload (opacity, prompts)", async () => {
  const g = newLayer("regional_guidance", { id: "g", z: 1 });
  const canvas = fakeCanvas({ g: exported(0, 0, 8, 8, 3) });
  const tracker = createAssetTracker();
  const up = fakeUploader();
  const base = { bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker };
  await buildDocument({ ...base, layers: [g] });
  const changed = await buildDocument({ ...base, layers: [{ ...g, opacity: 0.3, prompt: "a dog" }] });
  assert.equal(up.calls.length, 1);
  assert.equal(changed.document.layers[0].opacity, 0.3);
  assert.equal(changed.document.layers[0].region.prompt, "a dog");
});

test("concurrent builds share one upload per layer", async () => {
  const r1 = newLayer("raster", { id: "r1" });
  const canvas = fakeCanvas({ r1: exported(0, 0, 8, 8, 1) });
  const tracker = createAssetTracker();
  const up = fakeUploader();
  const args = { layers: [r1], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker };
  const [a, b] = await Promise.all([buildDocument(args), buildDocument(args)]);
  assert.equal(up.calls.length, 1);
  assert.equal(a.document.layers[0].image_id, b.document.layers[0].image_id);
});

test("jobs take visible layers with pixels only; saves keep hidden and empty ones in order", async () => {
  const shown = newLayer("raster", { id: "shown", z: 1 });
  const hidden = { ...newLayer("raster", { id: "hidden", z: 2 }), visible: false };
  const blank = newLayer("raster", { id: "blank", z: 3 });
  const canvas = fakeCanvas({ shown: exported(0, 0, 8, 8, 1), hidden: exported(0, 0, 8, 8, 2) });
  const tracker = createAssetTracker();
  const up = fakeUploader();
  const args = { layers: [shown, hidden, blank], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker };
  const job = await buildDocument({ ...args, forJob: true });
  assert.deepEqual(job.document.layers.map((l) => l.id), ["shown"]);
  assert.deepEqual(job.empty, ["blank"]);
  assert.equal("ui" in job.document, false);
  const save = await buildDocument({ ...args, forJob: false, ui: { v: 2, random_seed: true } });
  assert.deepEqual(save.document.layers.map((l) => [l.id, l.visible, l.image_id ?? null]), [
    ["shown", true, save.document.layers[0].image_id],
    ["hidden", false, save.document.layers[1].image_id],
    ["blank", true, null],
  ]);
  assert.equal("x" in save.document.layers[2], false);
  assert.deepEqual(save.empty, ["blank"]);
  assert.deepEqual(save.document.ui, { v: 2, random_seed: true });
});

test("a save keeps a model-less control layer; a job with one fails before uploading anything", async () => {
  const c = newLayer("control", { id: "c" });
  const canvas = fakeCanvas({ c: exported(0, 0, 8, 8, 1) });
  const up = fakeUploader();
  const saved = await buildDocument({ layers: [c], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker: createAssetTracker() });
  assert.deepEqual(saved.document.layers.map((l) => l.kind), ["control"]);
  up.calls.length = 0;
  await assert.rejects(
    buildDocument({ layers: [c], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker: createAssetTracker(), forJob: true }),
    /no ControlNet model/,
  );
  assert.equal(up.calls.length, 0);
});

test("a restored layer remembered by the tracker is not uploaded again", async () => {
  const r1 = newLayer("raster", { id: "r1" });
  const canvas = fakeCanvas({ r1: exported(4, 4, 8, 8, 9) });
  const tracker = createAssetTracker();
  const e = canvas.get("r1");
  tracker.remember("r1", fingerprint(e.canvas.data, 8, 8, 4, 4), "f".repeat(32));
  const up = fakeUploader();
  const out = await buildDocument({ layers: [r1], bbox: BBOX, settings: DEFAULT_SETTINGS, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker });
  assert.equal(up.calls.length, 0);
  assert.equal(out.document.layers[0].image_id, "f".repeat(32));
});

test("a saved document restores the same records in any browser (no localStorage)", async () => {
  const r1 = { ...newLayer("raster", { id: "r1", z: 1 }), name: "Background", locked: true };
  const g = { ...newLayer("regional_guidance", { id: "g", z: 2 }), prompt: "sea", color: "#123456", opacity: 0.4 };
  const blank = { ...newLayer("raster", { id: "blank", z: 3 }), name: "Empty", locked: true };
  const m = { ...newLayer("inpaint_mask", { id: "m", z: 4 }), name: "Mask", color: "#00ff00", visible: false };
  const settings = { ...DEFAULT_SETTINGS, prompt: "a harbour", seed: 99, random_seed: true, steps: 12 };
  const staging = { id: "staging", type: "staging", items: [{ image_id: "x", url: "/u", item_id: 3, bbox: BBOX }], index: 0, bbox: BBOX };
  const jobs = new Map([[17, { bbox: { x: 0, y: 0, width: 64, height: 64 }, generation_id: "gen17" }]]);
  const canvas = fakeCanvas({ r1: exported(0, 0, 8, 8, 1), g: exported(32, 8, 8, 8, 2), m: exported(4, 4, 4, 4, 3) });
  const up = fakeUploader();
  const ui = uiState({ settings, staging, board: "board-1", jobs });
  const tracker = createAssetTracker();
  const built = await buildDocument({ layers: [r1, g, blank, m], bbox: BBOX, settings, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels, upload: up.upload, tracker, ui });
  const json = JSON.parse(JSON.stringify(built.document)); // as the server stores it
  assert.deepEqual(json.ui, {
    v: 2,
    random_seed: true,
    seed: 99,
    staging: { items: staging.items, index: 0, bbox: BBOX },
    board: "board-1",
    jobs: [{ item_id: 17, bbox: { x: 0, y: 0, width: 64, height: 64 }, generation_id: "gen17" }],
  });
  const restored = recordsFromDocument(json);

  assert.deepEqual(restored.layers.map((l) => [l.id, l.name, l.z, l.locked, l.visible, l.color ?? null]), [
    ["r1", "Background", 1, true, true, null],
    ["g", "Region 1", 2, false, true, "#123456"],
    ["blank", "Empty", 3, true, true, null],
    ["m", "Mask", 4, false, false, "#00ff00"],
  ]);
  assert.equal(restored.layers[1].prompt, "sea");
  assert.equal(restored.layers[1].opacity, 0.4);
  assert.deepEqual(restored.imports, [
    { layer_id: "r1", image_id: built.document.layers[0].image_id, x: 0, y: 0 },
    { layer_id: "g", image_id: built.document.layers[1].image_id, x: 32, y: 8 },
    { layer_id: "m", image_id: built.document.layers[3].image_id, x: 4, y: 4 },
  ]);
  assert.equal(restored.settings.prompt, "a harbour");
  assert.equal(restored.settings.steps, 12);
  assert.equal(restored.settings.random_seed, true);
  assert.equal(restored.settings.seed, 99);
  assert.equal(restored.bbox.width, 768 - 256);
  assert.deepEqual(restored.staging, { id: "staging", type: "staging", items: staging.items, index: 0, bbox: BBOX });
  assert.deepEqual(restored.jobs, [[17, { bbox: { x: 0, y: 0, width: 64, height: 64 }, generation_id: "gen17" }]]);
  assert.equal(restored.board, "board-1");

  // the round trip is stable: rebuilding from the restored records gives the same document
  const again = await buildDocument({
    layers: restored.layers,
    bbox: restored.bbox,
    settings: restored.settings,
    exportLayer: canvas.exportLayer,
    readPixels: canvas.readPixels,
    upload: up.upload,
    tracker,
    ui: uiState({ settings: restored.settings, staging: restored.staging, board: restored.board, jobs: restored.jobs }),
  });
  assert.equal(canonicalJson(again.document), canonicalJson(json));
});

test("a fixed seed comes from params; a random one from ui", () => {
  const fixed = recordsFromDocument({ bbox: BBOX, layers: [], params: { seed: 5 }, ui: { v: 2, random_seed: false, seed: 1 } });
  assert.equal(fixed.settings.seed, 5);
  assert.equal(fixed.settings.random_seed, false);
  const random = recordsFromDocument({ bbox: BBOX, layers: [], params: {}, ui: { v: 2, random_seed: true, seed: 1 } });
  assert.equal(random.settings.seed, 1);
  assert.equal(random.settings.random_seed, true);
});

test("a document without ui (an older save) restores with defaults", () => {
  const doc = {
    bbox: { x: 0, y: 0, width: 64, height: 64 },
    layers: [{ id: "a", kind: "inpaint_mask", x: 1, y: 2, image_id: "1".repeat(32), opacity: 1, visible: true }],
    params: { prompt: "p", seed: 5, steps: 3 },
  };
  const r = recordsFromDocument(doc);
  assert.equal(r.layers[0].kind, "inpaint_mask");
  assert.equal(r.layers[0].type, "layer");
  assert.equal(r.layers[0].name, "Inpaint mask 1");
  assert.equal(r.layers[0].color, "#e0533d");
  assert.equal(r.settings.seed, 5);
  assert.equal(r.settings.random_seed, false);
  assert.equal(r.staging, null);
  assert.deepEqual(r.jobs, []);
  assert.equal(r.board, null);
});

test("older localStorage extras migrate into the document once", () => {
  const doc = {
    bbox: { x: 0, y: 0, width: 64, height: 64 },
    layers: [
      { id: "top", kind: "raster", x: 0, y: 0, image_id: "1".repeat(32), opacity: 1, visible: true },
      { id: "bottom", kind: "inpaint_mask", x: 0, y: 0, image_id: "2".repeat(32), opacity: 1, visible: true },
    ],
    params: { prompt: "p" },
  };
  const extras = {
    v: 1,
    layers: [
      { id: "top", kind: "raster", name: "Top", z: 3, locked: true, empty: false },
      { id: "bottom", kind: "inpaint_mask", name: "Bottom", z: 1, color: "#abcdef", empty: false },
      { id: "gap", kind: "raster", name: "Nothing yet", z: 2, empty: true },
    ],
    settings: { seed: 7, random_seed: true },
    staging: { id: "staging", type: "staging", items: [{ image_id: "s", url: "/s", item_id: 2 }], index: 0, bbox: null },
  };
  const migrated = migrateExtras(doc, extras, [[9, { bbox: BBOX, generation_id: "g9" }]]);
  assert.deepEqual(migrated.layers.map((l) => [l.id, l.name, l.locked, l.color ?? null, l.image_id ?? null]), [
    ["bottom", "Bottom", false, "#abcdef", "2".repeat(32)],
    ["gap", "Nothing yet", false, null, null],
    ["top", "Top", true, null, "1".repeat(32)],
  ]);
  assert.deepEqual(migrated.ui.staging.items, extras.staging.items);
  assert.equal(migrated.ui.seed, 7);
  assert.deepEqual(migrated.ui.jobs, [{ item_id: 9, bbox: BBOX, generation_id: "g9" }]);
  assert.equal(migrateExtras(migrated, extras), migrated, "a document with ui is left alone");
  const r = recordsFromDocument(migrated);
  assert.deepEqual(r.layers.map((l) => [l.id, l.z]), [["bottom", 1], ["gap", 2], ["top", 3]]);
});

test("canonicalJson ignores key order", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
  assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
});

// ---- LoRA stacks and region strength --------------------------------------------------------------

const MODELS = [
  { id: "demo", name: "Demo SD1.5", family: "sd-1", kind: "main", builtin: true },
  { id: "demo-inpaint", name: "Demo inpaint", family: "sd-1", kind: "inpaint", builtin: true },
  { id: "xl", name: "My SDXL", family: "sdxl", kind: "main", builtin: false },
  { id: "style-a", name: "style_a", family: "sd-1", kind: "lora" },
  { id: "style-b", name: "style_b", family: "sd-1", kind: "lora" },
  { id: "xl-style", name: "xl_style", family: "sdxl", kind: "lora" },
];

test("params carry the enabled LoRA rows in order, as {model, weight}; none: no loras key", () => {
  const loras = [
    { model: "style-b", name: "style_b", weight: 0.5, enabled: true },
    { model: "style-a", name: "style_a", weight: -1.25, enabled: false },
    { model: "xl-style", name: "xl_style", weight: 2.5, enabled: true },
  ];
  assert.deepEqual(paramsFromSettings({ ...DEFAULT_SETTINGS, loras }).loras, [
    { model: "style-b", weight: 0.5 },
    { model: "xl-style", weight: 2 },
  ]);
  assert.equal("loras" in paramsFromSettings(DEFAULT_SETTINGS), false);
  assert.equal("loras" in paramsFromSettings({ ...DEFAULT_SETTINGS, loras: [{ ...loras[1] }] }), false, "only disabled rows");
  // a filter (the app's: installed and of the main model's family) keeps misfits out of the job
  const main = mainModel(MODELS, "demo");
  const fits = (row) => !loraMisfit(row, MODELS, main);
  assert.deepEqual(paramsFromSettings({ ...DEFAULT_SETTINGS, loras }, { loraFits: fits }).loras, [{ model: "style-b", weight: 0.5 }]);
});

test("the main model is the chosen one, else the server's default (first non-demo main, else the demo)", () => {
  assert.equal(mainModel(MODELS, "demo-inpaint").id, "demo-inpaint");
  assert.equal(mainModel(MODELS, null).id, "xl");
  assert.equal(mainModel(MODELS.filter((m) => m.id !== "xl"), null).id, "demo");
  assert.equal(mainModel(MODELS, "gone"), null);
  // the server marks its default: that wins over the guess
  const marked = MODELS.map((m) => ({ ...m, default: m.id === "demo" }));
  assert.equal(mainModel(marked, null).id, "demo");
});

test("loraMisfit: not installed, another family, or null when it fits", () => {
  const sd1 = mainModel(MODELS, "demo");
  const xl = mainModel(MODELS, "xl");
  const row = { model: "style-a", name: "style_a", weight: 1, enabled: true };
  assert.equal(loraMisfit(row, MODELS, sd1), null);
  assert.equal(loraMisfit(row, MODELS, xl).reason, "family");
  assert.match(loraMisfit(row, MODELS, xl).message, /style_a is a sd-1 LoRA; My SDXL is sdxl/);
  assert.equal(loraMisfit({ ...row, model: "deleted", name: "old one" }, MODELS, sd1).reason, "missing");
  assert.equal(loraMisfit({ ...row, model: "demo" }, MODELS, sd1).reason, "missing", "a main model is not a LoRA");
});

test("LoRA rows are cleaned: weights clamped, duplicates and id-less rows dropped, at most 10", () => {
  assert.equal(clampLoraWeight(-3), -2);
  assert.equal(clampLoraWeight("0.35"), 0.35);
  assert.equal(clampLoraWeight("x"), 1);
  const rows = normaliseLoraRows([
    { model: "a", weight: 0.5 },
    { model: "a", weight: 1 },
    { name: "no id" },
    null,
    { model: "b", name: "B", weight: 9, enabled: false },
    ...Array.from({ length: 12 }, (_, i) => ({ model: `m${i}` })),
  ]);
  assert.deepEqual(rows.slice(0, 2), [
    { model: "a", name: "a", weight: 0.5, enabled: true },
    { model: "b", name: "B", weight: 2, enabled: false },
  ]);
  assert.equal(rows.length, 10);
  assert.deepEqual(normaliseLoraRows("nope"), []);
});

test("the LoRA stack and region strength survive a save and a restore in another browser", async () => {
  const loras = [
    { model: "style-a", name: "style_a", weight: 0.5, enabled: true },
    { model: "style-b", name: "style_b", weight: -0.75, enabled: false },
  ];
  const settings = { ...DEFAULT_SETTINGS, prompt: "p", loras };
  const g = { ...newLayer("regional_guidance", { id: "g", z: 1 }), prompt: "sea", strength: 0.6 };
  const g2 = { ...newLayer("regional_guidance", { id: "g2", z: 2 }), prompt: "sky" };
  const canvas = fakeCanvas({ g: exported(0, 0, 8, 8, 2), g2: exported(8, 0, 8, 8, 3) });
  const up = fakeUploader();
  const tracker = createAssetTracker();
  const built = await buildDocument({
    layers: [g, g2], bbox: BBOX, settings, exportLayer: canvas.exportLayer, readPixels: canvas.readPixels,
    upload: up.upload, tracker, ui: uiState({ settings }),
  });
  const json = JSON.parse(JSON.stringify(built.document));
  // params hold what a job sends (the server's ParamsIn: [{model, weight}]); ui the whole stack
  assert.deepEqual(json.params.loras, [{ model: "style-a", weight: 0.5 }]);
  assert.deepEqual(json.ui.loras, loras);
  assert.deepEqual(json.layers.map((l) => l.region), [
    { prompt: "sea", negative_prompt: "", strength: 0.6 },
    { prompt: "sky", negative_prompt: "", strength: 0.8 },
  ]);

  const restored = recordsFromDocument(json);
  assert.deepEqual(restored.settings.loras, loras);
  assert.deepEqual(restored.layers.map((l) => l.strength), [0.6, 0.8]);
  const again = await buildDocument({
    layers: restored.layers, bbox: restored.bbox, settings: restored.settings, exportLayer: canvas.exportLayer,
    readPixels: canvas.readPixels, upload: up.upload, tracker, ui: uiState({ settings: restored.settings }),
  });
  assert.equal(canonicalJson(again.document), canonicalJson(json), "the round trip is stable");

  // a document without ui.loras (a job's request, an older save): the sent LoRAs come back enabled
  const old = recordsFromDocument({ ...json, ui: { v: 2, random_seed: true } });
  assert.deepEqual(old.settings.loras, [{ model: "style-a", name: "style-a", weight: 0.5, enabled: true }]);
  // a region saved before strength existed gets the default
  const older = recordsFromDocument({ ...json, layers: [{ ...json.layers[0], region: { prompt: "sea", negative_prompt: "" } }] });
  assert.equal(older.layers[0].strength, 0.8);
  assert.deepEqual(recordsFromDocument({ bbox: BBOX, layers: [], params: {} }).settings.loras, []);
});
