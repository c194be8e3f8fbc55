// Lasso fill: drag a freehand outline, release to fill it (coverage on masks). Alt erases,
// Esc drops it. Points closer than a screen pixel are skipped to keep the path small.

import { pointsBounds } from "../canvas/geometry.js";
import { fillPath, paintColor } from "./stroke.js";

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */

export function createLassoTool() {
  /** @type {{x: number, y: number}[] | null} canvas points */
  let pts = null;
  let erase = false;

  const tool = {
    name: "lasso",
    cursor: "crosshair",
    get active() { return !!pts; },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0 || !ctx.canEdit()) return false;
      pts = [{ x: e.x, y: e.y }];
      erase = e.altKey;
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      if (!pts) return;
      const min = 1 / ctx.view().scale;
      for (const p of e.points) {
        const last = pts[pts.length - 1];
        if (Math.hypot(p.x - last.x, p.y - last.y) >= min) pts.push({ x: p.x, y: p.y });
      }
      erase = e.altKey;
      ctx.redraw({ pixels: false });
    },
    /** @param {ToolContext} ctx */
    onPointerUp(ctx) {
      const poly = pts;
      pts = null;
      ctx.redraw({ pixels: false });
      const b = poly && pointsBounds(poly);
      if (!poly || poly.length < 3 || !b || b.width < 1 || b.height < 1) return;
      ctx.history.mark(erase ? "Erase lasso" : "Fill lasso");
      const layer = ctx.editableLayer({ create: !erase });
      if (!layer) { ctx.history.cancel(); return; }
      const s = ctx.settings();
      const lx = layer.x ?? 0, ly = layer.y ?? 0;
      fillPath(ctx.pixels.ensure(layer.id), { x: b.x - lx - 1, y: b.y - ly - 1, width: b.width + 2, height: b.height + 2 }, (g) => {
        g.moveTo(poly[0].x - lx, poly[0].y - ly);
        for (let i = 1; i < poly.length; i++) g.lineTo(poly[i].x - lx, poly[i].y - ly);
        g.closePath();
      }, { color: paintColor(layer, s.brush_color), opacity: s.brush_opacity, erase });
      ctx.history.commit();
    },
    /** @param {ToolContext} ctx @param {KeyboardEvent} e */
    onKey(ctx, e) {
      if (e.key !== "Escape" || !pts) return false;
      pts = null;
      ctx.redraw({ pixels: false });
      return true;
    },
    reset() { pts = null; },
    onExit() { pts = null; },
    /** @param {CanvasRenderingContext2D} g @param {import("../canvas/render.js").OverlayHelpers} h @param {ToolContext} ctx */
    drawOverlay(g, h, ctx) {
      if (!pts || pts.length < 2) return;
      g.save();
      g.beginPath();
      const p0 = h.toScreen(pts[0]);
      g.moveTo(p0.x, p0.y);
      for (let i = 1; i < pts.length; i++) { const p = h.toScreen(pts[i]); g.lineTo(p.x, p.y); }
      g.closePath();
      g.globalAlpha = 0.3;
      g.fillStyle = erase ? "#000000" : ctx.settings().brush_color;
      g.fill();
      g.globalAlpha = 1;
      g.setLineDash([4, 3]);
      g.strokeStyle = "#ffffff";
      g.stroke();
      g.restore();
    },
  };
  return tool;
}
