// The studio layout: settings | tools | canvas | layers + gallery. The side columns resize by dragging
// their inner edge, the right column's layers/gallery split by dragging the line between them; columns
// and panels collapse. Sizes and collapsed state are per-browser layout, kept in localStorage under
// `invokeCanvas.layout.*` (the canvas itself is saved on the server). The size maths is pure (exported,
// tested in web/tests/layout.test.js); `createLayout` is the DOM half.

export const KEY = "invokeCanvas.layout.";
/** Width of the tool strip (CSS var --toolbar, set from here so the maths and the grid agree). */
export const TOOLBAR = 54;
/** The canvas keeps at least this much width whatever the columns ask for. */
export const MIN_STAGE = 420;
export const LIMITS = Object.freeze({
  left: Object.freeze({ min: 220, max: 520, defaultMax: 340 }),
  right: Object.freeze({ min: 220, max: 600, defaultMax: 360 }),
});
/** The layers panel (top of the right column) and the gallery under it keep at least this height. */
export const SPLIT = Object.freeze({ minTop: 120, minBottom: 180 });
/** Share of the window each side column gets by default: ~242 px at 1440 (canvas ~900), ~323 at 1920. */
export const DEFAULT_SHARE = 0.168;
export const PANELS = Object.freeze(["panel-generate", "panel-queue", "panel-layers", "panel-gallery"]);

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** @param {"left"|"right"} side @param {number} viewportWidth */
export function defaultWidth(side, viewportWidth) {
  const l = LIMITS[side];
  return clamp(Math.round(viewportWidth * DEFAULT_SHARE), l.min, l.defaultMax);
}

/**
 * A column width within its limits that leaves the canvas MIN_STAGE (the column's minimum wins when
 * the window is too narrow for both). `other` is the other column's width (0 when collapsed).
 * @param {"left"|"right"} side @param {number} width @param {number} viewportWidth @param {number} other
 */
export function clampWidth(side, width, viewportWidth, other) {
  const l = LIMITS[side];
  const room = viewportWidth - TOOLBAR - MIN_STAGE - other;
  const w = Number.isFinite(width) ? Math.round(width) : defaultWidth(side, viewportWidth);
  return clamp(Math.min(w, room), l.min, l.max);
}

/**
 * Both widths for a window, from what was saved (numbers or junk from storage). The left column is
 * fitted first, then the right one around it, then the left again (the right may sit at its minimum).
 * @param {{left?: any, right?: any, leftCollapsed?: boolean, rightCollapsed?: boolean}} saved @param {number} viewportWidth
 */
export function fitWidths(saved, viewportWidth) {
  const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));
  const wantL = Number.isFinite(num(saved.left)) ? num(saved.left) : defaultWidth("left", viewportWidth);
  const wantR = Number.isFinite(num(saved.right)) ? num(saved.right) : defaultWidth("right", viewportWidth);
  const usedR = saved.rightCollapsed ? 0 : clamp(Math.round(wantR), LIMITS.right.min, LIMITS.right.max);
  let left = clampWidth("left", wantL, viewportWidth, usedR);
  const right = clampWidth("right", wantR, viewportWidth, saved.leftCollapsed ? 0 : left);
  left = clampWidth("left", left, viewportWidth, saved.rightCollapsed ? 0 : right);
  return { left, right };
}

/**
 * Height of the layers panel in a right column of `columnHeight`, or null (fit its content) when
 * nothing valid was saved. @param {any} height @param {number} columnHeight
 */
export function clampSplit(height, columnHeight) {
  const h = height === null || height === undefined || height === "" ? NaN : Number(height);
  if (!Number.isFinite(h)) return null;
  return Math.round(Math.max(SPLIT.minTop, Math.min(h, columnHeight - SPLIT.minBottom)));
}

/** What localStorage holds (strings or null) -> the layout's state. @param {(key: string) => string | null} read */
export function readLayout(read) {
  const flag = (k) => read(KEY + k) === "1";
  /** @type {Record<string, boolean>} */
  const panels = {};
  for (const id of PANELS) {
    const v = read(`${KEY}collapsed.${id}`) ?? read(`invokeCanvas.collapsed.${id}`); // the key before the layout module
    panels[id] = v === "1";
  }
  return {
    left: read(KEY + "left"),
    right: read(KEY + "right"),
    split: read(KEY + "split"),
    leftCollapsed: flag("collapsed.left"),
    rightCollapsed: flag("collapsed.right"),
    panels,
  };
}

