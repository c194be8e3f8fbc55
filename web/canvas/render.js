// Draws the store: one Konva layer for pixels (checkerboard, layers, staging, live preview; masks and
// regions go above a staged result or preview, see splitOverlays in cache.js) and
// one for overlays (grid, bbox, tool feedback, the move tool's transformer). Each redraw is
// coalesced to one per animation frame, and only tiles inside the viewport are drawn. Runs of
// layers nobody is editing are drawn from one cached composite per run (cache.js), and zoomed out
// (scale < 0.5) every bitmap is drawn from its lower-resolution mip tiles.

import Konva from "konva";
import { gridStep, multiply, visibleRect } from "./geometry.js";
import { createCompositeCache, isDrawn, isOverlay, mipLevel, planLayers, splitOverlays } from "./cache.js";
import { tileRange } from "./tiles.js";

/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {import("./geometry.js").View} View */
/** @typedef {import("./geometry.js").Matrix} Matrix */
/** @typedef {import("../state/store.js").Store} Store */
/** @typedef {import("../state/store.js").StoreRecord} StoreRecord */
/** @typedef {import("./tiles.js").PixelRegistry} PixelRegistry */
/** @typedef {import("./viewport.js").Viewport} Viewport */

export const MASK_TINT = "#ff3b30";
export const MASK_ALPHA = 0.5;
const CHECKER = 8; // CSS pixels per checker square
const NONE = Object.freeze([]);

/**
 * Overlay helpers handed to tools' drawOverlay(ctx, h): positions in CSS pixels of the container.
 * @typedef {{view: View, size: {width: number, height: number},
 *            toScreen(p: {x: number, y: number}): {x: number, y: number}, toScreenRect(r: Rect): Rect}} OverlayHelpers
 */

/**
 * @param {{viewport: Viewport, store: Store, pixels: PixelRegistry,
 *          overlay?: (ctx: CanvasRenderingContext2D, h: OverlayHelpers) => void,
 *          beforeFrame?: () => void, cache?: boolean}} opts cache: composites and mips (default on)
 */
