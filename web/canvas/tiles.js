// Sparse tiled bitmaps: one per layer, 256x256 tiles in the layer's own pixel coordinates,
// unbounded in every direction. Only painted tiles exist, so memory follows what was drawn and
// history can keep just the tiles a stroke touched. The bookkeeping (keys, ranges, bounds) is pure;
// pixels go through a 2D context from an injectable canvas factory (so node tests can fake it).

import { unionRect } from "./geometry.js";

/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {HTMLCanvasElement | OffscreenCanvas} AnyCanvas */
/** @typedef {(width: number, height: number) => AnyCanvas} CanvasFactory */
/**
 * @typedef {{key: string, tx: number, ty: number, x: number, y: number, canvas: AnyCanvas,
 *            ctx: CanvasRenderingContext2D, painted: Box | null, dirty: Box | null}} Tile
 * `painted`: the tile's alpha bounds at the last scan (null = empty); `dirty`: what changed since
 * (null = nothing). Both tile-local. Scans read pixels back, so they run only when asked for.
 * @typedef {{x0: number, y0: number, x1: number, y1: number}} Box
 */

/** @param {Box | null} a @param {Box | null} b @returns {Box | null} */
function unionBox(a, b) {
  if (!a) return b;
  if (!b) return a;
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

export const TILE = 256;

/**
 * Tiles live in CPU memory (willReadFrequently): strokes, history copies and bounds scans read and
 * write them all the time, and GPU-backed canvases would stall on every readback. Unchanged tiles
 * are uploaded once and cached by the browser when drawn to the (GPU) stage.
 * @param {AnyCanvas} canvas
 */
export const tileContext = (canvas) => /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d", { willReadFrequently: true }));

/** @param {number} tx @param {number} ty */
export const tileKey = (tx, ty) => `${tx},${ty}`;

/** @param {string} key @returns {{tx: number, ty: number}} */
export function parseTileKey(key) {
  const [tx, ty] = key.split(",").map(Number);
  return { tx, ty };
}

/** @param {number} tx @param {number} ty @param {number} [size] @returns {Rect} */
export const tileRect = (tx, ty, size = TILE) => ({ x: tx * size, y: ty * size, width: size, height: size });

/**
 * Inclusive tile index range covering a rect (fractional edges count), or null for an empty rect.
 * @param {Rect} rect @param {number} [size]
 */
export function tileRange(rect, size = TILE) {
  if (!rect || !(rect.width > 0) || !(rect.height > 0)) return null;
  return {
    tx0: Math.floor(rect.x / size), ty0: Math.floor(rect.y / size),
    tx1: Math.ceil((rect.x + rect.width) / size) - 1, ty1: Math.ceil((rect.y + rect.height) / size) - 1,
  };
}

/** @param {Rect} rect @param {number} [size] @returns {string[]} */
export function tileKeysForRect(rect, size = TILE) {
  const r = tileRange(rect, size);
  if (!r) return [];
  const keys = [];
  for (let ty = r.ty0; ty <= r.ty1; ty++) for (let tx = r.tx0; tx <= r.tx1; tx++) keys.push(tileKey(tx, ty));
  return keys;
}

/**
 * Bounds of the pixels with alpha > 0 in an RGBA buffer, exclusive x1/y1, or null when all clear.
 * @param {Uint8ClampedArray | Uint8Array} data @param {number} width @param {number} height
 */
export function alphaBounds(data, width, height) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width * 4;
    let first = -1, last = -1;
    for (let x = 0; x < width; x++) if (data[row + x * 4 + 3]) { first = x; break; }
    if (first < 0) continue;
    for (let x = width - 1; x >= first; x--) if (data[row + x * 4 + 3]) { last = x; break; }
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return x1 < 0 ? null : { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

/** @type {CanvasFactory} */
export function defaultCanvasFactory(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  return c;
}

/** Canvas for results handed to other code (toBlob needs an element when a document exists). @type {CanvasFactory} */
export function elementCanvasFactory(width, height) {
  if (typeof document === "undefined") return defaultCanvasFactory(width, height);
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  return c;
}

/** Coarsest level kept: 1/32 (the viewport's minimum zoom), so tiles never shrink below ~256 screen pixels. */
export const MAX_MIP = 5;

/**
 * The mip level to draw at `scale` (device pixels per canvas pixel): 0 (full resolution) at 0.5 and
 * above; below, the coarsest level that still has at least one source pixel per screen pixel.
 * @param {number} scale @param {number} [max]
 */
export function mipLevel(scale, max = MAX_MIP) {
  if (!(scale > 0) || scale >= 0.5) return 0;
  let level = 1;
  while (level < max && scale * 2 ** (level + 1) <= 1 + 1e-9) level++;
  return level;
}

/** Canvas for caches that are only drawn from (no readback: GPU-backed where there is a GPU). @type {CanvasFactory} */
export function plainCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  return c;
}

/**
 * Level-L tile keys covering a rect given in level-0 pixel coordinates.
 * @param {Rect} rect @param {number} level @param {number} [size]
 */
export const mipKeysForRect = (rect, level, size = TILE) => tileKeysForRect(rect, size * 2 ** level);

export class MipPyramid {
  /**
   * @param {{base: (tx: number, ty: number) => AnyCanvas | null, size?: number, maxLevel?: number,
   *          createCanvas?: CanvasFactory}} opts base gives the level-0 tile (null where nothing is painted)
   */
  constructor({ base, size = TILE, maxLevel = MAX_MIP, createCanvas = plainCanvas }) {
    this.base = base;
    this.size = size;
    this.maxLevel = maxLevel;
    this.createCanvas = createCanvas;
    /** @type {Map<string, AnyCanvas | null>[]} levels[L] for L >= 1 (null: known empty) */
    this.levels = [];
    for (let l = 0; l <= maxLevel; l++) this.levels.push(new Map());
    this.built = 0;
  }

  /** @param {number} level @param {number} tx @param {number} ty @returns {AnyCanvas | null} */
  tile(level, tx, ty) {
    if (level <= 0) return this.base(tx, ty);
    const map = this.levels[Math.min(level, this.maxLevel)];
    const key = tileKey(tx, ty);
    const hit = map.get(key);
    if (hit !== undefined) return hit;
    const half = this.size / 2;
    /** @type {AnyCanvas | null} */
    let out = null;
    /** @type {CanvasRenderingContext2D | null} */
    let g = null;
    for (let j = 0; j < 2; j++) for (let i = 0; i < 2; i++) {
      const child = this.tile(level - 1, 2 * tx + i, 2 * ty + j);
      if (!child) continue;
      if (!out) {
        out = this.createCanvas(this.size, this.size);
        g = /** @type {CanvasRenderingContext2D} */ (out.getContext("2d"));
        g.imageSmoothingEnabled = true; // exactly half size, pixel-aligned: each pixel is a 2x2 average
      }
      /** @type {CanvasRenderingContext2D} */ (g).drawImage(child, i * half, j * half, half, half);
    }
    map.set(key, out);
    if (out) this.built++;
    return out;
  }

  /** Level-0 pixels under rect changed: drop every coarser tile made from them. @param {Rect} rect */
  invalidate(rect) {
    for (let l = 1; l <= this.maxLevel; l++) {
      const map = this.levels[l];
      if (!map.size) continue;
      for (const k of mipKeysForRect(rect, l, this.size)) map.delete(k);
    }
  }

  clear() { for (const m of this.levels) m.clear(); }

  /** Cached tiles (non-empty) over all levels. */
  get cached() { let n = 0; for (const m of this.levels) for (const c of m.values()) if (c) n++; return n; }
}

export class TiledBitmap {
  /**
   * @param {{tileSize?: number, createCanvas?: CanvasFactory, createExportCanvas?: CanvasFactory,
   *          onEdit?: ((bitmap: TiledBitmap, keys: string[]) => void) | null,
   *          onChange?: ((bitmap: TiledBitmap, rect: Rect) => void) | null}} [opts]
   */
  constructor({ tileSize = TILE, createCanvas = defaultCanvasFactory, createExportCanvas = createCanvas, onEdit = null, onChange = null } = {}) {
    this.size = tileSize;
    this.createCanvas = createCanvas;
    this.createExportCanvas = createExportCanvas;
    /** Called BEFORE tiles change (history snapshots them). */
    this.onEdit = onEdit;
    /** Called AFTER pixels changed (renderers redraw). */
    this.onChange = onChange;
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
    /** Bumped on every change; renderers and caches compare it. */
    this.version = 0;
    /** @type {MipPyramid | null} lower-resolution copies for zoomed-out drawing, made on first use */
    this._mips = null;
  }

  /**
   * Tile (tx, ty) of mip level `level` (level 0: the tile's own canvas; level L: 256x256 pixels
   * covering 256 * 2^L layer pixels), built lazily; null where nothing is painted. Dropped with the
   * tiles they came from by changed().
   * @param {number} level @param {number} tx @param {number} ty @returns {AnyCanvas | null}
   */
  mip(level, tx, ty) {
    if (level <= 0) return this.tiles.get(tileKey(tx, ty))?.canvas ?? null;
    if (!this._mips) {
      // Same factory as the tiles; the mips' contexts are plain (never read back).
      this._mips = new MipPyramid({ base: (x, y) => this.tiles.get(tileKey(x, y))?.canvas ?? null, size: this.size, createCanvas: this.createCanvas });
    }
    return this._mips.tile(level, tx, ty);
  }

  get tileCount() { return this.tiles.size; }
  /** Bytes held by tiles (RGBA). */
  get bytes() { return this.tiles.size * this.size * this.size * 4; }
  /** @param {string} key */
  has(key) { return this.tiles.has(key); }
  /** @param {string} key */
  tile(key) { return this.tiles.get(key); }
  keys() { return [...this.tiles.keys()]; }

  /** @param {string} key @returns {Tile} */
  _create(key) {
    const { tx, ty } = parseTileKey(key);
    const canvas = this.createCanvas(this.size, this.size);
    const ctx = tileContext(canvas);
    const t = { key, tx, ty, x: tx * this.size, y: ty * this.size, canvas, ctx, painted: null, dirty: null };
    this.tiles.set(key, t);
    return t;
  }

  /**
   * Announce that the tiles under `rect` are about to change (history snapshots their "before"),
   * then make sure they exist. Returns their keys.
   * @param {Rect} rect
   */
  beginEdit(rect) { return this.touchKeys(tileKeysForRect(rect, this.size)); }

  /** @param {string[]} keys */
  touchKeys(keys) {
    if (keys.length && this.onEdit) this.onEdit(this, keys);
    for (const k of keys) if (!this.tiles.has(k)) this._create(k);
    return keys;
  }

  /** Pixels under rect changed: drop cached bounds, tell renderers. @param {Rect} rect */
  changed(rect) {
    const n = this.size;
    for (const k of tileKeysForRect(rect, n)) {
      const t = this.tiles.get(k);
      if (!t) continue;
      const box = {
        x0: Math.max(0, Math.floor(rect.x - t.x)), y0: Math.max(0, Math.floor(rect.y - t.y)),
        x1: Math.min(n, Math.ceil(rect.x + rect.width - t.x)), y1: Math.min(n, Math.ceil(rect.y + rect.height - t.y)),
      };
      if (box.x1 > box.x0 && box.y1 > box.y0) t.dirty = unionBox(t.dirty, box);
    }
    this._mips?.invalidate(rect);
    this.version++;
    if (this.onChange) this.onChange(this, rect);
  }

  /**
   * Draw into every tile under rect with a context translated to layer coordinates:
   * fn(ctx) draws as if on one unbounded canvas; each tile's own bounds clip it.
   * @param {Rect} rect the area fn may touch (anything outside may be lost)
   * @param {(ctx: CanvasRenderingContext2D, tile: Tile) => void} fn
   */
  draw(rect, fn) {
    const keys = this.beginEdit(rect);
    for (const k of keys) {
      const t = /** @type {Tile} */ (this.tiles.get(k));
      t.ctx.save();
      t.ctx.translate(-t.x, -t.y);
      fn(t.ctx, t);
      t.ctx.restore();
    }
    if (keys.length) this.changed(rect);
  }

  /**
   * An independent copy of one tile (for history), or null when the tile does not exist.
   * @param {string} key @returns {AnyCanvas | null}
   */
  snapshotTile(key) {
    const t = this.tiles.get(key);
    if (!t) return null;
    const c = this.createCanvas(this.size, this.size);
    // drawImage at identity onto a clear canvas copies the premultiplied pixels exactly.
    tileContext(c).drawImage(t.canvas, 0, 0);
    return c;
  }

  /**
   * Put a snapshot back (null removes the tile). Does not call onEdit: history itself restores.
   * @param {string} key @param {AnyCanvas | null} snap
   */
  restoreTile(key, snap) {
    const { tx, ty } = parseTileKey(key);
    if (!snap) {
      if (!this.tiles.delete(key)) return;
    } else {
      const t = this.tiles.get(key) ?? this._create(key);
      t.ctx.save();
      t.ctx.setTransform(1, 0, 0, 1, 0, 0);
      t.ctx.globalAlpha = 1;
      t.ctx.globalCompositeOperation = "source-over";
      t.ctx.clearRect(0, 0, this.size, this.size);
      t.ctx.drawImage(snap, 0, 0);
      t.ctx.restore();
    }
    this.changed(tileRect(tx, ty, this.size));
  }

  /** Erase everything (through onEdit, so it is undoable). */
  clear() {
    const keys = this.keys();
    if (!keys.length) return;
    const rect = unionRect(...keys.map((k) => { const { tx, ty } = parseTileKey(k); return tileRect(tx, ty, this.size); }));
    this.touchKeys(keys);
    this.tiles.clear();
    this.changed(/** @type {Rect} */ (rect));
  }

  /** Exact bounds of painted pixels (alpha > 0) in layer coordinates, or null when empty. */
  bounds() {
    /** @type {Rect | null} */
    let out = null;
    for (const t of this.tiles.values()) {
      if (t.dirty) {
        const img = t.ctx.getImageData(0, 0, this.size, this.size);
        t.painted = alphaBounds(img.data, this.size, this.size);
        t.dirty = null;
      }
      const p = t.painted;
      if (p) out = unionRect(out, { x: t.x + p.x0, y: t.y + p.y0, width: p.x1 - p.x0, height: p.y1 - p.y0 });
    }
    return out;
  }

  /**
   * Bounds that may be too large (erased areas count until the next exact scan) but never read
   * pixels back: cheap enough for every frame.
   */
  roughBounds() {
    /** @type {Rect | null} */
    let out = null;
    for (const t of this.tiles.values()) {
      const p = unionBox(t.painted, t.dirty);
      if (p) out = unionRect(out, { x: t.x + p.x0, y: t.y + p.y0, width: p.x1 - p.x0, height: p.y1 - p.y0 });
    }
    return out;
  }

  /** Tiles intersecting rect (for drawing only what is visible). @param {Rect} rect @returns {Tile[]} */
  tilesIn(rect) {
    const r = tileRange(rect, this.size);
    if (!r) return [];
    const span = (r.tx1 - r.tx0 + 1) * (r.ty1 - r.ty0 + 1);
    const out = [];
    if (span <= this.tiles.size) {
      for (let ty = r.ty0; ty <= r.ty1; ty++) for (let tx = r.tx0; tx <= r.tx1; tx++) {
        const t = this.tiles.get(tileKey(tx, ty)); if (t) out.push(t);
      }
    } else {
      // Zoomed far out: fewer tiles exist than the range spans, so filter the map instead.
      for (const t of this.tiles.values()) if (t.tx >= r.tx0 && t.tx <= r.tx1 && t.ty >= r.ty0 && t.ty <= r.ty1) out.push(t);
    }
    return out;
  }

  /**
   * Copy a rect (default: the painted bounds) into a new canvas. Integer rects copy exactly.
   * @param {Rect | null} [rect] @returns {AnyCanvas | null}
   */
  toCanvas(rect = this.bounds()) {
    if (!rect || !(rect.width > 0) || !(rect.height > 0)) return null;
    const c = this.createExportCanvas(Math.ceil(rect.width), Math.ceil(rect.height));
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
    for (const t of this.tilesIn(rect)) ctx.drawImage(t.canvas, t.x - rect.x, t.y - rect.y);
    return c;
  }

  /** RGBA (unpremultiplied, 0-255) at a layer pixel. @param {number} x @param {number} y */
  sample(x, y) {
    const px = Math.floor(x), py = Math.floor(y);
    const t = this.tiles.get(tileKey(Math.floor(px / this.size), Math.floor(py / this.size)));
    if (!t) return [0, 0, 0, 0];
    return [...t.ctx.getImageData(px - t.x, py - t.y, 1, 1).data];
  }

  /**
   * Draw an image at (x, y) in layer coordinates; replace clears the bitmap first.
   * @param {CanvasImageSource & {width: number, height: number}} image @param {number} x @param {number} y
   * @param {{replace?: boolean}} [opts]
   */
  drawImage(image, x, y, { replace = false } = {}) {
    if (replace) this.clear();
    const w = /** @type {any} */ (image).naturalWidth || image.width, h = /** @type {any} */ (image).naturalHeight || image.height;
    if (!(w > 0 && h > 0)) return;
    this.draw({ x, y, width: w, height: h }, (ctx) => ctx.drawImage(image, x, y));
  }

  destroy() { this.tiles.clear(); this._mips?.clear(); this.onEdit = null; this.onChange = null; }
}

/**
 * The per-layer bitmap registry shared by the canvas, tools and history.
 * `origin(layerId)` gives the layer's offset (record x, y) so export/import speak canvas coordinates.
 * @param {{tileSize?: number, createCanvas?: CanvasFactory, createExportCanvas?: CanvasFactory,
 *          origin?: (layerId: string) => {x: number, y: number}}} [opts]
 */
export function createPixelRegistry({ tileSize = TILE, createCanvas = defaultCanvasFactory, createExportCanvas = elementCanvasFactory, origin = () => ({ x: 0, y: 0 }) } = {}) {
  /** @type {Map<string, TiledBitmap>} */
  const bitmaps = new Map();
  /** @type {((layerId: string, bitmap: TiledBitmap, keys: string[]) => void) | null} */
  let editListener = null;
  /** @type {Set<(e: {layerId: string, rect: Rect}) => void>} */
  const listeners = new Set();
  let quiet = 0;
  let originOf = origin;

  const registry = {
    tileSize,
    /** @param {string} id */
    get: (id) => bitmaps.get(id),
    /** @param {string} id */
    has: (id) => bitmaps.has(id),
    ids: () => [...bitmaps.keys()],
    /** The layer's bitmap, created empty when missing. @param {string} id @returns {TiledBitmap} */
    ensure(id) {
      let b = bitmaps.get(id);
      if (!b) {
        b = new TiledBitmap({
          tileSize, createCanvas, createExportCanvas,
          onEdit: (bm, keys) => { if (!quiet && editListener) editListener(id, bm, keys); },
          onChange: (_bm, rect) => { for (const fn of [...listeners]) fn({ layerId: id, rect }); },
        });
        bitmaps.set(id, b);
      }
      return b;
    },
    /** Free a layer's pixels (not undoable: history keeps only tiles it already copied). @param {string} id */
    drop(id) {
      const b = bitmaps.get(id);
      if (!b) return;
      bitmaps.delete(id);
      b.destroy();
      for (const fn of [...listeners]) fn({ layerId: id, rect: { x: 0, y: 0, width: 0, height: 0 } });
    },
    /** History hooks in here to snapshot tiles before they change. @param {typeof editListener} fn */
    setEditListener(fn) { editListener = fn; },
    /** @param {(layerId: string) => {x: number, y: number}} fn */
    setOrigin(fn) { originOf = fn; },
    /** @param {string} id */
    origin: (id) => originOf(id),
    /** @param {(e: {layerId: string, rect: Rect}) => void} fn @returns {() => void} */
    subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); },
    /** Run fn with history capture off (e.g. loading a document). @template T @param {() => T} fn @returns {T} */
    withoutHistory(fn) {
      quiet++;
      try { return fn(); } finally { quiet--; }
    },
    /** Total tile bytes across layers. */
    get bytes() { let n = 0; for (const b of bitmaps.values()) n += b.bytes; return n; },

    /**
     * The layer's painted pixels for upload, in canvas coordinates (layer offset included).
     * @param {string} id
     * @returns {{x: number, y: number, width: number, height: number, canvas: AnyCanvas} | null}
     */
    exportLayer(id) {
      const b = bitmaps.get(id);
      const r = b?.bounds();
      if (!b || !r) return null;
      const o = originOf(id);
      return { x: o.x + r.x, y: o.y + r.y, width: r.width, height: r.height, canvas: /** @type {AnyCanvas} */ (b.toCanvas(r)) };
    },

    /**
     * Put an image into a layer at canvas coordinates (x, y). replace (default) clears the layer
     * first; history=false keeps it out of undo (loading a document).
     * @param {string} id @param {CanvasImageSource & {width: number, height: number}} image
     * @param {number} [x] @param {number} [y]
     * @param {{replace?: boolean, history?: boolean}} [opts]
     */
    importLayer(id, image, x = 0, y = 0, { replace = true, history = true } = {}) {
      const o = originOf(id);
      const run = () => registry.ensure(id).drawImage(image, Math.round(x - o.x), Math.round(y - o.y), { replace });
      if (history) run(); else registry.withoutHistory(run);
    },

    /** Visible-area helper for renderers. @param {string} id @param {Rect} rect */
    tilesIn(id, rect) { return bitmaps.get(id)?.tilesIn(rect) ?? []; },
  };
  return registry;
}

/** @typedef {ReturnType<typeof createPixelRegistry>} PixelRegistry */
