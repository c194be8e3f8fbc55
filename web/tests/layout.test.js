// The layout's size maths (web/panels/layout.js): defaults per window, clamping, restoring from storage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KEY, LIMITS, MIN_STAGE, SPLIT, TOOLBAR, clampSplit, clampWidth, defaultWidth, fitWidths, readLayout } from "../panels/layout.js";

const stage = (vw, { left, right }) => vw - TOOLBAR - left - right;

test("default widths leave the canvas >= 900 px at 1440 and more at 1920", () => {
  const at1440 = fitWidths({}, 1440);
  const at1920 = fitWidths({}, 1920);
  assert.ok(stage(1440, at1440) >= 900, `canvas ${stage(1440, at1440)} at 1440`);
  assert.ok(stage(1920, at1920) > stage(1440, at1440) + 250, `canvas ${stage(1920, at1920)} at 1920`);
  assert.ok(at1920.left > at1440.left, "wider windows give the settings more room too");
  assert.ok(defaultWidth("left", 5000) <= LIMITS.left.defaultMax && defaultWidth("right", 800) >= LIMITS.right.min);
});

test("a width is clamped to its limits and never squeezes the canvas below its minimum", () => {
  assert.equal(clampWidth("left", 10, 1440, 240), LIMITS.left.min);
  assert.equal(clampWidth("left", 5000, 2560, 240), LIMITS.left.max);
  assert.equal(clampWidth("right", 700, 1440, 240), Math.min(LIMITS.right.max, 1440 - TOOLBAR - MIN_STAGE - 240));
  assert.equal(clampWidth("left", 300.6, 1440, 240), 301, "whole pixels");
  assert.equal(clampWidth("left", 500, 900, 240), LIMITS.left.min, "a narrow window: the minimum wins over the canvas's room");
  assert.equal(clampWidth("left", NaN, 1440, 240), defaultWidth("left", 1440), "junk falls back to the default");
});

test("restoring: saved strings are used, junk is ignored, both columns are fitted together", () => {
  assert.deepEqual(fitWidths({ left: "300", right: "280" }, 1440), { left: 300, right: 280 });
  assert.deepEqual(fitWidths({ left: "abc", right: null }, 1440), fitWidths({}, 1440));
  const big = fitWidths({ left: 520, right: 600 }, 1440);
  assert.ok(stage(1440, big) >= MIN_STAGE, `canvas ${stage(1440, big)}`);
  const alone = fitWidths({ left: 520, right: 600, rightCollapsed: true }, 1440);
  assert.equal(alone.left, 520, "a collapsed right column leaves the left one its full width");
});

test("the split keeps both the layers panel and the gallery a minimum height; unset means fit", () => {
  assert.equal(clampSplit(null, 800), null);
  assert.equal(clampSplit("", 800), null);
  assert.equal(clampSplit("x", 800), null);
  assert.equal(clampSplit("400", 800), 400);
  assert.equal(clampSplit(10, 800), SPLIT.minTop);
  assert.equal(clampSplit(790, 800), 800 - SPLIT.minBottom);
});

test("readLayout reads the invokeCanvas.layout.* keys (and the old collapsed keys)", () => {
  const store = new Map([
    [KEY + "left", "310"],
    [KEY + "collapsed.right", "1"],
    [KEY + "collapsed.panel-queue", "1"],
    ["invokeCanvas.collapsed.panel-gallery", "1"],
    [KEY + "collapsed.panel-layers", "0"],
    ["invokeCanvas.collapsed.panel-layers", "1"],
  ]);
  const s = readLayout((k) => store.get(k) ?? null);
  assert.equal(s.left, "310");
  assert.equal(s.right, null);
  assert.equal(s.rightCollapsed, true);
  assert.equal(s.leftCollapsed, false);
  assert.deepEqual(s.panels, { "panel-generate": false, "panel-queue": true, "panel-layers": false, "panel-gallery": true });
});
