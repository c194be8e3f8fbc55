// The Generate panel: model, prompts, sampling settings, seed, batch, img2img/inpaint settings, the
// generation box size, and the Invoke button. Writes the `settings` record (not in undo history) and
// the `bbox` record (undoable).
import { ASPECT_PRESETS, aspectRatio, bboxForAspect, bboxMaxSides, snapSize } from "../canvas/geometry.js";
import { createApi } from "../api.js";
import { DEFAULT_BBOX, DEFAULT_SETTINGS, SERVER_CONFIG, applyServerConfig, clampToLimit, generates, lowestAccepted, mainModel } from "../document.js";
import { familyOf, schedulerOptions, settingsForModel } from "../families.js";
import { field, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { createLoraPanel } from "./loras.js";

/**
 * Limits of the number fields until the server's config (GET /api/v1/config, built from
 * invoke_core/limits.py) arrives; the config replaces them, so no field accepts what the server refuses.
 * @type {Record<string, {min: number, max: number, exclusive_min?: boolean, step: number, integer: boolean}>}
 */
const FALLBACK_LIMITS = {
  steps: { min: 1, max: 500, step: 1, integer: true },
  cfg_scale: { min: 0, max: 50, step: 0.5, integer: false },
  true_cfg_scale: { min: 1, max: 20, step: 0.5, integer: false },
  seed: { min: 0, max: 2 ** 32 - 1, step: 1, integer: true },
  batch_size: { min: 1, max: 64, step: 1, integer: true },
  strength: { min: 0, max: 1, exclusive_min: true, step: 0.01, integer: false },
  mask_blur: { min: 0, max: 256, step: 1, integer: true },
  bbox_width: { min: 0, max: 4096, exclusive_min: true, step: 8, integer: true },
  bbox_height: { min: 0, max: 4096, exclusive_min: true, step: 8, integer: true },
};
const FALLBACK_SCALES = [0.5, 0.75, 1, 1.5, 2];

export const randomSeed = () => Math.floor(Math.random() * 2 ** 32);

/**
 * `api` (optional) fetches the server's config (limits, defaults, option lists); without it the panel
 * asks through a client of its own. `config` (optional) is one already fetched.
 * @param {{el: HTMLElement, store: any, onInvoke: () => void, api?: any, config?: any}} o
 */
export function createSettingsPanel({ el, store, onInvoke, api = null, config = null, onFamilyChange = () => {}, onConfig = () => {} }) {
  const settings = () => ({ ...DEFAULT_SETTINGS, ...(store.get("settings") || {}) });
  const set = (patch) => store.apply({ put: [{ ...settings(), ...patch }] }, { history: false });
  const bbox = () => ({ ...DEFAULT_BBOX, ...(store.get("bbox") || {}) });
  const setBBox = (patch) => store.apply({ put: [{ ...bbox(), ...patch }] });
  /** @type {any[]} */
  let models = [];

  /** Bind an input to a settings key. */
  function bind(input, key, parse = (v) => v, event = "input") {
    input.addEventListener(event, () => {
      const v = parse(input.type === "checkbox" ? input.checked : input.value);
      if (v !== undefined && !(typeof v === "number" && !Number.isFinite(v))) set({ [key]: v });
    });
    return input;
  }
  /** The limits of each number field: the fallbacks, then the server's (setConfig). */
  let limits = { ...FALLBACK_LIMITS };
  /** @type {any} */
  let serverConfig = null;
  const num = (key) => (v) => clampToLimit(v, limits[key]);
  /** An <input> for a number field, its min/max/step from `limits` (kept current by setConfig). */
  const numberInput = (key, attrs, type = "number") => {
    const l = limits[key];
    return h("input", { type, min: lowestAccepted(l), max: l.max, step: l.step, ...attrs });
  };

  const modelSelect = h("select", { "data-testid": "model-select", "aria-label": "Model" });
  // another family's model brings its defaults (steps, guidance, scheduler), as does a model with defaults
  // of its own (FLUX.1 schnell); otherwise the same family keeps them
  modelSelect.addEventListener("change", () => {
    const before = family();
    const beforeModel = chosenModel();
    const model = modelSelect.value || null;
    const afterModel = models.find((m) => m.id === model) || null;
    const after = familyOf(serverConfig, afterModel);
    set({ model, ...settingsForModel(before, after, beforeModel, afterModel, settings()) });
  });
  const modelNote = h("div", { class: "model-note", "data-testid": "model-note" });

  const prompt = bind(h("textarea", { rows: 4, "data-testid": "prompt", placeholder: "Describe what to paint…", "aria-label": "Prompt", spellcheck: "false" }), "prompt");
  const negative = bind(
    h("textarea", { rows: 2, "data-testid": "negative-prompt", placeholder: "What to avoid…", "aria-label": "Negative prompt", spellcheck: "false" }),
    "negative_prompt",
  );

  const steps = bind(numberInput("steps", { "data-testid": "steps" }), "steps", num("steps"), "change");
  const cfg = bind(numberInput("cfg_scale", { "data-testid": "cfg" }), "cfg_scale", num("cfg_scale"), "change");
  const trueCfg = bind(
    numberInput("true_cfg_scale", { "data-testid": "true-cfg", title: "Classifier-free guidance with the negative prompt, besides the distilled guidance: above 1 about twice the time (1: off)" }),
    "true_cfg_scale",
    num("true_cfg_scale"),
    "change",
  );
  const scheduler = bind(h("select", { "data-testid": "scheduler" }), "scheduler", (v) => v, "change");

  const seed = bind(numberInput("seed", { "data-testid": "seed" }), "seed", num("seed"), "change");
  const randomToggle = bind(h("input", { type: "checkbox", "data-testid": "seed-random" }), "random_seed", (v) => !!v, "change");
  const dice = iconButton(icon("dice"), "New random seed", () => set({ seed: randomSeed(), random_seed: false }), { "data-testid": "seed-dice" });

  const batch = bind(numberInput("batch_size", { "data-testid": "batch-size" }), "batch_size", num("batch_size"), "change");
  const strength = bind(numberInput("strength", { "data-testid": "strength" }, "range"), "strength", num("strength"));
  const strengthValue = h("output", { class: "range-value" });
  const maskBlur = bind(numberInput("mask_blur", { "data-testid": "mask-blur" }), "mask_blur", num("mask_blur"), "change");
  const infill = bind(h("select", { "data-testid": "infill" }), "infill", (v) => v, "change");
  const scale = bind(
    h("select", { "data-testid": "scale", title: "Generate at this multiple of the box size, then fit back" }),
    "scale",
    (v) => Number(v),
    "change",
  );

  const bw = numberInput("bbox_width", { "data-testid": "bbox-width", "aria-label": "Box width" });
  const bh = numberInput("bbox_height", { "data-testid": "bbox-height", "aria-label": "Box height" });
  const aspectLock = () => aspectRatio(store.get("tool")?.bbox_aspect);
  /** A box side snapped to the multiple of 8 and clamped to the server's range (never above its max). */
  const side = (key, v) => {
    const l = limits[key];
    return Math.min(l.max, snapSize(Number(v) || l.step, lowestAccepted(l)));
  };
  /** @param {"width"|"height"} changed */
  const onSize = (changed) => {
    let width = side("bbox_width", bw.value);
    let height = side("bbox_height", bh.value);
    const ratio = aspectLock();
    if (ratio) {
      if (changed === "width") height = side("bbox_height", width / ratio);
      else width = side("bbox_width", height * ratio);
    }
    bw.value = String(width);
    bh.value = String(height);
    const b = bbox();
    if (b.width !== width || b.height !== height) setBBox({ width, height });
  };
  bw.addEventListener("change", () => onSize("width"));
  bh.addEventListener("change", () => onSize("height"));
  const swap = iconButton("⇄", "Swap width and height", () => {
    const b = bbox();
    const tool = store.get("tool");
    const flipped = { "3:2": "2:3", "2:3": "3:2", "4:3": "3:4", "3:4": "4:3", "16:9": "9:16", "9:16": "16:9" }[tool?.bbox_aspect];
    if (flipped) store.apply({ put: [{ ...tool, bbox_aspect: flipped }] }, { history: false });
    setBBox({ width: b.height, height: b.width });
  }, { "data-testid": "bbox-swap" });
  /** Choosing a preset reshapes the box (same area, same centre) and locks the ratio for the box tool. */
  const setAspect = (id) => {
    const tool = store.get("tool");
    if (tool) store.apply({ put: [{ ...tool, bbox_aspect: id }] }, { history: false });
    if (id) {
      const b = bbox();
      setBBox(bboxForAspect(b, id, bboxMaxSides(SERVER_CONFIG)));
    }
  };
  const aspectButtons = [
    h("button", { class: "chip", "data-testid": "aspect-free", dataset: { aspect: "" }, title: "Free: any width and height", onclick: () => setAspect(null) }, "Free"),
    ...ASPECT_PRESETS.map((a) =>
      h(
        "button",
        {
          class: "chip",
          "data-testid": `aspect-${a.id.replace(":", "-")}`,
          dataset: { aspect: a.id },
          title: `${a.label}: keeps the area, locks the ratio while resizing`,
          onclick: () => setAspect(a.id),
        },
        a.id,
      ),
    ),
  ];

  const invoke = h(
    "button",
    { class: "invoke-btn", "data-testid": "invoke", title: "Generate in the box (Ctrl+Enter)", onclick: () => onInvoke() },
    icon("sparkle", 18),
    h("span", null, "Invoke"),
    h("kbd", null, "Ctrl ↵"),
  );
  const queueBadge = h("span", { class: "queue-badge", "data-testid": "queue-count", hidden: true });
  invoke.appendChild(queueBadge);
  // the running item's progress, a bar along the bottom of the button (hidden while nothing runs)
  const progressFill = h("i");
  const progressBar = h(
    "span",
    { class: "invoke-progress", "data-testid": "invoke-progress", role: "progressbar", "aria-label": "Generation progress", "aria-valuemin": "0", "aria-valuemax": "100", hidden: true },
    progressFill,
  );
  invoke.appendChild(progressBar);

  const group = (title, ...rows) => h("div", { class: "group" }, title ? h("h3", { class: "group-title" }, title) : null, ...rows);
  const loraGroup = h("div", { class: "group lora-group" });
  const loras = createLoraPanel({ el: loraGroup, store, models: () => models });
  // Its label is the family's name for cfg_scale (Flux: distilled "Guidance").
  const cfgField = field("CFG scale", cfg);

  el.replaceChildren(
    h("div", { class: "invoke-bar" }, invoke),
    h(
      "div",
      { class: "settings-scroll" },
      group(null, field("Model", modelSelect), modelNote),
      group(null, field("Prompt", prompt), field("Negative prompt", negative)),
      loraGroup,
      group(
        "Sampling",
        h("div", { class: "row2" }, field("Steps", steps), cfgField),
        h("div", { class: "row2" }, field("Scheduler", scheduler), field("True CFG", trueCfg)),
        h(
          "div",
          { class: "field" },
          h("span", { class: "field-label" }, "Seed"),
          h(
            "div",
            { class: "seed-row" },
            seed,
            dice,
            h("label", { class: "toggle", title: "A new random seed for each invoke" }, randomToggle, h("span", null, "Random")),
          ),
        ),
        h("div", { class: "row2" }, field("Batch size", batch), field("Scale", scale)),
      ),
      group(
        "Image to image & inpaint",
        h("div", { class: "field" }, h("span", { class: "field-label" }, "Denoise strength ", strengthValue), strength),
        h("div", { class: "row2" }, field("Mask blur", maskBlur), field("Infill", infill)),
      ),
      group(
        "Generation box",
        h("div", { class: "bbox-row" }, field("Width", bw), swap, field("Height", bh)),
        h("div", { class: "chips" }, aspectButtons),
      ),
    ),
  );

  /** The option lists: the server's once its config arrived, else the current value alone. */
  function renderOptions() {
    const s = settings();
    const options = (select, list, current) => {
      const items = list || [{ name: current, label: current }];
      select.replaceChildren(...items.map((o) => h("option", { value: String(o.name) }, o.label)));
    };
    options(scheduler, serverConfig ? schedulerOptions(serverConfig.schedulers, family()) : null, s.scheduler);
    options(infill, serverConfig?.infill_methods, s.infill);
    const scales = serverConfig?.scale_choices || FALLBACK_SCALES;
    options(scale, scales.map((v) => ({ name: v, label: `${v}×` })));
    for (const [input, key] of [[steps, "steps"], [cfg, "cfg_scale"], [trueCfg, "true_cfg_scale"], [seed, "seed"], [batch, "batch_size"], [strength, "strength"], [maskBlur, "mask_blur"], [bw, "bbox_width"], [bh, "bbox_height"]]) {
      const l = limits[key];
      input.min = String(lowestAccepted(l));
      input.max = String(l.max);
      input.step = String(l.step ?? "any");
    }
    if (serverConfig?.prompt_max_chars) {
      prompt.maxLength = serverConfig.prompt_max_chars;
      negative.maxLength = serverConfig.prompt_max_chars;
    }
  }

  /**
   * Take the server's config: limits of each field, option lists, defaults (document.js).
   * @param {any} cfg the body of GET /api/v1/config
   */
  function setConfig(cfg) {
    if (!cfg || typeof cfg !== "object") return;
    serverConfig = cfg;
    applyServerConfig(cfg);
    const next = { ...FALLBACK_LIMITS };
    for (const key of Object.keys(FALLBACK_LIMITS)) if (cfg.numbers?.[key]) next[key] = cfg.numbers[key];
    limits = next;
    renderOptions();
    render();
    onConfig(cfg);
  }

  /** The model a job uses now: the chosen one, else the server's default (the first main model). */
  function chosenModel() {
    const usable = models.filter(generates);
    return mainModel(usable, settings().model) || mainModel(usable, null) || usable[0] || null;
  }
  /** The chosen model's family as the server describes it (null until the config and models are in). */
  const family = () => familyOf(serverConfig, chosenModel());
  let shownFamily = /** @type {any} */ (undefined);
  let shownModel = /** @type {any} */ (undefined); // the model the family gaps were last applied for

  function renderModels() {
    const usable = models.filter(generates);
    const chosen = chosenModel();
    modelSelect.replaceChildren(
      ...(usable.length ? [] : [h("option", { value: "" }, "Default model")]),
      ...usable.map((m) => h("option", { value: m.id, title: m.description || "" }, m.label ? `${m.name} · random weights` : m.name)),
    );
    modelSelect.value = chosen ? chosen.id : "";
    modelNote.replaceChildren();
    if (chosen && chosen.label) {
      const detail = chosen.label.includes(":") ? chosen.label.split(":").slice(1).join(":").trim() : "";
      modelNote.append(h("span", { class: "warn-badge" }, "random weights"), " ", detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : "", detail ? "." : "");
    }
    modelNote.hidden = !(chosen && chosen.label);
    const now = family();
    const familyChanged = now !== shownFamily;
    if (familyChanged) {
      shownFamily = now;
      renderOptions(); // the family's schedulers
      const label = cfgField.querySelector(".field-label");
      if (label) label.textContent = (now && now.guidance_label) || "CFG scale";
      // a guidance-distilled family reads the negative prompt only with true CFG
      const withTrueCfg = !!(now && Array.isArray(now.features) && now.features.includes("true_cfg"));
      negative.placeholder = withTrueCfg ? "What to avoid (with True CFG above 1)…" : "What to avoid…";
    }
    // a model of the same family may take what another does not (reference layers: Kontext, Qwen-Image-Edit)
    const modelKey = chosen ? `${chosen.id}:${JSON.stringify(chosen.reference_kinds)}` : null;
    if (familyChanged || modelKey !== shownModel) {
      shownModel = modelKey;
      onFamilyChange(now, chosen);
    }
  }

  function render() {
    const s = settings();
    if (!serverConfig) renderOptions(); // the fallback lists hold the current values
    const active = document.activeElement;
    const put = (input, value) => {
      if (active !== input) input.value = String(value ?? "");
    };
    put(prompt, s.prompt);
    put(negative, s.negative_prompt);
    put(steps, s.steps);
    put(cfg, s.cfg_scale);
    put(trueCfg, s.true_cfg_scale);
    put(scheduler, s.scheduler);
    put(seed, s.seed);
    randomToggle.checked = !!s.random_seed;
    seed.disabled = !!s.random_seed;
    seed.title = s.random_seed ? "Random: each invoke picks a new seed (untick Random to fix it)" : "Fixed seed";
    put(batch, s.batch_size);
    put(strength, s.strength);
    strengthValue.textContent = Number(s.strength).toFixed(2);
    put(maskBlur, s.mask_blur);
    put(infill, s.infill);
    put(scale, String(s.scale));
    const b = bbox();
    put(bw, b.width);
    put(bh, b.height);
    const locked = store.get("tool")?.bbox_aspect || "";
    for (const btn of aspectButtons) btn.classList.toggle("active", btn.dataset.aspect === locked);
    renderModels();
  }

  renderOptions();
  render();
  if (config) setConfig(config);
  else {
    const client = api || createApi();
    client.config().then(setConfig, () => {}); // without it the fallback limits stay (a toast told of the failure)
  }
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "settings" || r.id === "bbox" || r.id === "tool") || (diff.remove || []).includes("bbox")) render();
  });

  return {
    render,
    setConfig,
    /** The chosen model's family (GET /api/v1/config `families`), null while unknown. */
    get family() {
      return family();
    },
    /** The server's config once it arrived (null before). */
    get config() {
      return serverConfig;
    },
    /** @param {any[]} list models from the API */
    setModels(list) {
      models = list || [];
      renderModels();
      loras.render();
    },
    /** Pending + running items of this session, shown on the Invoke button. */
    setQueueCount(n) {
      queueBadge.hidden = !n;
      queueBadge.textContent = String(n);
      queueBadge.title = n ? `${n} in the queue (running and pending)` : "";
      invoke.classList.toggle("has-count", !!n);
    },
    /** The running item's progress on the button: a fraction in [0, 1], or null (nothing runs: no bar). @param {number | null} fraction */
    setProgress(fraction) {
      const on = typeof fraction === "number" && Number.isFinite(fraction);
      progressBar.hidden = !on;
      invoke.classList.toggle("running", on);
      if (!on) return;
      const pct = Math.round(100 * Math.min(1, Math.max(0, fraction)));
      progressFill.style.width = `${pct}%`;
      progressBar.setAttribute("aria-valuenow", String(pct));
    },
    setBusy(busy) {
      invoke.classList.toggle("busy", !!busy);
    },
    focusPrompt: () => prompt.focus(),
    destroy() {
      unsubscribe();
      loras.destroy();
    },
  };
}
