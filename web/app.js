// The app's composition root: creates the store, history, canvas and panels, and connects the modules
// that do the work: persistence (autosave, open, new, delete), jobs (invoke, staging, server events),
// recall (images and their parameters back onto the canvas), canvas drops and keyboard shortcuts.

import { createStore } from "./state/store.js";
import { createHistory } from "./state/history.js";
import { createCanvas } from "./canvas/index.js";
import { ApiError, createApi } from "./api.js";
import { createDocumentBuilder, loraMisfit, mainModel, referenceRect } from "./document.js";
import { missing } from "./families.js";
import { installCanvasDrops } from "./app/canvas_drops.js";
import { createHistoryButtons } from "./app/history_buttons.js";
import { createJobs } from "./app/jobs.js";
import { createLive } from "./app/live.js";
import { blankRecords, createPersistence } from "./app/persistence.js";
import { createRecall } from "./app/recall.js";
import { SHORTCUTS, SHORTCUT_GROUPS, installShortcuts, shortcutHandlers } from "./app/shortcuts.js";
import { createCanvasMenu } from "./panels/canvases.js";
import { typingTarget } from "./panels/dom.js";
import { createFirstRunHint } from "./panels/first_run.js";
import { createGallery } from "./panels/gallery.js";
import { createLayerOps, createLayersPanel } from "./panels/layers.js";
import { applyFamilyGaps } from "./panels/family_gaps.js";
import { createLayout } from "./panels/layout.js";
import { createModeBadge } from "./panels/mode_badge.js";
import { createQueuePanel } from "./panels/queue.js";
import { createSettingsPanel } from "./panels/settings.js";
import { addShortcutsButton, createShortcutsDialog } from "./panels/shortcuts_dialog.js";
import { addMemoryButton, createMemoryDialog } from "./panels/memory_dialog.js";
import { createStagingPanel } from "./panels/staging.js";
import { createUpscalePanel } from "./panels/upscale.js";
import { createToasts } from "./panels/toasts.js";
import { DEFAULT_TOOL, TOOLS, createToolbar } from "./panels/toolbar.js";
import { createViewer } from "./panels/viewer.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

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
  const stage = $("stage");
  const canvas = createCanvas({ container: stage, store, history });
  const pixels = canvas.pixels;
  stage.addEventListener("canvas-notice", (e) => toasts.info(/** @type {CustomEvent} */ (e).detail.message));

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

  /** @type {any[]} the installed models, as last listed */
  let models = [];

  // ---- panels (their actions call the modules created below, by the time anyone clicks) ----------------
  createToolbar({ el: $("toolbar"), store, selectTool });
  // what the chosen model's family cannot do is disabled where it is offered (layer buttons, negative prompt)
  let upscalePanel = null;
  const settings = createSettingsPanel({
    el: $("generate"), store, api, onInvoke: () => guard(jobs.invoke),
    onFamilyChange: (family, model) => applyFamilyGaps(document, family, model),
    onConfig: () => upscalePanel?.render(), // its factors and limits come from the same config
  });
  // the Upscale group (an upscale job of the box or the selected layer; hires fix), last in the Generate panel
  const upscaleEl = document.createElement("div");
  $("generate").querySelector(".settings-scroll")?.append(upscaleEl);
  upscalePanel = createUpscalePanel({
    el: upscaleEl, store, models: () => models, getLayer: () => store.get(getActive()) || null,
    onUpscale: (o) => guard(() => jobs.upscale(o)), config: () => settings.config,
  });
  const ops = createLayerOps({ store, history, getCanvas: () => canvas, getActive, setActive, models: () => models });
  const layersPanel = createLayersPanel({
    el: $("layers"), store, history, ops, getActive, setActive, models: () => models, guard, pixels,
    loadLayerImage: (layerId, file) =>
      guard(async () => {
        const bitmap = await createImageBitmap(file);
        // a control image fills the box; a reference keeps its shape, beside the box
        const bbox = store.get("bbox");
        await ops.replacePixels(layerId, bitmap, store.get(layerId)?.kind === "reference" ? referenceRect(bitmap, bbox) : bbox);
      }),
  });
  const queue = createQueuePanel({
    el: $("queue"), api, guard,
    onCountChange: (n) => settings.setQueueCount(n),
    onProgressChange: (fraction) => settings.setProgress(fraction),
    thumbnailUrl: (id) => api.images.thumbnailUrl(id),
    onOpenImage: (id) => guard(async () => viewer.open(await api.images.get(id))),
  });
  const gallery = createGallery({ el: $("gallery"), api, toasts, guard, onSelect: () => persistence.markDirty(), onOpen: (image, neighbours) => viewer.open(image, neighbours) });
  const viewer = createViewer({
    api,
    guard,
    actions: {
      recall: (image, params) => recall.recallParameters(params),
      recallLayers: (image, params) => recall.recallLayers(params),
      sendToCanvas: (image) => recall.sendImageToCanvas(image),
      useAsControl: (image) => recall.useAsControl(image),
      useAsReference: (image) => recall.useAsReference(image),
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
      select: (i) => jobs.setStaging({ index: i }),
      accept: () => guard(jobs.acceptStaged),
      discard: () => jobs.discardStaged(false),
      discardAll: () => jobs.discardStaged(true),
      save: () => guard(jobs.saveStaged),
    },
  });
  const canvasMenu = createCanvasMenu({
    el: $("canvas-menu"),
    api,
    guard,
    actions: {
      current: () => ({ id: persistence.current.id, name: persistence.current.name }),
      open: (id) => persistence.openCanvas(id),
      create: (name) => persistence.newCanvas(name),
      saveVersion: () => persistence.saveNow({ named: true }),
      saveAs: (name) => persistence.saveAs(name),
      rename: (name) => persistence.rename(name),
      remove: (id) => persistence.deleteCanvas(id),
    },
  });

  // the studio layout: column widths (drag handles), collapsed columns and panels, remembered per browser
  const layout = createLayout({ root: $("app") });

  const [undoBtn, redoBtn] = /** @type {HTMLButtonElement[]} */ ([$("undo"), $("redo")]);
  const undoRedo = createHistoryButtons({ history, store, stage, undoBtn, redoBtn, onChange: () => persistence.markDirty() });
  $("fit").addEventListener("click", () => canvas.fit());
  $("zoom100").addEventListener("click", () => canvas.zoomTo(1));

  // ---- recall, drops, first-run hint ---------------------------------------------------------------------
  const recall = createRecall({ store, history, api, toasts, ops, models: () => models });
  const stageWrap = $("stage-wrap");
  // the first-run hint goes at the first stroke (or any gesture on the canvas) or Invoke
  const firstRun = createFirstRunHint({ el: stageWrap });
  stage.addEventListener("pointerdown", () => firstRun.dismiss(), { capture: true });
  installCanvasDrops({ stage, stageWrap, store, api, ops, toasts, guard });
  // what Invoke will do with the box now (text to image, image to image, inpaint, outpaint)
  const modeBadge = createModeBadge({
    el: stageWrap, store, pixels,
    modelKind: () => (mainModel(models, (store.get("settings") || {}).model) || {}).kind || null,
    emptyBoxEdits: () => settings.family?.edit_from_empty_box !== false,
    // a shown reference layer is a picture to edit too (an edit model then edits it in an empty box)
    references: () => store.layers().some((l) => l.kind === "reference" && l.visible !== false && !!pixels.get(l.id)),
  });

  // ---- document, jobs (invoke, staging, server events), persistence ------------------------------------------
  /** Why a LoRA row cannot go with a job now (not installed, another family than the main model), or null. */
  const loraProblem = (row) => loraMisfit(row, models, mainModel(models, store.get("settings")?.model));
  const uiExtras = () => ({ board: gallery.selection, jobs: jobs.running.map() });
  const builder = createDocumentBuilder({
    store, pixels, api, uiExtras, loraFits: (row) => !loraProblem(row), negatives: () => !missing(settings.family, "negative_prompt"),
  });
  /** @type {ReturnType<typeof createLive> | null} live painting (created after jobs, which forwards it the server's events) */
  let live = null;
  const jobs = createJobs({
    store, api, canvas, builder, queue, gallery, settings, toasts, guard, ops, firstRun, loraProblem, statusEl: $("status"),
    onJobsChanged: () => persistence.markDirty(),
    onLayerFromAsset: (layerId, imageId, rect) => persistence.adoptAsset(layerId, imageId, rect),
    onModelsChanged: () => loadModels(),
    onServerEvent: (name, ev) => live?.onEvent(name, ev),
  });
  // live painting: the Live bar over the canvas, a live job after each change under the box
  live = createLive({
    store, history, pixels, canvas, api, builder, gallery, ops, toasts, guard, stageWrap,
    config: () => settings.config, models: () => models,
  });
  async function loadModels() {
    models = await api.models.list();
    settings.setModels(models);
    upscalePanel.render();
    firstRun.setModels(models);
    gallery.setModels(models);
    layersPanel.forceProps();
  }
  const persistence = createPersistence({
    store, history, canvas, stage, api, builder, gallery, canvasMenu, toasts, guard, tool, setActive,
    jobs: jobs.running,
    onLoaded: () => {
      jobs.afterLoad();
      undoRedo.render();
    },
  });

  // ---- shortcuts ------------------------------------------------------------------------------------------
  const shortcutsDialog = createShortcutsDialog({ shortcuts: SHORTCUTS, groups: SHORTCUT_GROUPS });
  addShortcutsButton(/** @type {HTMLElement} */ (document.querySelector(".topbar")), () => shortcutsDialog.open());
  const memoryDialog = createMemoryDialog({ api, guard });
  addMemoryButton(/** @type {HTMLElement} */ (document.querySelector(".topbar")), () => memoryDialog.open());
  installShortcuts({
    handlers: shortcutHandlers({
      invoke: () => guard(jobs.invoke),
      undo: undoRedo.undo,
      redo: undoRedo.redo,
      selectTool,
      brushSizeBy: (sign) => {
        const size = tool().brush_size;
        const stepBy = Math.max(1, Math.round(size * 0.1));
        setToolRecord({ brush_size: Math.min(1000, Math.max(1, size + sign * stepBy)) });
      },
      // a stroke (or drag) in progress: Esc cancels it, as without results; otherwise it discards this result
      stagingEscape: (e) => {
        if (!canvas.cancelGesture(e)) jobs.discardStaged(false);
      },
      stepStaging: (by) => jobs.stepStaging(by),
      acceptStaged: () => guard(jobs.acceptStaged),
      showShortcuts: () => shortcutsDialog.open(),
    }),
    isBlocked: (e) => !!document.querySelector(".dialog-backdrop") || viewer.isOpen || typingTarget(e.target),
    hasStaging: () => !!store.get("staging")?.items?.length,
  });

  // ---- start ------------------------------------------------------------------------------------------------
  const current = persistence.current;
  window.__app = { store, history, api, canvas, toasts, builder, gallery, queue, jobs: jobs.running, journal: persistence.journalStats, layout, modeBadge, live, invoke: () => guard(jobs.invoke), save: () => persistence.saveNow(), current };
  selectTool(tool().name);
  undoRedo.render();

  await Promise.all([guard(loadModels), guard(() => gallery.loadTree().then(() => gallery.reload()))]);
  await persistence.start();
  $("boot").remove();
  document.body.classList.add("ready");
}

main().catch((err) => {
  console.warn("Invoke Canvas could not start:", err);
  const boot = document.getElementById("boot");
  if (boot) boot.textContent = `Could not start: ${err && err.message ? err.message : err}`;
});
