// Brush (and, with erase, the eraser): idle -> painting -> idle. One stroke = one history step.
// Alt-click on the brush picks a colour; shift-click draws a straight line from the last stroke.

import { Stroke, paintColor } from "./stroke.js";

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */

/** @param {{erase?: boolean}} [opts] */
export function createBrushTool({ erase = false } = {}) {
  /** @type {Stroke | null} */
  let stroke = null;
  /** @type {{x: number, y: number} | null} canvas point under the pointer, for the size ring */
  let hover = null;
  /** @type {{layerId: string, x: number, y: number} | null} end of the last stroke (shift-click lines) */
  let lastEnd = null;
  /** @type {{x: number, y: number}} */
  let origin = { x: 0, y: 0 };
  let layerId = "";

  /** @param {ToolEvent["points"][number]} p */
  const local = (p) => ({ x: p.x - origin.x, y: p.y - origin.y, pressure: p.pressure });

  const tool = {
    name: erase ? "eraser" : "brush",
    cursor: "crosshair",
    get active() { return !!stroke; },

    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0) return false;
      if (!erase && e.altKey) { ctx.pickColorAt(e); return true; }
      ctx.history.mark(erase ? "Erase" : "Brush stroke");
      const layer = ctx.editableLayer({ create: !erase });
      if (!layer) { ctx.history.cancel(); return false; }
      const s = ctx.settings();
      origin = { x: layer.x ?? 0, y: layer.y ?? 0 };
      layerId = layer.id;
      stroke = new Stroke({
        bitmap: ctx.pixels.ensure(layer.id), erase,
        color: paintColor(layer, s.brush_color), size: s.brush_size, hardness: s.brush_hardness,
        opacity: s.brush_opacity, usePressure: e.pointerType === "pen",
      });
      const p = local(e);
      if (e.shiftKey && lastEnd && lastEnd.layerId === layer.id) stroke.addPoints([{ x: lastEnd.x, y: lastEnd.y, pressure: p.pressure }, p]);
      else stroke.addPoint(p);
      hover = { x: e.x, y: e.y };
      return true;
    },

    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      hover = { x: e.x, y: e.y };
      if (stroke) stroke.addPoints(e.points.map(local));
      ctx.redraw({ pixels: false });
    },

    /** @param {ToolContext} ctx */
    onPointerUp(ctx) {
      if (!stroke) return;
      tool.finish(ctx);
    },

    /** @param {ToolContext} ctx */
    finish(ctx) {
      if (!stroke) return;
      const s = stroke;
      stroke = null;
      if (s.last) lastEnd = { layerId, x: s.last.x, y: s.last.y };
      s.end();
      ctx.history.commit();
    },

    /** @param {ToolContext} ctx @param {KeyboardEvent} e */
    onKey(ctx, e) {
      if (e.key === "Escape" && stroke) {
        stroke.end(); stroke = null;
        ctx.history.cancel();
        return true;
      }
      return false;
    },

    /** History was cancelled or undone under us: drop the stroke without committing. */
    reset() { stroke?.end(); stroke = null; },
    /** @param {ToolContext} ctx */
    onExit(ctx) { tool.finish(ctx); hover = null; },
    onLeave() { hover = null; },

    /**
     * Size ring at the pointer (dark + light so it shows on any colour).
     * @param {CanvasRenderingContext2D} g @param {import("../canvas/render.js").OverlayHelpers} h @param {ToolContext} ctx
     */
    drawOverlay(g, h, ctx) {
      if (!hover) return;
      const p = h.toScreen(hover);
      const r = Math.max(1, (ctx.settings().brush_size / 2) * h.view.scale);
      g.save();
      g.lineWidth = 1;
      g.strokeStyle = "rgba(0,0,0,0.7)";
      g.beginPath(); g.arc(p.x, p.y, r + 0.5, 0, Math.PI * 2); g.stroke();
      g.strokeStyle = "rgba(255,255,255,0.9)";
      g.beginPath(); g.arc(p.x, p.y, Math.max(0.5, r - 0.5), 0, Math.PI * 2); g.stroke();
      g.restore();
    },
  };
  return tool;
}
