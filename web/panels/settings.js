// The Generate panel: model, prompts, sampling settings, seed, batch, img2img/inpaint settings, the
// generation box size, and the Invoke button. Writes the `settings` record (not in undo history) and
// the `bbox` record (undoable).
import { ASPECT_PRESETS, aspectRatio, bboxForAspect, snapSize } from "../canvas/geometry.js";
import { DEFAULT_BBOX, DEFAULT_SETTINGS, mainModel } from "../document.js";
import { field, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { createLoraPanel } from "./loras.js";

/** The server's scheduler names (invoke_core/schedulers.py) with readable labels. */
export const SCHEDULERS = [
  ["euler", "Euler"],
  ["euler_a", "Euler Ancestral"],
  ["euler_karras", "Euler Karras"],
  ["heun", "Heun"],
  ["lms", "LMS"],
  ["ddim", "DDIM"],
  ["ddpm", "DDPM"],
  ["pndm", "PNDM (PLMS)"],
  ["deis", "DEIS"],
  ["kdpm_2", "KDPM 2"],
  ["kdpm_2_a", "KDPM 2 Ancestral"],
  ["dpmpp_2m", "DPM++ 2M"],
  ["dpmpp_2m_karras", "DPM++ 2M Karras"],
  ["dpmpp_2m_sde", "DPM++ 2M SDE"],
  ["dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras"],
  ["dpmpp_sde", "DPM++ SDE"],
  ["dpmpp_sde_karras", "DPM++ SDE Karras"],
  ["unipc", "UniPC"],
  ["lcm", "LCM"],
];

export const INFILL_METHODS = [
  ["patchmatch", "PatchMatch"],
  ["telea", "Telea (OpenCV)"],
  ["navier_stokes", "Navier-Stokes (OpenCV)"],
  ["tile", "Tile"],
  ["color", "Solid colour"],
];

export const randomSeed = () => Math.floor(Math.random() * 2 ** 32);

/**
 * @param {{el: HTMLElement, store: any, onInvoke: () => void}} o
 */
export function createSettingsPanel({ el, store, onInvoke }) {
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
  const num = (min, max, integer = false) => (v) => {
    if (v === "" || v === null) return undefined;
    let n = Number(v);
    if (!Number.isFinite(n)) return undefined;
    if (integer) n = Math.round(n);
    return Math.min(max, Math.max(min, n));
  };

  const modelSelect = h("select", { "data-testid": "model-select", "aria-label": "Model" });
  bind(modelSelect, "model", (v) => v || null, "change");
  const modelNote = h("div", { class: "model-note", "data-testid": "model-note" });

  const prompt = bind(h("textarea", { rows: 4, "data-testid": "prompt", placeholder: "Describe what to paint…", "aria-label": "Prompt", spellcheck: "false" }), "prompt");
  const negative = bind(
    h("textarea", { rows: 2, "data-testid": "negative-prompt", placeholder: "What to avoid…", "aria-label": "Negative prompt", spellcheck: "false" }),
    "negative_prompt",
  );

  const steps = bind(h("input", { type: "number", min: 1, max: 500, step: 1, "data-testid": "steps" }), "steps", num(1, 500, true), "change");
  const cfg = bind(h("input", { type: "number", min: 0, max: 50, step: 0.5, "data-testid": "cfg" }), "cfg_scale", num(0, 50), "change");
  const scheduler = bind(
    h("select", { "data-testid": "scheduler" }, SCHEDULERS.map(([v, l]) => h("option", { value: v }, l))),
    "scheduler",
    (v) => v,
    "change",
  );

  const seed = bind(h("input", { type: "number", min: 0, max: 2 ** 32 - 1, step: 1, "data-testid": "seed" }), "seed", num(0, 2 ** 32 - 1, true), "change");
  const randomToggle = bind(h("input", { type: "checkbox", "data-testid": "seed-random" }), "random_seed", (v) => !!v, "change");
  const dice = iconButton(icon("dice"), "New random seed", () => set({ seed: randomSeed(), random_seed: false }), { "data-testid": "seed-dice" });

  const batch = bind(h("input", { type: "number", min: 1, max: 64, step: 1, "data-testid": "batch-size" }), "batch_size", num(1, 64, true), "change");
  const strength = bind(h("input", { type: "range", min: 0.01, max: 1, step: 0.01, "data-testid": "strength" }), "strength", num(0.01, 1));
  const strengthValue = h("output", { class: "range-value" });
  const maskBlur = bind(h("input", { type: "number", min: 0, max: 256, step: 1, "data-testid": "mask-blur" }), "mask_blur", num(0, 256, true), "change");
  const infill = bind(
    h("select", { "data-testid": "infill" }, INFILL_METHODS.map(([v, l]) => h("option", { value: v }, l))),
    "infill",
    (v) => v,
    "change",
  );
  const scale = bind(
    h(
      "select",
      { "data-testid": "scale", title: "Generate at this multiple of the box size, then fit back" },
      [0.5, 0.75, 1, 1.5, 2].map((v) => h("option", { value: String(v) }, `${v}×`)),
    ),
    "scale",
    (v) => Number(v),
    "change",
  );

  const bw = h("input", { type: "number", min: 8, max: 8192, step: 8, "data-testid": "bbox-width", "aria-label": "Box width" });
  const bh = h("input", { type: "number", min: 8, max: 8192, step: 8, "data-testid": "bbox-height", "aria-label": "Box height" });
  const aspectLock = () => aspectRatio(store.get("tool")?.bbox_aspect);
  /** @param {"width"|"height"} changed */
  const onSize = (changed) => {
    let width = Math.min(8192, snapSize(Number(bw.value) || 8));
    let height = Math.min(8192, snapSize(Number(bh.value) || 8));
    const ratio = aspectLock();
    if (ratio) {
      if (changed === "width") height = Math.min(8192, snapSize(width / ratio));
      else width = Math.min(8192, snapSize(height * ratio));
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
      setBBox(bboxForAspect(b, id));
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

  const group = (title, ...rows) => h("div", { class: "group" }, title ? h("h3", { class: "group-title" }, title) : null, ...rows);
  const loraGroup = h("div", { class: "group lora-group" });
  const loras = createLoraPanel({ el: loraGroup, store, models: () => models });

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
        h("div", { class: "row2" }, field("Steps", steps), field("CFG scale", cfg)),
        field("Scheduler", scheduler),
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

  function renderModels() {
    const s = settings();
    const usable = models.filter((m) => m.kind === "main" || m.kind === "inpaint");
    // no model chosen: the server uses its default (the first installed main model, else the demo)
    const chosen = mainModel(usable, s.model) || mainModel(usable, null) || usable[0] || null;
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
  }

  function render() {
    const s = settings();
    const active = document.activeElement;
    const put = (input, value) => {
      if (active !== input) input.value = String(value ?? "");
    };
    put(prompt, s.prompt);
    put(negative, s.negative_prompt);
    put(steps, s.steps);
    put(cfg, s.cfg_scale);
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

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "settings" || r.id === "bbox" || r.id === "tool") || (diff.remove || []).includes("bbox")) render();
  });

  return {
    render,
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
