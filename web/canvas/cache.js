// Render caches for many large layers, in canvas coordinates (so panning and zooming keep them):
//  - MipPyramid: lower-resolution copies of a tiled source (level L tile = 256x256 pixels covering
//    256 * 2^L canvas pixels), built lazily from the four level L-1 tiles under it (a 2x2 box
//    average) and dropped with the level-0 pixels they came from.
//  - Composite: one tiled bitmap standing for a run of consecutive layers that nobody is editing,
//    composited (opacity included) on demand per tile, with its own mip pyramid. A frame draws one
//    bitmap per run instead of one per layer.
//  - splitOverlays: masks and regions lifted above a staged result (same plan, same composites).
//  - planLayers: which layers are drawn alone (the one being edited, masks, control layers, live
//    transforms) and which runs are drawn from a composite; a run's key changes whenever its
//    members, their order, opacity, visibility or offset change, so a stale composite is never hit.
// The bookkeeping is pure (canvases come from an injectable factory) and unit-tested in node.

import { MAX_MIP, MipPyramid, TILE, mipKeysForRect, mipLevel, plainCanvas, tileKey, tileKeysForRect } from "./tiles.js";

export { MAX_MIP, MipPyramid, mipKeysForRect, mipLevel };

/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {import("./tiles.js").AnyCanvas} AnyCanvas */
/** @typedef {import("./tiles.js").CanvasFactory} CanvasFactory */
/** @typedef {import("./tiles.js").TiledBitmap} TiledBitmap */
/** @typedef {import("../state/store.js").StoreRecord} StoreRecord */

/**
 * @typedef {{id: string, x: number, y: number, opacity: number}} Member
 * One layer of a composite: its id, integer offset (record x, y) and opacity.
 */

export class Composite {
  /**
   * @param {{members: Member[], bitmapOf: (id: string) => TiledBitmap | undefined, size?: number,
   *          maxLevel?: number, createCanvas?: CanvasFactory, key?: string}} opts
   */
  constructor({ members, bitmapOf, size = TILE, maxLevel = MAX_MIP, createCanvas = plainCanvas, key = compositeKey(members) }) {
    this.members = members;
    this.ids = new Set(members.map((m) => m.id));
    this.bitmapOf = bitmapOf;
    this.size = size;
    this.createCanvas = createCanvas;
    this.key = key;
    /** @type {Map<string, AnyCanvas | null>} level-0 composite tiles in canvas coordinates (null: empty) */
    this.tiles = new Map();
    this.built = 0;
    this.mips = new MipPyramid({ base: (tx, ty) => this.baseTile(tx, ty), size, maxLevel, createCanvas });
  }

  /** @param {number} tx @param {number} ty @returns {AnyCanvas | null} */
  baseTile(tx, ty) {
    const key = tileKey(tx, ty);
    const hit = this.tiles.get(key);
    if (hit !== undefined) return hit;
    const n = this.size, X = tx * n, Y = ty * n;
    /** @type {AnyCanvas | null} */
    let out = null;
    /** @type {CanvasRenderingContext2D | null} */
    let g = null;
    for (const m of this.members) {
      const bm = this.bitmapOf(m.id);
      if (!bm || !bm.tileCount) continue;
      for (const t of bm.tilesIn({ x: X - m.x, y: Y - m.y, width: n, height: n })) {
        if (!out) { out = this.createCanvas(n, n); g = /** @type {CanvasRenderingContext2D} */ (out.getContext("2d")); }
        const ctx = /** @type {CanvasRenderingContext2D} */ (g);
        ctx.globalAlpha = m.opacity;
        ctx.drawImage(t.canvas, t.x + m.x - X, t.y + m.y - Y);
      }
    }
    if (g) g.globalAlpha = 1;
    this.tiles.set(key, out);
    if (out) this.built++;
    return out;
  }

  /** @param {number} level @param {number} tx @param {number} ty */
  tile(level, tx, ty) { return this.mips.tile(level, tx, ty); }

  /**
   * A member's pixels changed under rect (layer coordinates): drop the composite tiles over it at
   * every level. Returns whether the layer is a member.
   * @param {string} id @param {Rect} rect
   */
  invalidate(id, rect) {
    if (!this.ids.has(id)) return false;
    const m = /** @type {Member} */ (this.members.find((mm) => mm.id === id));
    const r = { x: rect.x + m.x, y: rect.y + m.y, width: rect.width, height: rect.height };
    for (const k of tileKeysForRect(r, this.size)) this.tiles.delete(k);
    this.mips.invalidate(r);
    return true;
  }

  clear() { this.tiles.clear(); this.mips.clear(); }
}

