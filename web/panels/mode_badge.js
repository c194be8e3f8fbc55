// The mode badge over the top of the canvas: what Invoke will do with the box now (Text to image, Image to
// image, Inpaint, Outpaint; Edit with an instruction-editing model such as FLUX.1 Kontext, whenever the
// box holds pixels), with the reason as its tooltip. The rules are canvas/mode.js (those of the
// server's compiler); this module counts the facts they need: the composite alpha of the visible raster
// layers and the union of the visible inpaint masks inside the box.
//
// Cost: nothing per brush-stroke frame. A change (layer records, pixels, the box) only marks the badge
// stale; it is measured once the changes stop for SETTLE_MS (and at most every MAX_WAIT_MS during a long
// gesture), at a reduced resolution: the box drawn at most MAX_SIDE pixels a side, nearest-neighbour (each
// sample is one real pixel: an opaque cover stays exactly 255, no blur leaks across the box's edges). A
// feature narrower than the sampling stride (box side / MAX_SIDE: 1 up to 256 px, 4 at 1024 px) can be
// missed, so for a box larger than MAX_SIDE the badge is a close estimate; the server decides exactly.

import { generationMode } from "../canvas/mode.js";
import { h } from "./dom.js";

export const MAX_SIDE = 256;
export const SETTLE_MS = 120;
export const MAX_WAIT_MS = 600;

/** The sampled size of a box: its sides scaled by one factor so the longer one is at most MAX_SIDE. @param {{width: number, height: number}} box */
export function sampleSize(box, maxSide = MAX_SIDE) {
  const s = Math.min(1, maxSide / Math.max(box.width, box.height, 1));
  return { width: Math.max(1, Math.round(box.width * s)), height: Math.max(1, Math.round(box.height * s)) };
}

/**
 * The mode for the chosen model: an edit model (kind "edit") edits whatever the box holds, the pixels being
 * its reference (an empty box stays text to image, where its family runs that: `emptyBoxEdits`, the
 * family's `edit_from_empty_box`; else the badge says why the job will be refused); shown reference layers
 * are pictures to edit too (`references`: an empty box edits them).
 * @param {{mode: string, label: string, reason: string}} r @param {string | null | undefined} kind
 */
export function withModel(r, kind, emptyBoxEdits = true, references = false) {
  if (kind === "edit" && r.mode === "txt2img" && references) {
    return { mode: "edit", label: "Edit", reason: "the model edits the reference layers' pictures by instruction: the prompt says what to make of them" };
  }
  if (kind === "edit" && r.mode === "txt2img" && !emptyBoxEdits) {
    return { mode: "edit-empty", label: "Edit: empty box", reason: "the model edits the picture under the box, and the box is empty: paint or place a picture under it first" };
  }
  if (kind !== "edit" || r.mode === "txt2img") return r;
  return {
    mode: "edit",
    label: "Edit",
    reason: `the model edits by instruction: the pixels under the box are its reference and the prompt says what to change${r.mode === "img2img" ? "" : "; the edit stays inside the mask"}`,
  };
}

/**
 * @param {{el: HTMLElement, store: any, pixels: any, settleMs?: number, modelKind?: () => string | null, emptyBoxEdits?: () => boolean, references?: () => boolean}} o
 *   `el`: where the badge goes (the canvas's wrapper); `pixels`: the canvas's pixel registry (per-layer tiled
 *   bitmaps); `modelKind`: the kind of the chosen model ("edit": its jobs on pixels are edits);
 *   `emptyBoxEdits`: whether its family's edit models run an empty box (as text to image); `references`:
 *   whether a reference layer with pixels is shown
 */
