// The brush engine shared by brush and eraser. Dabs go into a private stroke buffer at full
// strength; each touched layer tile is then rebuilt as (tile before the stroke) + buffer x opacity.
// So the stroke shows on the layer at once, in its real place in the layer stack, and opacity
// does not build up where the stroke crosses itself (what illustrators expect from a brush).

import { dabsAlong, roundOut, unionRect } from "../canvas/geometry.js";
import { TiledBitmap, defaultCanvasFactory, tileKeysForRect } from "../canvas/tiles.js";

/** @typedef {import("../canvas/geometry.js").StrokePoint} StrokePoint */
/** @typedef {import("../canvas/tiles.js").AnyCanvas} AnyCanvas */

/** @param {string} hex "#rgb" or "#rrggbb" @returns {[number, number, number]} */
export function parseHex(hex) {
  let h = String(hex || "#000000").replace("#", "");
  if (h.length === 3) h = h.split("").map((c) => c + c).join("");
  const n = parseInt(h.slice(0, 6), 16);
  return Number.isFinite(n) ? [(n >> 16) & 255, (n >> 8) & 255, n & 255] : [0, 0, 0];
}

/** @param {number} r @param {number} g @param {number} b */
export const toHex = (r, g, b) => "#" + [r, g, b].map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");

/**
 * One dab image: a disc of diameter `size` with a soft edge from `hardness` (1 = hard) inward.
 * @param {number} size @param {number} hardness @param {string} color
 * @returns {{canvas: AnyCanvas, radius: number, half: number}}
 */
export function makeStamp(size, hardness, color) {
  const radius = Math.max(0.5, size / 2);
  const side = Math.ceil(size) + 2;
  const half = side / 2;
  const c = defaultCanvasFactory(side, side);
  const g = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
  const [r, gg, b] = parseHex(color);
  if (hardness >= 0.99) {
    g.fillStyle = `rgb(${r},${gg},${b})`;
    g.beginPath(); g.arc(half, half, radius, 0, Math.PI * 2); g.fill();
  } else {
    // Fade to the same colour at alpha 0 (not "transparent" black) so edges do not go grey.
    const grad = g.createRadialGradient(half, half, 0, half, half, radius);
    grad.addColorStop(0, `rgba(${r},${gg},${b},1)`);
    grad.addColorStop(Math.max(0, Math.min(0.99, hardness)), `rgba(${r},${gg},${b},1)`);
    grad.addColorStop(1, `rgba(${r},${gg},${b},0)`);
    g.fillStyle = grad;
    g.fillRect(0, 0, side, side);
  }
  return { canvas: c, radius, half };
}

export class Stroke {
  /**
   * @param {{bitmap: TiledBitmap, erase?: boolean, color?: string, size: number, hardness?: number,
   *          opacity?: number, usePressure?: boolean}} opts
   */
  constructor({ bitmap, erase = false, color = "#000000", size, hardness = 1, opacity = 1, usePressure = false }) {
    this.bitmap = bitmap;
    this.erase = erase;
    this.size = Math.max(1, size);
    this.opacity = Math.max(0, Math.min(1, opacity));
    this.usePressure = usePressure;
    this.stamp = makeStamp(this.size, hardness, erase ? "#000000" : color);
    this.buffer = new TiledBitmap({ tileSize: bitmap.size });
    /** @type {Map<string, AnyCanvas | null>} each touched tile as it was before the stroke */
    this.base = new Map();
    /** @type {StrokePoint | null} */
    this.last = null;
    this.carry = 0;
    /** Union of everything the stroke touched (layer coordinates). */
    this.rect = /** @type {import("../canvas/geometry.js").Rect | null} */ (null);
  }

  /** @param {number} p pressure 0..1 */
  radiusAt(p) { return Math.max(0.5, (this.size / 2) * (this.usePressure ? 0.15 + 0.85 * p : 1)); }

