// The Live bar, floating at the top right of the canvas: the Live toggle; while on, where the render is
// drawn (over the box, or beside it), its opacity over the box, "To layer" (a new raster layer of the render, undoable), "Keep" (into the
// gallery, in the selected board) and what the live lane is doing. DOM only: app/live.js acts.

import { h } from "./dom.js";
import { icon } from "./icons.js";

const PHASE_TEXT = {
  off: "",
  idle: "Paint in the box",
  waiting: "Waiting…",
  rendering: "Rendering…",
  done: "Up to date",
  error: "Failed",
};

/**
 * @param {{el: HTMLElement, opacity: number, placement: string, actions: {toggle: () => void, setOpacity: (o: number) => void,
 *   setPlacement: (p: string) => void, toLayer: () => void, keep: () => void}}} o  `el`: the stage's wrapper the bar floats in
 */
export function createLivePanel({ el, opacity, placement, actions }) {
  const dot = h("span", { class: "live-dot", "aria-hidden": "true" });
  const toggle = h(
    "button",
    { class: "live-toggle", "data-testid": "live-toggle", "aria-pressed": "false", title: "Live painting: the box repaints with the model's fast settings as you paint", onclick: () => actions.toggle() },
    dot, "Live",
  );
  const slider = h("input", {
    type: "range", min: "0", max: "100", step: "1", value: String(Math.round(opacity * 100)), class: "live-opacity",
    "data-testid": "live-opacity", "aria-label": "Opacity of the live render over the box", title: "Opacity of the render over the box",
    oninput: (e) => actions.setOpacity(Number(/** @type {HTMLInputElement} */ (e.target).value) / 100),
  });
  const percent = h("span", { class: "live-percent" }, `${Math.round(opacity * 100)}%`);
  const where = h(
    "select",
    {
      class: "live-placement", "data-testid": "live-placement", "aria-label": "Where the live render is drawn",
      title: "Over the box (at the opacity below) or beside it, the sketch and the render side by side",
      onchange: (e) => actions.setPlacement(/** @type {HTMLSelectElement} */ (e.target).value),
    },
    h("option", { value: "over" }, "Over the box"),
    h("option", { value: "beside" }, "Beside the box"),
  );
  const opacityLabel = h("label", { class: "live-opacity-label" }, h("span", null, "Opacity"), slider, percent);
  const toLayer = h(
    "button",
    { class: "btn small", "data-testid": "live-to-layer", title: "Copy the render into a new raster layer (undoable)", onclick: () => actions.toLayer() },
    icon("layers", 14), "To layer",
  );
  const keep = h(
    "button",
    { class: "btn small ghost", "data-testid": "live-keep", title: "Keep the render in the gallery (the selected board)", onclick: () => actions.keep() },
    icon("star", 14), "Keep",
  );
  const status = h("span", { class: "live-status", "data-testid": "live-status", role: "status" });
  const settings = h("div", { class: "live-settings", "data-testid": "live-settings" });
  const controls = h(
    "div",
    { class: "live-controls" },
    h("label", { class: "live-opacity-label" }, h("span", null, "Show"), where),
    opacityLabel,
    h("div", { class: "live-actions" }, toLayer, keep),
    settings,
  );
  const bar = h("div", { class: "live-bar", "data-testid": "live-bar", dataset: { phase: "off" } }, h("div", { class: "live-head" }, toggle, status), controls);
  el.append(bar);
  /** @type {HTMLSelectElement} */ (where).value = placement;
  opacityLabel.hidden = placement === "beside";

  return {
    /** @param {{on: boolean, phase: string, error: string | null, shown: any, from?: string | null, settings?: string}} s
     *   `settings`: the fast settings as words ("LCM · 4 steps · CFG 1 · strength 0.6"), `from`: whose they are */
    render(s) {
      bar.dataset.phase = s.phase;
      bar.classList.toggle("on", s.on);
      toggle.setAttribute("aria-pressed", String(s.on));
      controls.hidden = !s.on;
      const hasRender = !!s.shown;
      /** @type {HTMLButtonElement} */ (toLayer).disabled = !hasRender;
      /** @type {HTMLButtonElement} */ (keep).disabled = !hasRender;
      const text = s.phase === "error" && s.error ? `Failed: ${s.error}` : PHASE_TEXT[s.phase] || "";
      status.textContent = text;
      status.title = text;
      settings.textContent = s.settings || "";
      settings.title = s.from ? `The fast settings of ${s.from} (the Generate panel's steps, CFG and scheduler are for Invoke)` : "";
    },
    /** @param {string} p "over" or "beside": the opacity applies over the box only */
    setPlacement(p) {
      /** @type {HTMLSelectElement} */ (where).value = p;
      opacityLabel.hidden = p === "beside";
    },
    /** @param {number} o 0..1 */
    setOpacity(o) {
      /** @type {HTMLInputElement} */ (slider).value = String(Math.round(o * 100));
      percent.textContent = `${Math.round(o * 100)}%`;
    },
  };
}
