// Move tool: drag anywhere to move the selected layer (whole pixels; arrow keys nudge by 1, Shift
// by 10). A Konva.Transformer around the painted bounds scales and rotates; on release the pixels
// are resampled once. Both are one undo step; Esc drops a drag in progress.

import Konva from "konva";
import { invert, multiply, roundOut, transformRect } from "../canvas/geometry.js";

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */
/** @typedef {import("../canvas/geometry.js").Matrix} Matrix */

export function createMoveTool() {
  /** @type {null | {id: string, from: {x: number, y: number}, ox: number, oy: number, dx: number, dy: number}} */
  let drag = null;
  /** @type {Konva.Rect | null} stands in for the layer so the transformer has something to hold */
  let proxy = null;
  /** @type {Konva.Transformer | null} */
  let tr = null;
  /** @type {null | {id: string, start: [number, number, number, number, number, number]}} */
  let transforming = null;

  /** @param {ToolContext} ctx */
  function ensureTransformer(ctx) {
    if (tr) return;
    proxy = new Konva.Rect({ name: "move-proxy", listening: false, strokeEnabled: false, fillEnabled: false });
    ctx.renderer.world.add(proxy);
    tr = new Konva.Transformer({
      rotateEnabled: true, keepRatio: true, flipEnabled: false, ignoreStroke: true,
      anchorSize: 9, anchorStroke: "#1e3a8a", anchorFill: "#ffffff", borderStroke: "#60a5fa", borderDash: [4, 3],
      rotateAnchorOffset: 24, visible: false,
      enabledAnchors: ["top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "middle-left", "middle-right"],
    });
    ctx.renderer.overlayLayer.add(tr);
    tr.nodes([proxy]);
    tr.on("transformstart", () => {
      const layer = ctx.selectedLayer();
      if (!layer || !proxy) return;
      transforming = { id: layer.id, start: /** @type {any} */ (proxy.getTransform().getMatrix().slice()) };
    });
    tr.on("transform", () => {
      if (!transforming || !proxy) return;
      ctx.renderer.setLayerTransform(transforming.id, current());
    });
    tr.on("transformend", () => {
      if (!transforming) return;
      const id = transforming.id, m = current();
      transforming = null;
      ctx.renderer.setLayerTransform(id, null);
      applyTransform(ctx, id, m);
      sync(ctx);
    });
  }

  /** Canvas-space matrix from where the layer was to where the transformer put it. @returns {Matrix} */
  function current() {
    const now = /** @type {Matrix} */ (/** @type {any} */ (proxy).getTransform().getMatrix().slice());
    return multiply(now, invert(/** @type {Matrix} */ (/** @type {any} */ (transforming).start)));
  }

  /** Resample the layer's pixels through m (canvas coordinates) as one undo step. */
  function applyTransform(/** @type {ToolContext} */ ctx, /** @type {string} */ id, /** @type {Matrix} */ m) {
    const layer = ctx.store.get(id);
    const bitmap = ctx.pixels.get(id);
    const b = bitmap?.bounds();
    if (!layer || !bitmap || !b) return;
    if (Math.abs(m[0] - 1) < 1e-6 && Math.abs(m[3] - 1) < 1e-6 && Math.abs(m[1]) < 1e-6 && Math.abs(m[2]) < 1e-6) {
      // A pure translation: move the layer instead of resampling (exact and free).
      const dx = Math.round(m[4]), dy = Math.round(m[5]);
      if (dx || dy) { ctx.history.mark("Move layer"); ctx.store.apply({ put: [{ ...layer, x: (layer.x ?? 0) + dx, y: (layer.y ?? 0) + dy }] }); ctx.history.commit(); }
      return;
    }
    const lx = layer.x ?? 0, ly = layer.y ?? 0;
    /** @type {Matrix} */
    const local = multiply([1, 0, 0, 1, -lx, -ly], multiply(m, [1, 0, 0, 1, lx, ly]));
    const src = bitmap.toCanvas(b);
    if (!src) return;
    const dest = roundOut(transformRect(local, b));
    ctx.history.mark("Transform layer");
    bitmap.clear();
    bitmap.draw({ x: dest.x - 1, y: dest.y - 1, width: dest.width + 2, height: dest.height + 2 }, (g) => {
      g.imageSmoothingEnabled = true;
      g.imageSmoothingQuality = "high";
      g.transform(local[0], local[1], local[2], local[3], local[4], local[5]);
      g.drawImage(src, b.x, b.y);
    });
    ctx.history.commit();
  }

  /** Fit the transformer to the selected layer's painted bounds (or hide it). @param {ToolContext} ctx */
  function sync(ctx) {
    if (!tr || !proxy || transforming) return;
    const layer = ctx.selectedLayer();
    const b = layer && !layer.locked && layer.visible !== false ? ctx.pixels.get(layer.id)?.bounds() : null;
    if (!layer || !b) { if (tr.visible()) tr.visible(false); return; }
    const dx = drag?.id === layer.id ? drag.dx : 0, dy = drag?.id === layer.id ? drag.dy : 0;
    proxy.setAttrs({ x: b.x + (layer.x ?? 0) + dx, y: b.y + (layer.y ?? 0) + dy, width: b.width, height: b.height, scaleX: 1, scaleY: 1, rotation: 0 });
    tr.visible(true);
    tr.forceUpdate();
  }

  /** @param {ToolContext} ctx @param {string} id @param {number} dx @param {number} dy */
  function nudge(ctx, id, dx, dy) {
    const layer = ctx.store.get(id);
    if (!layer) return;
    ctx.history.mark("Move layer");
    ctx.store.apply({ put: [{ ...layer, x: (layer.x ?? 0) + dx, y: (layer.y ?? 0) + dy }] });
    ctx.history.commit();
  }

  const tool = {
    name: "move",
    cursor: "move",
    get active() { return !!drag || !!transforming; },
    /** @param {ToolContext} ctx */
    onEnter(ctx) { ensureTransformer(ctx); sync(ctx); ctx.redraw(); },
    /** @param {ToolContext} ctx */
    onSceneChange(ctx) { sync(ctx); },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0) return false;
      if (ctx.hitsTransformer(e)) return false; // Konva's transformer handles its own anchors
      const layer = ctx.editableLayer({ create: false });
      if (!layer) return false;
      drag = { id: layer.id, from: { x: e.x, y: e.y }, ox: layer.x ?? 0, oy: layer.y ?? 0, dx: 0, dy: 0 };
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      if (!drag) return;
      drag.dx = Math.round(e.x - drag.from.x);
      drag.dy = Math.round(e.y - drag.from.y);
      // Preview through the renderer; the store changes once, on release (one record write, one step).
      ctx.renderer.setLayerTransform(drag.id, [1, 0, 0, 1, drag.dx, drag.dy]);
      sync(ctx);
      ctx.redraw();
    },
    /** @param {ToolContext} ctx */
    onPointerUp(ctx) {
      if (!drag) return;
      const d = drag;
      drag = null;
      ctx.renderer.setLayerTransform(d.id, null);
      if (d.dx || d.dy) nudge(ctx, d.id, d.dx, d.dy);
      sync(ctx);
      ctx.redraw();
    },
    /** @param {ToolContext} ctx @param {KeyboardEvent} e */
    onKey(ctx, e) {
      if (e.key === "Escape" && drag) {
        ctx.renderer.setLayerTransform(drag.id, null);
        drag = null;
        sync(ctx);
        ctx.redraw();
        return true;
      }
      const dirs = /** @type {Record<string, [number, number]>} */ ({ ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] });
      if (dirs[e.key] && !drag && !transforming) {
        const layer = ctx.editableLayer({ create: false });
        if (!layer) return true;
        const step = e.shiftKey ? 10 : 1;
        nudge(ctx, layer.id, dirs[e.key][0] * step, dirs[e.key][1] * step);
        return true;
      }
      return false;
    },
    /** @param {ToolContext} ctx */
    reset(ctx) {
      if (drag) ctx.renderer.setLayerTransform(drag.id, null);
      drag = null;
    },
    /** @param {ToolContext} ctx */
    onExit(ctx) {
      if (drag) tool.onPointerUp(ctx);
      tr?.destroy(); proxy?.destroy();
      tr = null; proxy = null; transforming = null;
      ctx.redraw();
    },
  };
  return tool;
}
