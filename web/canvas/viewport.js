// The Konva stage and the view: pan, zoom to the cursor, fit, 100%, and two-finger touch pan/pinch.
// The view lives in the store's "view" record (not in history) so panels can show the zoom and
// documents can save it.

import Konva from "konva";
import { clamp, fitView, isMouseWheel, MAX_SCALE, MIN_SCALE, screenToCanvas, zoomAt } from "./geometry.js";

/** @typedef {import("./geometry.js").View} View */
/** @typedef {import("./geometry.js").Rect} Rect */
/** @typedef {import("./geometry.js").Point} Point */
/** @typedef {import("../state/store.js").Store} Store */

export const DEFAULT_VIEW = Object.freeze({ id: "view", type: "view", x: 0, y: 0, scale: 1, grid: false });

/**
 * One step of a two-finger gesture: the view moves with the fingers' midpoint and scales by how much
 * their spread changed, about the new midpoint, so the canvas point under the fingers stays under them
 * (up to the zoom limits). Samples are in screen pixels relative to the stage.
 * @template {View} V @param {V} view
 * @param {{mid: Point, dist: number}} prev @param {{mid: Point, dist: number}} now @returns {V}
 */
export function pinchView(view, prev, now) {
  const moved = { ...view, x: view.x + now.mid.x - prev.mid.x, y: view.y + now.mid.y - prev.mid.y };
  const factor = prev.dist > 1 && now.dist > 1 ? now.dist / prev.dist : 1;
  return factor === 1 ? moved : { ...moved, ...zoomAt(moved, now.mid, factor) };
}

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

    /** True while two (or more) touch fingers drive the view (and until the last of them lifts). */
    get touchGesture() { return touch.gesture; },

    destroy() {
      ro.disconnect();
      container.removeEventListener("wheel", onWheel);
      for (const [type, fn] of touchListeners) container.removeEventListener(type, fn, true);
      window.removeEventListener("pointerup", onTouchUp, true);
      window.removeEventListener("pointercancel", onTouchUp, true);
      window.removeEventListener("blur", forgetOthers);
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

  // ---- two-finger touch: pan + pinch-zoom ----------------------------------------------------------
  // Listeners in the capture phase on the container run before the tool dispatcher on the stage. One
  // finger goes through untouched (it paints like a pen). When a second finger lands, the first
  // finger's gesture is cancelled as Esc cancels it (nothing is painted) and, until every finger is
  // lifted, touch moves drive the view instead of the tool: the midpoint pans, the spread zooms
  // about the midpoint. The first finger's release still reaches the dispatcher so it can end its
  // (cancelled) gesture. Pen and mouse input is never changed: while a pen or mouse button is down,
  // touches (a resting palm) start no gesture and never cancel its stroke.
  const touch = {
    /** @type {Map<number, Point>} touch pointers down, in container coordinates */
    points: new Map(),
    /** @type {Set<number>} pen / mouse pointers down on the stage */
    others: new Set(),
    gesture: false,
    /** @type {{mid: Point, dist: number} | null} the previous pinch sample */
    last: null,
  };
  /** @param {PointerEvent} e @returns {Point} */
  const local = (e) => { const r = stage.content.getBoundingClientRect(); return { x: e.clientX - r.left, y: e.clientY - r.top }; };
  function pinchSample() {
    const [a, b] = [...touch.points.values()];
    return { mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, dist: Math.hypot(b.x - a.x, b.y - a.y) };
  }
  /** @param {Event} e */
  const swallow = (e) => { e.stopImmediatePropagation(); if (e.cancelable) e.preventDefault(); };
  /** The first finger's stroke (or move, lasso, ...) is dropped exactly as the Esc key drops it. */
  function cancelToolGesture() {
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", code: "Escape", bubbles: true, cancelable: true }));
    window.dispatchEvent(new KeyboardEvent("keyup", { key: "Escape", code: "Escape", bubbles: true, cancelable: true }));
  }

  /** @param {PointerEvent} e */
  function onTouchDown(e) {
    if (e.pointerType !== "touch") { touch.others.add(e.pointerId); return; }
    touch.points.set(e.pointerId, local(e));
    if (touch.points.size < 2 && !touch.gesture) return; // one finger: the tool's
    if (touch.others.size && !touch.gesture) return; // a palm beside the pen: the dispatcher ignores it
    if (!touch.gesture) { touch.gesture = true; cancelToolGesture(); }
    touch.last = touch.points.size === 2 ? pinchSample() : null;
    swallow(e);
  }
  /** @param {PointerEvent} e */
  function onTouchMove(e) {
    if (e.pointerType !== "touch" || !touch.points.has(e.pointerId)) return;
    touch.points.set(e.pointerId, local(e));
    if (!touch.gesture) return;
    swallow(e);
    if (touch.points.size !== 2) { touch.last = null; return; }
    const now = pinchSample();
    const prev = touch.last ?? now;
    touch.last = now;
    setView(pinchView(view(), prev, now));
  }
  /** @param {PointerEvent} e */
  function onTouchUp(e) {
    if (e.pointerType !== "touch") { touch.others.delete(e.pointerId); return; }
    if (!touch.points.has(e.pointerId)) return;
    touch.points.delete(e.pointerId);
    if (!touch.gesture) return;
    touch.last = touch.points.size === 2 ? pinchSample() : null;
    if (touch.points.size === 0) touch.gesture = false;
    // the dispatcher ignores releases of pointers it does not own, and must see the one it owns
  }
  /** @type {[string, (e: any) => void][]} */
  const touchListeners = [["pointerdown", onTouchDown], ["pointermove", onTouchMove]];
  for (const [type, fn] of touchListeners) container.addEventListener(type, fn, true);
  // releases wherever they happen (a finger lifted off the stage must not leave a gesture behind)
  window.addEventListener("pointerup", onTouchUp, true);
  window.addEventListener("pointercancel", onTouchUp, true);
  const forgetOthers = () => touch.others.clear(); // a release lost to another window must not block touch for good
  window.addEventListener("blur", forgetOthers);

  return vp;
}

/** @typedef {ReturnType<typeof createViewport>} Viewport */