export function createModeBadge({ el, store, pixels, settleMs = SETTLE_MS, modelKind = () => null, emptyBoxEdits = () => true, references = () => false }) {
  const label = h("span", { class: "mode-label" });
  const badge = h("div", { class: "mode-badge", "data-testid": "mode-badge", role: "status", "aria-live": "polite" }, h("span", { class: "mode-dot", "aria-hidden": "true" }), label);
  el.append(badge);
  const work = document.createElement("canvas");
  const g = /** @type {CanvasRenderingContext2D} */ (work.getContext("2d", { willReadFrequently: true }));

  /**
   * Draw the given layers' pixels inside `box` into the work canvas (width x height), bottom first, each
   * at its opacity ("over", as the server composites), and return the RGBA samples.
   */
  function composite(layers, box, width, height) {
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.globalAlpha = 1;
    g.clearRect(0, 0, width, height);
    g.imageSmoothingEnabled = false;
    const sx = width / box.width, sy = height / box.height;
    for (const layer of layers) {
      const bitmap = pixels.get(layer.id);
      if (!bitmap) continue;
      const lx = layer.x ?? 0, ly = layer.y ?? 0;
      const tiles = bitmap.tilesIn({ x: box.x - lx, y: box.y - ly, width: box.width, height: box.height });
      if (!tiles.length) continue;
      g.globalAlpha = Math.min(1, Math.max(0, layer.opacity ?? 1));
      // canvas pixel (cx, cy) -> sample ((cx - box.x) * sx, (cy - box.y) * sy): the box fills the canvas exactly
      g.setTransform(sx, 0, 0, sy, (lx - box.x) * sx, (ly - box.y) * sy);
      for (const t of tiles) g.drawImage(t.canvas, t.x, t.y);
    }
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.globalAlpha = 1;
    return g.getImageData(0, 0, width, height).data;
  }

  /** The facts of the box (mode.js's `generationMode` input), counted on the reduced samples. */
  function measure() {
    const box = store.get("bbox");
    if (!box || !(box.width > 0) || !(box.height > 0)) return { area: 0, painted: 0, opaque: 0, masked: 0 };
    const { width, height } = sampleSize(box);
    if (work.width !== width || work.height !== height) { work.width = width; work.height = height; }
    const shown = store.layers().filter((l) => l.visible !== false && (l.opacity ?? 1) > 0);
    const raster = shown.filter((l) => l.kind === "raster");
    const masks = shown.filter((l) => l.kind === "inpaint_mask");
    const area = width * height;
    let painted = 0, opaque = 0, masked = 0;
    if (raster.length) {
      const px = composite(raster, box, width, height);
      for (let i = 3; i < px.length; i += 4) {
        const a = px[i];
        if (a > 0) { painted++; if (a === 255) opaque++; }
      }
    }
    // masks matter only over a fully painted box (mode.js): skip drawing them otherwise
    if (masks.length && painted > 0 && opaque === area) {
      const px = composite(masks, box, width, height);
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) { masked++; break; }
    }
    return { area, painted, opaque, masked };
  }

  let shownMode = "";
  function update() {
    timer = null;
    firstStale = 0;
    const r = withModel(generationMode(measure()), modelKind(), emptyBoxEdits(), references());
    if (r.mode !== shownMode) {
      shownMode = r.mode;
      badge.dataset.mode = r.mode;
      label.textContent = r.label;
    }
    const title = `Invoke will: ${r.label}. Why: ${r.reason}.`;
    if (badge.title !== title) {
      badge.title = title;
      badge.setAttribute("aria-label", `Generation mode: ${r.label}`);
    }
  }

  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let firstStale = 0;
  /** Something the mode depends on changed: measure once things settle (never inside the frame that changed it). */
  function stale() {
    const now = performance.now();
    if (!firstStale) firstStale = now;
    if (timer !== null) clearTimeout(timer);
    // a long gesture keeps changing pixels: still refresh now and then, never more often than MAX_WAIT_MS
    const wait = now - firstStale >= MAX_WAIT_MS ? 0 : settleMs;
    timer = setTimeout(update, wait);
  }

  const offStore = store.subscribe((change) => {
    if (change.source === "load") return stale();
    const before = change.before;
    const relevant = (rec) => rec.type === "layer" || rec.id === "bbox";
    if (change.diff.put.some((rec) => rec.id === "settings")) return stale(); // another model
    if (change.diff.put.some(relevant) || change.diff.remove.some((id) => id === "bbox" || before?.get(id)?.type === "layer")) stale();
  });
  const offPixels = pixels.subscribe(() => stale());
  update();

  return {
    /** Measure now (tests, screenshots). */
    refresh: update,
    get mode() { return shownMode; },
    destroy() {
      offStore();
      offPixels();
      if (timer !== null) clearTimeout(timer);
      badge.remove();
    },
  };
}
