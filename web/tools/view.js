// View (hand) tool: drag to pan. Zoom stays on the wheel, pinch and shortcuts.

/** @typedef {import("./index.js").ToolContext} ToolContext */
/** @typedef {import("./index.js").ToolEvent} ToolEvent */

export function createViewTool() {
  let panning = false;
  const tool = {
    name: "view",
    cursor: "grab",
    get active() { return panning; },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerDown(ctx, e) {
      if (e.button !== 0) return false;
      panning = true;
      ctx.viewport.beginPan({ x: e.sx, y: e.sy });
      ctx.setCursor("grabbing");
      return true;
    },
    /** @param {ToolContext} ctx @param {ToolEvent} e */
    onPointerMove(ctx, e) { if (panning) ctx.viewport.movePan({ x: e.sx, y: e.sy }); },
    /** @param {ToolContext} ctx */
    onPointerUp(ctx) { panning = false; ctx.viewport.endPan(); ctx.setCursor(null); },
    reset() { panning = false; },
    /** @param {ToolContext} ctx */
    onExit(ctx) { if (panning) tool.onPointerUp(ctx); },
  };
  return tool;
}
