// Jobs: Invoke (enqueue the canvas document), the running jobs of this canvas, the staging area of
// their results (stage, accept, discard, save), the live preview in the box, and the server's events
// (queue status, progress, with the replay of events heard before a job's reply; the resync after a
// reconnect; gallery, model install and model load events).

import { normaliseLoraRows } from "../document.js";
import { loadBitmap } from "../panels/dom.js";
import { upscaleDocument, upscaledRect } from "../panels/upscale.js";

const TERMINAL = new Set(["completed", "failed", "canceled"]);

/**
 * @param {{store: any, api: any, canvas: any, builder: any, queue: any, gallery: any, settings: any,
 *   toasts: any, guard: (fn: () => any) => Promise<any>, ops: any, firstRun: {dismiss: () => void},
 *   loraProblem: (row: any) => any, statusEl: HTMLElement, onJobsChanged: () => void,
 *   onModelsChanged: () => Promise<void>, onLayerFromAsset?: (layerId: string, imageId: string, rect: any) => void}} deps
 *   `onJobsChanged`: the running jobs changed (they are saved with the canvas, so a reload elsewhere
 *   still stages their results); `onModelsChanged`: a model was installed (list the models again);
 *   `onLayerFromAsset`: an accepted result's layer holds exactly that image (nothing to upload);
 *   `onServerEvent(name, payload)`: every queue status event and (re)connect, for live painting (app/live.js).
 */
