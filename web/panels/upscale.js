// The Upscale group of the Generate panel: an upscale job of the box or of the selected layer (upscaler
// model, x2 or x4, an optional tiled refine with the chosen model and prompt) and the hires-fix option of
// text-to-image jobs (saved with the canvas in `settings.hires_fix`). The pure parts (the job document, the
// rectangle the result lands on) are exported and unit-tested.
import { DEFAULT_HIRES, hiresParams } from "../document.js";
import { field, h } from "./dom.js";

/** The model kind an upscaler is (invoke_core/model_records.py). */
export const UPSCALER_KIND = "upscaler";
/** The factors an upscale job takes, until the server's config (`upscale_scales`) arrives. */
export const UPSCALE_SCALES = [2, 4];
/** Hires fix: the first pass at the size divided by one of these, until the config's `hires_scale_choices`. */
export const HIRES_SCALES = [1.5, 2];

/** The panel's choices and limits from the server's config (GET /api/v1/config), the fallbacks before it. */
export function upscaleChoices(cfg) {
  const n = cfg?.numbers || {};
  return {
    scales: cfg?.upscale_scales || UPSCALE_SCALES,
    hiresScales: cfg?.hires_scale_choices || HIRES_SCALES,
    refine: n.upscale_refine_strength || { min: 0, max: 1, step: 0.05 },
    hiresStrength: n.hires_strength || { min: 0.05, max: 1, step: 0.05, default: DEFAULT_HIRES.strength },
  };
}

/** @param {{kind?: string}} m */
export const upscales = (m) => !!m && m.kind === UPSCALER_KIND;

/** A rectangle grown outwards to multiples of `m` (a box's sides are multiples of 8). */
export function snapOut(rect, m = 8) {
  const x0 = Math.floor(rect.x / m) * m;
  const y0 = Math.floor(rect.y / m) * m;
  const x1 = Math.ceil((rect.x + rect.width) / m) * m;
  const y1 = Math.ceil((rect.y + rect.height) / m) * m;
  return { x: x0, y: y0, width: Math.max(m, x1 - x0), height: Math.max(m, y1 - y0) };
}

/** Where an upscale's result lands: the box's top-left corner, its size times the scale (the pixels kept one for one). */
export function upscaledRect(bbox, scale) {
  return { x: bbox.x, y: bbox.y, width: bbox.width * scale, height: bbox.height * scale };
}

/**
 * The document of an upscale job from a job document (`builder.build({forJob: true})`): its params with
 * `upscale` (and no hires fix, no LoRAs when nothing is refined), and only the raster layers that make the
 * picture: all of them under the box, or with `layer` ({id, x, y, width, height}: the selected layer and
 * its bounds) that layer alone, shown, under a box snapped around it.
 * @param {any} document
 * @param {{scale: number, model?: string|null, refine_strength?: number, layer?: {id: string, x: number, y: number, width: number, height: number} | null}} o
 */
export function upscaleDocument(document, { scale, model = null, refine_strength = 0, layer = null }) {
  const params = { ...document.params, scale: 1 }; // the upscale's own factor, not the generation scale
  delete params.hires_fix;
  delete params.edit;
  if (!(refine_strength > 0)) delete params.loras;
  params.upscale = { scale, refine_strength: refine_strength > 0 ? refine_strength : 0, ...(model ? { model } : {}) };
  let layers = (document.layers || []).filter((l) => l.kind === "raster");
  let bbox = document.bbox;
  if (layer) {
    layers = layers.filter((l) => l.id === layer.id).map((l) => ({ ...l, visible: true }));
    if (!layers.length) throw new Error("The selected layer has no pixels to upscale: choose a raster layer with a picture");
    bbox = snapOut(layer);
  } else if (!layers.some((l) => l.visible !== false)) {
    throw new Error("Nothing to upscale: the box shows no raster layer");
  }
  return { ...document, bbox, layers, params };
}

/**
 * @param {{el: HTMLElement, store: any, models: () => any[], getLayer: () => any | null,
 *   onUpscale: (o: {source: "box"|"layer", scale: number, model: string|null, refine_strength: number}) => void}} o
 *   `getLayer`: the selected layer's record (null: none)
 */
