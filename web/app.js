// The app: wires the store, history, canvas, panels, server events, shortcuts, invoke and autosave.
// State lives in the store (state/), drawing in canvas/ and tools/, UI in panels/; this file only
// connects them.

import { createStore } from "./state/store.js";
import { createHistory } from "./state/history.js";
import { createCanvas } from "./canvas/index.js";
import { ApiError, createApi } from "./api.js";
import {
  DEFAULT_BBOX,
  DEFAULT_SETTINGS,
  canonicalJson,
  createDocumentBuilder,
  loraMisfit,
  mainModel,
  migrateExtras,
  newLayer,
  normaliseLoraRows,
  recordsFromDocument,
  regionStrength,
} from "./document.js";
import { createCanvasMenu } from "./panels/canvases.js";
import { debounce, loadBitmap, typingTarget } from "./panels/dom.js";
import { droppedImageFiles } from "./panels/drops.js";
import { createFirstRunHint } from "./panels/first_run.js";
import { createGallery } from "./panels/gallery.js";
import { icon } from "./panels/icons.js";
import { asOneStep, createLayerOps, createLayersPanel } from "./panels/layers.js";
import { createQueuePanel } from "./panels/queue.js";
import { createSettingsPanel } from "./panels/settings.js";
import { createStagingPanel } from "./panels/staging.js";
import { createToasts } from "./panels/toasts.js";
import { DEFAULT_TOOL, TOOLS, createToolbar } from "./panels/toolbar.js";
import { createViewer } from "./panels/viewer.js";

// localStorage holds only which canvas this browser has open: everything else (layer names, lock,
// colours, empty layers, staging, the random-seed toggle, the board, running jobs) is saved in the
// server's document, so another browser restores the same canvas. The legacy keys below are read once,
// to migrate what older versions kept here, and then removed. (Per-browser layout, collapsed panels
// and expanded board-tree nodes, stays here too: it changes nothing a canvas restores.)
const CURRENT_KEY = "invokeCanvas.current";
const LEGACY_EXTRAS_KEY = (id) => `invokeCanvas.extras.${id}`;
const LEGACY_JOBS_KEY = (id) => `invokeCanvas.jobs.${id || "new"}`;
const LEGACY_BOARD_KEY = "invokeCanvas.board";
const AUTOSAVE_MS = 2000;
const TERMINAL = new Set(["completed", "failed", "canceled"]);

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Records of a blank canvas: box, settings, tool, one empty raster layer. */
function blankRecords(tool, settings) {
  const layer = newLayer("raster", { z: 1, index: 1 });
  return {
    records: [
      { ...DEFAULT_BBOX },
      { ...DEFAULT_SETTINGS, ...(settings || {}), prompt: settings?.prompt ?? "", id: "settings", type: "settings" },
      { ...DEFAULT_TOOL, ...(tool || {}) },
      { id: "selection", type: "selection", layer_id: layer.id },
      layer,
    ],
    layerId: layer.id,
  };
}

function readJson(key, fallback) {
  try {
    const text = localStorage.getItem(key);
    return text ? JSON.parse(text) : fallback;
  } catch {
    return fallback;
  }
}

function removeKey(key) {
  try {
    localStorage.removeItem(key);
  } catch {
    /* storage disabled */
  }
}

