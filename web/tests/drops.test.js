import { test } from "node:test";
import assert from "node:assert/strict";
import { ACCEPTED_IMAGES, isAcceptedImage, sortDroppedFiles } from "../panels/drops.js";

const file = (name, type) => ({ name, type });

test("one list for the canvas and the gallery: what the server stores", () => {
  assert.equal(ACCEPTED_IMAGES.label, "PNG, JPEG or WebP");
  for (const f of [file("a.png", "image/png"), file("b.JPG", ""), file("c.jpeg", "image/jpeg"), file("d", "image/webp")]) {
    assert.ok(isAcceptedImage(f), f.name);
  }
  for (const f of [file("a.txt", "text/plain"), file("b.gif", "image/gif"), file("c.bmp", "image/bmp"), file("d", "")]) {
    assert.ok(!isAcceptedImage(f), f.name);
  }
});

test("refused files are named, with the accepted types", () => {
  const png = file("ok.png", "image/png");
  const out = sortDroppedFiles([png, file("notes.txt", "text/plain")]);
  assert.deepEqual(out.accepted, [png]);
  assert.equal(out.message, "notes.txt is not an image that can be added: drop PNG, JPEG or WebP images");
  assert.equal(sortDroppedFiles([png]).message, null);
  const many = sortDroppedFiles(["a", "b", "c", "d", "e"].map((n) => file(`${n}.txt`, "text/plain")));
  assert.equal(many.message, "a.txt, b.txt, c.txt and 2 more are not images that can be added: drop PNG, JPEG or WebP images");
});
