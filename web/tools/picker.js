// Colour picker: click or drag to sample the visible picture (raster and control layers as
// composited on screen) into the tool record's brush_color.

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */

export function createPickerTool() {
  let down = false;
  /** @type {{x: number, y: number} | null} */
  let hover = null;
  const tool = {
    name: "picker",
    cursor: "crosshair",
    get active() { return down; },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0) return false;
      down = true;
      ctx.pickColorAt(e);
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) {
      hover = { x: e.x, y: e.y };
      if (down) ctx.pickColorAt(e);
      ctx.redraw({ pixels: false });
    },
    onPointerUp() { down = false; },
    reset() { down = false; },
    onExit() { down = false; hover = null; },
    onLeave() { hover = null; },
    /** A swatch ring of the current colour beside the pointer. */
    drawOverlay(/** @type {CanvasRenderingContext2D} */ g, /** @type {any} */ h, /** @type {ToolContext} */ ctx) {
      if (!hover) return;
      const p = h.toScreen(hover);
      g.save();
      g.lineWidth = 6;
      g.strokeStyle = ctx.settings().brush_color;
      g.beginPath(); g.arc(p.x + 18, p.y - 18, 10, 0, Math.PI * 2); g.stroke();
      g.lineWidth = 1;
      g.strokeStyle = "rgba(0,0,0,0.6)";
      g.beginPath(); g.arc(p.x + 18, p.y - 18, 13.5, 0, Math.PI * 2); g.stroke();
      g.restore();
    },
  };
  return tool;
}