async function main() {
  const toasts = createToasts($("toasts"));
  const api = createApi({ onError: (err) => toasts.error(err.message) });

  /** Run an async UI action; errors become toasts (once), never unhandled rejections. */
  function guard(fn) {
    return Promise.resolve()
      .then(fn)
      .catch((err) => {
        if (err && err.name === "AbortError") return;
        if (!(err instanceof ApiError && err.reported)) toasts.error(err && err.message ? err.message : String(err));
      });
  }
  window.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    const err = e.reason;
    if (!(err instanceof ApiError && err.reported)) toasts.error(err && err.message ? err.message : String(err));
  });

  // ---- state, history, canvas ----------------------------------------------------------------------
  const blank = blankRecords(null, null);
  const store = createStore(blank.records);
  const history = createHistory(store);
  const canvas = createCanvas({ container: $("stage"), store, history });
  const pixels = canvas.pixels;
  $("stage").addEventListener("canvas-notice", (e) => toasts.info(/** @type {CustomEvent} */ (e).detail.message));

  const tool = () => ({ ...DEFAULT_TOOL, ...(store.get("tool") || {}) });
  const setToolRecord = (patch) => store.apply({ put: [{ ...tool(), ...patch }] }, { history: false });

  /** The layer tools paint on (the `selection` record), or the top layer when that is gone. */
  function getActive() {
    const id = store.get("selection")?.layer_id;
    if (id && store.get(id)) return id;
    const layers = store.layers();
    return layers.length ? layers[layers.length - 1].id : null;
  }
  function setActive(id) {
    const sel = store.get("selection") || { id: "selection", type: "selection" };
    if (sel.layer_id !== id || !store.get("selection")) store.apply({ put: [{ ...sel, layer_id: id }] }, { history: false });
  }

  function selectTool(name) {
    if (!TOOLS.some((t) => t.name === name)) return;
    canvas.setTool(name);
  }

  // ---- models ----------------------------------------------------------------------------------------
  /** @type {any[]} */
  let models = [];

  // ---- panels ----------------------------------------------------------------------------------------
  createToolbar({ el: $("toolbar"), store, selectTool });
  const settings = createSettingsPanel({ el: $("generate"), store, api, onInvoke: () => guard(invoke) });
  const ops = createLayerOps({ store, history, getCanvas: () => canvas, getActive, setActive, models: () => models });
  const layersPanel = createLayersPanel({
    el: $("layers"),
    store,
    history,
    ops,
    getActive,
    setActive,
    models: () => models,
    guard,
    pixels,
    loadControlImage: (layerId, file) =>
      guard(async () => {
        const bitmap = await createImageBitmap(file);
        await ops.replacePixels(layerId, bitmap, store.get("bbox"));
      }),
  });
  const queue = createQueuePanel({
    el: $("queue"),
    api,
    guard,
    onCountChange: (n) => settings.setQueueCount(n),
    thumbnailUrl: (id) => api.images.thumbnailUrl(id),
    onOpenImage: (id) => guard(async () => viewer.open(await api.images.get(id))),
  });
  const gallery = createGallery({
    el: $("gallery"),
    api,
    toasts,
    guard,
    onSelect: () => markDirty(),
    onOpen: (image, neighbours) => viewer.open(image, neighbours),
  });
  const viewer = createViewer({
    api,
    guard,
    actions: {
      recall: (image, params) => recallParameters(params),
      recallLayers: (image, params) => recallLayers(params),
      sendToCanvas: (image) => sendImageToCanvas(image),
      useAsControl: (image) => useAsControl(image),
      setStarred: (id, starred) => gallery.setStarred(id, starred),
      deleteImage: (id) => gallery.deleteImage(id),
      setCover: async (image) => {
        await api.boards.patch(image.board_id, { cover_image_id: image.id });
        toasts.success(`Cover of ${gallery.boards.get(image.board_id)?.name || "the board"} set`);
        await gallery.loadTree();
      },
      boardName: (id) => (id ? gallery.boards.get(id)?.name || null : null),
    },
  });
  createStagingPanel({
    el: $("staging"),
    store,
    thumbnailUrl: (id) => api.images.thumbnailUrl(id),
    actions: {
      select: (i) => setStaging({ index: i }),
      accept: () => guard(acceptStaged),
      discard: () => discardStaged(false),
      discardAll: () => discardStaged(true),
      save: () => guard(saveStaged),
    },
  });
  const canvasMenu = createCanvasMenu({
    el: $("canvas-menu"),
    api,
    guard,
    actions: {
      current: () => ({ id: current.id, name: current.name }),
      open: (id) => openCanvas(id),
      create: (name) => newCanvas(name),
      saveVersion: () => saveNow({ named: true }),
      saveAs: (name) => saveAs(name),
      rename: async (name) => {
        if (!current.id) await saveNow();
        const out = await api.canvas.rename(current.id, name);
        current.name = out.name;
        canvasMenu.setName(out.name);
      },
      remove: (id) => deleteCanvas(id),
    },
  });

  // collapsible panels
  for (const panel of document.querySelectorAll(".panel")) {
    const header = panel.querySelector(".panel-header");
    const key = `invokeCanvas.collapsed.${panel.id}`;
    const button = document.createElement("button");
    button.className = "collapse-btn";
    button.setAttribute("aria-label", "Collapse or expand");
    header.prepend(button);
    const apply = (collapsed) => {
      panel.classList.toggle("collapsed", collapsed);
      button.textContent = collapsed ? "▸" : "▾";
      button.setAttribute("aria-expanded", String(!collapsed));
    };
    apply(localStorage.getItem(key) === "1");
    header.addEventListener("click", (e) => {
      if (e.target instanceof HTMLElement && e.target.closest("button:not(.collapse-btn), input, select")) return;
      const collapsed = !panel.classList.contains("collapsed");
      apply(collapsed);
      localStorage.setItem(key, collapsed ? "1" : "0");
    });
  }

  // undo / redo buttons
  const undoBtn = $("undo");
  const redoBtn = $("redo");
  undoBtn.append(icon("undo", 18));
  redoBtn.append(icon("redo", 18));
  const can = (v) => (typeof v === "function" ? v.call(history) : !!v);
  function renderHistoryButtons() {
    undoBtn.disabled = !can(history.canUndo);
    redoBtn.disabled = !can(history.canRedo);
  }
  undoBtn.addEventListener("click", () => undo());
  redoBtn.addEventListener("click", () => redo());
  function undo() {
    if (can(history.canUndo)) history.undo();
    afterHistory();
  }
  function redo() {
    if (can(history.canRedo)) history.redo();
    afterHistory();
  }
  function afterHistory() {
    renderHistoryButtons();
    markDirty();
  }
  $("fit").addEventListener("click", () => canvas.fit());
  $("zoom100").addEventListener("click", () => canvas.zoomTo(1));

  // ---- recall, gallery -> canvas ----------------------------------------------------------------------
  /** The parameters of a generated image (GET /images/<id>/recall) into Generate: prompts, sampling,
   * seed, model, img2img/inpaint settings, box size and the LoRA stack (LoRAs no longer installed are
   * left out, with one warning naming them). */
  function recallParameters(params) {
    if (!params || !Object.keys(params).length) {
      toasts.info("This image carries no generation parameters");
      return;
    }
    const s = { ...DEFAULT_SETTINGS, ...(store.get("settings") || {}) };
    const next = { ...s };
    for (const key of ["prompt", "negative_prompt", "steps", "cfg_scale", "scheduler", "strength", "mask_blur", "infill", "scale"]) {
      if (params[key] !== undefined && params[key] !== null) next[key] = params[key];
    }
    if (typeof params.seed === "number") {
      next.seed = params.seed;
      next.random_seed = false;
    }
    const usable = models.filter((x) => x.kind === "main" || x.kind === "inpaint");
    const byId = params.model_id ? usable.find((x) => x.id === params.model_id) : null;
    const byName = params.model_name ? usable.find((x) => x.name === params.model_name) : null;
    if (byId || byName) next.model = (byId || byName).id;
    // the LoRA stack: as the image had it (absent: none)
    const recalled = Array.isArray(params.loras) ? params.loras : [];
    const missing = recalled.filter((l) => !l || l.installed === false || !l.model);
    next.loras = normaliseLoraRows(
      recalled
        .filter((l) => l && l.installed !== false && l.model)
        .map((l) => ({ model: l.model, name: l.name || l.model, weight: l.weight ?? 1, enabled: true })),
    );
    store.apply({ put: [next] }, { history: false });
    if (params.width && params.height && params.width % 8 === 0 && params.height % 8 === 0) {
      const b = store.get("bbox");
      if (b.width !== params.width || b.height !== params.height) store.apply({ put: [{ ...b, width: params.width, height: params.height }] });
    }
    toasts.success("Parameters recalled into Generate");
    if (missing.length) {
      const names = missing.map((l) => `"${(l && (l.name || l.model)) || "unnamed"}"`).join(", ");
      toasts.warning(`Not installed, left out of the LoRA list: ${names}`);
    }
  }

  /**
   * The regional-guidance and control layers of a generated image (its recall's `regions` and
   * `controls`) added back to the canvas as ONE undo step: each with its settings and its pixels
   * (the asset the job used) at its canvas position. Items whose asset was deleted, or whose
   * ControlNet is not installed, are skipped with one warning.
   */
  async function recallLayers(params) {
    const regions = Array.isArray(params?.regions) ? params.regions : [];
    const controls = Array.isArray(params?.controls) ? params.controls : [];
    /** @type {string[]} */
    const skipped = [];
    const label = (item, kind) => `${kind} "${item.name || item.prompt || item.model_name || item.layer_id || "?"}"`;
    const usable = [
      ...regions.map((r) => ({ kind: "regional_guidance", item: r })),
      ...controls.map((c) => ({ kind: "control", item: c })),
    ].filter(({ kind, item }) => {
      const what = label(item, kind === "control" ? "control" : "region");
      if (item.available === false || !item.image_id) {
        skipped.push(`${what} (its image was deleted)`);
        return false;
      }
      if (kind === "control" && (item.installed === false || !item.model || !models.some((m) => m.id === item.model && m.kind === "controlnet"))) {
        skipped.push(`${what} (ControlNet ${item.model_name || item.model || "?"} is not installed)`);
        return false;
      }
      return true;
    });
    // fetch every picture first: a failed download adds nothing (no half step)
    const loaded = await Promise.all(usable.map(async (u) => ({ ...u, bitmap: await loadBitmap(api.images.fileUrl(u.item.image_id)) })));
    if (loaded.length) {
      await asOneStep(history, "recall layers", async () => {
        for (const { kind, item, bitmap } of loaded) {
          /** @type {Record<string, any>} */
          const extra = {};
          if (typeof item.color === "string" && /^#[0-9a-fA-F]{6}$/.test(item.color)) extra.color = item.color.toLowerCase();
          if (kind === "regional_guidance") {
            extra.prompt = item.prompt || "";
            extra.negative_prompt = item.negative_prompt || "";
            extra.strength = regionStrength(item.strength);
          } else {
            extra.control = {
              model: item.model,
              preprocessor: item.preprocessor || "none",
              weight: Number(item.weight ?? 1),
              begin: Number(item.begin ?? 0),
              end: Number(item.end ?? 1),
              mode: item.mode || "balanced",
            };
          }
          await ops.addFromBitmap(bitmap, { kind, x: Number(item.x) || 0, y: Number(item.y) || 0, name: item.name || undefined, extra });
        }
        // the box goes back where the image was made, so the recalled masks line up with it as they did
        const bb = params.bbox;
        if (Array.isArray(bb) && bb.length === 4 && bb.every(Number.isInteger) && bb[2] > 0 && bb[3] > 0 && bb[2] % 8 === 0 && bb[3] % 8 === 0) {
          store.apply({ put: [{ ...store.get("bbox"), x: bb[0], y: bb[1], width: bb[2], height: bb[3] }] });
        }
      });
      const nr = loaded.filter((l) => l.kind === "regional_guidance").length;
      const nc = loaded.length - nr;
      const parts = [nr ? `${nr} region layer${nr === 1 ? "" : "s"}` : "", nc ? `${nc} control layer${nc === 1 ? "" : "s"}` : ""].filter(Boolean);
      toasts.success(`Recalled ${parts.join(" and ")} onto the canvas`);
    }
    if (skipped.length) toasts.warning(`Skipped ${skipped.join(", ")}`);
    return loaded.length;
  }

  async function sendImageToCanvas(image) {
    const bitmap = await loadBitmap(api.url(image.url));
    const b = store.get("bbox");
    await ops.addFromBitmap(bitmap, { x: b.x, y: b.y, name: image.prompt ? image.prompt.slice(0, 40) : "Image" });
    toasts.success("Added to the canvas as a new layer");
  }

  async function useAsControl(image) {
    const bitmap = await loadBitmap(api.url(image.url));
    const b = store.get("bbox");
    await asOneStep(history, "control layer", async () => {
      const layer = ops.add("control");
      await ops.replacePixels(layer.id, bitmap, b);
    });
    toasts.success("A new control layer uses the image");
  }

  // ---- drops on the canvas: files and gallery images become layers ----------------------------------
  const stageWrap = $("stage-wrap");
  // the first-run hint goes at the first stroke (or any gesture on the canvas) or Invoke
  const firstRun = createFirstRunHint({ el: stageWrap });
  $("stage").addEventListener("pointerdown", () => firstRun.dismiss(), { capture: true });
  function canvasPoint(clientX, clientY) {
    const rect = $("stage").getBoundingClientRect();
    const view = store.get("view") || { x: 0, y: 0, scale: 1 };
    const scale = view.scale || 1;
    return { x: (clientX - rect.left - (view.x || 0)) / scale, y: (clientY - rect.top - (view.y || 0)) / scale };
  }
  stageWrap.addEventListener("dragover", (e) => {
    const types = e.dataTransfer ? [...e.dataTransfer.types] : [];
    if (types.includes("Files") || types.includes("application/x-image-id")) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      stageWrap.classList.add("dropping");
    }
  });
  stageWrap.addEventListener("dragleave", (e) => {
    if (!stageWrap.contains(/** @type {Node} */ (e.relatedTarget))) stageWrap.classList.remove("dropping");
  });
  stageWrap.addEventListener("drop", (e) => {
    stageWrap.classList.remove("dropping");
    if (!e.dataTransfer) return;
    const files = droppedImageFiles(e, toasts);
    const imageId = e.dataTransfer.getData("application/x-image-id");
    if (!files.length && !imageId) return;
    e.preventDefault();
    const at = canvasPoint(e.clientX, e.clientY);
    guard(async () => {
      if (imageId) {
        const image = await api.images.get(imageId.split(",")[0]);
        const bitmap = await loadBitmap(api.url(image.url));
        await ops.addFromBitmap(bitmap, { x: at.x - bitmap.width / 2, y: at.y - bitmap.height / 2, name: image.prompt ? image.prompt.slice(0, 40) : "Image" });
        return;
      }
      let offset = 0;
      for (const file of files) {
        let bitmap;
        try {
          bitmap = await createImageBitmap(file);
        } catch {
          throw new Error(`${file.name} is not an image this browser can read`);
        }
        await ops.addFromBitmap(bitmap, {
          x: Math.round(at.x - bitmap.width / 2 + offset),
          y: Math.round(at.y - bitmap.height / 2 + offset),
          name: file.name.replace(/\.[a-z0-9]+$/i, "").slice(0, 60) || "Image",
        });
        offset += 16;
      }
      toasts.success(files.length === 1 ? `Added ${files[0].name} as a layer` : `Added ${files.length} layers`);
    });
  });
  // a file dropped anywhere else must not make the browser navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  // ---- document, invoke, staging -------------------------------------------------------------------------
  /** Queue items of this canvas's invokes: item id -> {bbox, generation_id} (saved in the document's `ui`). */
  let jobs = new Map();
  /** Why a LoRA row cannot go with a job now (not installed, another family than the main model), or null. */
  const loraProblem = (row) => loraMisfit(row, models, mainModel(models, store.get("settings")?.model));
  const builder = createDocumentBuilder({
    store,
    pixels,
    api,
    uiExtras: () => ({ board: gallery.selection, jobs }),
    loraFits: (row) => !loraProblem(row),
  });
  /** @type {{id: string|null, name: string}} */
  const current = { id: null, name: "Untitled canvas" };
  let invoking = false;
  /** the item whose preview shows in the box */
  let previewItem = null;

  /** The running jobs changed: save them with the canvas (a reload elsewhere still stages their results). */
  function saveJobs() {
    markDirty();
  }

  async function invoke() {
    if (invoking) return;
    invoking = true;
    firstRun.dismiss();
    settings.setBusy(true);
    try {
      const b = store.get("bbox");
      for (const [name, v] of [["width", b.width], ["height", b.height]]) {
        if (!(v > 0 && v % 8 === 0)) throw new Error(`The box ${name} ${v} is not a multiple of 8: use ${Math.max(8, Math.round(v / 8) * 8)}`);
      }
      const { document } = await builder.build({ forJob: true });
      const unsent = normaliseLoraRows(store.get("settings")?.loras).filter((r) => r.enabled && loraProblem(r));
      if (unsent.length) toasts.warning(`Not sent: ${unsent.map((r) => loraProblem(r).message).join("; ")}`);
      const board_id = gallery.selectedBoard;
      const out = await api.canvas.enqueue({ document, ...(board_id ? { board_id } : {}) });
      out.item_ids.forEach((id, i) => jobs.set(id, { bbox: document.bbox, generation_id: out.generation_ids[i] }));
      saveJobs();
      // a fast job can progress or finish before this reply arrives: replay what was heard about its items
      for (const id of out.item_ids) {
        const progress = recentProgress.get(id);
        if (progress) onProgress(progress, { replay: true });
        const ev = recentStatus.get(id);
        if (ev && ev.generation_id === jobs.get(id)?.generation_id) onStatus(ev, { replay: true });
      }
      const n = out.item_ids.length;
      toasts.info(`Queued ${n} image${n === 1 ? "" : "s"} (seed ${out.seeds[0]}${n > 1 ? `–${out.seeds[n - 1]}` : ""})`);
    } finally {
      invoking = false;
      settings.setBusy(false);
    }
  }

  function stagingRecord() {
    return store.get("staging") || { id: "staging", type: "staging", items: [], index: 0, bbox: null };
  }
  function setStaging(patch) {
    const s = { ...stagingRecord(), ...patch };
    s.index = Math.max(0, Math.min(s.index || 0, Math.max(0, s.items.length - 1)));
    s.bbox = s.items[s.index] ? s.items[s.index].bbox : null;
    store.apply({ put: [s] }, { history: false });
  }
  function syncStagingToCanvas() {
    const s = store.get("staging");
    const item = s && s.items && s.items[s.index || 0];
    if (item) canvas.setStaging(api.url(item.url), item.bbox);
    else canvas.setStaging(null, null);
  }
  store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "staging") || (diff.remove || []).includes("staging")) syncStagingToCanvas();
  });

  function stage(itemId, imageIds, bbox) {
    const s = stagingRecord();
    const known = new Set(s.items.map((i) => i.image_id));
    const fresh = imageIds
      .filter((id) => !known.has(id))
      .map((id) => ({ image_id: id, url: `/api/v1/images/${id}/file`, item_id: itemId, bbox }));
    if (!fresh.length) return;
    const wasEmpty = s.items.length === 0;
    setStaging({ items: [...s.items, ...fresh], index: wasEmpty ? 0 : s.index });
  }

  async function acceptStaged() {
    const s = stagingRecord();
    const item = s.items[s.index];
    if (!item) return;
    const bitmap = await loadBitmap(api.url(item.url));
    const b = item.bbox;
    await ops.addFromBitmap(bitmap, { x: b.x, y: b.y, fit: { width: b.width, height: b.height }, name: `Result ${item.item_id ?? ""}`.trim() });
    setStaging({ items: [], index: 0 });
    toasts.success("Accepted as a new raster layer");
  }

  function discardStaged(all) {
    const s = stagingRecord();
    if (all) setStaging({ items: [], index: 0 });
    else setStaging({ items: s.items.filter((_, i) => i !== s.index), index: s.index >= s.items.length - 1 ? s.index - 1 : s.index });
  }

  async function saveStaged() {
    const s = stagingRecord();
    const item = s.items[s.index];
    if (!item) return;
    // Every result is in the gallery already: Save files it in the selected board (a star is the user's own choice).
    const board_id = gallery.selectedBoard;
    if (board_id) {
      const image = await api.images.patch(item.image_id, { board_id });
      if (image && image.id) gallery.patchLocal(image);
    }
    setStaging({ items: s.items.map((x, i) => (i === s.index ? { ...x, saved: true } : x)) });
    toasts.success(`Saved to the gallery${board_id ? ` (${gallery.boards.get(board_id)?.name})` : ""}`);
  }

  // ---- server events ------------------------------------------------------------------------------------
  const statusEl = $("status");
  function setConnection(state, text) {
    statusEl.dataset.state = state;
    statusEl.querySelector(".status-text").textContent = text;
  }

  /** The last status event of recent items (a job's reply may arrive after its events). */
  const recentStatus = new Map();
  function onStatus(ev, { replay = false } = {}) {
    if (!replay) {
      queue.onStatus(ev);
      recentStatus.delete(ev.item_id);
      recentStatus.set(ev.item_id, ev);
      if (recentStatus.size > 500) recentStatus.delete(recentStatus.keys().next().value);
    }
    const job = jobs.get(ev.item_id);
    if (!job || (job.generation_id && ev.generation_id && job.generation_id !== ev.generation_id)) return;
    if (ev.status === "in_progress") previewItem = ev.item_id;
    if (!TERMINAL.has(ev.status)) return;
    if (previewItem === ev.item_id || previewItem === null) {
      canvas.setPreview(null, null);
      previewItem = null;
    }
    if (ev.status === "completed" && ev.image_ids && ev.image_ids.length) stage(ev.item_id, ev.image_ids, job.bbox);
    if (ev.status === "failed") toasts.error(`Generation failed: ${ev.error_message || ev.error_type || "unknown error"}`);
    jobs.delete(ev.item_id);
    saveJobs();
  }

  /** The last progress event of recent items (a job's reply may arrive after its first steps). */
  const recentProgress = new Map();
  function onProgress(ev, { replay = false } = {}) {
    if (!replay) {
      queue.onProgress(ev);
      recentProgress.delete(ev.item_id);
      recentProgress.set(ev.item_id, ev);
      if (recentProgress.size > 100) recentProgress.delete(recentProgress.keys().next().value);
    }
    if (!jobs.has(ev.item_id)) return;
    const status = recentStatus.get(ev.item_id)?.status;
    if (status && TERMINAL.has(status)) return; // finished meanwhile: no stale preview
    previewItem = ev.item_id;
    if (ev.preview && ev.bbox) {
      const [x, y, width, height] = ev.bbox;
      canvas.setPreview(ev.preview, { x, y, width, height });
    }
  }

  /** After a (re)connect: re-read the queue; stage results of this canvas's jobs that finished meanwhile. */
  async function resync() {
    await queue.reload();
    const before = jobs.size;
    for (const [itemId, job] of [...jobs]) {
      const item = queue.items.get(itemId);
      if (!item || (item.generation_id && job.generation_id && item.generation_id !== job.generation_id)) {
        jobs.delete(itemId);
        continue;
      }
      if (!TERMINAL.has(item.status)) continue;
      if (item.status === "completed") {
        const gen = await api.request("GET", `/history/${encodeURIComponent(job.generation_id)}`, { quiet: true }).catch(() => null);
        if (gen && gen.image_ids && gen.image_ids.length) stage(itemId, gen.image_ids, job.bbox);
      }
      jobs.delete(itemId);
    }
    if (jobs.size !== before) saveJobs(); // nothing changed (a blank canvas, a reconnect): nothing to save
  }

  api.connect({
    connect: () => {
      setConnection("online", "Connected");
      guard(resync);
    },
    disconnect: () => setConnection("offline", "Reconnecting…"),
    connect_error: () => setConnection("offline", "Server unreachable"),
    queue_item_status_changed: (ev) => onStatus(ev),
    generation_progress: (ev) => onProgress(ev),
    image_added: (ev) => gallery.onImageAdded(ev.image),
    board_changed: (ev) => gallery.onBoardChanged(ev),
    model_install_progress: (ev) => {
      if (ev.status === "completed") {
        toasts.success(`Model installed: ${ev.model_id}`);
        guard(loadModels);
      } else if (ev.status === "failed") toasts.error(`Model install failed: ${ev.message || ev.source}`);
      else toasts.info(`Installing model from ${ev.source}…`);
    },
    model_load: (ev) => {
      if (ev.status === "started") setConnection("busy", `Loading ${ev.model_id}…`);
      else setConnection("online", ev.seconds ? `${ev.model_id} loaded in ${ev.seconds.toFixed(1)} s` : "Connected");
    },
  });

  async function loadModels() {
    models = await api.models.list();
    settings.setModels(models);
    firstRun.setModels(models);
    gallery.setModels(models);
    layersPanel.forceProps();
  }

  // ---- persistence: autosave, open, new, delete ------------------------------------------------------------
  let lastSaved = "";
  let saving = null;
  let dirtyWhileSaving = false;
  let restoring = false;

  async function saveNow({ named = false } = {}) {
    if (saving) {
      dirtyWhileSaving = true;
      return saving;
    }
    saving = (async () => {
      canvasMenu.setState("saving");
      try {
        const { document } = await builder.build({ forJob: false });
        const text = canonicalJson(document);
        if (text === lastSaved && !named && current.id) {
          canvasMenu.setState("saved");
          return;
        }
        const out = await api.canvas.save({
          ...(current.id ? { canvas_id: current.id } : { name: current.name }),
          document,
          autosave: !named,
        });
        current.id = out.id;
        current.name = out.name;
        lastSaved = text;
        localStorage.setItem(CURRENT_KEY, out.id);
        canvasMenu.setName(out.name);
        canvasMenu.setState("saved");
        if (named) toasts.success(`Saved "${out.name}" (version ${out.current_version})`);
      } catch (err) {
        canvasMenu.setState("error");
        throw err;
      }
    })().finally(() => {
      saving = null;
      if (dirtyWhileSaving) {
        dirtyWhileSaving = false;
        autosave();
      }
    });
    return saving;
  }

  const autosave = debounce(() => guard(() => saveNow()), AUTOSAVE_MS);
  function markDirty() {
    if (restoring) return;
    canvasMenu.setState("dirty");
    autosave();
  }
  store.subscribe(({ diff, source }) => {
    if (source === "load" || restoring) return;
    const relevant = [...(diff.put || [])].some((r) => !["view", "tool", "selection"].includes(r.type)) || (diff.remove || []).length;
    if (relevant) markDirty();
    renderHistoryButtons();
  });
  if (typeof history.subscribe === "function") {
    history.subscribe((e) => {
      renderHistoryButtons();
      if (e.type === "commit" || e.type === "undo" || e.type === "redo") markDirty();
    });
  }
  // pixel edits end with a pointer release on the stage
  $("stage").addEventListener("pointerup", () => {
    renderHistoryButtons();
    markDirty();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden" && autosave.pending()) autosave.flush();
  });

  /** Replace the whole canvas state (records and pixels). */
  async function loadState(records, imports) {
    restoring = true;
    try {
      for (const l of store.layers()) pixels.drop(l.id);
      const keep = ["tool", "view"].map((id) => store.get(id)).filter(Boolean);
      const top = records.filter((r) => r.type === "layer").sort((a, b) => a.z - b.z).at(-1);
      keep.push({ id: "selection", type: "selection", layer_id: top ? top.id : null });
      store.load([...keep, ...records]);
      let failed = 0;
      await Promise.all(
        imports.map(async (imp) => {
          try {
            const bitmap = await loadBitmap(api.images.fileUrl(imp.image_id));
            pixels.importLayer(imp.layer_id, bitmap, imp.x, imp.y, { replace: true, history: false });
            builder.rememberImported(imp.layer_id, imp.image_id);
          } catch {
            failed += 1;
          }
        }),
      );
      history.clear();
      if (failed) toasts.error(`${failed} layer image${failed === 1 ? "" : "s"} could not be loaded`);
      const layers = store.layers();
      setActive(layers.length ? layers[layers.length - 1].id : null);
      syncStagingToCanvas();
      canvas.setPreview(null, null);
      renderHistoryButtons();
    } finally {
      restoring = false;
    }
  }

  async function openCanvas(id, { quiet = false } = {}) {
    if (current.id && current.id !== id && autosave.pending()) {
      autosave.cancel();
      await saveNow();
    }
    const out = await api.canvas.load(id, { quiet });
    // a canvas saved by an older version: what this browser kept beside it moves into the document
    const legacy = out.document.ui ? null : readJson(LEGACY_EXTRAS_KEY(id), null);
    const doc = legacy ? migrateExtras(out.document, legacy, readJson(LEGACY_JOBS_KEY(id), [])) : out.document;
    removeKey(LEGACY_EXTRAS_KEY(id));
    removeKey(LEGACY_JOBS_KEY(id));
    const r = recordsFromDocument(doc);
    await loadState([r.bbox, r.settings, ...(r.staging ? [r.staging] : []), ...r.layers], r.imports);
    current.id = out.canvas.id;
    current.name = out.canvas.name;
    localStorage.setItem(CURRENT_KEY, current.id);
    jobs = new Map(r.jobs);
    if (r.board) gallery.restoreSelection(r.board);
    lastSaved = canonicalJson(out.document);
    canvasMenu.setName(current.name);
    canvasMenu.setState("saved");
    requestAnimationFrame(() => canvas.fit());
    if (doc !== out.document) markDirty(); // save the migrated state on the server
    if (jobs.size) guard(resync); // results of jobs that finished while the canvas was closed
    if (!quiet) toasts.info(`Opened "${current.name}"`);
  }

  async function newCanvas(name) {
    if (autosave.pending()) {
      autosave.cancel();
      await saveNow();
    }
    const b = blankRecords(tool(), { ...store.get("settings"), prompt: "", negative_prompt: "" });
    await loadState(b.records.filter((r) => r.id !== "tool" && r.id !== "selection"), []);
    setActive(b.layerId);
    current.id = null;
    current.name = name;
    jobs = new Map();
    lastSaved = "";
    await saveNow();
    requestAnimationFrame(() => canvas.fit());
    toasts.success(`New canvas "${name}"`);
  }

  async function saveAs(name) {
    if (autosave.pending()) autosave.cancel();
    await saveNow();
    const { document } = await builder.build({ forJob: false });
    const out = await api.canvas.save({ name, document, autosave: false });
    current.id = out.id;
    current.name = out.name;
    lastSaved = canonicalJson(document);
    localStorage.setItem(CURRENT_KEY, out.id);
    canvasMenu.setName(out.name);
    canvasMenu.setState("saved");
    toasts.success(`Saved as "${out.name}"`);
  }

  async function deleteCanvas(id) {
    await api.canvas.remove(id);
    removeKey(LEGACY_EXTRAS_KEY(id));
    removeKey(LEGACY_JOBS_KEY(id));
    toasts.info("Canvas deleted");
    if (id !== current.id) return;
    autosave.cancel();
    const rest = await api.canvas.list();
    if (rest.length) await openCanvas(rest[0].id, { quiet: true });
    else {
      localStorage.removeItem(CURRENT_KEY);
      current.id = null;
      await newCanvas("Untitled canvas");
    }
  }

  // ---- shortcuts ------------------------------------------------------------------------------------------
  // Capture phase: keys handled here (tools, staging arrows, undo) do not also reach the canvas's
  // tool handlers (the move tool would nudge with the arrows). Space-pan is the canvas's; Esc is the canvas's
  // (it cancels a gesture) unless results are staged: then a gesture in progress is cancelled, else a result discarded.
  const KEY_TOOLS = Object.fromEntries(TOOLS.map((t) => [t.key.toLowerCase(), t.name]));
  window.addEventListener(
    "keydown",
    (e) => {
      const mod = e.ctrlKey || e.metaKey;
      const take = () => {
        e.preventDefault();
        e.stopPropagation();
      };
      if (mod && e.key === "Enter") {
        take();
        guard(invoke);
        return;
      }
      if (document.querySelector(".dialog-backdrop") || viewer.isOpen) return;
      if (typingTarget(e.target)) return;
      const key = e.key.toLowerCase();
      if (mod && !e.altKey && key === "z") {
        take();
        if (e.shiftKey) redo();
        else undo();
        return;
      }
      if (mod && !e.altKey && key === "y") {
        take();
        redo();
        return;
      }
      if (mod || e.altKey) return;
      const staging = store.get("staging");
      if (staging && staging.items && staging.items.length) {
        if (e.key === "Escape" && !e.shiftKey) {
          take(); // handled here only: the canvas's own Esc must not run a second time
          // a stroke (or drag) in progress: Esc cancels it, as without results; otherwise it discards this result
          if (!canvas.cancelGesture(e)) discardStaged(false);
          return;
        }
        if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
          take();
          const n = staging.items.length;
          setStaging({ index: (staging.index + (e.key === "ArrowLeft" ? n - 1 : 1)) % n });
          return;
        }
        if (e.key === "Enter" && !(e.target instanceof HTMLButtonElement)) {
          take();
          guard(acceptStaged);
          return;
        }
      }
      if (KEY_TOOLS[key] && !e.shiftKey) {
        take();
        if (!e.repeat) selectTool(KEY_TOOLS[key]);
        return;
      }
      if (e.key === "[" || e.key === "]") {
        take();
        const size = tool().brush_size;
        const stepBy = Math.max(1, Math.round(size * 0.1));
        setToolRecord({ brush_size: Math.min(1000, Math.max(1, size + (e.key === "]" ? stepBy : -stepBy))) });
      }
    },
    true,
  );

  // ---- start ------------------------------------------------------------------------------------------------
  window.__app = { store, history, api, canvas, toasts, builder, gallery, queue, invoke: () => guard(invoke), save: () => saveNow(), current };
  selectTool(tool().name);
  renderHistoryButtons();

  await Promise.all([guard(loadModels), guard(() => gallery.loadTree().then(() => gallery.reload()))]);
  removeKey(LEGACY_BOARD_KEY); // the selected board is saved with the canvas now
  removeKey(LEGACY_JOBS_KEY(null));
  const saved = localStorage.getItem(CURRENT_KEY);
  if (saved) {
    try {
      await openCanvas(saved, { quiet: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        localStorage.removeItem(CURRENT_KEY);
        canvasMenu.setName(current.name);
      } else throw err;
    }
  } else {
    // a first visit: the blank, untouched canvas has nothing to lose, so it says "Saved"; the first
    // change makes it "Unsaved changes" and autosave then creates it on the server
    canvasMenu.setName(current.name);
    canvasMenu.setState("saved");
    requestAnimationFrame(() => canvas.fit());
  }
  $("boot").remove();
  document.body.classList.add("ready");
}

main().catch((err) => {
  console.warn("Invoke Canvas could not start:", err);
  const boot = document.getElementById("boot");
  if (boot) boot.textContent = `Could not start: ${err && err.message ? err.message : err}`;
});
