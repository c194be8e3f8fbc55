// Pure geometry for the canvas: rects, the bbox (snapped to 8, aspect presets) and view math.
// No DOM, no Konva: unit-tested with node --test.

/** @typedef {{x: number, y: number}} Point */
/** @typedef {{x: number, y: number, width: number, height: number}} Rect */
/**
 * The view maps canvas pixels to screen (CSS) pixels: screen = canvas * scale + (x, y).
 * @typedef {{x: number, y: number, scale: number}} View
 */
/** @typedef {{id: string, label: string, w: number, h: number}} AspectPreset */

export const GRID = 8;
export const MIN_BBOX = 8;
export const MIN_SCALE = 1 / 32;
export const MAX_SCALE = 64;

/** @type {ReadonlyArray<AspectPreset>} */
export const ASPECT_PRESETS = Object.freeze([
  { id: "1:1", label: "1:1 square", w: 1, h: 1 },
  { id: "3:2", label: "3:2 landscape", w: 3, h: 2 },
  { id: "4:3", label: "4:3 landscape", w: 4, h: 3 },
  { id: "16:9", label: "16:9 landscape", w: 16, h: 9 },
  { id: "2:3", label: "2:3 portrait", w: 2, h: 3 },
  { id: "3:4", label: "3:4 portrait", w: 3, h: 4 },
  { id: "9:16", label: "9:16 portrait", w: 9, h: 16 },
].map(Object.freeze));

/** @param {number} v @param {number} lo @param {number} hi */
export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Nearest multiple of 8 (halves round up, also for negatives, so snapping is translation-invariant). */
export const snap8 = (v) => Math.floor(v / GRID + 0.5) * GRID;

/** A size snapped to 8, never below `min`. */
export const snapSize = (v, min = MIN_BBOX) => Math.max(min, snap8(v));

/** @param {number} x0 @param {number} y0 @param {number} x1 @param {number} y1 @returns {Rect} */
export function rectFromPoints(x0, y0, x1, y1) {
  return { x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
}

/** @param {Rect | null | undefined} r */
export const isEmpty = (r) => !r || !(r.width > 0) || !(r.height > 0);

/** Union of rects; empty/null ones are ignored. @param {...(Rect|null|undefined)} rects @returns {Rect|null} */
export function unionRect(...rects) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const r of rects) {
    if (isEmpty(r)) continue;
    x0 = Math.min(x0, r.x); y0 = Math.min(y0, r.y);
    x1 = Math.max(x1, r.x + r.width); y1 = Math.max(y1, r.y + r.height);
  }
  return x0 === Infinity ? null : { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** @param {Rect} a @param {Rect} b @returns {Rect|null} null when they do not overlap */
export function intersectRect(a, b) {
  if (isEmpty(a) || isEmpty(b)) return null;
  const x0 = Math.max(a.x, b.x), y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.width, b.x + b.width), y1 = Math.min(a.y + a.height, b.y + b.height);
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
}

/** @param {Rect} r @param {Point} p */
export const rectContains = (r, p) => p.x >= r.x && p.y >= r.y && p.x < r.x + r.width && p.y < r.y + r.height;

/** @param {Rect} r @param {number} d */
export const expandRect = (r, d) => ({ x: r.x - d, y: r.y - d, width: r.width + 2 * d, height: r.height + 2 * d });

/** Smallest integer rect containing r (for pixel work). @param {Rect} r @returns {Rect} */
export function roundOut(r) {
  const x = Math.floor(r.x), y = Math.floor(r.y);
  return { x, y, width: Math.ceil(r.x + r.width) - x, height: Math.ceil(r.y + r.height) - y };
}

/** Aspect ratio (width / height) of a preset id like "16:9", or null for free. @param {string|null|undefined} id */
export function aspectRatio(id) {
  const p = ASPECT_PRESETS.find((a) => a.id === id);
  return p ? p.w / p.h : null;
}

/**
 * Snap a bbox: position and size to multiples of 8, size at least MIN_BBOX.
 * keepAspect keeps `aspect` (width/height; default the rect's own) by deriving height from width.
 * @param {Rect} rect
 * @param {{keepAspect?: boolean, aspect?: number | null, min?: number}} [opts]
 * @returns {Rect}
 */
