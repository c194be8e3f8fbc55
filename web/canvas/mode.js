// What Invoke will do with the box now: the same rules as the server's compiler
// (invoke_core/compile.py, compile_canvas), so the badge never promises another mode than the job runs.
//   composite alpha of the visible raster layers inside the box all 0   -> text to image (masks ignored)
//   some pixel of the box not fully opaque (alpha byte < 255)           -> outpaint (the empty part is generated)
//   fully covered and a visible inpaint mask > 0 somewhere in the box   -> inpaint
//   fully covered, no mask                                              -> image to image
// Pure: the coverage facts are counted by the caller (panels/mode_badge.js) or by `coverageFacts`.

export const MODES = Object.freeze({
  txt2img: "Text to image",
  img2img: "Image to image",
  inpaint: "Inpaint",
  outpaint: "Outpaint",
});

/**
 * @param {{area: number, painted: number, opaque: number, masked: number}} facts pixels of the box:
 *   `area` all of them, `painted` with composite raster alpha > 0, `opaque` with alpha 255,
 *   `masked` with inpaint-mask coverage > 0
 * @returns {{mode: keyof typeof MODES, label: string, reason: string}}
 */
export function generationMode({ area, painted, opaque, masked }) {
  const out = (mode, reason) => ({ mode, label: MODES[mode], reason });
  if (!(area > 0) || !(painted > 0)) {
    return out("txt2img", masked > 0
      ? "the box has no raster pixels (an inpaint mask without pixels under it is ignored)"
      : "the box has no raster pixels: the prompt paints it from scratch");
  }
  if (opaque < area) {
    const empty = Math.max(0, Math.min(100, Math.round((100 * (area - opaque)) / area)));
    const share = empty === 0 ? "<1%" : empty === 100 ? ">99%" : `${empty}%`;
    return out("outpaint", `the box is partly empty (${share} not fully painted): the empty part is generated`);
  }
  if (masked > 0) return out("inpaint", "an inpaint mask is painted inside the box: only the masked part is repainted");
  return out("img2img", "raster pixels cover the whole box and no inpaint mask is painted there: the box is repainted (denoise strength)");
}

/**
 * Count the facts from RGBA buffers of the box (same size): the raster composite and the inpaint
 * masks composite (null when there is none). Alpha bytes, as the server compares them.
 * @param {ArrayLike<number>} raster @param {ArrayLike<number> | null} mask
 */
export function coverageFacts(raster, mask) {
  const area = raster.length / 4;
  let painted = 0, opaque = 0, masked = 0;
  for (let i = 3; i < raster.length; i += 4) {
    const a = raster[i];
    if (a > 0) painted++;
    if (a === 255) opaque++;
  }
  if (mask) for (let i = 3; i < mask.length; i += 4) if (mask[i] > 0) masked++;
  return { area, painted, opaque, masked };
}
