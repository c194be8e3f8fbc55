// Bounding box tool: drag inside to move, drag a handle or edge to resize, drag outside to draw a
// new box. Everything snaps to 8 (Ctrl moves by whole pixels instead); Shift, or an aspect preset
// in the tool record (`bbox_aspect`, e.g. "16:9"), keeps the ratio. Sides never exceed the server's
// limit (its config, as the Generate panel's width/height fields). One drag = one undo step.

import { HANDLES, aspectRatio, bboxMaxSides, capBBox, handlePoints, hitBBox, rectFromPoints, snap8, snapBBox, snapResize } from "../canvas/geometry.js";
import { SERVER_CONFIG } from "../document.js";

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */
/** @typedef {import("../canvas/geometry.js").Rect} Rect */

/** @type {Record<string, string>} */
const CURSORS = { nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize", n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize", inside: "move" };
const DRAG_SLOP = 3; // screen pixels before a click becomes a drag

export function createBBoxTool() {
  /** @type {null | {mode: "move" | "resize" | "create", handle: string, start: Rect, from: {x: number, y: number}, screen: {x: number, y: number}, moved: boolean}} */
  let drag = null;

  /** @param {ToolContext} ctx */
  const bboxOf = (ctx) => /** @type {Rect} */ (/** @type {any} */ (ctx.store.get("bbox")) ?? { x: 0, y: 0, width: 512, height: 512 });

  /** @param {ToolContext} ctx @param {Rect} r */
  function put(ctx, r) {
    const prev = ctx.store.get("bbox") ?? { id: "bbox", type: "bbox" };
    if (prev.x === r.x && prev.y === r.y && prev.width === r.width && prev.height === r.height) return;
    ctx.store.apply({ put: [{ ...prev, x: r.x, y: r.y, width: r.width, height: r.height }] });
  }

  const tool = {
    name: "bbox",
    cursor: "default",
    get active() { return !!drag; },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0) return false;
      const start = bboxOf(ctx);
      const hit = hitBBox(start, ctx.view(), { x: e.sx, y: e.sy });
      drag = { mode: hit === null ? "create" : hit === "inside" ? "move" : "resize", handle: hit ?? "", start, from: { x: e.x, y: e.y }, screen: { x: e.sx, y: e.sy }, moved: false };
      ctx.history.mark("Bounding box");
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      if (!drag) {
        const hit = hitBBox(bboxOf(ctx), ctx.view(), { x: e.sx, y: e.sy });
        ctx.setCursor(hit ? CURSORS[hit] : "crosshair");
        return;
      }
      if (!drag.moved && Math.hypot(e.sx - drag.screen.x, e.sy - drag.screen.y) < DRAG_SLOP) return;
      drag.moved = true;
      const dx = e.x - drag.from.x, dy = e.y - drag.from.y;
      const preset = aspectRatio(ctx.settings().bbox_aspect);
      const keepAspect = e.shiftKey || !!preset;
      const aspect = preset ?? null;
      const s = drag.start;
      const limits = bboxMaxSides(SERVER_CONFIG);
      if (drag.mode === "move") {
        const snap = e.ctrlKey || e.metaKey ? Math.round : snap8;
        put(ctx, { x: snap(s.x + dx), y: snap(s.y + dy), width: s.width, height: s.height });
      } else if (drag.mode === "resize") {
        const r = snapResize(s, /** @type {any} */ (drag.handle), dx, dy, { keepAspect, aspect });
        put(ctx, capBBox(r, { ...limits, anchor: drag.handle, keepAspect }));
      } else {
        const r = rectFromPoints(drag.from.x, drag.from.y, e.x, e.y);
        const k = keepAspect && r.width > 0 && r.height > 0;
        // the corner the drag started at stays put
        const anchor = (e.y < drag.from.y ? "n" : "s") + (e.x < drag.from.x ? "w" : "e");
        put(ctx, capBBox(snapBBox(r, { keepAspect: k, aspect: aspect ?? (e.shiftKey ? 1 : null) }), { ...limits, anchor, keepAspect: k || e.shiftKey }));
      }
    },
    /** @param {ToolContext} ctx */
    onPointerUp(ctx) {
      if (!drag) return;
      drag = null;
      ctx.history.commit();
    },
    /** @param {ToolContext} ctx @param {KeyboardEvent} e */
    onKey(ctx, e) {
      if (e.key !== "Escape" || !drag) return false;
      drag = null;
      ctx.history.cancel();
      return true;
    },
    reset() { drag = null; },
    /** @param {ToolContext} ctx */
    onExit(ctx) { if (drag) { drag = null; ctx.history.commit(); } },

    /** Handles and a size label (the outline itself is always drawn by the renderer). */
    drawOverlay(/** @type {CanvasRenderingContext2D} */ g, /** @type {any} */ h, /** @type {ToolContext} */ ctx) {
      const b = bboxOf(ctx);
      const r = h.toScreenRect(b);
      const pts = handlePoints(r);
      g.save();
      for (const k of HANDLES) {
        const p = pts[k];
        g.fillStyle = "#ffffff";
        g.strokeStyle = "#1e3a8a";
        g.lineWidth = 1;
        g.fillRect(Math.round(p.x) - 4, Math.round(p.y) - 4, 8, 8);
        g.strokeRect(Math.round(p.x) - 3.5, Math.round(p.y) - 3.5, 7, 7);
      }
      const label = `${b.width} × ${b.height}`;
      g.font = "12px system-ui, sans-serif";
      const w = g.measureText(label).width + 10;
      const lx = Math.round(r.x), ly = Math.round(r.y) - 22;
      g.fillStyle = "rgba(15, 23, 42, 0.85)";
      g.fillRect(lx, ly, w, 18);
      g.fillStyle = "#ffffff";
      g.textBaseline = "middle";
      g.fillText(label, lx + 5, ly + 9);
      g.restore();
    },
  };
  return tool;
}
