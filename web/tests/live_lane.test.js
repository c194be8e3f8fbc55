// Live painting's pure parts (app/live_lane.js): the debounce and supersede logic of the scheduler with
// fake timers and a fake server, and the choice of fast settings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BESIDE_GAP, createLiveScheduler, liveParams, liveRect, overlaps, storeChangeMatters } from "../app/live_lane.js";

/** Timers driven by hand: advance(ms) runs what is due, in order. */
function fakeTimers() {
  let t = 0;
  let next = 1;
  const due = new Map();
  return {
    set: (fn, ms) => { const id = next++; due.set(id, { at: t + ms, fn }); return id; },
    clear: (id) => due.delete(id),
    now: () => t,
    advance(ms) {
      const end = t + ms;
      for (;;) {
        const [id, job] = [...due.entries()].sort((a, b) => a[1].at - b[1].at)[0] || [];
        if (!job || job.at > end) break;
        due.delete(id);
        t = job.at;
        job.fn();
      }
      t = end;
    },
    get pending() { return due.size; },
  };
}

/** A server that answers each send after the test lets it (resolve), numbering items from 1. */
function fakeServer() {
  const sent = [];
  let id = 0;
  return {
    sent,
    send: (revision) => new Promise((resolve) => sent.push({ revision, item_id: ++id, reply: () => resolve({ item_id: id }) })),
  };
}

const flush = () => new Promise((r) => setImmediate(r));

function setup(extra = {}) {
  const timers = fakeTimers();
  const server = fakeServer();
  const shown = [];
  const orphans = [];
  const lane = createLiveScheduler({
    delayMs: 300, send: server.send, timers, now: timers.now, onShow: (s) => shown.push(s), onOrphan: (id) => orphans.push(id), ...extra,
  });
  return { timers, server, shown, orphans, lane };
}

test("turning Live on sends the current state at once; changes are debounced to one job", async () => {
  const { timers, server, lane } = setup();
  lane.setOn(true);
  await flush();
  assert.equal(server.sent.length, 1);
  server.sent[0].reply();
  await flush();
  for (let i = 0; i < 10; i++) {
    lane.change();
    timers.advance(100); // ten changes, 100 ms apart: the debounce never runs out
  }
  assert.equal(server.sent.length, 1);
  timers.advance(299);
  assert.equal(server.sent.length, 1);
  timers.advance(1);
  await flush();
  assert.equal(server.sent.length, 2);
  assert.equal(server.sent[1].revision, lane.state().revision, "the job carries the last revision");
});

test("an open gesture holds the job back until it ends", async () => {
  let busy = true;
  const { timers, server, lane } = setup({ isBusy: () => busy });
  lane.setOn(true);
  await flush();
  server.sent[0].reply();
  await flush();
  lane.change();
  timers.advance(2000);
  assert.equal(server.sent.length, 1);
  busy = false;
  timers.advance(300);
  await flush();
  assert.equal(server.sent.length, 2);
});

test("never two requests at once: changes during one are sent, as one, when it returns", async () => {
  const { timers, server, lane } = setup();
  lane.setOn(true);
  await flush();
  lane.change();
  timers.advance(300);
  lane.change();
  timers.advance(300);
  await flush();
  assert.equal(server.sent.length, 1, "the first request has not returned");
  server.sent[0].reply();
  await flush();
  await flush();
  assert.equal(server.sent.length, 2);
  assert.equal(server.sent[1].revision, 3);
});

test("only a newer render is shown; superseded and older ones never replace it", async () => {
  const { timers, server, shown, lane } = setup();
  lane.setOn(true);
  await flush();
  server.sent[0].reply();
  await flush();
  lane.change();
  timers.advance(300);
  await flush();
  server.sent[1].reply();
  await flush();
  // the newer one finishes first, then the older one (it was past its last step when canceled)
  lane.status({ item_id: 2, status: "completed", image_ids: ["b"] });
  lane.status({ item_id: 1, status: "completed", image_ids: ["a"] });
  assert.deepEqual(shown.map((s) => s.image_id), ["b"]);
  assert.equal(lane.state().phase, "done");
  lane.change();
  timers.advance(300);
  await flush();
  server.sent[2].reply();
  await flush();
  lane.status({ item_id: 3, status: "canceled", image_ids: [] });
  assert.equal(shown.length, 1);
  assert.deepEqual(lane.state().counts, { sent: 3, completed: 2, canceled: 1, failed: 0 });
});

