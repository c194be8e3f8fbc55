import { test } from "node:test";
import assert from "node:assert/strict";
import { changedIds, decide, documentEntries, mergeDocuments, mergePlan } from "../persistence/reconcile.js";

const doc = (layers, prompt = "a harbour") => ({ bbox: { x: 0, y: 0, width: 64, height: 64 }, layers, params: { prompt } });

test("no local changes: the server's version; local changes on the same base or over own saves: the journal", () => {
  assert.equal(decide(null, { version: 3, writer: "B" }, "A"), "server");
  assert.equal(decide({ base_version: 2, dirty: false }, { version: 3, writer: "B" }, "A"), "server");
  assert.equal(decide({ base_version: 3, dirty: true }, { version: 3, writer: "B" }, "A"), "journal");
  assert.equal(decide({ base_version: 2, dirty: true }, { version: 3, writer: "A" }, "A"), "journal");
  assert.equal(decide({ base_version: 2, dirty: true }, null, "A"), "journal");
  assert.equal(decide({ base_version: 2, dirty: true }, { version: 3, writer: "B" }, "A"), "merge");
});

test("changedIds names added, removed and changed parts of a document", () => {
  const before = documentEntries(doc([{ id: "l1", kind: "raster" }, { id: "l2", kind: "raster" }]));
  const after = documentEntries(doc([{ id: "l1", kind: "raster", image_id: "x" }, { id: "l3", kind: "raster" }], "a boat"));
  assert.deepEqual([...changedIds(before, after)].sort(), ["l1", "l2", "l3", "settings"]);
  assert.equal(changedIds(before, before).size, 0);
});

test("mergePlan: one side's changes come from that side; on both, the newer wins; removals count", () => {
  const plan = mergePlan({
    localIds: ["bbox", "settings", "l1", "l2"],
    localTimes: { l1: 100, settings: 300, gone: 50 },
    serverIds: ["bbox", "settings", "l2", "l3", "gone"],
    serverChanged: new Set(["settings", "l2", "l3"]),
    serverTime: 200,
  });
  assert.deepEqual([...plan.local].sort(), ["l1", "settings"]);
  assert.deepEqual([...plan.server].sort(), ["bbox", "l2", "l3"]); // "gone": removed here, unchanged there
  const older = mergePlan({ localIds: ["settings"], localTimes: { settings: 100 }, serverIds: ["settings"], serverChanged: new Set(["settings"]), serverTime: 200 });
  assert.deepEqual([...older.server], ["settings"]);
});

test("decide: a save sent as the page closed that holds the journal's changes (its seq) wins", () => {
  assert.equal(decide({ base_version: 2, dirty: true, seq: 9 }, { version: 3, writer: "A", seq: 9 }, "A"), "server");
  assert.equal(decide({ base_version: 2, dirty: true, seq: 9 }, { version: 3, writer: "A", seq: 12 }, "A"), "server");
  assert.equal(decide({ base_version: 2, dirty: true, seq: 9 }, { version: 3, writer: "A", seq: 7 }, "A"), "journal");
  assert.equal(decide({ base_version: 2, dirty: true, seq: 9 }, { version: 3, writer: "A", seq: null }, "A"), "journal");
  assert.equal(decide({ base_version: 2, dirty: true, seq: 9 }, { version: 3, writer: "B", seq: 99 }, "A"), "merge");
});

test("mergeDocuments: each part from its newer side, the other browser's new layer kept, this browser's ui", () => {
  const base = { bbox: { x: 0, y: 0, width: 64, height: 64 }, layers: [{ id: "l1", kind: "raster", image_id: "a" }], params: { prompt: "a harbour" }, ui: { v: 2, random_seed: true } };
  const server = {
    bbox: { x: 8, y: 0, width: 64, height: 64 },
    layers: [{ id: "l1", kind: "raster", image_id: "b" }, { id: "s2", kind: "raster", image_id: "c" }],
    params: { prompt: "a harbour" },
    ui: { v: 2, random_seed: true, writer: "B", staging: { items: [{ image_id: "s" }], index: 0 } },
  };
  const local = {
    bbox: { x: 0, y: 0, width: 64, height: 64 },
    layers: [{ id: "l1", kind: "raster", image_id: "a" }, { id: "n3", kind: "inpaint_mask" }],
    params: { prompt: "a lighthouse" },
    ui: { v: 2, random_seed: false, seed: 7, jobs: [{ item_id: 4 }], board: "bd" },
  };
  const { document, localLayers } = mergeDocuments({ base, server, local, localTimes: { settings: 500, l1: 500, n3: 400 }, serverTime: 450 });
  assert.deepEqual(document.params, { prompt: "a lighthouse" }, "settings changed here, later");
  assert.deepEqual(document.bbox, server.bbox, "the box moved there only");
  assert.deepEqual(document.layers.map((l) => [l.id, l.image_id]), [["l1", "a"], ["n3", undefined], ["s2", "c"]]);
  assert.deepEqual([...localLayers].sort(), ["l1", "n3"], "the journal's tiles apply to these");
  assert.equal(document.ui.seed, 7);
  assert.equal(document.ui.random_seed, false);
  assert.deepEqual(document.ui.jobs, [{ item_id: 4 }], "this browser's running jobs");
  assert.deepEqual(document.ui.staging, server.ui.staging, "staged there only");
  assert.equal(document.ui.writer, undefined);
  // the server's change is newer: it wins
  const later = mergeDocuments({ base, server, local, localTimes: { l1: 100 }, serverTime: 450 });
  assert.equal(later.document.layers.find((l) => l.id === "l1").image_id, "b");
  assert.ok(!later.localLayers.has("l1"));
});
