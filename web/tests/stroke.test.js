import { test } from "node:test";
import assert from "node:assert/strict";
import { isMaskKind, paintColor, parseHex, toHex } from "../tools/stroke.js";

test("colour helpers round-trip", () => {
  assert.deepEqual(parseHex("#ff8000"), [255, 128, 0]);
  assert.deepEqual(parseHex("#f80"), [255, 136, 0]);
  assert.deepEqual(parseHex("nonsense"), [0, 0, 0]);
  assert.equal(toHex(255, 128, 0), "#ff8000");
  assert.equal(toHex(...parseHex("#0a0b0c")), "#0a0b0c");
});

test("masks and regions paint coverage, other layers their colour", () => {
  assert.ok(isMaskKind("inpaint_mask") && isMaskKind("regional_guidance"));
  assert.ok(!isMaskKind("raster") && !isMaskKind("control"));
  assert.equal(paintColor({ kind: "inpaint_mask" }, "#123456"), "#ffffff");
  assert.equal(paintColor({ kind: "raster" }, "#123456"), "#123456");
});
