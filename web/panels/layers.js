// The Layers panel: add (raster, inpaint mask, regional guidance, control, reference), select, rename,
// reorder by drag, hide, lock, opacity, colour, region prompts, control settings, duplicate, merge down, delete.
// Layer operations that touch pixels go through `canvas.pixels` inside one history gesture.
import { DEFAULT_REFERENCE, SERVER_CONFIG, controls, mainModel, newLayer, referenceSettings, regionStrength } from "../document.js";
import { familyOf, referenceChoice, referenceGroups, referenceKindName, referenceKinds, referenceOptionText } from "../families.js";
import { h, iconButton, loadBitmap } from "./dom.js";
import { icon } from "./icons.js";

export const KIND_LABELS = {
  raster: "Raster",
  inpaint_mask: "Inpaint mask",
  regional_guidance: "Regional guidance",
  control: "Control",
  reference: "Reference",
};
const KIND_SHORT = { raster: "RST", inpaint_mask: "MASK", regional_guidance: "REG", control: "CTL", reference: "REF" };
// the add buttons' words: five kinds on one row of a narrow panel (the tooltip says the whole name)
const ADD_LABELS = { raster: "Raster", inpaint_mask: "Mask", regional_guidance: "Region", control: "Control", reference: "Ref" };


/**
 * The number in a new layer's default name ("Raster 3"): one more than the highest number among the
 * layers of that kind still named by default ("Raster 2"), or the count of that kind plus one when none
 * is (all renamed); never a number already taken by a default name.
 * @param {string} kind @param {{kind: string, name?: string}[]} layers
 */
export function nextLayerIndex(kind, layers) {
  const prefix = newLayer(kind, { id: "-", index: 1 }).name.replace(/1$/, ""); // "Raster "
  const same = layers.filter((l) => l.kind === kind);
  let highest = 0;
  for (const l of same) {
    const name = typeof l.name === "string" ? l.name : "";
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    if (/^[1-9][0-9]{0,8}$/.test(rest)) highest = Math.max(highest, Number(rest));
  }
  return highest ? highest + 1 : same.length + 1;
}

/** [value, label] of the server's list (GET /api/v1/config), or `fallback` until it has answered. */
const options = (fromServer, fallback) => (Array.isArray(fromServer) ? fromServer.map((o) => [o.name, o.label]) : fallback);

/** [min, max, step] of a number field from the server's limits, or the fallback until it has answered. */
function limit(name, min, max, step) {
  const n = SERVER_CONFIG?.numbers?.[name];
  return n ? [n.min, n.max, n.step ?? step] : [min, max, step];
}

/** The preprocessors (invoke_core/preprocess.py) until the server's list arrives: [value, label]. */
const PREPROCESSORS = [
  ["none", "None (already a map)"],
  ["canny", "Canny edges"],
  ["soft_edge", "Soft edges"],
  ["lineart", "Line art"],
  ["scribble", "Scribble"],
  ["threshold", "Threshold"],
  ["tile", "Tile (blurred detail)"],
  ["blur", "Blur"],
  ["color_map", "Colour map"],
];

/** Which matters more when prompt and control image disagree. */
const CONTROL_MODES = [
  ["balanced", "Balanced"],
  ["prompt", "Prompt matters more"],
  ["control", "Control matters more"],
];

/**
 * Run `fn` as one undo step (history.mark ... history.commit).
 * @param {any} history
 * @param {string} label
 * @param {() => any} fn
 */
export async function asOneStep(history, label, fn) {
  // inside another gesture: part of that one step
  if (!history || history.inGesture) return fn();
  history.mark(label);
  try {
    return await fn();
  } finally {
    history.commit();
  }
}

/**
 * Layer operations on the store and the canvas pixels.
 * @param {{store: any, history: any, getCanvas: () => any, getActive: () => string|null, setActive: (id: string|null) => void, models: () => any[]}} o
 */