export function createUpscalePanel({ el, store, models, getLayer, onUpscale, config = () => null }) {
  el.classList.add("group", "upscale-group");
  el.setAttribute("data-testid", "upscale-group");
  const state = { source: "box", scale: 2, model: "", refine: 0 };
  let lastHires = { ...DEFAULT_HIRES };
  const settings = () => store.get("settings") || {};
  const setHires = (value) => store.apply({ put: [{ ...settings(), id: "settings", type: "settings", hires_fix: value }] }, { history: false });

  const source = h(
    "select",
    { "data-testid": "upscale-source", "aria-label": "Upscale what", onchange: () => (state.source = source.value) },
    h("option", { value: "box" }, "The box"),
    h("option", { value: "layer" }, "Selected layer"),
  );
  const scale = h(
    "select",
    { "data-testid": "upscale-scale", "aria-label": "Upscale factor", onchange: () => (state.scale = Number(scale.value)) },
    UPSCALE_SCALES.map((s) => h("option", { value: String(s) }, `${s}×`)),
  );
  const model = h("select", { "data-testid": "upscale-model", "aria-label": "Upscaler", onchange: () => (state.model = model.value) });
  const refine = h("input", {
    type: "range", min: "0", max: "1", step: "0.05", value: "0", "data-testid": "upscale-refine", "aria-label": "Refine strength",
    title: "0: the upscaler alone; above: an img2img pass of the chosen model and prompt over overlapping tiles",
  });
  const refineValue = h("output", { class: "range-value" }, "off");
  refine.addEventListener("input", () => {
    state.refine = Number(refine.value);
    refineValue.textContent = state.refine > 0 ? state.refine.toFixed(2) : "off";
  });
  const button = h(
    "button",
    {
      class: "btn", "data-testid": "upscale-run", title: "Queue an upscale: the result is staged at the box's top-left corner, its size times the factor",
      onclick: () => onUpscale({ source: /** @type {any} */ (state.source), scale: state.scale, model: state.model || null, refine_strength: state.refine }),
    },
    "Upscale",
  );

  const hiresOn = h("input", { type: "checkbox", "data-testid": "hires-fix" });
  const hiresScale = h("select", { "data-testid": "hires-scale", "aria-label": "Hires fix first pass" }, HIRES_SCALES.map((s) => h("option", { value: String(s) }, `1/${s}`)));
  const hiresStrength = h("input", { type: "number", min: "0.05", max: "1", step: "0.05", "data-testid": "hires-strength", "aria-label": "Hires fix strength" });
  const hiresUpscaler = h("select", { "data-testid": "hires-upscaler", "aria-label": "Hires fix upscaler" });
  const current = () => hiresParams(settings().hires_fix);
  const changeHires = () => {
    const value = { scale: Number(hiresScale.value), strength: Number(hiresStrength.value), upscaler: hiresUpscaler.value || null };
    lastHires = hiresParams(value) || lastHires;
    setHires(hiresOn.checked ? { ...DEFAULT_HIRES, ...lastHires } : null);
  };
  for (const input of [hiresOn, hiresScale, hiresStrength, hiresUpscaler]) input.addEventListener("change", changeHires);

  el.replaceChildren(
    h("h3", { class: "group-title" }, "Upscale"),
    h("div", { class: "row2" }, field("Source", source), field("Factor", scale)),
    field("Upscaler", model),
    h("div", { class: "field" }, h("span", { class: "field-label" }, "Refine strength ", refineValue), refine),
    button,
    h("label", { class: "toggle", title: "Text to image in two passes: generate smaller, upscale, refine by image to image" }, hiresOn, h("span", null, "Hires fix (text to image)")),
    h("div", { class: "row2 hires-row" }, field("First pass", hiresScale), field("Strength", hiresStrength)),
    field("Hires upscaler", hiresUpscaler),
  );

  let shownChoices = null;
  /** The factor and first-pass options and the number limits, rebuilt when the config they come from changes. */
  function renderChoices() {
    const cfg = config();
    if (shownChoices && shownChoices.cfg === cfg) return;
    const c = upscaleChoices(cfg);
    shownChoices = { cfg };
    const options = (select, values, label) => {
      const keep = select.value;
      select.replaceChildren(...values.map((v) => h("option", { value: String(v) }, label(v))));
      if (values.map(String).includes(keep)) select.value = keep;
    };
    options(scale, c.scales, (v) => `${v}×`);
    if (!c.scales.includes(state.scale)) state.scale = Number(scale.value);
    options(hiresScale, c.hiresScales, (v) => `1/${v}`);
    const low = (r) => (r.exclusive_min ? r.min + r.step : r.min);
    Object.assign(refine, { min: String(low(c.refine)), max: String(c.refine.max), step: String(c.refine.step) });
    Object.assign(hiresStrength, { min: String(low(c.hiresStrength)), max: String(c.hiresStrength.max), step: String(c.hiresStrength.step) });
    if (cfg?.defaults?.hires_fix && !current()) lastHires = { ...lastHires, ...hiresParams(cfg.defaults.hires_fix) };
  }

  function render() {
    renderChoices();
    const list = (models() || []).filter(upscales);
    const label = (m) => `${m.name}${m.label ? " · random weights" : ""}`;
    model.replaceChildren(...list.map((m) => h("option", { value: m.id }, label(m))));
    if (state.model && list.some((m) => m.id === state.model)) model.value = state.model;
    else state.model = model.value = (list.find((m) => m.default) || list[0] || { id: "" }).id;
    const hires = current();
    if (hires) lastHires = hires;
    hiresUpscaler.replaceChildren(h("option", { value: "" }, "Plain resize (Lanczos)"), ...list.map((m) => h("option", { value: m.id }, label(m))));
    hiresOn.checked = !!hires;
    hiresScale.value = String(lastHires.scale);
    if (document.activeElement !== hiresStrength) hiresStrength.value = String(lastHires.strength);
    hiresUpscaler.value = lastHires.upscaler || "";
    for (const input of [hiresScale, hiresStrength, hiresUpscaler]) input.disabled = !hires;
    const layer = getLayer();
    button.disabled = !list.length;
    source.querySelector('option[value="layer"]').disabled = !(layer && layer.kind === "raster");
    if (source.value === "layer" && source.querySelector('option[value="layer"]').disabled) state.source = source.value = "box";
  }

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "settings" || r.id === "selection")) render();
  });
  return { render, destroy: unsubscribe };
}