export function createJobs({ store, api, canvas, builder, queue, gallery, settings, toasts, guard, ops, firstRun, loraProblem, statusEl, onJobsChanged, onModelsChanged, onLayerFromAsset = () => {}, onServerEvent = () => {} }) {
  /** Queue items of this canvas's invokes: item id -> {bbox, generation_id} (saved in the document's `ui`). */
  let jobs = new Map();
  let invoking = false;
  /** the item whose preview shows in the box */
  let previewItem = null;

  /** The running jobs changed: save them with the canvas (a reload elsewhere still stages their results). */
  function saveJobs() {
    onJobsChanged();
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
      const out = await enqueue(document, document.bbox);
      const n = out.item_ids.length;
      toasts.info(`Queued ${n} image${n === 1 ? "" : "s"} (seed ${out.seeds[0]}${n > 1 ? `–${out.seeds[n - 1]}` : ""})`);
    } finally {
      invoking = false;
      settings.setBusy(false);
    }
  }

  /** Queue a job document; its results are staged over `rect` (the box; an upscale's: the upscaled box). */
  async function enqueue(document, rect) {
    const board_id = gallery.selectedBoard;
    const out = await api.canvas.enqueue({ document, ...(board_id ? { board_id } : {}) });
    out.item_ids.forEach((id, i) => jobs.set(id, { bbox: rect, generation_id: out.generation_ids[i] }));
    saveJobs();
    // a fast job can progress or finish before this reply arrives: replay what was heard about its items
    for (const id of out.item_ids) {
      const progress = recentProgress.get(id);
      if (progress) onProgress(progress, { replay: true });
      const ev = recentStatus.get(id);
      if (ev && ev.generation_id === jobs.get(id)?.generation_id) onStatus(ev, { replay: true });
    }
    return out;
  }

  /**
   * Queue an upscale of the box (its raster layers) or of the selected layer (panels/upscale.js); the result
   * is staged at the box's top-left corner at its full size, and accepting it keeps every pixel.
   * @param {{source: "box"|"layer", scale: number, model: string|null, refine_strength: number}} o
   */
  async function upscale(o) {
    if (invoking) return;
    invoking = true;
    settings.setBusy(true);
    try {
      const { document } = await builder.build({ forJob: true });
      let layer = null;
      if (o.source === "layer") {
        const id = store.get("selection")?.layer_id;
        const exported = id ? canvas.pixels.exportLayer(id) : null;
        if (!exported) throw new Error("Select a raster layer with a picture to upscale it");
        layer = { id, x: exported.x, y: exported.y, width: exported.width, height: exported.height };
      }
      const job = upscaleDocument(document, { ...o, layer });
      const rect = upscaledRect(job.bbox, o.scale);
      await enqueue(job, rect);
      toasts.info(`Queued an upscale ×${o.scale} to ${rect.width}×${rect.height}${o.refine_strength > 0 ? `, refined at ${o.refine_strength}` : ""}`);
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
    const layer = await ops.addFromBitmap(bitmap, { x: b.x, y: b.y, fit: { width: b.width, height: b.height }, name: `Result ${item.item_id ?? ""}`.trim() });
    // unscaled, the layer is the result image pixel for pixel: the server has it already
    if (item.image_id && bitmap.width === b.width && bitmap.height === b.height) onLayerFromAsset(layer.id, item.image_id, b);
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
  function setConnection(state, text) {
    statusEl.dataset.state = state;
    statusEl.querySelector(".status-text").textContent = text;
  }

  /** The last status event of recent items (a job's reply may arrive after its events). */
  const recentStatus = recentEvents(500);
  function onStatus(ev, { replay = false } = {}) {
    if (!replay) {
      queue.onStatus(ev);
      recentStatus.note(ev);
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
  const recentProgress = recentEvents(100);
  function onProgress(ev, { replay = false } = {}) {
    if (!replay) {
      queue.onProgress(ev);
      recentProgress.note(ev);
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
      onServerEvent("connect", null);
    },
    disconnect: () => setConnection("offline", "Reconnecting…"),
    connect_error: () => setConnection("offline", "Server unreachable"),
    queue_item_status_changed: (ev) => {
      onStatus(ev);
      onServerEvent("queue_item_status_changed", ev);
    },
    generation_progress: (ev) => onProgress(ev),
    image_added: (ev) => gallery.onImageAdded(ev.image),
    assets_deleted: (ev) => builder.tracker.drop(ev.image_ids), // a superseded live job's layers (server/live.py)
    board_changed: (ev) => gallery.onBoardChanged(ev),
    model_install_progress: (ev) => {
      if (ev.status === "completed") {
        toasts.success(ev.model_id ? `Model installed: ${ev.model_id}` : `Models from ${ev.source}: ${ev.message || "done"}`);
        guard(onModelsChanged);
      } else if (ev.status === "failed") toasts.error(`Model install failed: ${ev.message || ev.source}`);
      else toasts.info(`Installing model from ${ev.source}…`);
    },
    model_load: (ev) => {
      if (ev.status === "started") setConnection("busy", `Loading ${ev.model_id}…`);
      else setConnection("online", ev.seconds ? `${ev.model_id} loaded in ${ev.seconds.toFixed(1)} s` : "Connected");
    },
  });

  /** Step through the staged results: +1 next, -1 previous (wrapping). */
  function stepStaging(by) {
    const s = stagingRecord();
    const n = s.items.length;
    if (n) setStaging({ index: (s.index + (by < 0 ? n - 1 : 1)) % n });
  }

  return {
    invoke,
    upscale,
    /** The running jobs, as the document saves them (`ui.jobs`); replaced when a canvas opens. */
    running: {
      map: () => jobs,
      replace: (entries) => {
        jobs = new Map(entries);
      },
      get size() {
        return jobs.size;
      },
      resync,
    },
    setStaging,
    stepStaging,
    acceptStaged,
    discardStaged,
    saveStaged,
    /** After a canvas was loaded into the store: the staged image and the preview follow it. */
    afterLoad() {
      syncStagingToCanvas();
      canvas.setPreview(null, null);
    },
  };
}

/** The last event of each of the `cap` most recently heard items (item_id -> event). @param {number} cap */
function recentEvents(cap) {
  const last = new Map();
  return {
    /** @param {{item_id: number}} ev */
    note(ev) {
      last.delete(ev.item_id); // re-inserted: the newest at the end
      last.set(ev.item_id, ev);
      if (last.size > cap) last.delete(last.keys().next().value);
    },
    /** @param {number} id */
    get: (id) => last.get(id),
  };
}
