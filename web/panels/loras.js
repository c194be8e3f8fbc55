// The LoRA stack in the Generate panel: an "Add LoRA" picker listing the installed LoRAs of the main
// model's family, and one row per added LoRA (name, on/off, weight slider -2..2 with a number box,
// remove). The rows live in `settings.loras` (not in undo history, like the other settings) and are
// saved whole in the canvas document's `ui`; the enabled rows that fit the main model go into a
// job's `params.loras`, in order. A row that no longer fits (the main model changed family, or the
// LoRA was removed) stays in the list, marked, and is not sent.
import { LORA_MAX, LORA_WEIGHT_MAX, LORA_WEIGHT_MIN, DEFAULT_SETTINGS, clampLoraWeight, loraMisfit, mainModel, normaliseLoraRows } from "../document.js";
import { h, iconButton } from "./dom.js";
import { icon } from "./icons.js";

/** A weight as the number box shows it: two decimals, three when it has them (1.00, 0.50, 0.333). @param {number} w */
export const formatWeight = (w) => (Math.abs(w * 100 - Math.round(w * 100)) < 1e-9 ? w.toFixed(2) : String(w));

/**
 * @param {{el: HTMLElement, store: any, models: () => any[]}} o
 */
export function createLoraPanel({ el, store, models }) {
  const settings = () => ({ ...DEFAULT_SETTINGS, ...(store.get("settings") || {}) });
  const rows = () => normaliseLoraRows(settings().loras);
  const setRows = (next) => store.apply({ put: [{ ...settings(), loras: normaliseLoraRows(next) }] }, { history: false });
  const patchRow = (model, patch) => setRows(rows().map((r) => (r.model === model ? { ...r, ...patch } : r)));

  const count = h("span", { class: "lora-count", "data-testid": "lora-count" });
  const picker = h("select", { class: "lora-add", "data-testid": "lora-add", "aria-label": "Add a LoRA" });
  picker.addEventListener("change", () => {
    const id = picker.value;
    picker.value = "";
    const record = models().find((m) => m.id === id && m.kind === "lora");
    if (!record || rows().some((r) => r.model === id) || rows().length >= LORA_MAX) return;
    setRows([...rows(), { model: record.id, name: record.name, weight: 1, enabled: true }]);
  });
  const list = h("ul", { class: "lora-list", "aria-label": "LoRAs, applied in this order" });
  const empty = h(
    "p",
    { class: "lora-empty", "data-testid": "lora-empty" },
    "No LoRA installed. Install one with",
    h("code", { class: "block" }, "invoke-canvas models install <file.safetensors>"),
    "or ",
    h("code", null, "POST /api/v1/models/install"),
    ", and it appears here.",
  );
  el.replaceChildren(
    h("div", { class: "group-head" }, h("h3", { class: "group-title" }, "LoRA"), count),
    picker,
    list,
    empty,
  );
  el.setAttribute("data-testid", "lora-panel");

  /** @type {Map<string, {li: HTMLElement, slider: HTMLInputElement, weight: HTMLInputElement}>} */
  const rowEls = new Map();
  let structure = "";

  function rowEl(row, misfit) {
    const toggle = /** @type {HTMLInputElement} */ (
      h("input", { type: "checkbox", checked: row.enabled, "data-testid": "lora-enabled", "aria-label": `Use ${row.name}` })
    );
    toggle.addEventListener("change", () => patchRow(row.model, { enabled: toggle.checked }));
    const slider = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "range", class: "lora-slider", min: LORA_WEIGHT_MIN, max: LORA_WEIGHT_MAX, step: 0.05, value: row.weight,
        "data-testid": "lora-weight-slider", "aria-label": `${row.name} weight`,
      })
    );
    slider.addEventListener("input", () => patchRow(row.model, { weight: clampLoraWeight(slider.value) }));
    const weight = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "number", class: "lora-weight", min: LORA_WEIGHT_MIN, max: LORA_WEIGHT_MAX, step: 0.05, value: formatWeight(row.weight),
        "data-testid": "lora-weight", "aria-label": `${row.name} weight`,
      })
    );
    weight.addEventListener("change", () => {
      if (weight.value === "" || !Number.isFinite(Number(weight.value))) {
        weight.value = String(rows().find((r) => r.model === row.model)?.weight ?? row.weight);
        return;
      }
      const w = clampLoraWeight(weight.value);
      weight.value = formatWeight(w);
      patchRow(row.model, { weight: w });
    });
    const badge = misfit
      ? h(
          "span",
          { class: "lora-badge", "data-testid": "lora-misfit", title: `${misfit.message}: not sent with a job` },
          misfit.reason === "missing" ? "not installed" : misfit.family,
        )
      : null;
    const li = h(
      "li",
      {
        class: `lora-row${row.enabled ? "" : " off"}${misfit ? " misfit" : ""}`,
        "data-testid": "lora-row",
        dataset: { loraId: row.model, enabled: String(row.enabled), fits: String(!misfit) },
        title: misfit ? `${misfit.message}: not sent with a job` : null,
      },
      h(
        "div",
        { class: "lora-line" },
        h("label", { class: "lora-toggle", title: row.enabled ? "On: sent with the job (untick to keep it here unused)" : "Off: kept here, not sent" }, toggle),
        h("span", { class: "lora-name", title: row.name }, row.name),
        badge,
        iconButton(icon("x", 14), `Remove ${row.name}`, () => setRows(rows().filter((r) => r.model !== row.model)), {
          class: "icon-btn lora-remove",
          "data-testid": "lora-remove",
        }),
      ),
      h("div", { class: "lora-line" }, slider, weight),
      misfit ? h("div", { class: "lora-note" }, misfit.note) : null,
    );
    return { li, slider, weight };
  }

  function render() {
    const all = models() || [];
    const installed = all.filter((m) => m.kind === "lora");
    const s = settings();
    const main = mainModel(all, s.model);
    const current = rows();
    const misfits = new Map(
      current.map((r) => {
        const m = loraMisfit(r, all, main);
        const record = installed.find((x) => x.id === r.model);
        const note = !m ? "" : m.reason === "missing" ? "Not installed: not sent" : `For ${record.family} models: not sent with ${main.name}`;
        return [r.model, m ? { ...m, family: record ? record.family : "", note } : null];
      }),
    );

    // the picker: LoRAs of the main model's family not in the stack yet
    const added = new Set(current.map((r) => r.model));
    const fitting = installed.filter((m) => !main || m.family === main.family);
    const choices = fitting.filter((m) => !added.has(m.id));
    const full = current.length >= LORA_MAX;
    const head = full
      ? `At most ${LORA_MAX} LoRAs`
      : choices.length
        ? "Add LoRA…"
        : fitting.length
          ? "All LoRAs of this model added"
          : `No ${main ? main.family : ""} LoRA installed`.replace("  ", " ");
    const pickerKey = JSON.stringify([head, choices.map((m) => [m.id, m.name])]);
    if (picker.dataset.key !== pickerKey) {
      picker.replaceChildren(
        h("option", { value: "" }, head),
        ...(full ? [] : choices.map((m) => h("option", { value: m.id, title: m.description || m.name }, m.name))),
      );
      picker.dataset.key = pickerKey;
      picker.value = "";
    }
    picker.disabled = full || !choices.length;
    picker.hidden = !installed.length && !current.length;
    empty.hidden = installed.length > 0 || current.length > 0;
    const on = current.filter((r) => r.enabled && !misfits.get(r.model)).length;
    count.textContent = current.length ? `${on} of ${current.length} on` : "";

    // rows: rebuilt when the stack's shape changes; weights updated in place (keeps a drag or typing)
    const key = JSON.stringify(current.map((r) => [r.model, r.name, r.enabled, misfits.get(r.model)]));
    if (key !== structure) {
      structure = key;
      rowEls.clear();
      list.replaceChildren(
        ...current.map((r) => {
          const e = rowEl(r, misfits.get(r.model));
          rowEls.set(r.model, e);
          return e.li;
        }),
      );
    }
    const active = document.activeElement;
    for (const r of current) {
      const e = rowEls.get(r.model);
      if (!e) continue;
      if (active !== e.slider) e.slider.value = String(r.weight);
      if (active !== e.weight) e.weight.value = formatWeight(r.weight);
    }
    list.hidden = !current.length;
  }

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "settings")) render();
  });
  return { render, destroy: unsubscribe };
}