export function snapBBox(rect, { keepAspect = false, aspect = null, min = MIN_BBOX } = {}) {
  const width = snapSize(rect.width, min);
  let height = snapSize(rect.height, min);
  if (keepAspect) {
    const ratio = aspect ?? (rect.height > 0 ? rect.width / rect.height : 1);
    height = snapSize(width / ratio, min);
  }
  return { x: snap8(rect.x), y: snap8(rect.y), width, height };
}

/**
 * The largest box sides the server accepts, from its config (GET /api/v1/config: the `max` of
 * numbers.bbox_width / bbox_height, the same limits the Generate panel's fields use), rounded down
 * to the grid; Infinity for a side the config does not give (none fetched yet: the server still
 * refuses an oversized box when a job is sent).
 * @param {any} config @returns {{maxWidth: number, maxHeight: number}}
 */
export function bboxMaxSides(config) {
  const side = (/** @type {any} */ limit) => {
    const max = Number(limit?.max);
    return Number.isFinite(max) && max >= MIN_BBOX ? Math.floor(max / GRID) * GRID : Infinity;
  };
  return { maxWidth: side(config?.numbers?.bbox_width), maxHeight: side(config?.numbers?.bbox_height) };
}

/**
 * Cap a snapped bbox's sides at maxWidth / maxHeight (multiples of 8: see bboxMaxSides). `anchor`
 * names the sides that stay put, as a resize handle names the sides that move ("nw": the right and
 * bottom edges stay; "e": the left edge stays); an axis it does not name shrinks about the centre.
 * keepAspect shrinks both sides by the same factor (the ratio is kept to the grid's precision).
 * A rect within the limits comes back as it is.
 * @param {Rect} rect
 * @param {{maxWidth?: number, maxHeight?: number, anchor?: string, keepAspect?: boolean}} [opts]
 * @returns {Rect}
 */
export function capBBox(rect, { maxWidth = Infinity, maxHeight = Infinity, anchor = "", keepAspect = false } = {}) {
  if (rect.width <= maxWidth && rect.height <= maxHeight) return rect;
  let width = Math.min(rect.width, maxWidth), height = Math.min(rect.height, maxHeight);
  if (keepAspect) {
    const f = Math.min(maxWidth / rect.width, maxHeight / rect.height);
    width = Math.min(maxWidth, snapSize(rect.width * f));
    height = Math.min(maxHeight, snapSize(rect.height * f));
  }
  const x = anchor.includes("w") ? rect.x + rect.width - width : anchor.includes("e") ? rect.x : snap8(rect.x + (rect.width - width) / 2);
  const y = anchor.includes("n") ? rect.y + rect.height - height : anchor.includes("s") ? rect.y : snap8(rect.y + (rect.height - height) / 2);
  return { x, y, width, height };
}

/**
 * Reshape a bbox to a preset ratio keeping its area (like InvokeAI) and centre, snapped to 8; with
 * maxWidth / maxHeight (bboxMaxSides) it shrinks, keeping the ratio, to fit them.
 * @param {Rect} bbox @param {string | number} preset a preset id or a ratio
 * @param {{maxWidth?: number, maxHeight?: number}} [limits]
 * @returns {Rect}
 */
export function bboxForAspect(bbox, preset, { maxWidth = Infinity, maxHeight = Infinity } = {}) {
  const ratio = typeof preset === "number" ? preset : aspectRatio(preset);
  if (!ratio) throw new Error(`unknown aspect preset ${preset}`);
  const area = bbox.width * bbox.height;
  const width = snapSize(Math.sqrt(area * ratio));
  const height = snapSize(width / ratio);
  const cx = bbox.x + bbox.width / 2, cy = bbox.y + bbox.height / 2;
  const r = { x: snap8(cx - width / 2), y: snap8(cy - height / 2), width, height };
  return capBBox(r, { maxWidth, maxHeight, keepAspect: true });
}

/**
 * The smallest 8-aligned bbox containing rect (e.g. "bbox around this layer").
 * @param {Rect} rect @returns {Rect}
 */
