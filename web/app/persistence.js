// Persistence: which canvas is open and keeping it safe. Every change goes at once into the browser's
// journal (IndexedDB: the document and the changed tiles), then to the server in the background
// (debounced); a page going away sends what the server lacks in one keepalive request. Opening a
// canvas reconciles the journal with the server's latest version (persistence/reconcile.js). Also
// explicit saves and versions, open / new / save as / rename / delete, the startup open, and the
// save state in the canvas menu: "Saved" (the server has it), "Saved locally" (only the journal).
// The rest of the app only calls markDirty() and the actions returned by createPersistence().

import { ApiError } from "../api.js";
import { DEFAULT_BBOX, DEFAULT_SETTINGS, canonicalJson, migrateExtras, newLayer, recordsFromDocument } from "../document.js";
import { debounce, loadBitmap } from "../panels/dom.js";
import { DEFAULT_TOOL } from "../panels/toolbar.js";
import { createJournal, openJournal } from "../persistence/journal.js";
import { createJournalWriter } from "../persistence/journal_writer.js";
import { decide, mergeDocuments } from "../persistence/reconcile.js";
import { clientId, newCanvasId } from "../persistence/ids.js";
import { createTileTracker } from "../persistence/tile_tracker.js";
import { tileImage, tilePngBase64 } from "../persistence/tile_pixels.js";
import { EPHEMERAL_TYPES } from "../state/store.js";

// localStorage holds only which canvas this browser has open (and its client id): everything else (layer names, lock,
// colours, empty layers, staging, the random-seed toggle, the board, running jobs) is saved in the
// server's document, so another browser restores the same canvas. The legacy keys below are read once,
// to migrate what older versions kept here, and then removed. (Per-browser layout, collapsed panels
// and expanded board-tree nodes, stays here too: it changes nothing a canvas restores.)
const CURRENT_KEY = "invokeCanvas.current";
const LEGACY_EXTRAS_KEY = (id) => `invokeCanvas.extras.${id}`;
const LEGACY_JOBS_KEY = (id) => `invokeCanvas.jobs.${id || "new"}`;
const LEGACY_BOARD_KEY = "invokeCanvas.board";
const CLIENT_KEY = "invokeCanvas.client";
const AUTOSAVE_MS = 1000; // the server copy; the journal has every change within JOURNAL_MS
const JOURNAL_MS = 0; // the next task: a reload right after typing still finds it
const UNLOAD_MAX_TILES = 64; // a closing page's request is small (keepalive); past this the journal keeps it

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

/** A saved document's text without what the server stamps on it: equal texts need no new version. */
function savedText(doc) {
  const { writer: _w, seq: _s, ...ui } = doc.ui || {};
  return canonicalJson({ ...doc, ui });
}

