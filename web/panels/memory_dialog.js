// The memory dialog: what the model cache holds (GET /api/v1/models/cache), RAM and VRAM against their
// budgets, each loaded component with the models that share it, a "Keep loaded" switch per model
// (PATCH /api/v1/models/<id>: loaded now and at every start, evicted last) and its weight storage (fp8:
// its denoiser a byte a weight, cast per layer as it runs; nf4 and int8 through bitsandbytes, offered only
// where the server says they run: a CUDA card). Opened from the top bar.

import { h } from "./dom.js";

// labels of the weight storages (the server lists them, with whether its device runs each)
const STORAGE_LABELS = { native: "Native", nf4: "NF4" };
const FALLBACK_STORAGES = [{ name: "native", usable: true }, { name: "fp8", usable: true }];

/** "1.5 GB", "320 MB", "12 KB". @param {number} bytes */
export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Math.max(0, Number(bytes) || 0);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/**
 * The rows of the dialog from the API's answers: one per generating or control model, whether it is
 * loaded, its bytes in memory (its components, shared ones included) and where they are.
 * @param {any[]} models GET /models @param {any} cache GET /models/cache
 */
export function memoryRows(models, cache) {
  const loaded = new Set(cache?.loaded || []);
  return models.map((m) => {
    const parts = (cache?.components || []).filter((c) => (c.models || []).includes(m.id));
    return {
      id: m.id,
      name: m.name,
      loaded: loaded.has(m.id),
      bytes: parts.reduce((sum, c) => sum + c.bytes, 0),
      shared: parts.filter((c) => c.models.length > 1).map((c) => c.name),
      tiers: [...new Set(parts.map((c) => c.tier))],
      keep: !!m.keep_loaded,
      weights: m.weights || "native",
      estimate: m.memory_bytes ?? null,
      storable: m.kind !== "controlnet" && m.format === "diffusers",
    };
  });
}

