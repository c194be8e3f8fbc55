import { test } from "node:test";
import assert from "node:assert/strict";
import { changedIds, decide, documentEntries, mergePlan } from "../persistence/reconcile.js";

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
