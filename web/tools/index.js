// The tool registry. Each tool is a small state machine (idle -> active -> idle) created per
// canvas; the canvas routes pointer and key events to the current one.

import { createBBoxTool } from "./bbox.js";
import { createBrushTool } from "./brush.js";
import { createEraserTool } from "./eraser.js";
import { createLassoTool } from "./lasso.js";
import { createMoveTool } from "./move.js";
import { createPickerTool } from "./picker.js";
import { createRectTool } from "./rect.js";
import { createViewTool } from "./view.js";

/**
 * A pointer event in both coordinate systems. points: this event's coalesced samples (pens report
 * many per frame) in canvas coordinates; pressure is 1 for mice and touch.
 * @typedef {{x: number, y: number, sx: number, sy: number, pressure: number, pointerType: string,
 *            button: number, buttons: number, shiftKey: boolean, altKey: boolean, ctrlKey: boolean,
 *            metaKey: boolean, points: {x: number, y: number, pressure: number}[], native: PointerEvent}} ToolEvent
 */

/**
 * What tools may use (built by canvas/index.js).
 * @typedef {{
 *   store: import("../state/store.js").Store,
 *   history: import("../state/history.js").History,
 *   pixels: import("../canvas/tiles.js").PixelRegistry,
 *   renderer: import("../canvas/render.js").Renderer,
 *   viewport: import("../canvas/viewport.js").Viewport,
 *   view(): import("../canvas/geometry.js").View,
 *   settings(): {name: string, brush_size: number, brush_hardness: number, brush_color: string, brush_opacity: number, bbox_aspect?: string | null},
 *   selectedLayer(): any,
 *   editableLayer(opts?: {create?: boolean}): any,
 *   canEdit(): boolean,
 *   pickColorAt(p: {x: number, y: number}): string | null,
 *   hitsTransformer(e: ToolEvent): boolean,
 *   notice(message: string): void,
 *   redraw(what?: {pixels?: boolean, overlay?: boolean}): void,
 *   setCursor(css: string | null): void,
 * }} ToolContext
 */

/**
 * @typedef {{name: string, cursor: string, readonly active: boolean,
 *   onPointerDown(ctx: ToolContext, e: ToolEvent): boolean | void,
 *   onPointerMove(ctx: ToolContext, e: ToolEvent): void,
 *   onPointerUp(ctx: ToolContext, e: ToolEvent): void,
 *   onKey?(ctx: ToolContext, e: KeyboardEvent): boolean,
 *   onEnter?(ctx: ToolContext): void, onExit?(ctx: ToolContext): void, onLeave?(ctx: ToolContext): void,
 *   onSceneChange?(ctx: ToolContext): void, reset?(ctx: ToolContext): void,
 *   drawOverlay?(g: CanvasRenderingContext2D, h: import("../canvas/render.js").OverlayHelpers, ctx: ToolContext): void}} Tool
 */

/** @type {Record<string, () => Tool>} */
export const TOOL_FACTORIES = {
  brush: createBrushTool,
  eraser: createEraserTool,
  rect: createRectTool,
  lasso: createLassoTool,
  move: createMoveTool,
  bbox: createBBoxTool,
  picker: createPickerTool,
  view: createViewTool,
};

export const TOOL_NAMES = Object.freeze(Object.keys(TOOL_FACTORIES));

/** Fresh tool instances for one canvas. @returns {Map<string, Tool>} */
export function createTools() {
  return new Map(Object.entries(TOOL_FACTORIES).map(([name, make]) => [name, make()]));
}