export function createLayerOps({ store, history, getCanvas, getActive, setActive, models }) {
  const layers = () => store.layers();
  const topZ = () => layers().reduce((m, l) => Math.max(m, l.z ?? 0), 0);
  const pixels = () => getCanvas()?.pixels;

  /** A new layer on top of the stack, selected. */
  function add(kind, extra = {}) {
    const index = nextLayerIndex(kind, layers());
    const controlModel = (models().find((m) => m.kind === "controlnet") || {}).id || ""; // a ControlNet first
    const layer = { ...newLayer(kind, { z: topZ() + 1, index, control_model: controlModel }), ...extra };
    store.apply({ put: [layer] });
    setActive(layer.id);
    return layer;
  }

  function remove(id) {
    const list = layers();
    const i = list.findIndex((l) => l.id === id);
    if (i < 0) return;
    store.apply({ remove: [id] });
    // tiles stay with the canvas so that undo brings the layer back with its pixels
    const next = list[i + 1] || list[i - 1];
    setActive(next && next.id !== id ? next.id : null);
  }

  function update(id, patch, opts) {
    const layer = store.get(id);
    if (!layer) return;
    store.apply({ put: [{ ...layer, ...patch }] }, opts);
  }

  /** New z order from ids listed bottom first: one undo step. */
  function reorder(idsBottomFirst) {
    const put = [];
    idsBottomFirst.forEach((id, i) => {
      const l = store.get(id);
      if (l && l.z !== i + 1) put.push({ ...l, z: i + 1 });
    });
    if (put.length) store.apply({ put });
  }

  /** Move a layer before/after another (in bottom-first order). */
  function moveRelative(id, targetId, above) {
    if (id === targetId) return;
    const ids = layers().map((l) => l.id).filter((x) => x !== id);
    let at = ids.indexOf(targetId);
    if (at < 0) return;
    if (above) at += 1;
    ids.splice(at, 0, id);
    reorder(ids);
  }

  function step(id, delta) {
    const ids = layers().map((l) => l.id);
    const i = ids.indexOf(id);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= ids.length) return;
    [ids[i], ids[j]] = [ids[j], ids[i]];
    reorder(ids);
  }

  async function duplicate(id) {
    const src = store.get(id);
    if (!src) return null;
    return asOneStep(history, "duplicate layer", async () => {
      const copy = { ...src, ...newLayer(src.kind, { z: 0 }), ...pick(src), name: `${src.name} copy` };
      copy.id = newLayer(src.kind).id;
      const ids = layers().map((l) => l.id);
      store.apply({ put: [{ ...copy, z: topZ() + 1 }] });
      ids.splice(ids.indexOf(id) + 1, 0, copy.id);
      reorder(ids);
      const exported = pixels()?.exportLayer(id);
      if (exported) await pixels().importLayer(copy.id, exported.canvas, exported.x, exported.y);
      setActive(copy.id);
      return copy;
    });
  }

  /** The settings a copy keeps (everything but identity and order). */
  function pick(src) {
    const { id, z, name, ...rest } = src;
    return rest;
  }

  /** Whether `id` can merge into the layer below it (same kind family). */
  function canMergeDown(id) {
    const list = layers();
    const i = list.findIndex((l) => l.id === id);
    if (i <= 0) return false;
    const below = list[i - 1];
    return below.kind === list[i].kind && (below.kind === "raster" || below.kind === "inpaint_mask") && !below.locked;
  }

  async function mergeDown(id) {
    if (!canMergeDown(id)) throw new Error("merge down needs a layer of the same kind (raster or mask) right below, unlocked");
    const list = layers();
    const i = list.findIndex((l) => l.id === id);
    const upper = list[i];
    const lower = list[i - 1];
    const p = pixels();
    const a = p.exportLayer(lower.id);
    const b = p.exportLayer(upper.id);
    await asOneStep(history, "merge down", async () => {
      if (b && upper.visible !== false) {
        const x0 = Math.min(a ? a.x : b.x, b.x);
        const y0 = Math.min(a ? a.y : b.y, b.y);
        const x1 = Math.max(a ? a.x + a.width : b.x + b.width, b.x + b.width);
        const y1 = Math.max(a ? a.y + a.height : b.y + b.height, b.y + b.height);
        const out = new OffscreenCanvas(x1 - x0, y1 - y0);
        const ctx = out.getContext("2d");
        if (a) ctx.drawImage(a.canvas, a.x - x0, a.y - y0);
        ctx.globalAlpha = upper.opacity ?? 1;
        ctx.drawImage(b.canvas, b.x - x0, b.y - y0);
        await p.importLayer(lower.id, out, x0, y0);
      }
      store.apply({ remove: [upper.id] });
    });
    setActive(lower.id);
  }

  /**
   * Put a picture into a new layer (file drop, gallery "send to canvas", staging accept).
   * `fit`: scale to this rect's size (staging results, control images); otherwise natural size at (x, y).
   * @param {ImageBitmap|HTMLCanvasElement|OffscreenCanvas} bitmap
   * @param {{kind?: string, name?: string, x: number, y: number, fit?: {width: number, height: number}, extra?: any}} o
   */
  async function addFromBitmap(bitmap, o) {
    let source = bitmap;
    if (o.fit && (bitmap.width !== o.fit.width || bitmap.height !== o.fit.height)) {
      const c = new OffscreenCanvas(o.fit.width, o.fit.height);
      const ctx = c.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, 0, 0, o.fit.width, o.fit.height);
      source = c;
    }
    return asOneStep(history, "add layer", async () => {
      const layer = add(/** @type {any} */ (o.kind || "raster"), { ...(o.name ? { name: o.name } : {}), ...(o.extra || {}) });
      await pixels().importLayer(layer.id, source, Math.round(o.x), Math.round(o.y));
      return layer;
    });
  }

  /** Replace a layer's pixels with a picture fitted to a rect (control images). */
  async function replacePixels(id, bitmap, rect) {
    const c = new OffscreenCanvas(rect.width, rect.height);
    const ctx = c.getContext("2d");
    // cover the rect, centred
    const s = Math.max(rect.width / bitmap.width, rect.height / bitmap.height);
    const w = bitmap.width * s;
    const hh = bitmap.height * s;
    ctx.drawImage(bitmap, (rect.width - w) / 2, (rect.height - hh) / 2, w, hh);
    await asOneStep(history, "layer image", async () => {
      pixels().importLayer(id, c, rect.x, rect.y, { replace: true });
    });
  }

  return { add, remove, update, reorder, moveRelative, step, duplicate, mergeDown, canMergeDown, addFromBitmap, replacePixels };
}

