// The mode badge's rules, case by case from invoke_core/compile.py (compile_canvas picks the mode from
// the composite alpha of the raster layers inside the bbox and the inpaint mask).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MODES, coverageFacts, generationMode } from "../canvas/mode.js";

/** An RGBA buffer of w x h pixels whose alpha is alphaAt(x, y). */
function rgba(w, h, alphaAt) {
  const out = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(y * w + x) * 4 + 3] = alphaAt(x, y);
  return out;
}
const modeOf = (raster, mask = null) => generationMode(coverageFacts(raster, mask)).mode;
const W = 8, H = 8;
const none = rgba(W, H, () => 0);
const full = rgba(W, H, () => 255);
const left = rgba(W, H, (x) => (x < 4 ? 255 : 0));
const dot = rgba(W, H, (x, y) => (x === 2 && y === 3 ? 255 : 0));

test("nothing painted in the box is text to image, and masks are then meaningless", () => {
  assert.equal(modeOf(none), "txt2img");
  assert.equal(modeOf(none, full), "txt2img");
  assert.equal(modeOf(none, dot), "txt2img");
  const r = generationMode(coverageFacts(none, null));
  assert.equal(r.label, "Text to image");
  assert.match(r.reason, /no raster pixels/);
});

test("any pixel of the box not fully opaque is outpaint, even with a mask (compile.py checks alpha < 255 first)", () => {
  assert.equal(modeOf(left), "outpaint");
  assert.equal(modeOf(dot), "outpaint");
  assert.equal(modeOf(left, full), "outpaint");
  assert.equal(modeOf(rgba(W, H, () => 254)), "outpaint", "a semi-transparent cover leaves part of the box to generate");
  const one = rgba(W, H, (x, y) => (x === 7 && y === 7 ? 0 : 255));
  assert.equal(modeOf(one), "outpaint", "one empty pixel is enough");
  const r = generationMode(coverageFacts(left, null));
  assert.equal(r.label, "Outpaint");
  assert.match(r.reason, /partly empty.*50%.*the empty part is generated/);
  const big = rgba(32, 32, (x, y) => (x === 0 && y === 0 ? 0 : 255));
  assert.match(generationMode(coverageFacts(big, null)).reason, /<1%/, "1 of 1024 pixels empty rounds to 0%: say <1%");
});

test("a fully covered box is inpaint when a mask is painted inside it, else image to image", () => {
  assert.equal(modeOf(full), "img2img");
  assert.equal(modeOf(full, none), "img2img", "a mask layer with nothing painted in the box does not count");
  assert.equal(modeOf(full, dot), "inpaint");
  assert.equal(modeOf(full, rgba(W, H, () => 1)), "inpaint", "any mask coverage above 0 counts (inpaint_mask.any())");
  assert.equal(generationMode(coverageFacts(full, dot)).label, "Inpaint");
  assert.match(generationMode(coverageFacts(full, dot)).reason, /inpaint mask is painted inside the box/);
  assert.equal(generationMode(coverageFacts(full, null)).label, "Image to image");
});

test("facts count alpha bytes exactly; labels come from one table", () => {
  assert.deepEqual(coverageFacts(left, dot), { area: 64, painted: 32, opaque: 32, masked: 1 });
  assert.deepEqual(coverageFacts(rgba(2, 1, (x) => (x ? 128 : 255)), null), { area: 2, painted: 2, opaque: 1, masked: 0 });
  for (const [mode, label] of Object.entries(MODES)) assert.equal(typeof label, "string", mode);
  assert.equal(generationMode({ area: 0, painted: 0, opaque: 0, masked: 0 }).mode, "txt2img", "an empty box paints nothing");
});

test("the badge samples the box at most MAX_SIDE pixels a side, keeping its shape", async () => {
  const { MAX_SIDE, sampleSize } = await import("../panels/mode_badge.js");
  assert.deepEqual(sampleSize({ width: 128, height: 96 }), { width: 128, height: 96 }, "small boxes: every pixel");
  assert.deepEqual(sampleSize({ width: 1024, height: 1024 }), { width: MAX_SIDE, height: MAX_SIDE });
  assert.deepEqual(sampleSize({ width: 1024, height: 512 }), { width: MAX_SIDE, height: MAX_SIDE / 2 });
  assert.deepEqual(sampleSize({ width: 4096, height: 8 }), { width: MAX_SIDE, height: 1 }, "never below one pixel");
});

test("an edit model edits whatever the box holds; an empty box stays text to image", async () => {
  const { withModel } = await import("../panels/mode_badge.js");
  const img2img = generationMode({ area: 4, painted: 4, opaque: 4, masked: 0 });
  const inpaint = generationMode({ area: 4, painted: 4, opaque: 4, masked: 1 });
  const empty = generationMode({ area: 4, painted: 0, opaque: 0, masked: 0 });
  assert.equal(withModel(img2img, "edit").mode, "edit");
  assert.equal(withModel(empty, "edit", false).mode, "edit-empty");
  assert.equal(withModel(empty, "edit", false, true).mode, "edit", "a reference layer is a picture to edit");
  assert.equal(withModel(empty, "edit", true, true).mode, "edit");
  assert.equal(withModel(empty, "main", true, true).mode, "txt2img", "a main model's references steer text to image");
  assert.match(withModel(img2img, "edit").reason, /reference/);
  assert.match(withModel(inpaint, "edit").reason, /inside the mask/);
  assert.equal(withModel(empty, "edit").mode, "txt2img");
  assert.equal(withModel(img2img, "main"), img2img, "other models: the canvas's own mode");
  // a family whose edit models need a picture (Qwen-Image-Edit): the badge says so before Invoke
  const refused = withModel(empty, "edit", false);
  assert.equal(refused.mode, "edit-empty");
  assert.match(refused.reason, /box is empty: paint or place a picture under it/);
  assert.equal(withModel(img2img, "edit", false).mode, "edit");
});
