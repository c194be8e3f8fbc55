// The canvas: wires the stage (viewport), the renderer, the per-layer pixel tiles and the tools
// to a store and a history. Tools write the store and tiles through history; the renderer only
// reads them. Everything visible is redrawn at most once per animation frame.

import Konva from "konva";
import { canvasToScreen, screenToCanvas, unionRect } from "./geometry.js";
import { createRenderer } from "./render.js";
import { createPixelRegistry } from "./tiles.js";
import { createViewport } from "./viewport.js";
import { createTools, TOOL_NAMES } from "../tools/index.js";
import { isMaskKind, toHex } from "../tools/stroke.js";

/** @typedef {import("../state/store.js").Store} Store */
/** @typedef {import("../state/store.js").StoreRecord} StoreRecord */
/** @typedef {import("../state/history.js").History} History */
/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {import("../tools/index.js").ToolContext} ToolContext */
/** @typedef {import("../tools/index.js").ToolEvent} ToolEvent */

export const DEFAULT_TOOL = Object.freeze({ id: "tool", type: "tool", name: "brush", brush_size: 24, brush_hardness: 0.8, brush_color: "#000000", brush_opacity: 1, bbox_aspect: null });
export const DEFAULT_BBOX = Object.freeze({ id: "bbox", type: "bbox", x: 0, y: 0, width: 512, height: 512 });
export { TOOL_NAMES };

/** @param {EventTarget | null} t */
function isEditable(t) {
  const el = /** @type {HTMLElement | null} */ (t);
  if (!el || !el.tagName) return false;
  return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
}

/** Capture so a stroke continues outside the stage; a pointer already gone cannot be captured. @param {Element} el @param {number} id */
function capture(el, id) {
  try { el.setPointerCapture(id); } catch { /* not an active pointer (synthetic events): nothing to keep */ }
}

/** @param {PointerEvent} ev */
const pressureOf = (ev) => (ev.pointerType === "pen" ? (ev.pressure > 0 ? ev.pressure : ev.buttons ? 0.5 : 0) : 1);

/**
 * @param {{container: HTMLElement, store: Store, history: History}} opts
 */