test("a job that finishes before its request returns is still shown", async () => {
  const { server, shown, lane } = setup();
  lane.setOn(true);
  await flush();
  lane.status({ item_id: 1, status: "in_progress", live: true });
  lane.status({ item_id: 1, status: "completed", image_ids: ["fast"], live: true });
  assert.equal(shown.length, 0);
  server.sent[0].reply();
  await flush();
  assert.deepEqual(shown.map((s) => s.image_id), ["fast"]);
});

test("turning off returns the open items to cancel, and cancels one whose request was still in flight", async () => {
  const { timers, server, orphans, lane } = setup();
  lane.setOn(true);
  await flush();
  server.sent[0].reply();
  await flush();
  lane.change();
  timers.advance(300);
  await flush();
  assert.deepEqual(lane.setOn(false), [1]);
  server.sent[1].reply();
  await flush();
  assert.deepEqual(orphans, [2]);
  lane.change();
  timers.advance(1000);
  assert.equal(server.sent.length, 2, "off: changes send nothing");
  assert.equal(lane.state().phase, "off");
  assert.equal(timers.pending, 0);
});

test("a failed request is reported and the next change tries again", async () => {
  const timers = fakeTimers();
  let calls = 0;
  const lane = createLiveScheduler({
    delayMs: 300, timers, now: timers.now,
    send: () => (++calls === 1 ? Promise.reject(new Error("box too small")) : Promise.resolve({ item_id: 9 })),
  });
  lane.setOn(true);
  await flush();
  await flush();
  assert.equal(lane.state().phase, "error");
  assert.equal(lane.state().error, "box too small");
  lane.change();
  timers.advance(300);
  await flush();
  await flush();
  assert.equal(calls, 2);
  assert.deepEqual(lane.state().open, [9]);
});

test("fast settings: an LCM LoRA, then the model's own, then its family's; the seed is fixed", () => {
  const live = { seed: 77, families: { "sd-1": { steps: 10, cfg_scale: 5, scheduler: "dpmpp_2m_karras", strength: 0.6 } } };
  const plain = { id: "dreamshaper", family: "sd-1", live_defaults: null };
  const demo = { id: "demo", family: "sd-1", live_defaults: { steps: 4, cfg_scale: 1, scheduler: "lcm", strength: 0.6 } };
  const lcmLora = { id: "lcm-lora", name: "LCM LoRA", family: "sd-1", live_defaults: { steps: 4, cfg_scale: 1, scheduler: "lcm", strength: 0.5 } };
  assert.deepEqual(liveParams({ live, main: plain, settings: { random_seed: true, seed: 5 } }), {
    params: { steps: 10, cfg_scale: 5, scheduler: "dpmpp_2m_karras", strength: 0.6, seed: 77, batch_size: 1 },
    from: "sd-1 defaults",
  });
  assert.equal(liveParams({ live, main: demo, settings: {} }).params.scheduler, "lcm");
  const withLora = liveParams({ live, main: plain, loras: [{ id: "detail", live_defaults: null }, lcmLora], settings: { random_seed: false, seed: 5 } });
  assert.equal(withLora.params.strength, 0.5);
  assert.equal(withLora.params.seed, 5, "a fixed seed of the artist's own is kept");
  assert.equal(withLora.from, "LoRA LCM LoRA");
  assert.equal(liveParams({ live: null, main: demo, settings: {} }), null);
  assert.equal(liveParams({ live, main: null, settings: {} }), null);
});

test("which changes matter: layers, the box and settings; pixels only under the box", () => {
  assert.ok(storeChangeMatters({ put: [{ id: "l1", type: "layer" }] }));
  assert.ok(storeChangeMatters({ put: [{ id: "bbox" }] }));
  assert.ok(storeChangeMatters({ remove: ["l1"] }));
  assert.ok(!storeChangeMatters({ put: [{ id: "view" }, { id: "tool" }, { id: "selection" }, { id: "staging" }] }));
  const box = { x: 0, y: 0, width: 64, height: 64 };
  assert.ok(overlaps(box, { x: 60, y: 60, width: 10, height: 10 }));
  assert.ok(!overlaps(box, { x: 64, y: 0, width: 10, height: 10 }));
  assert.ok(!overlaps(box, { x: 0, y: 0, width: 0, height: 0 }));
});

test("liveRect: over the box is the box; beside it, the box's size to its right", () => {
  const box = { x: -40, y: 8, width: 128, height: 96 };
  assert.deepEqual(liveRect(box, "over"), box);
  assert.deepEqual(liveRect(box, "beside"), { x: -40 + 128 + BESIDE_GAP, y: 8, width: 128, height: 96 });
  assert.deepEqual(liveRect(box, "anything else"), box);
});
