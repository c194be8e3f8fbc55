// Rectangle fill: drag a rectangle, release to fill it with the brush colour and opacity (coverage
// on masks). Shift keeps it square, Alt erases, Esc drops it. Nothing is drawn until release.

import { rectFromPoints } from "../canvas/geometry.js";
import { fillPath, paintColor } from "./stroke.js";

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */

/** Integer rect from a drag; shift makes it square (the larger side wins). @param {{x:number,y:number}} a @param {ToolEvent} e */
function dragRect(a, e) {
  let x1 = e.x, y1 = e.y;
  if (e.shiftKey) {
    const side = Math.max(Math.abs(x1 - a.x), Math.abs(y1 - a.y));
    x1 = a.x + Math.sign(x1 - a.x || 1) * side;
    y1 = a.y + Math.sign(y1 - a.y || 1) * side;
  }
  return rectFromPoints(Math.round(a.x), Math.round(a.y), Math.round(x1), Math.round(y1));
}

export function createRectTool() {
  /** @type {{x: number, y: number} | null} */
  let start = null;
  /** @type {import("../canvas/geometry.js").Rect | null} */
  let rect = null;
  let erase = false;

  const tool = {
    name: "rect",
    cursor: "crosshair",
    get active() { return !!start; },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0 || !ctx.canEdit()) return false;
      start = { x: e.x, y: e.y };
      rect = dragRect(start, e);
      erase = e.altKey;
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      if (!start) return;
      rect = dragRect(start, e);
      erase = e.altKey;
      ctx.redraw({ pixels: false });
    },
    /** @param {ToolContext} ctx */
    onPointerUp(ctx) {
      const r = rect;
      start = null; rect = null;
      ctx.redraw({ pixels: false });
      if (!r || r.width < 1 || r.height < 1) return;
      ctx.history.mark(erase ? "Erase rectangle" : "Fill rectangle");
      const layer = ctx.editableLayer({ create: !erase });
      if (!layer) { ctx.history.cancel(); return; }
      const s = ctx.settings();
      const lx = layer.x ?? 0, ly = layer.y ?? 0;
      const local = { x: r.x - lx, y: r.y - ly, width: r.width, height: r.height };
      fillPath(ctx.pixels.ensure(layer.id), local, (g) => g.rect(local.x, local.y, local.width, local.height),
        { color: paintColor(layer, s.brush_color), opacity: s.brush_opacity, erase });
      ctx.history.commit();
    },
    /** @param {ToolContext} ctx @param {KeyboardEvent} e */
    onKey(ctx, e) {
      if (e.key !== "Escape" || !start) return false;
      start = null; rect = null;
      ctx.redraw({ pixels: false });
      return true;
    },
    reset() { start = null; rect = null; },
    onExit() { start = null; rect = null; },
    /** @param {CanvasRenderingContext2D} g @param {import("../canvas/render.js").OverlayHelpers} h @param {ToolContext} ctx */
    drawOverlay(g, h, ctx) {
      if (!rect) return;
      const r = h.toScreenRect(rect);
      g.save();
      g.globalAlpha = 0.35;
      g.fillStyle = erase ? "#000000" : ctx.settings().brush_color;
      g.fillRect(r.x, r.y, r.width, r.height);
      g.globalAlpha = 1;
      g.setLineDash([4, 3]);
      g.strokeStyle = "#ffffff";
      g.strokeRect(Math.round(r.x) + 0.5, Math.round(r.y) + 0.5, Math.round(r.width), Math.round(r.height));
      g.restore();
    },
  };
  return tool;
}