export function createCanvas({ container, store, history }) {
  container.setAttribute("data-testid", "canvas-stage");
  if (container.tabIndex < 0) container.tabIndex = 0; // focusable, so keys reach tools
  // No browser panning/zooming/selection under the pen; the app styles the rest.
  Object.assign(container.style, { touchAction: "none", userSelect: "none" });

  const pixels = /** @type {import("./tiles.js").PixelRegistry} */ (history.pixels ?? createPixelRegistry());
  history.attachPixels(/** @type {any} */ (pixels));
  pixels.setOrigin((id) => { const l = store.get(id); return { x: l?.x ?? 0, y: l?.y ?? 0 }; });

  function ensureDefaults() {
    const put = [];
    const tool = store.get("tool");
    if (!tool) put.push(DEFAULT_TOOL);
    else if (Object.keys(DEFAULT_TOOL).some((k) => !(k in tool))) put.push({ ...DEFAULT_TOOL, ...tool });
    if (!store.get("bbox")) put.push(DEFAULT_BBOX);
    if (put.length) store.apply({ put }, { history: false });
  }
  let needsFit = !store.get("view");
  ensureDefaults();

  const tools = createTools();
  let current = /** @type {import("../tools/index.js").Tool} */ (tools.get(store.get("tool")?.name) ?? tools.get("brush"));
  /** @type {string | null} a tool's own cursor (bbox handles) */
  let cursorOverride = null;
  let spaceDown = false, panning = false;
  /** @type {number | null} */
  let activePointer = null;

  const viewport = createViewport({
    container, store,
    onResize: () => { if (needsFit) { needsFit = false; canvas.fit(); } renderer.schedule(); },
  });
  const renderer = createRenderer({
    viewport, store, pixels,
    overlay: (g, h) => current.drawOverlay?.(g, h, ctx),
    beforeFrame: () => current.onSceneChange?.(ctx),
  });
  const el = viewport.stage.content;

  /** @returns {StoreRecord | null} */
  function selectedLayer() {
    const sel = store.get("selection");
    const l = sel?.layer_id ? store.get(sel.layer_id) : undefined;
    return l?.type === "layer" ? l : null;
  }
  /** @param {string} id */
  const select = (id) => store.apply({ put: [{ ...(store.get("selection") ?? { id: "selection", type: "selection" }), layer_id: id }] }, { history: false });

  /** @param {string} message */
  function notice(message) {
    container.dispatchEvent(new CustomEvent("canvas-notice", { bubbles: true, detail: { message } }));
  }

  /** @param {StoreRecord | null} layer */
  function refuse(layer) {
    if (!layer) { notice("Add a layer to draw on"); return true; }
    if (layer.locked) { notice(`Layer "${layer.name ?? layer.id}" is locked`); return true; }
    if (layer.visible === false) { notice(`Layer "${layer.name ?? layer.id}" is hidden`); return true; }
    return false;
  }

  /** @type {ToolContext} */
  const ctx = {
    store, history, pixels, renderer, viewport,
    view: () => viewport.view(),
    settings: () => /** @type {any} */ ({ ...DEFAULT_TOOL, ...store.get("tool") }),
    selectedLayer,
    /** The layer tools may change: the selection, else the top layer; a raster layer is made when there is none and create is set. */
    editableLayer({ create = false } = {}) {
      let layer = selectedLayer();
      if (!layer) {
        const layers = store.layers();
        if (layers.length) layer = layers[layers.length - 1];
        else if (create) {
          layer = { id: `layer-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`, type: "layer", kind: "raster", name: "Layer 1", z: 0, x: 0, y: 0, opacity: 1, visible: true, locked: false };
          store.apply({ put: [layer] });
        }
        if (layer) select(layer.id);
      }
      return refuse(layer) ? null : layer;
    },
    canEdit() {
      const layer = selectedLayer() ?? store.layers().at(-1) ?? null;
      return layer ? !refuse(layer) : true;
    },
    pickColorAt(p) {
      // Composite raster/control layers under the point bottom-up, as the screen shows them.
      let r = 0, g = 0, b = 0, a = 0;
      for (const layer of store.layers()) {
        if (layer.visible === false || isMaskKind(layer.kind)) continue;
        const bm = pixels.get(layer.id);
        if (!bm) continue;
        const [R, G, B, A] = bm.sample(p.x - (layer.x ?? 0), p.y - (layer.y ?? 0));
        const al = (A / 255) * (layer.opacity ?? 1);
        if (!al) continue;
        r = R * al + r * (1 - al); g = G * al + g * (1 - al); b = B * al + b * (1 - al); a = al + a * (1 - al);
      }
      if (a <= 0) return null;
      const color = toHex(r / a, g / a, b / a);
      store.apply({ put: [{ ...DEFAULT_TOOL, ...store.get("tool"), brush_color: color }] }, { history: false });
      return color;
    },
    hitsTransformer(e) {
      const shape = viewport.stage.getIntersection({ x: e.sx, y: e.sy });
      for (let n = /** @type {any} */ (shape); n; n = n.getParent()) if (n instanceof Konva.Transformer) return true;
      return false;
    },
    notice,
    redraw: (what) => renderer.schedule(what),
    setCursor(css) { cursorOverride = css; updateCursor(); },
  };

  function updateCursor() {
    container.style.cursor = panning ? "grabbing" : spaceDown ? "grab" : cursorOverride ?? current.cursor;
  }

  /** @param {string} name */
  function activate(name) {
    const next = tools.get(name);
    if (!next || next === current) return;
    if (activePointer !== null) { try { el.releasePointerCapture(activePointer); } catch { /* already released */ } activePointer = null; }
    if (panning) { panning = false; viewport.endPan(); }
    current.onExit?.(ctx);
    current = next;
    cursorOverride = null;
    current.onEnter?.(ctx);
    updateCursor();
    renderer.schedule();
  }

  // ---- pointer input --------------------------------------------------------------------------

  /** @param {PointerEvent} e @returns {ToolEvent} */
  function toolEvent(e) {
    const r = el.getBoundingClientRect();
    const v = viewport.view();
    /** @param {PointerEvent} ev */
    const at = (ev) => ({ x: (ev.clientX - r.left - v.x) / v.scale, y: (ev.clientY - r.top - v.y) / v.scale, pressure: pressureOf(ev) });
    // Coalesced samples: pens and fast mice report several positions per frame; use them all.
    const list = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    const points = (list.length ? list : [e]).map(at);
    const p = at(e);
    return {
      x: p.x, y: p.y, sx: e.clientX - r.left, sy: e.clientY - r.top, pressure: p.pressure, pointerType: e.pointerType,
      button: e.button, buttons: e.buttons, shiftKey: e.shiftKey, altKey: e.altKey, ctrlKey: e.ctrlKey, metaKey: e.metaKey,
      points, native: e,
    };
  }

  /** @param {PointerEvent} e */
  function onDown(e) {
    if (activePointer !== null) {
      if (e.pointerId !== activePointer) return; // one gesture at a time (ignore a palm or second finger)
      onUp(e); // the same pointer pressed again: its release was lost (window switch); finish that gesture
    }
    container.focus({ preventScroll: true });
    if (e.button === 1 || (e.button === 0 && spaceDown)) {
      panning = true;
      activePointer = e.pointerId;
      capture(el, e.pointerId);
      const r = el.getBoundingClientRect();
      viewport.beginPan({ x: e.clientX - r.left, y: e.clientY - r.top });
      updateCursor();
      e.preventDefault();
      return;
    }
    if (e.button !== 0) return;
    if (current.onPointerDown(ctx, toolEvent(e))) {
      activePointer = e.pointerId;
      capture(el, e.pointerId);
      e.preventDefault();
    }
  }

  /** @param {PointerEvent} e */
  function onMove(e) {
    if (activePointer !== null && e.pointerId !== activePointer) return;
    if (panning) {
      const r = el.getBoundingClientRect();
      viewport.movePan({ x: e.clientX - r.left, y: e.clientY - r.top });
      return;
    }
    current.onPointerMove(ctx, toolEvent(e));
  }

  /** @param {PointerEvent} e */
  function onUp(e) {
    if (e.pointerId !== activePointer) return;
    activePointer = null;
    if (el.hasPointerCapture(e.pointerId)) el.releasePointerCapture(e.pointerId);
    if (panning) { panning = false; viewport.endPan(); updateCursor(); return; }
    // pointercancel (the OS took the pen) finishes the stroke too: losing work is worse.
    current.onPointerUp(ctx, toolEvent(e));
  }

  function onLeave() {
    if (activePointer !== null) return;
    current.onLeave?.(ctx);
    renderer.schedule({ pixels: false });
  }

  /** @param {Event} e */
  const noMenu = (e) => e.preventDefault();
  /** @param {MouseEvent} e */
  const noMiddleAutoscroll = (e) => { if (e.button === 1) e.preventDefault(); };

  el.addEventListener("pointerdown", onDown);
  el.addEventListener("pointermove", onMove);
  el.addEventListener("pointerup", onUp);
  el.addEventListener("pointercancel", onUp);
  el.addEventListener("lostpointercapture", onUp);
  el.addEventListener("pointerleave", onLeave);
  el.addEventListener("contextmenu", noMenu);
  el.addEventListener("mousedown", noMiddleAutoscroll);

  // ---- keys ---------------------------------------------------------------------------------

  /** @param {KeyboardEvent} e */
  function onKeyDown(e) {
    if (isEditable(e.target)) return;
    if (e.code === "Space" || e.key === " ") {
      e.preventDefault(); // no page scroll, no "click" on a focused button
      if (!spaceDown) { spaceDown = true; updateCursor(); }
      return;
    }
    const active = document.activeElement;
    const canvasFocus = !active || active === document.body || container.contains(active);
    // Esc always reaches the tool (it cancels a gesture); other keys only while the canvas has focus.
    if ((e.key === "Escape" || canvasFocus) && !e.ctrlKey && !e.metaKey && current.onKey?.(ctx, e)) e.preventDefault();
  }
  /** @param {KeyboardEvent} e */
  function onKeyUp(e) {
    if (e.code === "Space" || e.key === " ") {
      if (!isEditable(e.target)) e.preventDefault();
      spaceDown = false; updateCursor();
    }
  }
  function onBlur() { spaceDown = false; updateCursor(); }
  window.addEventListener("keydown", onKeyDown);
  window.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", onBlur);

  // ---- store, pixels, history -----------------------------------------------------------------

  const offStore = store.subscribe((change) => {
    if (change.source === "load") {
      // A new document: free pixels of layers it does not have, restore session records.
      dropOrphans();
      queueMicrotask(ensureDefaults);
      activate(store.get("tool")?.name ?? "brush");
      renderer.schedule();
      return;
    }
    let px = false;
    for (const rec of change.diff.put) {
      if (rec.type === "layer" || rec.type === "view") px = true;
      if (rec.id === "tool" && rec.name !== current.name) activate(rec.name);
    }
    for (const id of change.diff.remove) if (change.before.get(id)?.type === "layer") px = true;
    renderer.schedule({ pixels: px, overlay: true });
  });
  const offPixels = pixels.subscribe(() => renderer.schedule({ pixels: true, overlay: current.name === "move" }));
  /** Free pixels of layers that are gone from the store (nothing can bring them back after a clear). */
  function dropOrphans() {
    const live = new Set(store.layers().map((l) => l.id));
    for (const id of pixels.ids()) if (!live.has(id)) pixels.drop(id);
  }
  const offHistory = history.subscribe((e) => {
    // Undo during a gesture cancels it: the tool must forget its half-done stroke.
    if ((e.type === "cancel" || e.type === "clear") && current.active) current.reset?.(ctx);
    if (e.type === "clear") dropOrphans();
  });

  current.onEnter?.(ctx);
  updateCursor();

  const canvas = {
    /** The per-layer tiled bitmaps: get, ensure, drop, exportLayer, importLayer, ... */
    pixels,
    renderer,
    viewport,
    stage: viewport.stage,
    tools: TOOL_NAMES,
    /** Current tool name. */
    get tool() { return current.name; },
    /** @param {string} name one of TOOL_NAMES */
    setTool(name) {
      if (!tools.has(name)) throw new Error(`unknown tool "${name}"; tools are ${TOOL_NAMES.join(", ")}`);
      store.apply({ put: [{ ...DEFAULT_TOOL, ...store.get("tool"), name }] }, { history: false });
      activate(name);
    },
    /** Show the bbox and everything painted. */
    fit() {
      let rect = /** @type {Rect | null} */ (store.get("bbox") ?? null);
      for (const l of store.layers()) {
        if (l.visible === false) continue;
        const b = pixels.get(l.id)?.bounds();
        if (b) rect = unionRect(rect, { x: b.x + (l.x ?? 0), y: b.y + (l.y ?? 0), width: b.width, height: b.height });
      }
      viewport.fitRect(rect ?? DEFAULT_BBOX);
    },
    /** Zoom about the centre of the view; 1 = 100%. @param {number} scale */
    zoomTo(scale) { viewport.zoomTo(scale); },
    /** @param {{x: number, y: number}} p container CSS pixels -> canvas pixels */
    screenToCanvas: (p) => screenToCanvas(viewport.view(), p),
    /** @param {{x: number, y: number}} p canvas pixels -> container CSS pixels */
    canvasToScreen: (p) => canvasToScreen(viewport.view(), p),
    /** Live progress image drawn inside bbox (null clears). @param {string | null} dataUrl @param {Rect} [bbox] */
    setPreview: (dataUrl, bbox) => renderer.setPreview(dataUrl, bbox),
    /** Staged result drawn inside bbox (null clears). @param {string | null} url @param {Rect} [bbox] */
    setStaging: (url, bbox) => renderer.setStaging(url, bbox),
    /** Draw now instead of on the next frame (tests, screenshots). */
    flush: () => renderer.flush(),
    /** Esc for the active tool (the app's shortcut handler asks first): cancels a gesture in progress,
     * true when there was one. @param {KeyboardEvent} e */
    cancelGesture: (e) => !!current.onKey?.(ctx, e),
    destroy() {
      current.onExit?.(ctx);
      offStore(); offPixels(); offHistory();
      el.removeEventListener("pointerdown", onDown);
      el.removeEventListener("pointermove", onMove);
      el.removeEventListener("pointerup", onUp);
      el.removeEventListener("pointercancel", onUp);
      el.removeEventListener("lostpointercapture", onUp);
      el.removeEventListener("pointerleave", onLeave);
      el.removeEventListener("contextmenu", noMenu);
      el.removeEventListener("mousedown", noMiddleAutoscroll);
      window.removeEventListener("keydown", onKeyDown);
      window.removeEventListener("keyup", onKeyUp);
      window.removeEventListener("blur", onBlur);
      renderer.destroy();
      viewport.destroy();
      container.removeAttribute("data-testid");
    },
  };

  if (needsFit && container.clientWidth > 1 && container.clientHeight > 1) { needsFit = false; canvas.fit(); }
  renderer.schedule();
  return canvas;
}

/** @typedef {ReturnType<typeof createCanvas>} Canvas */