  /** @param {StrokePoint} p */
  addPoint(p) { this.addPoints([p]); }

  /** Add pointer samples (layer coordinates); dabs are interpolated between them. @param {StrokePoint[]} pts */
  addPoints(pts) {
    /** @type {StrokePoint[]} */
    const dabs = [];
    for (const p of pts) {
      if (!this.last) { dabs.push(p); this.last = p; continue; }
      const r = dabsAlong(this.last, p, (pr) => Math.max(0.5, this.radiusAt(pr) * 2 * 0.08), this.carry);
      dabs.push(...r.dabs);
      this.carry = r.carry;
      this.last = p;
    }
    if (dabs.length) this.paint(dabs);
  }

  /** @param {StrokePoint[]} dabs */
  paint(dabs) {
    const rect = roundOut(/** @type {any} */ (unionRect(...dabs.map((d) => {
      const r = this.radiusAt(d.pressure) + 1;
      return { x: d.x - r, y: d.y - r, width: 2 * r, height: 2 * r };
    }))));
    const { canvas: stamp, radius, half } = this.stamp;
    this.buffer.draw(rect, (ctx) => {
      for (const d of dabs) {
        const k = this.radiusAt(d.pressure) / radius;
        ctx.drawImage(stamp, d.x - half * k, d.y - half * k, 2 * half * k, 2 * half * k);
      }
    });
    this.composite(rect);
    this.rect = unionRect(this.rect, rect);
  }

  /** Rebuild the layer tiles under rect from their pre-stroke state and the stroke buffer. */
  composite(rect) {
    const b = this.bitmap;
    const keys = tileKeysForRect(rect, b.size);
    for (const k of keys) if (!this.base.has(k)) this.base.set(k, b.snapshotTile(k));
    b.touchKeys(keys); // history copies "before" on first touch; tiles are created if missing
    for (const k of keys) {
      const t = b.tile(k), s = this.buffer.tile(k);
      if (!t || !s) continue;
      const ctx = t.ctx, base = this.base.get(k);
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.globalAlpha = 1;
      ctx.globalCompositeOperation = "copy";
      if (base) ctx.drawImage(base, 0, 0); else ctx.clearRect(0, 0, b.size, b.size);
      ctx.globalCompositeOperation = this.erase ? "destination-out" : "source-over";
      ctx.globalAlpha = this.opacity;
      ctx.drawImage(s.canvas, 0, 0);
      ctx.restore();
    }
    b.changed(rect);
  }

  /** Free the buffer and base copies (the layer tiles keep the result). */
  end() {
    this.buffer.destroy();
    this.base.clear();
  }
}

/** Mask-like layers store coverage in alpha and are shown tinted. @param {string | undefined} kind */
export const isMaskKind = (kind) => kind === "inpaint_mask" || kind === "regional_guidance";

/** The colour a tool paints with on this layer: masks get full-strength white coverage. */
export const paintColor = (/** @type {{kind?: string}} */ layer, /** @type {string} */ color) => (isMaskKind(layer.kind) ? "#ffffff" : color);

/**
 * Fill a path on a layer bitmap in one edit (rect and lasso tools). `path(ctx)` builds the path in
 * layer coordinates; `bounds` (layer coordinates) limits the tiles touched.
 * @param {TiledBitmap} bitmap @param {import("../canvas/geometry.js").Rect} bounds
 * @param {(ctx: CanvasRenderingContext2D) => void} path
 * @param {{color: string, opacity: number, erase?: boolean}} paint
 */
export function fillPath(bitmap, bounds, path, { color, opacity, erase = false }) {
  const rect = roundOut(bounds);
  if (!(rect.width > 0 && rect.height > 0)) return;
  bitmap.draw(rect, (ctx) => {
    ctx.globalAlpha = Math.max(0, Math.min(1, opacity));
    ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
    ctx.fillStyle = erase ? "#000000" : color;
    ctx.beginPath();
    path(ctx);
    ctx.fill();
  });
}
