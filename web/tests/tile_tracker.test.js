import { test } from "node:test";
import assert from "node:assert/strict";
import { createPixelRegistry } from "../canvas/tiles.js";
import { createTileTracker } from "../persistence/tile_tracker.js";
import { fakeCanvasFactory } from "./fakes.js";

function setup() {
  const pixels = createPixelRegistry({ createCanvas: fakeCanvasFactory, createExportCanvas: fakeCanvasFactory });
  let seq = 0;
  let loading = false;
  const changed = [];
  const tracker = createTileTracker({ pixels, nextSeq: () => ++seq, ignore: () => loading });
  tracker.onChange((id) => changed.push(id));
  const paint = (id, rect) => pixels.ensure(id).draw(rect, (ctx) => ctx.fillRect(rect.x, rect.y, rect.width, rect.height));
  return { pixels, tracker, changed, paint, setLoading: (v) => { loading = v; }, seq: () => seq };
}

test("a stroke marks the tiles it touched, each with the seq of its last change", () => {
  const { tracker, changed, paint } = setup();
  paint("a", { x: 250, y: 10, width: 20, height: 10 }); // across the 0,0 | 1,0 tile border
  paint("a", { x: 10, y: 10, width: 5, height: 5 });
  paint("b", { x: -10, y: -10, width: 5, height: 5 });
  const tiles = tracker.dirty().map((t) => [t.layer, t.tile, t.seq]).sort();
  assert.deepEqual(tiles, [["a", "0,0", 2], ["a", "1,0", 1], ["b", "-1,-1", 3]]);
  assert.deepEqual(changed, ["a", "a", "b"]);
  assert.equal(tracker.dirty().find((t) => t.tile === "-1,-1").tx, -1);
});

test("the journal takes each change once; a failed write puts it back", () => {
  const { tracker, paint } = setup();
  paint("a", { x: 0, y: 0, width: 4, height: 4 });
  const taken = tracker.takeUnjournaled();
  assert.equal(taken.length, 1);
  assert.equal(tracker.takeUnjournaled().length, 0);
  tracker.requeue(taken);
  assert.equal(tracker.pendingJournal, 1);
  assert.equal(tracker.size, 1, "still unsynced");
});

test("a sync forgets what it carried, not what changed after it started", () => {
  const { tracker, paint, seq } = setup();
  paint("a", { x: 0, y: 0, width: 4, height: 4 });
  paint("a", { x: 300, y: 0, width: 4, height: 4 });
  const started = seq();
  paint("a", { x: 0, y: 0, width: 2, height: 2 }); // the same tile again, during the sync
  const gone = tracker.syncedUpTo(started);
  assert.deepEqual(gone, [{ layer: "a", tile: "1,0" }]);
  assert.deepEqual(tracker.dirty().map((t) => t.tile), ["0,0"]);
});

test("loading is not a change; dropping a layer reports nothing; adopt and forget", () => {
  const { pixels, tracker, paint, setLoading } = setup();
  setLoading(true);
  paint("a", { x: 0, y: 0, width: 4, height: 4 });
  setLoading(false);
  assert.equal(tracker.size, 0);
  pixels.drop("a");
  assert.equal(tracker.size, 0);
  tracker.adopt([{ layer: "c", tile: "2,3", seq: 5 }]);
  assert.deepEqual(tracker.dirty().map((t) => [t.tile, t.seq, t.tx, t.ty]), [["2,3", 5, 2, 3]]);
  assert.equal(tracker.pendingJournal, 0, "adopted tiles are in the journal already");
  paint("d", { x: 0, y: 0, width: 1, height: 1 });
  tracker.forget("c");
  assert.deepEqual(tracker.dirty().map((t) => t.layer), ["d"]);
  tracker.forget();
  assert.equal(tracker.size, 0);
});