export function fitBBoxToRect(rect) {
  const x0 = Math.floor(rect.x / GRID) * GRID, y0 = Math.floor(rect.y / GRID) * GRID;
  const x1 = Math.ceil((rect.x + rect.width) / GRID) * GRID, y1 = Math.ceil((rect.y + rect.height) / GRID) * GRID;
  return { x: x0, y: y0, width: Math.max(MIN_BBOX, x1 - x0), height: Math.max(MIN_BBOX, y1 - y0) };
}

/** @typedef {"nw"|"n"|"ne"|"e"|"se"|"s"|"sw"|"w"} Handle */
/** @type {ReadonlyArray<Handle>} */
export const HANDLES = Object.freeze(["nw", "n", "ne", "e", "se", "s", "sw", "w"]);

/** Handle positions of a rect (same space as the rect). @param {Rect} r @returns {Record<Handle, Point>} */
export function handlePoints(r) {
  const { x, y, width: w, height: h } = r;
  return {
    nw: { x, y }, n: { x: x + w / 2, y }, ne: { x: x + w, y }, e: { x: x + w, y: y + h / 2 },
    se: { x: x + w, y: y + h }, s: { x: x + w / 2, y: y + h }, sw: { x, y: y + h }, w: { x, y: y + h / 2 },
  };
}

/**
 * What a screen point grabs on a bbox: a handle, "inside" or null. Tolerance is in screen pixels
 * so handles stay grabbable at any zoom.
 * @param {Rect} bbox canvas rect @param {View} view @param {Point} screen @param {number} [tol]
 * @returns {Handle | "inside" | null}
 */
export function hitBBox(bbox, view, screen, tol = 8) {
  const r = rectToScreen(view, bbox);
  const pts = handlePoints(r);
  for (const h of HANDLES) {
    if (Math.abs(screen.x - pts[h].x) <= tol && Math.abs(screen.y - pts[h].y) <= tol) return h;
  }
  // Edges are handles too: easier to hit than the small squares.
  const inY = screen.y >= r.y && screen.y <= r.y + r.height, inX = screen.x >= r.x && screen.x <= r.x + r.width;
  if (inY && Math.abs(screen.x - r.x) <= tol / 2) return "w";
  if (inY && Math.abs(screen.x - (r.x + r.width)) <= tol / 2) return "e";
  if (inX && Math.abs(screen.y - r.y) <= tol / 2) return "n";
  if (inX && Math.abs(screen.y - (r.y + r.height)) <= tol / 2) return "s";
  return inX && inY ? "inside" : null;
}

/**
 * Resize a rect by dragging one handle by (dx, dy); the opposite side stays put and the rect never
 * flips. keepAspect keeps start's ratio (corners follow the larger move, edges resize symmetrically
 * about the other axis). Returns an unsnapped rect: snap with snapBBox after.
 * @param {Rect} start @param {Handle} handle @param {number} dx @param {number} dy
 * @param {{keepAspect?: boolean, aspect?: number|null, min?: number}} [opts]
 * @returns {Rect}
 */
export function resizeRect(start, handle, dx, dy, { keepAspect = false, aspect = null, min = MIN_BBOX } = {}) {
  let x0 = start.x, y0 = start.y, x1 = start.x + start.width, y1 = start.y + start.height;
  if (handle.includes("w")) x0 = Math.min(x0 + dx, x1 - min);
  if (handle.includes("e")) x1 = Math.max(x1 + dx, x0 + min);
  if (handle.includes("n")) y0 = Math.min(y0 + dy, y1 - min);
  if (handle.includes("s")) y1 = Math.max(y1 + dy, y0 + min);
  if (!keepAspect) return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  const ratio = aspect ?? start.width / start.height;
  let w = x1 - x0, h = y1 - y0;
  const horizontal = handle === "e" || handle === "w", vertical = handle === "n" || handle === "s";
  if (horizontal || (!vertical && w / start.width >= h / start.height)) h = w / ratio;
  else w = h * ratio;
  if (w < min) { w = min; h = w / ratio; }
  if (h < min) { h = min; w = h * ratio; }
  // Anchor at the opposite side/corner; edges grow symmetrically about the rect's centre line.
  const cx = start.x + start.width / 2, cy = start.y + start.height / 2;
  const x = handle.includes("w") ? x1 - w : handle.includes("e") ? x0 : cx - w / 2;
  const y = handle.includes("n") ? y1 - h : handle.includes("s") ? y0 : cy - h / 2;
  return { x, y, width: w, height: h };
}