/** Layer id -> the asset the server has for its pixels, in layer coordinates (a move keeps them). */
function baseFrom(doc, origins) {
  const base = new Map();
  for (const l of doc.layers || []) {
    if (!l.image_id) continue;
    const o = origins[l.id] || { x: 0, y: 0 };
    base.set(l.id, { image_id: l.image_id, lx: (l.x || 0) - o.x, ly: (l.y || 0) - o.y });
  }
  return base;
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
  const CLIENT = clientId(CLIENT_KEY);
  /** `version`: the server's version this state was built on (0: none); `onServer`: the server has the canvas */
  const current = { id: /** @type {string|null} */ (null), name: "Untitled canvas", version: 0, onServer: false };
  let journal = createJournal(null); // the real one opens in start()
  // one change counter for records and tiles: the journal holds changes up to journaledSeq, the server up to syncedSeq
  let seq = 0;
  let journaledSeq = 0;
  let syncedSeq = 0;
  let sentOnExitSeq = -1;
  /** record id -> {t: ms, seq} of its last change since the server's version (what a merge compares) */
  let times = {};
  /** @type {Map<string, {image_id: string, lx: number, ly: number}>} */
  let base = new Map();
  let lastSaved = "";
  let saving = null;
  let namedSave = false;
  let dirtyWhileSaving = false;
  let restoring = false;
  let pointerDown = false;
  let journalTimer = null;
  let lastError = false;
  const scratch = document.createElement("canvas");

  const tracker = createTileTracker({ pixels, nextSeq: () => ++seq, ignore: () => restoring });
  tracker.onChange((layerId) => noteChange([layerId]));

  const originsNow = () => Object.fromEntries(store.layers().map((l) => [l.id, pixels.origin(l.id)]));
  const assetOf = (layer) => {
    const b = base.get(layer.id);
    if (!b) return null;
    const o = pixels.origin(layer.id);
    return { image_id: b.image_id, x: b.lx + o.x, y: b.ly + o.y };
  };
  /** The document now, synchronously: layers name the server's assets, newer pixels are in tiles. */
  function documentNow(upTo) {
    const doc = builder.snapshot(assetOf);
    doc.ui = { ...doc.ui, seq: upTo };
    return doc;
  }

  function showState() {
    if (namedSave) return; // "Saving…" until the version is made
    if (syncedSeq >= seq) canvasMenu.setState("saved");
    else if (journal.available && journaledSeq >= seq) canvasMenu.setState("local");
    else canvasMenu.setState(lastError ? "error" : "dirty");
  }

  // ---- the journal: every change, at once -------------------------------------------------------------------
  function entryNow(upTo) {
    return {
      id: /** @type {string} */ (current.id), name: current.name, base_version: current.version, on_server: current.onServer,
      seq: upTo, dirty: upTo > syncedSeq, synced_seq: Math.max(0, syncedSeq), document: documentNow(upTo), origins: originsNow(), times, saved_at: Date.now(),
    };
  }

  const writer = createJournalWriter({
    getJournal: () => journal,
    tracker,
    pixels,
    hasLayer: (id) => !!store.get(id),
    entryNow: () => entryNow(seq),
    onWritten: (canvasId, upTo) => {
      if (current.id !== canvasId) return;
      localStorage.setItem(CURRENT_KEY, canvasId); // a canvas only the journal has yet reopens too
      journaledSeq = Math.max(journaledSeq, upTo);
      showState();
    },
  });

  /** Write what changed since the last write; `drop`: tiles the server has now; `now`: the page is going away. */
  function writeJournal(drop = [], { now = false } = {}) {
    if (journalTimer !== null) {
      clearTimeout(journalTimer);
      journalTimer = null;
    }
    if (!current.id) return Promise.resolve();
    return writer.write({ drop, now, canvasId: current.id });
  }

  function scheduleJournal() {
    // during a stroke the tiles change every frame: written when the pointer lifts
    if (!journal.available || journalTimer !== null || pointerDown) return;
    journalTimer = setTimeout(() => writeJournal(), JOURNAL_MS);
  }
  stage.addEventListener("pointerdown", () => { pointerDown = true; });
  const strokeEnded = () => {
    if (!pointerDown) return;
    pointerDown = false;
    if (journaledSeq < seq) writeJournal();
  };
  window.addEventListener("pointerup", strokeEnded, true);
  window.addEventListener("pointercancel", strokeEnded, true);

  // ---- changes ---------------------------------------------------------------------------------------------------
  const autosave = debounce(() => guard(() => saveNow()), AUTOSAVE_MS);
  /** A change already counted (seq bumped): remember when, journal it, sync it. */
  function noteChange(ids) {
    const t = Date.now();
    for (const id of ids) times[id] = { t, seq };
    lastError = false;
    showState();
    scheduleJournal();
    autosave();
  }
  /** Something the store does not hold changed (the board, running jobs), or anything: save. */
  function markDirty(ids = []) {
    if (restoring) return;
    seq++;
    noteChange(ids);
  }
  store.subscribe(({ diff, source }) => {
    if (source === "load" || restoring) return;
    const ids = [...(diff.put || [])].filter((r) => !EPHEMERAL_TYPES.has(r.type)).map((r) => r.id);
    for (const id of diff.remove || []) if (!EPHEMERAL_TYPES.has(id)) ids.push(id); // ephemeral records have ids = types
    if (ids.length) markDirty(ids);
  });

  /**
   * A new layer made from a server image, pixel for pixel, at `rect` (an accepted result): its pixels
   * are that asset, not changes to journal or send. Anything else (cropped, scaled) stays a change.
   */
  function adoptAsset(layerId, imageId, rect) {
    const e = pixels.exportLayer(layerId);
    if (!e || e.x !== rect.x || e.y !== rect.y || e.width !== rect.width || e.height !== rect.height) return;
    const o = pixels.origin(layerId);
    base.set(layerId, { image_id: imageId, lx: rect.x - o.x, ly: rect.y - o.y });
    builder.rememberImported(layerId, imageId);
    tracker.forget(layerId);
  }

  // ---- the server: in the background ---------------------------------------------------------------------------
  /** The server has every change up to `upTo`: forget the tiles it carried, rebase the journal. */
  function markSynced(upTo) {
    syncedSeq = Math.max(syncedSeq, upTo);
    for (const [id, v] of Object.entries(times)) if (v.seq <= upTo) delete times[id];
    const gone = tracker.syncedUpTo(upTo);
    if (journal.available) guard(() => writeJournal(gone));
    showState();
  }

  async function saveNow({ named = false } = {}) {
    if (saving) {
      dirtyWhileSaving = true;
      return saving;
    }
    if (!current.id) current.id = newCanvasId();
    namedSave = named;
    saving = (async () => {
      if (named) canvasMenu.setState("saving");
      const upTo = seq;
      const origins = originsNow(); // the build below exports every layer before its first await
      try {
        const { document } = await builder.build({ forJob: false });
        const text = savedText(document);
        if (text === lastSaved && !named && current.onServer) {
          markSynced(upTo);
          return;
        }
        const out = await api.canvas.save({
          canvas_id: current.id,
          create: true,
          ...(current.onServer ? {} : { name: current.name }),
          document: { ...document, ui: { ...document.ui, seq: upTo } },
          autosave: !named,
          base_version: current.version,
          client: CLIENT,
        });
        current.id = out.id;
        current.name = out.name;
        current.version = out.current_version;
        current.onServer = true;
        lastSaved = text;
        base = baseFrom(document, origins);
        localStorage.setItem(CURRENT_KEY, out.id);
        canvasMenu.setName(out.name);
        if (out.kept_copy) toasts.info(`This canvas was changed in another browser meanwhile: that version is kept as "${out.kept_copy.name}"`);
        if (named) toasts.success(`Saved "${out.name}" (version ${out.current_version})`);
        namedSave = false;
        markSynced(upTo);
      } catch (err) {
        lastError = true;
        namedSave = false;
        showState();
        throw err;
      }
    })().finally(() => {
      saving = null;
      namedSave = false;
      if (dirtyWhileSaving || seq > syncedSeq) {
        dirtyWhileSaving = false;
        if (seq > syncedSeq && !lastError) autosave();
      }
    });
    return saving;
  }

  /** Journal and server up to date (before another canvas opens). */
  async function settle() {
    if (journalTimer !== null || journaledSeq < seq) await writeJournal();
    if (saving) await saving.catch(() => {});
    if (seq > syncedSeq && current.id) {
      autosave.cancel();
      await saveNow();
    }
  }

  // ---- the page goes away: what the server lacks, in one small request -----------------------------------------
  function flushOnExit() {
    if (!current.id || syncedSeq >= seq) return;
    writeJournal([], { now: true }); // queued before this returns: raw pixels, no encoder to wait for
    if (sentOnExitSeq >= seq) return;
    const tiles = [];
    for (const t of tracker.dirty()) {
      if (!store.get(t.layer)) continue;
      const o = pixels.origin(t.layer);
      const tile = pixels.get(t.layer)?.tile(t.tile);
      const n = pixels.tileSize;
      tiles.push({ layer_id: t.layer, x: t.tx * n + o.x, y: t.ty * n + o.y, width: n, height: n, png: tile ? tilePngBase64(tile.canvas, scratch) : null });
      if (tiles.length > UNLOAD_MAX_TILES) return; // too much for a closing page: the journal has it
    }
    const sent = api.canvas.saveOnUnload({
      canvas_id: current.id,
      create: true,
      ...(current.onServer ? {} : { name: current.name }),
      document: documentNow(seq),
      autosave: true,
      base_version: current.version,
      client: CLIENT,
      tiles,
    });
    if (sent) {
      sentOnExitSeq = seq;
      lastSaved = ""; // the server may hold this state now: the next sync must not skip as "unchanged"
    }
  }
  window.addEventListener("pagehide", flushOnExit);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flushOnExit();
  });

  // ---- opening ----------------------------------------------------------------------------------------------------
  /**
   * Replace the whole canvas state: records, the pixels of `imports`, then the journal's `tiles`
   * over them; `origins`: the layers' offsets the tiles were recorded at.
   */
  async function loadState(records, imports, { origins = {}, tiles = [] } = {}) {
    restoring = true;
    try {
      for (const l of store.layers()) pixels.drop(l.id);
      tracker.forget();
      writer.reset();
      const keep = ["tool", "view"].map((id) => store.get(id)).filter(Boolean);
      const placed = records.map((r) => (r.type === "layer" && origins[r.id] ? { ...r, x: origins[r.id].x, y: origins[r.id].y } : r));
      const top = placed.filter((r) => r.type === "layer").sort((a, b) => a.z - b.z).at(-1);
      keep.push({ id: "selection", type: "selection", layer_id: top ? top.id : null });
      store.load([...keep, ...placed]);
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
      const kept = tiles.filter((t) => store.get(t.layer));
      const images = await Promise.all(kept.map((t) => tileImage(t.data).catch(() => undefined)));
      const restored = kept.filter((_t, i) => images[i] !== undefined);
      failed += kept.length - restored.length;
      pixels.withoutHistory(() => {
        kept.forEach((t, i) => images[i] !== undefined && pixels.ensure(t.layer).restoreTile(t.tile, images[i]));
      });
      tracker.adopt(restored);
      history.clear();
      if (failed) toasts.error(`${failed} layer image${failed === 1 ? "" : "s"} could not be loaded`);
      const layers = store.layers();
      setActive(layers.length ? layers[layers.length - 1].id : null);
      onLoaded();
    } finally {
      restoring = false;
    }
  }

  /**
   * The server's latest version, null when it has no such canvas, undefined when it cannot be
   * reached and the journal has the canvas (it opens from the journal alone).
   */
  async function loadFromServer(id, quiet, entry) {
    try {
      return await api.canvas.load(id, { quiet: quiet || !!entry });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      if (err instanceof ApiError && err.status === 0 && entry) return undefined;
      throw err;
    }
  }

  async function openCanvas(id, { quiet = false } = {}) {
    if (current.id && current.id !== id) await settle();
    const { entry, tiles } = await journal.read(id);
    const reply = await loadFromServer(id, quiet, entry);
    const offline = reply === undefined;
    const out = reply ?? null;
    if (!out && !offline && !(entry && entry.dirty)) {
      if (entry) guard(() => journal.remove(id)); // deleted elsewhere, and nothing of it is only here
      throw new ApiError(404, `canvas ${id} not found`, { code: "not_found" });
    }
    const sui = out?.document?.ui || {};
    // a tile written after the server got it (a slow write racing a sync) is not a change
    const unsynced = tiles.filter((t) => t.seq > (entry?.synced_seq ?? -1));
    const choice = offline ? "journal" : decide(
      entry && { base_version: entry.base_version, dirty: entry.dirty, seq: entry.seq },
      out && { version: out.canvas.current_version, writer: sui.writer ?? null, seq: sui.seq ?? null },
      CLIENT,
    );
    let doc;
    let origins = {};
    let useTiles = [];
    if (choice === "server") {
      // a canvas saved by an older version: what this browser kept beside it moves into the document
      const legacy = out.document.ui ? null : readJson(LEGACY_EXTRAS_KEY(id), null);
      doc = legacy ? migrateExtras(out.document, legacy, readJson(LEGACY_JOBS_KEY(id), [])) : out.document;
      removeKey(LEGACY_EXTRAS_KEY(id));
      removeKey(LEGACY_JOBS_KEY(id));
      if (entry) guard(() => journal.clearTiles(id));
    } else if (choice === "journal") {
      doc = entry.document;
      origins = entry.origins || {};
      useTiles = unsynced;
    } else {
      const older = entry.base_version > 0 ? await api.canvas.load(id, { version: entry.base_version, quiet: true }).catch(() => null) : null;
      const localTimes = Object.fromEntries(Object.entries(entry.times || {}).map(([k, v]) => [k, v.t]));
      const m = mergeDocuments({ base: older?.document ?? null, server: out.document, local: entry.document, localTimes, serverTime: Date.parse(out.canvas.updated_at) });
      doc = m.document;
      origins = Object.fromEntries(Object.entries(entry.origins || {}).filter(([k]) => m.localLayers.has(k)));
      useTiles = unsynced.filter((t) => m.localLayers.has(t.layer));
    }
    const r = recordsFromDocument(doc);
    await loadState([r.bbox, r.settings, ...(r.staging ? [r.staging] : []), ...r.layers], r.imports, { origins, tiles: useTiles });
    current.id = id;
    current.name = out?.canvas.name ?? entry.name;
    current.version = choice === "server" ? out.canvas.current_version : entry.base_version;
    current.onServer = offline ? entry.on_server : !!out;
    base = baseFrom(doc, origins);
    lastSaved = choice === "server" ? savedText(out.document) : "";
    times = choice === "server" ? {} : { ...(entry.times || {}) };
    seq = Math.max(entry?.seq ?? 0, typeof sui.seq === "number" && sui.writer === CLIENT ? sui.seq : 0, seq);
    if (choice === "merge") seq += 1; // the merge itself is a change to save
    journaledSeq = choice === "journal" ? seq : 0;
    syncedSeq = choice === "server" ? seq : -1;
    sentOnExitSeq = -1;
    lastError = false;
    localStorage.setItem(CURRENT_KEY, id);
    jobs.replace(r.jobs);
    if (r.board) gallery.restoreSelection(r.board);
    canvasMenu.setName(current.name);
    requestAnimationFrame(() => canvas.fit());
    if (choice !== "server" || doc !== out.document) {
      guard(() => writeJournal());
      autosave(); // what only this browser had goes to the server
    } else if (entry && entry.base_version !== current.version) guard(() => writeJournal());
    showState();
    if (choice === "merge") toasts.info(`"${current.name}" was changed in another browser too: both sets of changes are kept`);
    if (jobs.size) guard(jobs.resync); // results of jobs that finished while the canvas was closed
    if (!quiet) toasts.info(`Opened "${current.name}"`);
  }

  /** A blank canvas with a new id; the server has it at its first change (or now, when `create`). */
  async function blank(name, { create = false } = {}) {
    const b = blankRecords(tool(), { ...store.get("settings"), prompt: "", negative_prompt: "" });
    await loadState(b.records.filter((r) => r.id !== "tool" && r.id !== "selection"), []);
    setActive(b.layerId);
    Object.assign(current, { id: newCanvasId(), name, version: 0, onServer: false });
    base = new Map();
    times = {};
    lastSaved = "";
    seq = journaledSeq = syncedSeq = 0;
    sentOnExitSeq = -1;
    jobs.replace([]);
    canvasMenu.setName(name);
    if (create) {
      seq = 1;
      await saveNow();
    }
    showState();
    requestAnimationFrame(() => canvas.fit());
  }

  async function newCanvas(name) {
    await settle();
    await blank(name, { create: true });
    toasts.success(`New canvas "${name}"`);
  }

  async function saveAs(name) {
    await settle();
    const { document } = await builder.build({ forJob: false });
    const out = await api.canvas.save({ name, document, autosave: false, client: CLIENT });
    Object.assign(current, { id: out.id, name: out.name, version: out.current_version, onServer: true });
    base = baseFrom(document, originsNow());
    lastSaved = savedText(document);
    syncedSeq = seq;
    localStorage.setItem(CURRENT_KEY, out.id);
    canvasMenu.setName(out.name);
    guard(() => writeJournal());
    showState();
    toasts.success(`Saved as "${out.name}"`);
  }

  async function rename(name) {
    if (!current.onServer) await saveNow();
    const out = await api.canvas.rename(current.id, name);
    current.name = out.name;
    canvasMenu.setName(out.name);
  }

  async function deleteCanvas(id) {
    await api.canvas.remove(id);
    removeKey(LEGACY_EXTRAS_KEY(id));
    removeKey(LEGACY_JOBS_KEY(id));
    await journal.remove(id);
    toasts.info("Canvas deleted");
    if (id !== current.id) return;
    autosave.cancel();
    seq = syncedSeq; // nothing of the deleted canvas is left to save
    const rest = await api.canvas.list();
    if (rest.length) await openCanvas(rest[0].id, { quiet: true });
    else {
      localStorage.removeItem(CURRENT_KEY);
      await blank("Untitled canvas");
    }
  }

  /**
   * At startup (models and gallery loaded): reopen the canvas this browser had open; a browser
   * without one (a new profile, another machine, cleared storage) opens the most recently edited.
   */
  async function start() {
    journal = await openJournal();
    removeKey(LEGACY_BOARD_KEY); // the selected board is saved with the canvas now
    removeKey(LEGACY_JOBS_KEY(null));
    const candidates = [localStorage.getItem(CURRENT_KEY)];
    const list = await api.canvas.list().catch(() => []);
    if (list.length) candidates.push(list[0].id);
    for (const id of candidates) {
      if (!id) continue;
      try {
        await openCanvas(id, { quiet: true });
        return;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
        localStorage.removeItem(CURRENT_KEY);
      }
    }
    // nothing to open: the blank, untouched canvas has nothing to lose, so it says "Saved"; the
    // first change makes it "Unsaved changes", the journal then "Saved locally", the server "Saved"
    await blank(current.name);
  }

  return { markDirty, adoptAsset, saveNow, openCanvas, newCanvas, saveAs, rename, deleteCanvas, start, current, journalStats: () => writer.stats() };
}
