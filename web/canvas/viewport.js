// The Konva stage and the view: pan, zoom to the cursor, fit, 100%. The view lives in the store's
// "view" record (not in history) so panels can show the zoom and documents can save it.

import Konva from "konva";
import { clamp, fitView, isMouseWheel, MAX_SCALE, MIN_SCALE, screenToCanvas, zoomAt } from "./geometry.js";

/** @typedef {import("./geometry.js").View} View */
/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {import("./geometry.js").Point} Point */
/** @typedef {import("../state/store.js").Store} Store */

export const DEFAULT_VIEW = Object.freeze({ id: "view", type: "view", x: 0, y: 0, scale: 1, grid: false });

/**
 * @param {{container: HTMLElement, store: Store, onResize?: () => void}} opts
 */
export function createViewport({ container, store, onResize }) {
  const stage = new Konva.Stage({ container: /** @type {HTMLDivElement} */ (container), width: Math.max(1, container.clientWidth), height: Math.max(1, container.clientHeight) });

  /** @returns {View & {grid?: boolean}} */
  const view = () => /** @type {any} */ (store.get("view")) ?? DEFAULT_VIEW;

  /** @param {Partial<View> & {grid?: boolean}} v */
  function setView(v) {
    const prev = store.get("view") ?? DEFAULT_VIEW;
    const next = { ...prev, ...v };
    if (!Number.isFinite(next.x) || !Number.isFinite(next.y) || !(next.scale > 0)) return;
    if (next.x === prev.x && next.y === prev.y && next.scale === prev.scale && next.grid === prev.grid && store.get("view")) return;
    store.apply({ put: [next] }, { history: false });
  }

  const size = () => ({ width: stage.width(), height: stage.height() });

  const ro = new ResizeObserver(() => {
    const w = Math.max(1, container.clientWidth), h = Math.max(1, container.clientHeight);
    if (w === stage.width() && h === stage.height()) return;
    // Keep the centre where it was so resizing panels does not throw the picture around.
    const v = view();
    const dx = (w - stage.width()) / 2, dy = (h - stage.height()) / 2;
    stage.size({ width: w, height: h });
    setView({ x: v.x + dx, y: v.y + dy });
    onResize?.();
  });
  ro.observe(container);

  const vp = {
    stage,
    view,
    setView,
    size,
    /** @param {Point} p screen point relative to the container */
    toCanvas: (p) => screenToCanvas(view(), p),
    /** Zoom by factor about a screen point (default: the centre). @param {number} factor @param {Point} [at] */
    zoomBy(factor, at) {
      const s = size();
      setView(zoomAt(view(), at ?? { x: s.width / 2, y: s.height / 2 }, factor));
    },
    /** Zoom to an absolute scale (1 = 100%) about a screen point (default: the centre). @param {number} scale @param {Point} [at] */
    zoomTo(scale, at) {
      const v = view();
      vp.zoomBy(clamp(scale, MIN_SCALE, MAX_SCALE) / v.scale, at);
    },
    /** @param {number} dx @param {number} dy screen pixels */
    panBy(dx, dy) { const v = view(); setView({ x: v.x + dx, y: v.y + dy }); },
    /** Show a canvas rect. @param {Rect} rect @param {number} [padding] */
    fitRect(rect, padding = 48) { setView(fitView(rect, size(), padding)); },

    /** @type {Point | null} */
    panFrom: null,
    /** @param {Point} p */
    beginPan(p) { vp.panFrom = p; },
    /** @param {Point} p */
    movePan(p) {
      if (!vp.panFrom) return;
      vp.panBy(p.x - vp.panFrom.x, p.y - vp.panFrom.y);
      vp.panFrom = p;
    },
    endPan() { vp.panFrom = null; },

    destroy() {
      ro.disconnect();
      container.removeEventListener("wheel", onWheel);
      stage.destroy();
    },
  };

  /** @param {WheelEvent} e */
  function onWheel(e) {
    e.preventDefault(); // the page must not scroll or browser-zoom under the canvas
    const r = container.getBoundingClientRect();
    const at = { x: e.clientX - r.left, y: e.clientY - r.top };
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? r.height : 1;
    const dx = e.deltaX * unit, dy = e.deltaY * unit;
    if (e.shiftKey && !e.ctrlKey && !e.metaKey) {
      // Shift+wheel pans sideways (some browsers already swap the axes for us).
      vp.panBy(-(dx || dy), 0);
    } else if (e.ctrlKey || e.metaKey || isMouseWheel(e)) {
      // Pinch arrives as ctrl+wheel with small deltas; a wheel notch is 100-120: ~1.2x per notch.
      const rate = isMouseWheel(e) ? 0.0018 : 0.01;
      vp.zoomBy(Math.exp(-clamp(dy, -300, 300) * rate), at);
    } else {
      vp.panBy(-dx, -dy);
    }
  }
  container.addEventListener("wheel", onWheel, { passive: false });

  return vp;
}

/** @typedef {ReturnType<typeof createViewport>} Viewport */