/**
 * Wire the layout onto the page: `root` is the `.app` grid holding `.column-left`, `.column-right`
 * and the `.panel`s. Buttons with `data-layout-toggle="left|right"` collapse a column.
 * @param {{root: HTMLElement, storage?: Storage, win?: Window}} o
 */
export function createLayout({ root, storage = localStorage, win = window }) {
  const doc = root.ownerDocument;
  const read = (k) => { try { return storage.getItem(k); } catch { return null; } };
  const write = (k, v) => { try { storage.setItem(k, v); } catch { /* private mode: the layout is not remembered */ } };
  const state = readLayout(read);
  const leftCol = /** @type {HTMLElement} */ (root.querySelector(".column-left"));
  const rightCol = /** @type {HTMLElement} */ (root.querySelector(".column-right"));
  const layersPanel = /** @type {HTMLElement | null} */ (root.querySelector("#panel-layers"));
  const galleryPanel = /** @type {HTMLElement | null} */ (root.querySelector("#panel-gallery"));
  let widths = { left: 0, right: 0 };
  /** @type {number | null} */
  let split = null;

  function apply() {
    const vw = win.innerWidth;
    widths = fitWidths(state, vw);
    // on <html>, so what lies outside the grid (the toasts over the canvas) can follow the columns
    const css = doc.documentElement.style;
    css.setProperty("--toolbar", `${TOOLBAR}px`);
    css.setProperty("--col-left", state.leftCollapsed ? "0px" : `${widths.left}px`);
    css.setProperty("--col-right", state.rightCollapsed ? "0px" : `${widths.right}px`);
    root.classList.toggle("left-collapsed", state.leftCollapsed);
    root.classList.toggle("right-collapsed", state.rightCollapsed);
    for (const btn of root.querySelectorAll("[data-layout-toggle]")) {
      const side = /** @type {HTMLElement} */ (btn).dataset.layoutToggle;
      const collapsed = side === "left" ? state.leftCollapsed : state.rightCollapsed;
      btn.setAttribute("aria-pressed", String(!collapsed));
      btn.classList.toggle("on", !collapsed);
    }
    applySplit();
  }

  function applySplit() {
    const both = layersPanel && galleryPanel && !layersPanel.classList.contains("collapsed") && !galleryPanel.classList.contains("collapsed");
    splitHandle.hidden = !both;
    split = both ? clampSplit(state.split, rightCol.clientHeight || win.innerHeight) : null;
    rightCol.classList.toggle("split-set", split !== null);
    if (split !== null) rightCol.style.setProperty("--layers-h", `${split}px`);
    else rightCol.style.removeProperty("--layers-h");
  }

  /** A drag handle: pointer drags (captured), arrow keys, double-click resets. */
  function handle(testid, orientation, { start, move, end, reset, nudge }) {
    const el = doc.createElement("div");
    el.className = `resize-handle ${orientation}`;
    el.dataset.testid = testid;
    el.setAttribute("role", "separator");
    el.setAttribute("aria-orientation", orientation);
    el.tabIndex = 0;
    el.title = "Drag to resize (double-click: default size)";
    el.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      el.setPointerCapture(e.pointerId);
      const from = orientation === "vertical" ? e.clientX : e.clientY;
      const base = start();
      el.classList.add("dragging");
      root.classList.add("resizing");
      root.classList.toggle("resizing-split", orientation === "horizontal");
      const onMove = (ev) => move(base, (orientation === "vertical" ? ev.clientX : ev.clientY) - from);
      const onUp = () => {
        el.removeEventListener("pointermove", onMove);
        el.removeEventListener("pointerup", onUp);
        el.removeEventListener("pointercancel", onUp);
        el.classList.remove("dragging");
        root.classList.remove("resizing", "resizing-split");
        end();
      };
      el.addEventListener("pointermove", onMove);
      el.addEventListener("pointerup", onUp);
      el.addEventListener("pointercancel", onUp);
    });
    el.addEventListener("dblclick", () => { reset(); end(); });
    el.addEventListener("keydown", (e) => {
      const step = e.shiftKey ? 64 : 16;
      const d = { ArrowLeft: -step, ArrowUp: -step, ArrowRight: step, ArrowDown: step }[e.key];
      if (d === undefined) return;
      e.preventDefault();
      nudge(d);
      end();
    });
    return el;
  }

  const sideHandle = (side) =>
    handle(`resize-${side}`, "vertical", {
      start: () => widths[side],
      // the left column grows to the right, the right column to the left
      move: (base, d) => { state[side] = base + (side === "left" ? d : -d); apply(); },
      end: () => { state[side] = widths[side]; write(KEY + side, String(widths[side])); },
      reset: () => { state[side] = null; apply(); },
      nudge: (d) => { state[side] = widths[side] + (side === "left" ? d : -d); apply(); },
    });
  const splitHandle = handle("resize-split", "horizontal", {
    start: () => split ?? layersPanel?.getBoundingClientRect().height ?? SPLIT.minTop,
    move: (base, d) => { state.split = base + d; applySplit(); },
    end: () => {
      if (split === null) { try { storage.removeItem(KEY + "split"); } catch { /* ignore */ } return; }
      state.split = split;
      write(KEY + "split", String(split));
    },
    reset: () => { state.split = null; applySplit(); },
    nudge: (d) => { state.split = (split ?? layersPanel?.getBoundingClientRect().height ?? SPLIT.minTop) + d; applySplit(); },
  });
  leftCol.append(sideHandle("left"));
  rightCol.append(sideHandle("right"));
  if (galleryPanel) galleryPanel.before(splitHandle);

  /** @param {"left"|"right"} side @param {boolean} [collapsed] */
  function toggleColumn(side, collapsed) {
    const k = side === "left" ? "leftCollapsed" : "rightCollapsed";
    state[k] = collapsed ?? !state[k];
    write(`${KEY}collapsed.${side}`, state[k] ? "1" : "0");
    apply();
  }
  for (const btn of root.querySelectorAll("[data-layout-toggle]")) {
    btn.addEventListener("click", () => toggleColumn(/** @type {any} */ (/** @type {HTMLElement} */ (btn).dataset.layoutToggle)));
  }

  // collapsible panels: the header toggles, except clicks on its own controls (the queue's summary...)
  /** @type {Map<string, (collapsed: boolean) => void>} */
  const setPanel = new Map();
  for (const panel of root.querySelectorAll(".panel")) {
    const header = panel.querySelector(".panel-header");
    if (!header || !panel.id) continue;
    const button = doc.createElement("button");
    button.className = "collapse-btn";
    button.dataset.testid = `collapse-${panel.id.replace(/^panel-/, "")}`;
    button.setAttribute("aria-label", "Collapse or expand");
    header.prepend(button);
    const set = (collapsed) => {
      panel.classList.toggle("collapsed", collapsed);
      button.textContent = collapsed ? "▸" : "▾";
      button.setAttribute("aria-expanded", String(!collapsed));
      state.panels[panel.id] = collapsed;
      applySplit();
    };
    setPanel.set(panel.id, set);
    set(!!state.panels[panel.id]);
    header.addEventListener("click", (e) => {
      if (e.target instanceof HTMLElement && e.target.closest("button:not(.collapse-btn), input, select, a")) return;
      const collapsed = !panel.classList.contains("collapsed");
      set(collapsed);
      write(`${KEY}collapsed.${panel.id}`, collapsed ? "1" : "0");
    });
  }

  const onResize = () => apply();
  win.addEventListener("resize", onResize);
  apply();

  return {
    /** Current column widths in px (what the grid uses; a collapsed column is 0). */
    widths: () => ({ left: state.leftCollapsed ? 0 : widths.left, right: state.rightCollapsed ? 0 : widths.right, split }),
    /** @param {"left"|"right"} side @param {number} width */
    setWidth(side, width) { state[side] = width; apply(); write(KEY + side, String(widths[side])); },
    toggleColumn,
    /** @param {string} id @param {boolean} collapsed */
    setPanelCollapsed(id, collapsed) { setPanel.get(id)?.(collapsed); write(`${KEY}collapsed.${id}`, collapsed ? "1" : "0"); },
    destroy() { win.removeEventListener("resize", onResize); },
  };
}