/**
 * Resize a bbox by a handle and snap it to 8 without moving the opposite side (start is assumed
 * snapped). With keepAspect, height follows the snapped width; edge handles grow symmetrically.
 * @param {Rect} start @param {Handle} handle @param {number} dx @param {number} dy
 * @param {{keepAspect?: boolean, aspect?: number|null, min?: number}} [opts]
 * @returns {Rect}
 */
export function snapResize(start, handle, dx, dy, { keepAspect = false, aspect = null, min = MIN_BBOX } = {}) {
  const ratio = aspect ?? start.width / start.height;
  const r = resizeRect(start, handle, dx, dy, { keepAspect, aspect: ratio, min });
  let width = snapSize(r.width, min), height = snapSize(r.height, min);
  if (keepAspect) {
    // Derive the secondary side from the one the handle drives.
    if (handle === "n" || handle === "s") width = snapSize(height * ratio, min);
    else height = snapSize(width / ratio, min);
  }
  const x = handle.includes("w") ? start.x + start.width - width : handle.includes("e") ? start.x : snap8(r.x + (r.width - width) / 2);
  const y = handle.includes("n") ? start.y + start.height - height : handle.includes("s") ? start.y : snap8(r.y + (r.height - height) / 2);
  return { x, y, width, height };
}

// ---- view math -----------------------------------------------------------------------------

/** @param {View} view @param {Point} p screen point @returns {Point} canvas point */
export const screenToCanvas = (view, p) => ({ x: (p.x - view.x) / view.scale, y: (p.y - view.y) / view.scale });

/** @param {View} view @param {Point} p canvas point @returns {Point} screen point */
export const canvasToScreen = (view, p) => ({ x: p.x * view.scale + view.x, y: p.y * view.scale + view.y });

/** @param {View} view @param {Rect} r canvas rect @returns {Rect} screen rect */
export function rectToScreen(view, r) {
  return { x: r.x * view.scale + view.x, y: r.y * view.scale + view.y, width: r.width * view.scale, height: r.height * view.scale };
}

/** The canvas rect visible in a viewport of the given screen size. @param {View} view @param {{width: number, height: number}} size */
export function visibleRect(view, size) {
  return { x: -view.x / view.scale, y: -view.y / view.scale, width: size.width / view.scale, height: size.height / view.scale };
}

/**
 * Zoom by `factor` keeping the canvas point under `screen` fixed (zoom to cursor).
 * @param {View} view @param {Point} screen @param {number} factor
 * @param {{min?: number, max?: number}} [limits]
 * @returns {View}
 */
export function zoomAt(view, screen, factor, { min = MIN_SCALE, max = MAX_SCALE } = {}) {
  const scale = clamp(view.scale * factor, min, max);
  const c = screenToCanvas(view, screen);
  return { x: screen.x - c.x * scale, y: screen.y - c.y * scale, scale };
}

/**
 * The view that shows `rect` centred in a viewport with `padding` screen pixels around it.
 * @param {Rect} rect @param {{width: number, height: number}} size @param {number} [padding]
 * @param {{min?: number, max?: number}} [limits]
 * @returns {View}
 */
export function fitView(rect, size, padding = 32, { min = MIN_SCALE, max = MAX_SCALE } = {}) {
  const aw = Math.max(1, size.width - 2 * padding), ah = Math.max(1, size.height - 2 * padding);
  const scale = clamp(Math.min(aw / Math.max(1, rect.width), ah / Math.max(1, rect.height)), min, max);
  return {
    x: size.width / 2 - (rect.x + rect.width / 2) * scale,
    y: size.height / 2 - (rect.y + rect.height / 2) * scale,
    scale,
  };
}

/**
 * A grid step in canvas pixels (8 times a power of two) so lines stay at least `minScreen` apart.
 * @param {number} scale @param {number} [minScreen]
 */
