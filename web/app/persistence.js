// Persistence: which canvas is open and keeping it saved on the server. Autosave (debounced, after
// every relevant change), explicit saves and versions, open / new / save as / rename / delete, the
// startup open of the canvas this browser had open, and the save state shown in the canvas menu.
// Everything about storing a canvas lives here; the rest of the app only calls markDirty() and the
// actions returned by createPersistence().

import { ApiError } from "../api.js";
import { DEFAULT_BBOX, DEFAULT_SETTINGS, canonicalJson, migrateExtras, newLayer, recordsFromDocument } from "../document.js";
import { debounce, loadBitmap } from "../panels/dom.js";
import { DEFAULT_TOOL } from "../panels/toolbar.js";

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

/** Records of a blank canvas: box, settings, tool, one empty raster layer. */
export function blankRecords(tool, settings) {
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

/**
 * @param {{
 *   store: any, history: any, canvas: any, stage: HTMLElement, api: any, builder: any, gallery: any, canvasMenu: any,
 *   toasts: any, guard: (fn: () => any) => Promise<any>,
 *   tool: () => any, setActive: (id: string|null) => void,
 *   jobs: {replace: (entries: Iterable<[number, any]>) => void, size: number, resync: () => Promise<void>},
 *   onLoaded: () => void,
 * }} deps `jobs`: the running jobs saved with the canvas (replaced when one opens); `onLoaded`: runs
 *   after a canvas's state replaced the store (the views that do not follow the store catch up).
 */
export function createPersistence({ store, history, canvas, stage, api, builder, gallery, canvasMenu, toasts, guard, tool, setActive, jobs, onLoaded }) {
  const pixels = canvas.pixels;
  /** @type {{id: string|null, name: string}} */
  const current = { id: null, name: "Untitled canvas" };
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
  });
  if (typeof history.subscribe === "function") {
    history.subscribe((e) => {
      if (e.type === "commit" || e.type === "undo" || e.type === "redo") markDirty();
    });
  }
  // pixel edits end with a pointer release on the stage
  stage.addEventListener("pointerup", () => markDirty());
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
      onLoaded();
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
    jobs.replace(r.jobs);
    if (r.board) gallery.restoreSelection(r.board);
    lastSaved = canonicalJson(out.document);
    canvasMenu.setName(current.name);
    canvasMenu.setState("saved");
    requestAnimationFrame(() => canvas.fit());
    if (doc !== out.document) markDirty(); // save the migrated state on the server
    if (jobs.size) guard(jobs.resync); // results of jobs that finished while the canvas was closed
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
    jobs.replace([]);
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

  async function rename(name) {
    if (!current.id) await saveNow();
    const out = await api.canvas.rename(current.id, name);
    current.name = out.name;
    canvasMenu.setName(out.name);
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

  /** At startup (models and gallery loaded): reopen the canvas this browser had open, if any. */
  async function start() {
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
  }

  return { markDirty, saveNow, openCanvas, newCanvas, saveAs, rename, deleteCanvas, start, current };
}