/** @param {Member[]} members */
export const compositeKey = (members) => members.map((m) => `${m.id}@${m.x},${m.y}*${m.opacity}`).join("|");

/** Drawn at all (the renderer's rule): visible and not fully transparent. @param {StoreRecord} l */
export const isDrawn = (l) => l.visible !== false && (l.opacity > 0 || l.opacity === undefined);

/**
 * @typedef {{type: "layer", layer: StoreRecord} | {type: "group", layers: StoreRecord[], members: Member[], key: string}} PlanItem
 */

/**
 * Split the drawn layers (bottom first) into what a frame draws: runs of two or more consecutive
 * cacheable layers become one composite ("group"); everything else is drawn alone ("layer").
 * Cacheable: a raster layer that is not the active (edited) one, has no live transform and sits at
 * an integer offset (so compositing is an exact pixel copy per layer).
 * @param {StoreRecord[]} layers @param {{active?: string | null, transformed?: {has(id: string): boolean}}} [opts]
 * @returns {PlanItem[]}
 */
export function planLayers(layers, { active = null, transformed = new Set() } = {}) {
  /** @type {PlanItem[]} */
  const out = [];
  /** @type {StoreRecord[]} */
  let run = [];
  const flush = () => {
    if (run.length >= 2) {
      const members = run.map((l) => ({ id: l.id, x: l.x ?? 0, y: l.y ?? 0, opacity: l.opacity ?? 1 }));
      out.push({ type: "group", layers: run, members, key: compositeKey(members) });
    } else for (const l of run) out.push({ type: "layer", layer: l });
    run = [];
  };
  for (const l of layers) {
    if (!isDrawn(l)) continue;
    const cacheable = l.kind === "raster" && l.id !== active && !transformed.has(l.id)
      && Number.isInteger(l.x ?? 0) && Number.isInteger(l.y ?? 0);
    if (cacheable) { run.push(l); continue; }
    flush();
    out.push({ type: "layer", layer: l });
  }
  flush();
  return out;
}

/** Masks and regions: drawn alone, tinted, as overlays. @param {StoreRecord} l */
export const isOverlay = (l) => l.kind === "inpaint_mask" || l.kind === "regional_guidance";

/**
 * A plan split for a frame that shows a staged result (or the live preview) in the box: `under` (drawn
 * before the staged image: composites, raster and control layers) and `over` (masks and regions,
 * drawn after it so they stay visible over it), each in plan order. The plan itself, and so every
 * composite key, is the same as without staging: staging on and off reuses the same composites.
 * @param {PlanItem[]} plan @returns {{under: PlanItem[], over: PlanItem[]}}
 */
export function splitOverlays(plan) {
  /** @type {PlanItem[]} */
  const under = [], over = [];
  for (const item of plan) (item.type === "layer" && isOverlay(item.layer) ? over : under).push(item);
  return { under, over };
}

/**
 * Keeps the composites of the current plan: reuses them across frames by key, drops the ones a
 * frame no longer uses, and forwards pixel changes to those holding the layer.
 * @param {{bitmapOf: (id: string) => TiledBitmap | undefined, size?: number, maxLevel?: number, createCanvas?: CanvasFactory}} opts
 */
export function createCompositeCache({ bitmapOf, size = TILE, maxLevel = MAX_MIP, createCanvas = plainCanvas }) {
  /** @type {Map<string, Composite>} */
  const composites = new Map();
  return {
    composites,
    /**
     * The composites for a plan's groups (created empty when new); the rest are dropped.
     * @param {PlanItem[]} plan @returns {Map<string, Composite>}
     */
    sync(plan) {
      const keep = new Set();
      for (const item of plan) {
        if (item.type !== "group") continue;
        keep.add(item.key);
        if (!composites.has(item.key)) composites.set(item.key, new Composite({ members: item.members, bitmapOf, size, maxLevel, createCanvas, key: item.key }));
      }
      for (const [k, c] of composites) if (!keep.has(k)) { c.clear(); composites.delete(k); }
      return composites;
    },
    /**
     * A layer's pixels changed under rect (layer coordinates); an empty rect means the layer's
     * bitmap is gone or replaced: drop every composite holding it.
     * @param {string} id @param {Rect} rect
     */
    invalidate(id, rect) {
      const gone = !(rect.width > 0 && rect.height > 0);
      for (const [k, c] of composites) {
        if (!c.ids.has(id)) continue;
        if (gone) { c.clear(); composites.delete(k); } else c.invalidate(id, rect);
      }
    },
    clear() { for (const c of composites.values()) c.clear(); composites.clear(); },
    /** Level-0 and mip tiles built so far (for stats). */
    get built() { let n = 0; for (const c of composites.values()) n += c.built + c.mips.built; return n; },
  };
}