/** @param {{api: any, guard: (fn: () => any) => any}} o */
export function createMemoryDialog({ api, guard }) {
  /** @type {HTMLElement | null} */
  let backdrop = null;
  const onKey = (/** @type {KeyboardEvent} */ e) => {
    if (e.key !== "Escape") return;
    e.preventDefault();
    e.stopPropagation();
    close();
  };

  function budget(label, used, total) {
    const pct = total > 0 ? Math.min(100, Math.round((100 * used) / total)) : 0;
    return h(
      "div",
      { class: "memory-budget", "data-testid": `memory-${label.toLowerCase()}` },
      h("span", null, `${label} ${formatBytes(used)} of ${formatBytes(total)}`),
      h("span", { class: "memory-bar" }, h("span", { style: { width: `${pct}%` } })),
    );
  }

  /** @param {any} r a memoryRows row @param {{name: string, usable: boolean, reason?: string}[]} storages the server's */
  function row(r, storages) {
    const toggle = h("input", {
      type: "checkbox", "data-testid": "memory-keep", "data-model": r.id, checked: r.keep,
      title: "Keep this model loaded: loaded now and at every start, evicted only when nothing else can go",
      onchange: (/** @type {Event} */ e) => guard(async () => {
        const box = /** @type {HTMLInputElement} */ (e.target);
        await api.models.keepLoaded(r.id, box.checked);
        setTimeout(() => refresh(), 500); // the worker loads it between jobs
      }),
    });
    const weights = h(
      "select",
      { "data-testid": "memory-weights", "data-model": r.id, disabled: !r.storable, title: "How its denoiser's weights are kept in memory: as loaded; fp8 (half of bf16, each layer cast as it runs); NF4 (about a quarter of bf16) or int8 (half), on a CUDA card",
        onchange: (/** @type {Event} */ e) => guard(async () => {
          await api.models.setWeights(r.id, /** @type {HTMLSelectElement} */ (e.target).value);
          await refresh();
        }) },
      ...storages.map((st) => h("option", {
        value: st.name, selected: r.weights === st.name, disabled: !st.usable, title: st.reason || "",
      }, STORAGE_LABELS[st.name] || st.name)),
    );
    const about = r.estimate ? `not loaded (about ${formatBytes(r.estimate)})` : "not loaded";
    const where = r.loaded ? `${formatBytes(r.bytes)} in ${r.tiers.join(" and ").toUpperCase()}` : about;
    const shares = r.shared.length ? ` · shares ${r.shared.join(", ")}` : "";
    return h(
      "tr",
      { "data-testid": "memory-row", "data-model": r.id, "data-loaded": String(r.loaded) },
      h("td", null, r.name),
      h("td", { class: "memory-where" }, where + shares),
      h("td", null, weights),
      h("td", null, h("label", { class: "memory-keep" }, toggle, "Keep loaded")),
    );
  }

  /** "Add models from a folder": an A1111, ComfyUI or InvokeAI models folder on the server's machine, scanned
   * and registered in place (POST /models/scan); the outcome is written under the field. */
  let scanNote = "";
  function scanForm() {
    const input = h("input", { type: "text", "data-testid": "scan-path", placeholder: "/path/to/stable-diffusion-webui/models", spellcheck: "false" });
    const note = h("div", { class: "memory-scan-note", "data-testid": "scan-note" }, scanNote);
    const run = async () => {
      const path = /** @type {HTMLInputElement} */ (input).value.trim();
      if (!path) return;
      note.textContent = scanNote = `Scanning ${path}…`;
      const { job_id } = await api.models.scan(path);
      let state;
      for (let i = 0; i < 3600; i++) {
        state = await api.models.job(job_id);
        if (state.status !== "started") break;
        await new Promise((done) => setTimeout(done, 500));
      }
      scanNote = state.status === "completed"
        ? `${state.installed.length} found and added, ${state.already.length} already here, ${state.skipped.length} skipped` +
          (state.missing.length ? `; ${state.missing.length} installed model(s) have missing files` : "")
        : `Scan failed: ${state.message}`;
      await refresh();
    };
    const button = h("button", { class: "btn small", type: "button", "data-testid": "scan-run", onclick: () => guard(run) }, "Scan");
    return h("div", { class: "memory-scan" }, h("label", null, "Add models from a folder", h("div", { class: "memory-scan-row" }, input, button)), note);
  }

  /** @type {HTMLElement | null} */
  let body = null;
  async function refresh() {
    if (!body) return;
    const [models, cache] = await Promise.all([api.models.list(), api.models.cache()]);
    if (!body) return;
    // loaded first, then the ones kept loaded, then the rest (in the server's order)
    const rows = memoryRows(models.filter((m) => m.kind !== "lora"), cache);
    const rank = (r) => (r.loaded ? 0 : r.keep ? 1 : 2);
    rows.sort((a, b) => rank(a) - rank(b));
    body.replaceChildren(
      scanForm(),
      budget("RAM", cache.ram_used, cache.ram_budget),
      ...(cache.vram_used ? [budget("VRAM", cache.vram_used, cache.vram_budget)] : []),
      h("table", { class: "memory-table" }, h("tbody", null, rows.map((r) => row(r, cache.weight_storages?.length ? cache.weight_storages : FALLBACK_STORAGES)))),
    );
  }

  function open() {
    if (backdrop) return;
    body = h("div", { class: "memory-body" }, "Reading…");
    const closeBtn = h("button", { class: "btn", "data-testid": "memory-close", onclick: () => close() }, "Close");
    const box = h(
      "div",
      { class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": "Models in memory", "data-testid": "memory-dialog",
        style: { width: "min(640px, calc(100% - 32px))", maxHeight: "calc(100vh - 64px)", overflowY: "auto" } },
      h("h3", null, "Models in memory"),
      body,
      h("div", { class: "dialog-buttons" }, closeBtn),
    );
    backdrop = h("div", { class: "dialog-backdrop", onclick: (e) => e.target === backdrop && close() }, box);
    document.body.appendChild(backdrop);
    document.addEventListener("keydown", onKey, true);
    closeBtn.focus();
    guard(refresh);
  }

  function close() {
    if (!backdrop) return;
    backdrop.remove();
    backdrop = body = null;
    document.removeEventListener("keydown", onKey, true);
  }

  return { open, close, refresh };
}

/** The top bar's memory button, before the "?" one. @param {HTMLElement} topbar @param {() => void} onClick */
export function addMemoryButton(topbar, onClick) {
  const button = h(
    "button",
    { class: "btn ghost small", type: "button", "data-testid": "memory-button", title: "Models in memory: what is loaded, keep models loaded", onclick: () => onClick() },
    "Memory",
  );
  const before = topbar.querySelector('[data-testid="shortcuts-button"]') || topbar.querySelector("#status");
  if (before) topbar.insertBefore(button, before);
  else topbar.append(button);
  return button;
}