export function gridStep(scale, minScreen = 16) {
  let step = GRID;
  while (step * scale < minScreen) step *= 2;
  return step;
}

/**
 * Is this wheel event from a mouse wheel (zoom) rather than a trackpad scroll (pan)? Mouse wheels
 * send line/page deltas or large whole-number vertical steps; trackpads send small fractional
 * deltas, often on both axes. Pinch-zoom on trackpads arrives as ctrl+wheel and is handled apart.
 * @param {{deltaMode: number, deltaX: number, deltaY: number}} e
 */
export function isMouseWheel(e) {
  if (e.deltaMode !== 0) return true;
  return e.deltaX === 0 && Number.isInteger(e.deltaY) && Math.abs(e.deltaY) >= 50;
}

// ---- strokes --------------------------------------------------------------------------------

/** @typedef {{x: number, y: number, pressure: number}} StrokePoint */

/**
 * Dab centres along a segment, evenly spaced, continuing the spacing left over from the previous
 * segment so strokes made of many small pointer moves look the same as one long move.
 * @param {StrokePoint} a @param {StrokePoint} b
 * @param {(p: number) => number} spacingAt spacing in pixels for a pressure
 * @param {number} carry distance already travelled since the last dab
 * @returns {{dabs: StrokePoint[], carry: number}}
 */
export function dabsAlong(a, b, spacingAt, carry) {
  const dx = b.x - a.x, dy = b.y - a.y;
  const len = Math.hypot(dx, dy);
  /** @type {StrokePoint[]} */
  const dabs = [];
  let t = 0, travelled = carry;
  // Walk the segment: each step goes as far as the spacing at the current pressure allows.
  for (let guard = 0; guard < 100000; guard++) {
    const p = a.pressure + (b.pressure - a.pressure) * (len > 0 ? t / len : 1);
    const need = Math.max(0.25, spacingAt(p)) - travelled;
    if (t + need > len) break;
    t += need;
    travelled = 0;
    const f = len > 0 ? t / len : 1;
    dabs.push({ x: a.x + dx * f, y: a.y + dy * f, pressure: a.pressure + (b.pressure - a.pressure) * f });
  }
  return { dabs, carry: travelled + (len - t) };
}

/** Axis-aligned bounds of a list of points. @param {Point[]} pts @returns {Rect|null} */
export function pointsBounds(pts) {
  if (!pts.length) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of pts) { x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y); }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/**
 * 2D affine matrix [a, b, c, d, e, f] (canvas setTransform order) helpers, for layer transforms.
 * @typedef {[number, number, number, number, number, number]} Matrix
 */
/** m * n: the transform that applies n first, then m. @param {Matrix} m @param {Matrix} n @returns {Matrix} */
export function multiply(m, n) {
  return [
    m[0] * n[0] + m[2] * n[1], m[1] * n[0] + m[3] * n[1],
    m[0] * n[2] + m[2] * n[3], m[1] * n[2] + m[3] * n[3],
    m[0] * n[4] + m[2] * n[5] + m[4], m[1] * n[4] + m[3] * n[5] + m[5],
  ];
}
/** @param {Matrix} m @returns {Matrix} */
export function invert(m) {
  const det = m[0] * m[3] - m[1] * m[2];
  if (!det) throw new Error("matrix is not invertible");
  return [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det, (m[2] * m[5] - m[3] * m[4]) / det, (m[1] * m[4] - m[0] * m[5]) / det];
}
/** @param {Matrix} m @param {Point} p @returns {Point} */
export const applyMatrix = (m, p) => ({ x: m[0] * p.x + m[2] * p.y + m[4], y: m[1] * p.x + m[3] * p.y + m[5] });
/** Bounds of a rect after a matrix. @param {Matrix} m @param {Rect} r @returns {Rect} */
export function transformRect(m, r) {
  return /** @type {Rect} */ (pointsBounds([
    applyMatrix(m, { x: r.x, y: r.y }), applyMatrix(m, { x: r.x + r.width, y: r.y }),
    applyMatrix(m, { x: r.x, y: r.y + r.height }), applyMatrix(m, { x: r.x + r.width, y: r.y + r.height }),
  ]));
}