/**
 * @param {{el: HTMLElement, store: any, history: any, ops: ReturnType<typeof createLayerOps>,
 *   getActive: () => string|null, setActive: (id: string|null) => void, models: () => any[],
 *   loadLayerImage: (layerId: string, file: File) => void, guard: (fn: () => any) => any}} o
 */
export function createLayersPanel({ el, store, history, ops, getActive, setActive, models, loadLayerImage, guard, pixels }) {
  // ---- thumbnails: redrawn (debounced) for layers whose pixels or colour changed ----------------
  /** @type {Map<string, HTMLCanvasElement>} */
  const thumbs = new Map();
  const dirtyThumbs = new Set();
  let thumbTimer = 0;
  function thumbFor(layer) {
    let c = thumbs.get(layer.id);
    if (!c) {
      c = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "layer-thumb", width: 64, height: 64, "aria-hidden": "true" }));
      thumbs.set(layer.id, c);
      dirtyThumbs.add(layer.id);
      scheduleThumbs();
    }
    return c;
  }
  function scheduleThumbs() {
    if (!thumbTimer) thumbTimer = window.setTimeout(drawThumbs, 300);
  }
  function drawThumbs() {
    thumbTimer = 0;
    for (const id of dirtyThumbs) {
      const c = thumbs.get(id);
      const layer = store.get(id);
      if (!c || !layer || !pixels) continue;
      const g = c.getContext("2d");
      g.clearRect(0, 0, c.width, c.height);
      const e = pixels.exportLayer(id);
      if (!e) continue;
      const s = Math.min(c.width / e.width, c.height / e.height);
      const w = Math.max(1, e.width * s);
      const hh = Math.max(1, e.height * s);
      g.imageSmoothingQuality = "medium";
      g.drawImage(e.canvas, (c.width - w) / 2, (c.height - hh) / 2, w, hh);
      if (layer.kind === "inpaint_mask" || layer.kind === "regional_guidance") {
        g.globalCompositeOperation = "source-in";
        g.fillStyle = layer.color || "#e0533d";
        g.fillRect(0, 0, c.width, c.height);
        g.globalCompositeOperation = "source-over";
      }
    }
    dirtyThumbs.clear();
  }
  const offPixels = pixels && typeof pixels.subscribe === "function"
    ? pixels.subscribe((e) => {
        if (!e || !e.layerId) return;
        dirtyThumbs.add(e.layerId);
        scheduleThumbs();
      })
    : () => {};

  const addBar = h(
    "div",
    { class: "layer-add" },
    ...Object.entries(KIND_LABELS).map(([kind, label]) =>
      h(
        "button",
        { class: `chip kind-${kind}`, "data-testid": `layer-add-${kind}`, title: `Add ${/^[aeiou]/i.test(label) ? "an" : "a"} ${label.toLowerCase()} layer`, onclick: () => ops.add(kind) },
        icon("plus", 12),
        h("span", null, ADD_LABELS[kind] || label),
      ),
    ),
  );
  const list = h("ul", { class: "layer-list", "data-testid": "layer-list", role: "listbox", "aria-label": "Layers" });
  const actions = h("div", { class: "layer-actions" });
  const props = h("div", { class: "layer-props", "data-testid": "layer-props" });
  el.replaceChildren(addBar, list, actions, props);

  /** @type {string|null} */
  let dragId = null;
  let renaming = null;

  function row(layer, active) {
    const name = h("span", { class: "layer-name", title: "Double-click to rename" }, layer.name);
    const li = h(
      "li",
      {
        class: `layer-row kind-${layer.kind}${active ? " active" : ""}${layer.visible === false ? " hidden-layer" : ""}`,
        "data-testid": "layer-row",
        dataset: { layerId: layer.id, kind: layer.kind },
        draggable: "true",
        role: "option",
        "aria-selected": String(active),
        onclick: () => setActive(layer.id),
      },
      h("span", { class: "grip", title: "Drag to reorder" }, icon("grip", 14)),
      h("span", { class: "thumb-wrap" }, thumbFor(layer)),
      h("span", { class: "kind-tag", style: layer.color ? { "--kind": layer.color } : null, title: KIND_LABELS[layer.kind] }, KIND_SHORT[layer.kind]),
      name,
      h("span", { class: "layer-opacity" }, layer.opacity < 1 ? `${Math.round(layer.opacity * 100)}%` : ""),
      iconButton(icon(layer.visible === false ? "eyeOff" : "eye", 16), layer.visible === false ? "Show" : "Hide", (e) => {
        e.stopPropagation();
        ops.update(layer.id, { visible: layer.visible === false });
      }, { "data-testid": "layer-visibility", class: `icon-btn${layer.visible === false ? " off" : ""}` }),
      iconButton(icon(layer.locked ? "lock" : "unlock", 16), layer.locked ? "Unlock" : "Lock", (e) => {
        e.stopPropagation();
        ops.update(layer.id, { locked: !layer.locked });
      }, { "data-testid": "layer-lock", class: `icon-btn${layer.locked ? " on" : " dim"}` }),
    );
    name.addEventListener("dblclick", (e) => {
      e.stopPropagation();
      startRename(layer, name);
    });
    li.addEventListener("dragstart", (e) => {
      dragId = layer.id;
      e.dataTransfer.setData("application/x-layer-id", layer.id);
      e.dataTransfer.effectAllowed = "move";
      li.classList.add("dragging");
    });
    li.addEventListener("dragend", () => {
      dragId = null;
      li.classList.remove("dragging");
      for (const r of list.children) r.classList.remove("drop-above", "drop-below");
    });
    li.addEventListener("dragover", (e) => {
      if (!dragId || dragId === layer.id) return;
      e.preventDefault();
      const r = li.getBoundingClientRect();
      const upper = e.clientY < r.top + r.height / 2;
      li.classList.toggle("drop-above", upper);
      li.classList.toggle("drop-below", !upper);
    });
    li.addEventListener("dragleave", () => li.classList.remove("drop-above", "drop-below"));
    li.addEventListener("drop", (e) => {
      const id = dragId || e.dataTransfer.getData("application/x-layer-id");
      if (!id || id === layer.id) return;
      e.preventDefault();
      e.stopPropagation();
      const r = li.getBoundingClientRect();
      const upperHalf = e.clientY < r.top + r.height / 2;
      // the list shows the top layer first: the upper half of a row means "above it" in the stack
      ops.moveRelative(id, layer.id, upperHalf);
      li.classList.remove("drop-above", "drop-below");
    });
    return li;
  }

  function startRename(layer, nameEl) {
    renaming = layer.id;
    const input = h("input", { class: "rename-input", value: layer.name, "data-testid": "layer-rename", "aria-label": "Layer name" });
    const done = (save) => {
      if (renaming !== layer.id) return;
      renaming = null;
      const v = input.value.trim();
      rowCache.delete(layer.id);
      if (save && v && v !== layer.name) ops.update(layer.id, { name: v.slice(0, 200) });
      else render();
    };
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") done(true);
      if (e.key === "Escape") done(false);
    });
    input.addEventListener("blur", () => done(true));
    input.addEventListener("click", (e) => e.stopPropagation());
    nameEl.replaceWith(input);
    input.focus();
    input.select();
  }

  /** Slider gestures are one undo step: mark on press, commit on release. */
  function gesture(input, label) {
    input.addEventListener("pointerdown", () => {
      if (!history) return;
      history.mark(label);
      window.addEventListener("pointerup", () => history.commit(), { once: true });
    });
  }

  /**
   * A layer's "Load image…" field: the button (`testid`), its hidden file input (`testid`-file), `beside`
   * next to the button and `below` under it. @param {string} layerId @param {string} testid @param {string} label
   * @param {Node | null} [beside] @param {Node | null} [below]
   */
  function imageField(layerId, testid, label, beside = null, below = null) {
    const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp", hidden: true, "data-testid": `${testid}-file` });
    file.addEventListener("change", () => {
      if (file.files && file.files[0]) loadLayerImage(layerId, file.files[0]);
      file.value = "";
    });
    const button = h("button", { class: "btn small", "data-testid": testid, onclick: () => file.click() }, icon("image", 14), "Load image…");
    return h("div", { class: "field" }, h("span", { class: "field-label" }, label), h("div", { class: "row-buttons" }, button, beside), file, below);
  }

  function renderProps(layer) {
    props.replaceChildren();
    if (!layer) {
      props.append(h("p", { class: "muted small" }, "Select a layer to edit it."));
      return;
    }
    const opacity = h("input", { type: "range", min: 0, max: 1, step: 0.01, value: layer.opacity ?? 1, "data-testid": "layer-opacity", "aria-label": "Layer opacity" });
    const opacityOut = h("output", { class: "range-value" }, `${Math.round((layer.opacity ?? 1) * 100)}%`);
    gesture(opacity, "layer opacity");
    opacity.addEventListener("input", () => {
      opacityOut.textContent = `${Math.round(Number(opacity.value) * 100)}%`;
      ops.update(layer.id, { opacity: Number(opacity.value) });
    });
    // sliders take one line each (label, slider, value): the region's prompts and strength stay in view
    const opacityField = h("div", { class: "slider-row" }, h("span", { class: "field-label" }, "Opacity"), opacity, opacityOut);
    const rows = [opacityField];

    if (layer.color !== undefined) {
      // masks and regions: the tint sits at the end of the opacity line
      const color = h("input", { type: "color", value: layer.color, "data-testid": "layer-color", "aria-label": "Layer colour", title: "Tint on the canvas" });
      color.addEventListener("change", () => ops.update(layer.id, { color: color.value }));
      opacityField.classList.add("with-colour");
      opacityField.append(color);
    }
    if (layer.kind === "regional_guidance") {
      const p = h("textarea", { rows: 2, value: layer.prompt || "", "data-testid": "region-prompt", placeholder: "What this region shows…", "aria-label": "Region prompt" });
      const n = h("textarea", { rows: 1, value: layer.negative_prompt || "", "data-testid": "region-negative-prompt", placeholder: "What to avoid here…", "aria-label": "Region negative prompt" });
      p.addEventListener("input", () => ops.update(layer.id, { prompt: p.value }, { history: false }));
      n.addEventListener("input", () => ops.update(layer.id, { negative_prompt: n.value }, { history: false }));
      rows.push(h("label", { class: "field" }, h("span", { class: "field-label" }, "Region prompt"), p));
      const value = regionStrength(layer.strength);
      const [sMin, sMax, sStep] = limit("region_strength", 0, 1, 0.05);
      const strength = h("input", {
        type: "range", min: sMin, max: sMax, step: sStep, value, "data-testid": "region-strength", "aria-label": "Region strength",
      });
      const strengthOut = h("output", { class: "range-value" }, value.toFixed(2));
      gesture(strength, "region strength");
      strength.addEventListener("input", () => {
        strengthOut.textContent = Number(strength.value).toFixed(2);
        ops.update(layer.id, { strength: regionStrength(Number(strength.value)) });
      });
      rows.push(
        h(
          "div",
          {
            class: "slider-row",
            title: "How much the region prompt replaces the main prompt inside the region: 0 keeps the main prompt at full weight there, 1 uses only the region prompt",
          },
          h("span", { class: "field-label" }, "Strength"),
          strength,
          strengthOut,
        ),
      );
      rows.push(h("label", { class: "field" }, h("span", { class: "field-label" }, "Region negative prompt"), n));
    }
    if (layer.kind === "control") {
      const c = layer.control || { model: "", preprocessor: "none", weight: 1, begin: 0, end: 1 };
      const setC = (patch) => ops.update(layer.id, { control: { ...c, ...patch } });
      const cn = models().filter(controls);
      const model = h(
        "select",
        { "data-testid": "control-model", "aria-label": "ControlNet model" },
        h("option", { value: "" }, cn.length ? "Choose a ControlNet…" : "No ControlNet installed"),
        cn.map((m) => h("option", { value: m.id }, `${m.name}${m.kind === "control_lora" ? " · Control LoRA" : ""}${m.label ? " · random weights" : ""}`)),
      );
      model.value = c.model || "";
      /** A Union ControlNet's kinds of control image (GET /api/v1/models `control_types`), else []. */
      const typesOf = (id) => cn.find((m) => m.id === id)?.control_types || [];
      model.addEventListener("change", () => {
        // a control type only where the new ControlNet takes it
        const keep = c.control_type && typesOf(model.value).includes(c.control_type);
        setC({ model: model.value, control_type: keep ? c.control_type : null });
      });
      const types = typesOf(c.model);
      const typeLabel = (t) => (t.charAt(0).toUpperCase() + t.slice(1)).replace(/_/g, " ");
      const controlType = h(
        "select",
        { "data-testid": "control-type", "aria-label": "Control type", title: "What the control image shows (a Union ControlNet takes several kinds)" },
        h("option", { value: "" }, "By the preprocessor"),
        types.map((t) => h("option", { value: t }, typeLabel(t))),
      );
      controlType.value = c.control_type || "";
      controlType.addEventListener("change", () => setC({ control_type: controlType.value || null }));
      const pre = h(
        "select",
        { "data-testid": "control-preprocessor", "aria-label": "Preprocessor", title: "How the control image becomes a map" },
        options(SERVER_CONFIG?.preprocessors, PREPROCESSORS).map(([value, label]) => h("option", { value }, label)),
      );
      pre.value = c.preprocessor || "none";
      pre.addEventListener("change", () => setC({ preprocessor: pre.value }));
      const mode = h(
        "select",
        { "data-testid": "control-mode", "aria-label": "Control mode" },
        options(SERVER_CONFIG?.control_modes, CONTROL_MODES).map(([value, label]) => h("option", { value }, label)),
      );
      mode.value = c.mode || "balanced";
      mode.addEventListener("change", () => setC({ mode: mode.value }));
      const numIn = (key, min, max, stepv, testid) => {
        const input = h("input", { type: "number", min, max, step: stepv, value: c[key], "data-testid": testid });
        input.addEventListener("change", () => {
          const v = Math.min(max, Math.max(min, Number(input.value)));
          if (Number.isFinite(v)) setC({ [key]: v });
        });
        return input;
      };
      rows.push(
        imageField(layer.id, "control-image", "Control image", h("span", { class: "muted small" }, "or paint, or use one from the gallery")),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Model"), model),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Preprocessor"), pre),
        ...(types.length ? [h("label", { class: "field" }, h("span", { class: "field-label" }, "Control type"), controlType)] : []),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Control mode"), mode),
        h(
          "div",
          { class: "row3" },
          h("label", { class: "field" }, h("span", { class: "field-label" }, "Weight"), numIn("weight", ...limit("control_weight", 0, 2, 0.05), "control-weight")),
          h("label", { class: "field" }, h("span", { class: "field-label" }, "Begin"), numIn("begin", ...limit("control_begin", 0, 1, 0.05), "control-begin")),
          h("label", { class: "field" }, h("span", { class: "field-label" }, "End"), numIn("end", ...limit("control_end", 0, 1, 0.05), "control-end")),
        ),
      );
    }
    if (layer.kind === "reference") rows.push(...referenceRows(layer));
    props.append(h("div", { class: "props-title" }, KIND_LABELS[layer.kind], " · ", h("b", null, layer.name)), ...rows);
  }

  /** The chosen main model's family description (GET /api/v1/config `families`), or null. */
  function mainFamily() {
    const model = mainModel(models(), store.get("settings")?.model);
    return model ? { name: model.family, family: familyOf(SERVER_CONFIG, model), model } : { name: null, family: null, model: null };
  }

  /**
   * A reference layer's fields: its picture; for a model whose reference layers run through a model of
   * their own, that model (one select over every kind it may choose: FLUX.1 takes a FLUX Redux or an
   * IP-Adapter) and the fields of the kind in effect (`referenceChoice`): an IP-Adapter's weight and step
   * range; a FLUX Redux's weight only (it runs over every step: a step range it cannot take gets a reset);
   * for one whose models take the picture themselves (FLUX.2) only the picture (and a reset of settings it
   * cannot take).
   */
  function referenceRows(layer) {
    const r = { ...DEFAULT_REFERENCE, ...referenceSettings(layer.reference) };
    // the record as it is now: the form stays while it has the focus, so `r` may be an edit old
    const setR = (patch) => ops.update(layer.id, { reference: { ...DEFAULT_REFERENCE, ...referenceSettings(store.get(layer.id)?.reference), ...patch } });
    const { name, family, model: main } = mainFamily();
    // the chosen model's own (Kontext and Qwen-Image-Edit take the picture themselves), else its family's
    const kinds = referenceKinds(family, main);
    const choice = referenceChoice(kinds, models(), name, r.model);
    const kind = choice.kind;
    const none = kinds === null;
    const edit = main && main.kind === "edit";
    const text = none
      ? `${main ? main.name : family.label} takes no reference images: hide the layer or choose another model`
      : edit && !kind
        ? "Its picture is one more picture the edit model edits from, after the one under the box (whole, at full weight); keep it off region layers"
      : kind === "redux"
        ? "Its picture steers the job through FLUX Redux (its image tokens after the prompt's), over every step; not with region layers"
        : kind
          ? "Its picture steers the job through an IP-Adapter; over a region layer's mask it steers that region only"
          : "Its picture goes in whole, at full weight, as the model's reference image; keep it off region layers";
    const rows = [imageField(layer.id, "reference-image", "Reference picture", null, h("span", { class: "muted small", "data-testid": "reference-hint" }, text))];
    if (none) return rows;
    if (!kind) {
      if (r.model || r.weight !== 1 || r.begin !== 0 || r.end !== 1) {
        rows.push(
          h(
            "div",
            { class: "field", "data-testid": "reference-unused" },
            h("span", { class: "muted small" }, `${family?.label || "This model"} takes no IP-Adapter, weight or step range`),
            h("button", { type: "button", class: "btn small", "data-testid": "reference-reset", onclick: (e) => {
              e.currentTarget.blur(); // the form is rebuilt (without this note) only when nothing in it has the focus
              ops.update(layer.id, { reference: { ...DEFAULT_REFERENCE } });
            } }, "Reset"),
          ),
        );
      }
      return rows;
    }
    const redux = kind === "redux";
    const what = referenceKindName(kind);
    const entry = (o) => h("option", { value: o.model.id }, referenceOptionText(choice, kinds, o));
    const model = h(
      "select",
      { "data-testid": "reference-model", "aria-label": choice.several ? "Reference model" : `${what} model` },
      h("option", { value: "" }, referenceOptionText(choice, kinds, null)),
      choice.several
        ? referenceGroups(choice, kinds).map(([label, list]) => h("optgroup", { label }, list.map(entry)))
        : choice.options.map(entry),
    );
    if (r.model && !choice.chosen) model.append(h("option", { value: r.model }, `${r.model} (not for this model)`));
    model.value = r.model || "";
    model.addEventListener("change", () => {
      const next = model.value || null;
      const other = referenceChoice(kinds, models(), name, next).kind !== kind;
      // another kind has other fields: the form is rebuilt only when nothing in it has the focus, so let go
      // of it for the rebuild, then give it to the new select
      if (other) model.blur();
      setR({ model: next });
      if (other) props.querySelector('[data-testid="reference-model"]')?.focus();
    });
    const numIn = (key, min, max, stepv, testid) => {
      const input = h("input", { type: "number", min, max, step: stepv, value: r[key], "data-testid": testid });
      input.addEventListener("change", () => {
        const v = Math.min(max, Math.max(min, Number(input.value)));
        if (Number.isFinite(v)) setR({ [key]: v });
      });
      return input;
    };
    const weight = h("label", { class: "field" }, h("span", { class: "field-label" }, "Weight"), numIn("weight", ...limit("reference_weight", 0, 2, 0.05), "reference-weight"));
    rows.push(h("label", { class: "field" }, h("span", { class: "field-label" }, what), model));
    if (redux) {
      // FLUX Redux's tokens are part of the prompt: every step, no step range (the server refuses one)
      rows.push(h("div", { class: "row3" }, weight));
      if (r.begin !== 0 || r.end !== 1) {
        rows.push(
          h(
            "div",
            { class: "field", "data-testid": "reference-unused" },
            h("span", { class: "muted small" }, choice.several
              ? "A FLUX Redux reference runs over every step: no begin or end (an IP-Adapter takes them)"
              : `${family?.label || "This model"} takes a FLUX Redux reference over every step: no begin or end`),
            h("button", { type: "button", class: "btn small", "data-testid": "reference-reset", onclick: (e) => {
              e.currentTarget.blur(); // the form is rebuilt (without this note) only when nothing in it has the focus
              setR({ begin: 0, end: 1 });
            } }, "Reset"),
          ),
        );
      }
      return rows;
    }
    rows.push(
      h(
        "div",
        { class: "row3" },
        weight,
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Begin"), numIn("begin", ...limit("reference_begin", 0, 1, 0.05), "reference-begin")),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "End"), numIn("end", ...limit("reference_end", 0, 1, 0.05), "reference-end")),
      ),
    );
    return rows;
  }

  function renderActions(layer) {
    const disabled = !layer;
    actions.replaceChildren(
      iconButton(icon("up", 16), "Move up", () => layer && ops.step(layer.id, +1), { "data-testid": "layer-up", disabled }),
      iconButton(icon("down", 16), "Move down", () => layer && ops.step(layer.id, -1), { "data-testid": "layer-down", disabled }),
      iconButton(icon("copy", 16), "Duplicate", () => layer && guard(() => ops.duplicate(layer.id)), { "data-testid": "layer-duplicate", disabled }),
      iconButton(icon("merge", 16), "Merge down", () => layer && guard(() => ops.mergeDown(layer.id)), {
        "data-testid": "layer-merge-down",
        disabled: disabled || !ops.canMergeDown(layer.id),
      }),
      h("span", { class: "spacer" }),
      iconButton(icon("trash", 16), "Delete layer", () => layer && ops.remove(layer.id), { "data-testid": "layer-delete", class: "icon-btn danger", disabled }),
    );
  }

  let lastPropsKey = "";
  /** @type {Map<string, {layer: any, el: HTMLElement}>} */
  const rowCache = new Map();
  function render() {
    const layers = store.layers();
    const activeId = getActive();
    if (renaming) return;
    // rows are rebuilt only when their record changed (records are replaced, never mutated), so a
    // double-click survives the selection change its first click makes
    const rows = layers.slice().reverse().map((l) => {
      let cached = rowCache.get(l.id);
      if (!cached || cached.layer !== l) {
        if (cached && cached.layer.color !== l.color) {
          dirtyThumbs.add(l.id);
          scheduleThumbs();
        }
        cached = { layer: l, el: row(l, false) };
        rowCache.set(l.id, cached);
      }
      const on = l.id === activeId;
      cached.el.classList.toggle("active", on);
      cached.el.setAttribute("aria-selected", String(on));
      return cached.el;
    });
    for (const id of [...rowCache.keys()]) if (!store.get(id)) rowCache.delete(id);
    for (const id of [...thumbs.keys()]) if (!store.get(id)) thumbs.delete(id);
    const same = rows.length === list.children.length && rows.every((el, i) => list.children[i] === el);
    if (!same) list.replaceChildren(...rows);
    if (!layers.length) list.append(h("li", { class: "empty-note" }, "No layers yet. Add one above, paint, or drop an image on the canvas."));
    const active = layers.find((l) => l.id === activeId) || null;
    renderActions(active);
    // keep the properties form (and its focus) while the user types in it
    // (a reference layer's fields follow the chosen model's family too)
    const key = active ? JSON.stringify(active) + (active.kind === "reference" ? `|${store.get("settings")?.model ?? ""}` : "") : "";
    if (key !== lastPropsKey && !(active && props.contains(document.activeElement) && props.dataset.layerId === active.id)) {
      renderProps(active);
      props.dataset.layerId = active ? active.id : "";
    }
    lastPropsKey = key;
  }

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    const touched = [...(diff.put || []), ...(diff.remove || []).map((id) => ({ id, type: "layer" }))];
    // a selected reference layer's fields follow the chosen model (settings)
    const reference = () => store.get(getActive())?.kind === "reference";
    if (touched.some((r) => r.type === "layer" || r.id === "selection" || (r.id === "settings" && reference()))) render();
  });
  return {
    render,
    forceProps() {
      lastPropsKey = "";
      render();
    },
    destroy() {
      unsubscribe();
      offPixels();
    },
  };
}