export function createRenderer({ viewport, store, pixels, overlay, beforeFrame, cache = true }) {
  const stage = viewport.stage;
  const pixelLayer = new Konva.Layer({ listening: false });
  const overlayLayer = new Konva.Layer();
  // Konva nodes that need canvas coordinates (the transformer's proxy) live in `world`.
  const world = new Konva.Group();
  const scene = new Konva.Shape({ listening: false, perfectDrawEnabled: false, sceneFunc: (c) => drawScene(/** @type {any} */ (c)._context) });
  const overlayShape = new Konva.Shape({ listening: false, perfectDrawEnabled: false, sceneFunc: (c) => drawOverlay(/** @type {any} */ (c)._context) });
  pixelLayer.add(scene);
  overlayLayer.add(overlayShape, world);

  /** @type {Map<string, Matrix>} live transforms (move tool preview), canvas coordinates */
  const transforms = new Map();
  /** @type {{img: HTMLImageElement | null, bbox: Rect | null, token: number}} */
  const preview = { img: null, bbox: null, token: 0 };
  const staging = { img: /** @type {HTMLImageElement | null} */ (null), bbox: /** @type {Rect | null} */ (null), token: 0 };
  /** the live-painting render (app/live.js), over everything in the box at its own opacity */
  const live = { img: /** @type {HTMLImageElement | null} */ (null), bbox: /** @type {Rect | null} */ (null), token: 0, opacity: 0.7 };
  let dirtyPixels = true, dirtyOverlay = true, frame = 0, destroyed = false;
  // Konva draws synchronously when layers join the stage; wait for the first frame so callers
  // finish wiring (tools, overlays) before anything reads them.
  let ready = false;
  /** Scratch canvas for tinting masks; reused so drawing allocates nothing per frame. */
  const scratch = document.createElement("canvas");
  const sctx = /** @type {CanvasRenderingContext2D} */ (scratch.getContext("2d"));
  /** @type {CanvasPattern | null} */
  let checker = null, checkerRatio = 0;
  const stats = { frames: 0, tilesDrawn: 0, lastFrameMs: 0, groups: 0, level: 0 };
  let caching = cache;
  const composites = createCompositeCache({ bitmapOf: (id) => pixels.get(id) });
  // Pixel changes reach the composites holding the layer (per tile); the layers' own mips are
  // dropped by TiledBitmap.changed().
  const offPixels = pixels.subscribe(({ layerId, rect }) => composites.invalidate(layerId, rect));

  function tick() {
    frame = 0;
    if (destroyed) return;
    ready = true;
    const t0 = performance.now();
    const v = viewport.view();
    world.position({ x: v.x, y: v.y });
    world.scale({ x: v.scale, y: v.scale });
    beforeFrame?.();
    if (dirtyPixels) { dirtyPixels = false; pixelLayer.draw(); }
    if (dirtyOverlay) { dirtyOverlay = false; overlayLayer.draw(); }
    stats.frames++;
    stats.lastFrameMs = performance.now() - t0;
  }

  /** @param {{pixels?: boolean, overlay?: boolean}} [what] */
  function schedule({ pixels: p = true, overlay: o = true } = {}) {
    if (p) dirtyPixels = true;
    if (o) dirtyOverlay = true;
    if (!frame && !destroyed) frame = requestAnimationFrame(tick);
  }

  /** @param {number} ratio */
  function checkerPattern(ratio, ctx) {
    if (checker && checkerRatio === ratio) return checker;
    const n = Math.max(1, Math.round(CHECKER * ratio));
    const c = document.createElement("canvas");
    c.width = c.height = 2 * n;
    const g = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
    g.fillStyle = "#3a3a3f"; g.fillRect(0, 0, 2 * n, 2 * n);
    g.fillStyle = "#46464c"; g.fillRect(0, 0, n, n); g.fillRect(n, n, n, n);
    checker = ctx.createPattern(c, "repeat");
    checkerRatio = ratio;
    return checker;
  }

  /**
   * Draw a layer's visible tiles in device pixels. Tile edges are rounded so neighbours share
   * exactly one edge: no hairline seams at fractional zoom.
   * @param {CanvasRenderingContext2D} ctx @param {StoreRecord} layer @param {View} v @param {number} pr @param {Rect} vis
   */
  function drawTiles(ctx, layer, v, pr, vis, level = 0) {
    const bitmap = pixels.get(layer.id);
    if (!bitmap || !bitmap.tileCount) return;
    const lx = layer.x ?? 0, ly = layer.y ?? 0;
    const m = transforms.get(layer.id);
    if (m) {
      // Live transform preview: draw through the full matrix (seams do not matter for a moment).
      const d = multiply([pr * v.scale, 0, 0, pr * v.scale, pr * v.x, pr * v.y], multiply(m, [1, 0, 0, 1, lx, ly]));
      ctx.save();
      ctx.setTransform(d[0], d[1], d[2], d[3], d[4], d[5]);
      for (const t of bitmap.tiles.values()) ctx.drawImage(t.canvas, t.x, t.y);
      ctx.restore();
      stats.tilesDrawn += bitmap.tileCount;
      return;
    }
    if (level > 0) {
      drawLevel(ctx, (tx, ty) => bitmap.mip(level, tx, ty), bitmap.size * 2 ** level, lx, ly, v, pr, vis);
      return;
    }
    const s = pr * v.scale, ox = pr * (v.x + lx * v.scale), oy = pr * (v.y + ly * v.scale);
    const size = bitmap.size;
    for (const t of bitmap.tilesIn({ x: vis.x - lx, y: vis.y - ly, width: vis.width, height: vis.height })) {
      const x0 = Math.round(ox + t.x * s), y0 = Math.round(oy + t.y * s);
      const x1 = Math.round(ox + (t.x + size) * s), y1 = Math.round(oy + (t.y + size) * s);
      if (x1 > x0 && y1 > y0) ctx.drawImage(t.canvas, x0, y0, x1 - x0, y1 - y0);
      stats.tilesDrawn++;
    }
  }

  /**
   * Draw the tiles of one level of a tiled source (a layer's mips or a composite) over the visible
   * rect: `tileAt(tx, ty)` is the tile covering `span` source pixels from (tx * span, ty * span);
   * (lx, ly) is the source's offset in canvas pixels. Same edge rounding as drawTiles.
   * @param {CanvasRenderingContext2D} ctx @param {(tx: number, ty: number) => CanvasImageSource | null} tileAt
   * @param {number} span @param {number} lx @param {number} ly @param {View} v @param {number} pr @param {Rect} vis
   */
  function drawLevel(ctx, tileAt, span, lx, ly, v, pr, vis) {
    const r = tileRange({ x: vis.x - lx, y: vis.y - ly, width: vis.width, height: vis.height }, span);
    if (!r) return;
    const s = pr * v.scale, ox = pr * (v.x + lx * v.scale), oy = pr * (v.y + ly * v.scale);
    for (let ty = r.ty0; ty <= r.ty1; ty++) {
      const y0 = Math.round(oy + ty * span * s), y1 = Math.round(oy + (ty + 1) * span * s);
      if (y1 <= y0) continue;
      for (let tx = r.tx0; tx <= r.tx1; tx++) {
        const x0 = Math.round(ox + tx * span * s), x1 = Math.round(ox + (tx + 1) * span * s);
        if (x1 <= x0) continue;
        const c = tileAt(tx, ty);
        if (!c) continue;
        ctx.drawImage(c, x0, y0, x1 - x0, y1 - y0);
        stats.tilesDrawn++;
      }
    }
  }

  /** The layer being edited: the selection, else the top layer (what tools paint on). */
  function activeLayerId() {
    const sel = store.get("selection");
    if (sel?.layer_id) return sel.layer_id;
    return store.layers().at(-1)?.id ?? null;
  }

  /** @param {CanvasRenderingContext2D} ctx */
  function drawScene(ctx) {
    if (!ready) return;
    const pr = pixelLayer.getCanvas().getPixelRatio();
    const v = viewport.view();
    const { width, height } = viewport.size();
    const W = Math.round(width * pr), H = Math.round(height * pr);
    const vis = visibleRect(v, { width, height });
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = /** @type {CanvasPattern} */ (checkerPattern(pr, ctx));
    ctx.fillRect(0, 0, W, H);
    // Crisp pixels when zoomed in (what an illustrator checks); smooth when zoomed out.
    ctx.imageSmoothingEnabled = v.scale < 2;
    const level = caching ? mipLevel(pr * v.scale) : 0;
    const plan = caching
      ? planLayers(store.layers(), { active: activeLayerId(), transformed: transforms })
      : store.layers().filter(isDrawn).map((layer) => ({ type: /** @type {"layer"} */ ("layer"), layer }));
    const groups = caching ? composites.sync(plan) : null;
    stats.groups = 0;
    stats.level = level;
    // A staged result (or the live preview) covers the box: masks and regions are drawn above it so
    // painting them there shows; raster and control layers stay below it.
    const shown = !!((staging.img && staging.bbox) || (preview.img && preview.bbox));
    const { under, over } = shown ? splitOverlays(plan) : { under: plan, over: NONE };
    for (const item of under) {
      if (item.type === "group") {
        const comp = /** @type {import("./cache.js").Composite} */ (groups?.get(item.key));
        drawLevel(ctx, (tx, ty) => comp.tile(level, tx, ty), comp.size * 2 ** level, 0, 0, v, pr, vis);
        stats.groups++;
        continue;
      }
      drawLayer(ctx, item.layer, v, pr, vis, W, H, level);
    }
    const smoothing = ctx.imageSmoothingEnabled;
    for (const item of [staging, preview]) {
      if (!item.img || !item.bbox) continue;
      const b = item.bbox;
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(item.img, pr * (b.x * v.scale + v.x), pr * (b.y * v.scale + v.y), pr * b.width * v.scale, pr * b.height * v.scale);
    }
    ctx.imageSmoothingEnabled = smoothing;
    for (const item of over) drawLayer(ctx, item.layer, v, pr, vis, W, H, level);
    if (live.img && live.bbox && live.opacity > 0) {
      const b = live.bbox;
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = live.opacity;
      ctx.drawImage(live.img, pr * (b.x * v.scale + v.x), pr * (b.y * v.scale + v.y), pr * b.width * v.scale, pr * b.height * v.scale);
      ctx.globalAlpha = 1;
      ctx.imageSmoothingEnabled = smoothing;
    }
    ctx.restore();
  }

  /** One layer drawn alone: masks and regions tinted, control and reference layers outlined. */
  function drawLayer(ctx, layer, v, pr, vis, W, H, level) {
    const opacity = layer.opacity ?? 1;
    if (isOverlay(layer)) {
      drawTinted(ctx, layer, v, pr, vis, W, H, layer.kind === "inpaint_mask" ? (layer.color || MASK_TINT) : (layer.color || "#3b82f6"), MASK_ALPHA * opacity, level);
      return;
    }
    ctx.globalAlpha = opacity;
    drawTiles(ctx, layer, v, pr, vis, level);
    ctx.globalAlpha = 1;
    if (layer.kind === "control" || layer.kind === "reference") outline(ctx, layer, v, pr);
  }

  /**
   * Masks store coverage in alpha; show it as one flat colour at a fixed alpha (so overlapping
   * strokes do not darken) by drawing into a scratch canvas and filling "source-in".
   */
  function drawTinted(ctx, layer, v, pr, vis, W, H, color, alpha, level = 0) {
    if (!pixels.get(layer.id)?.tileCount) return;
    if (scratch.width !== W || scratch.height !== H) { scratch.width = W; scratch.height = H; }
    sctx.setTransform(1, 0, 0, 1, 0, 0);
    sctx.globalCompositeOperation = "source-over";
    sctx.clearRect(0, 0, W, H);
    sctx.imageSmoothingEnabled = ctx.imageSmoothingEnabled;
    drawTiles(sctx, layer, v, pr, vis, level);
    sctx.globalCompositeOperation = "source-in";
    sctx.fillStyle = color;
    sctx.fillRect(0, 0, W, H);
    ctx.globalAlpha = alpha;
    ctx.drawImage(scratch, 0, 0);
    ctx.globalAlpha = 1;
  }

  /** Control layers get a subtle dashed outline around what is painted. */
  function outline(ctx, layer, v, pr) {
    if (transforms.has(layer.id)) return;
    const b = pixels.get(layer.id)?.roughBounds(); // no pixel readback every frame
    if (!b) return;
    const x = Math.round(pr * ((b.x + (layer.x ?? 0)) * v.scale + v.x)) + 0.5, y = Math.round(pr * ((b.y + (layer.y ?? 0)) * v.scale + v.y)) + 0.5;
    ctx.save();
    ctx.setLineDash([4 * pr, 4 * pr]);
    ctx.strokeStyle = "rgba(140, 180, 255, 0.7)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x, y, Math.round(pr * b.width * v.scale), Math.round(pr * b.height * v.scale));
    ctx.restore();
  }

  /** @param {CanvasRenderingContext2D} ctx CSS-pixel space (Konva applied the pixel ratio) */
  function drawOverlay(ctx) {
    if (!ready) return;
    const v = viewport.view();
    const size = viewport.size();
    /** @type {OverlayHelpers} */
    const h = {
      view: v, size,
      toScreen: (p) => ({ x: p.x * v.scale + v.x, y: p.y * v.scale + v.y }),
      toScreenRect: (r) => ({ x: r.x * v.scale + v.x, y: r.y * v.scale + v.y, width: r.width * v.scale, height: r.height * v.scale }),
    };
    if (/** @type {any} */ (v).grid) drawGrid(ctx, v, size);
    const bbox = store.get("bbox");
    if (bbox) {
      const r = h.toScreenRect(/** @type {any} */ (bbox));
      const x = Math.round(r.x) + 0.5, y = Math.round(r.y) + 0.5, w = Math.round(r.width), hh = Math.round(r.height);
      ctx.save();
      ctx.lineWidth = 1;
      ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
      ctx.strokeRect(x, y, w, hh);
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(x, y, w, hh);
      ctx.restore();
    }
    overlay?.(ctx, h);
  }

  /** @param {CanvasRenderingContext2D} ctx @param {View} v @param {{width: number, height: number}} size */
  function drawGrid(ctx, v, size) {
    const step = gridStep(v.scale);
    const vis = visibleRect(v, size);
    ctx.save();
    ctx.lineWidth = 1;
    for (const major of [false, true]) {
      const s = major ? step * 8 : step;
      ctx.beginPath();
      for (let x = Math.floor(vis.x / s) * s; x <= vis.x + vis.width; x += s) {
        const sx = Math.round(x * v.scale + v.x) + 0.5; ctx.moveTo(sx, 0); ctx.lineTo(sx, size.height);
      }
      for (let y = Math.floor(vis.y / s) * s; y <= vis.y + vis.height; y += s) {
        const sy = Math.round(y * v.scale + v.y) + 0.5; ctx.moveTo(0, sy); ctx.lineTo(size.width, sy);
      }
      ctx.strokeStyle = major ? "rgba(255, 255, 255, 0.16)" : "rgba(255, 255, 255, 0.06)";
      ctx.stroke();
    }
    ctx.restore();
  }

  /**
   * Load an image for the preview/staging slot; the old image stays until the new one is ready so
   * progress previews do not flicker. Stale loads (a newer call came first) are dropped.
   * @param {typeof preview} slot @param {string | null} url @param {Rect | null | undefined} bbox
   */
  function loadInto(slot, url, bbox) {
    const token = ++slot.token;
    if (!url) { slot.img = null; slot.bbox = null; schedule({ overlay: false }); return Promise.resolve(); }
    const img = new Image();
    img.decoding = "async";
    return new Promise((resolve) => {
      img.onload = () => {
        if (token === slot.token && !destroyed) {
          slot.img = img;
          slot.bbox = bbox ?? /** @type {any} */ (store.get("bbox")) ?? { x: 0, y: 0, width: img.naturalWidth, height: img.naturalHeight };
          schedule({ overlay: false });
        }
        resolve(undefined);
      };
      img.onerror = () => resolve(undefined); // a missing preview is not worth an error: the next one comes
      img.src = url;
    });
  }

  stage.add(pixelLayer, overlayLayer);

  return {
    pixelLayer, overlayLayer, world, stats,
    schedule,
    /** Draw now (tests, screenshots). */
    flush() { if (frame) cancelAnimationFrame(frame); tick(); },
    /** Turn the composite and mip caches on or off (bench A/B, debugging); off frees them. @param {boolean} on */
    setCaching(on) {
      caching = !!on;
      if (!caching) composites.clear();
      schedule({ overlay: false });
    },
    get caching() { return caching; },
    /** Composite tiles held (level 0 and mips), for stats and tests. */
    cacheInfo() {
      let tiles = 0;
      for (const c of composites.composites.values()) { for (const t of c.tiles.values()) if (t) tiles++; tiles += c.mips.cached; }
      return { composites: composites.composites.size, tiles };
    },
    /** @param {string} layerId @param {Matrix | null} m */
    setLayerTransform(layerId, m) {
      if (m) transforms.set(layerId, m); else transforms.delete(layerId);
      schedule({ overlay: false });
    },
    /** @param {string | null} url @param {Rect | null} [bbox] */
    setPreview: (url, bbox) => loadInto(preview, url, bbox),
    /** @param {string | null} url @param {Rect | null} [bbox] */
    setStaging: (url, bbox) => loadInto(staging, url, bbox),
    /** The live render over the box (null clears); resolves once it is loaded and drawn (at once, not on the
     * next frame: the render is on screen at the browser's next paint). @param {string | null} url @param {Rect | null} [bbox] */
    setLive: (url, bbox) => loadInto(live, url, bbox).then(() => { if (frame) { cancelAnimationFrame(frame); tick(); } }),
    /** @param {number} opacity 0..1 */
    setLiveOpacity(opacity) {
      live.opacity = Math.min(1, Math.max(0, opacity));
      schedule({ overlay: false });
    },
    /** The live render as drawn: its image element (null when none), box and opacity (tests read its pixels). */
    liveInfo: () => ({ img: live.img, bbox: live.bbox, opacity: live.opacity }),
    destroy() {
      destroyed = true;
      offPixels();
      composites.clear();
      if (frame) cancelAnimationFrame(frame);
      preview.img = staging.img = live.img = null;
      scratch.width = scratch.height = 0;
    },
  };
}

/** @typedef {ReturnType<typeof createRenderer>} Renderer */
