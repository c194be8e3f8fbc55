// Live painting: while Live is on, each change under the box (pixels of its layers, the layers, the box,
// the prompt and model) queues a live job (POST /api/v1/live/jobs) with the chosen model's fast
// settings, debounced; its render is drawn over the box at an adjustable opacity, or beside the box (the
// sketch and the render side by side, as Krita's live docker shows them). "To layer" copies it
// into a new raster layer (one undo step), "Keep" puts it in the gallery; turning Live off cancels what
// is still queued and clears the render.
//
// The rules live elsewhere: the debounce and supersede logic and the choice of settings in
// app/live_lane.js (pure, unit-tested), the lane itself on the server (server/live.py), the settings in
// invoke_core/live.py (served by GET /config `live` and GET /models `live_defaults`); the bar is
// panels/live.js, the drawing the renderer's live slot (canvas/render.js).

import { mainModel, normaliseLoraRows } from "../document.js";
import { loadBitmap } from "../panels/dom.js";
import { createLivePanel } from "../panels/live.js";
import { LIVE_PLACEMENTS, createLiveScheduler, liveParams, liveRect, overlaps, storeChangeMatters } from "./live_lane.js";

const OPACITY_KEY = "invokeCanvas.live.opacity";
const PLACEMENT_KEY = "invokeCanvas.live.placement";
const DEFAULT_OPACITY = 0.7;
const FALLBACK_DEBOUNCE_MS = 300; // until the config says (GET /config `live.debounce_ms`)

function readOpacity() {
  try {
    const v = Number(localStorage.getItem(OPACITY_KEY));
    return localStorage.getItem(OPACITY_KEY) !== null && v >= 0 && v <= 1 ? v : DEFAULT_OPACITY;
  } catch {
    return DEFAULT_OPACITY;
  }
}

const LANE_KEY = "invokeCanvas.live.lane";

/** This tab's live lane on the server (`client` of POST /live/jobs): its newer jobs supersede only its own,
 * so two tabs (or two artists on one server) painting live take turns. Kept for the tab's life
 * (sessionStorage: a reload keeps it, a new tab gets its own). */
function laneKey() {
  try {
    const kept = sessionStorage.getItem(LANE_KEY);
    if (kept && /^[0-9a-f]{32}$/.test(kept)) return kept;
  } catch {
    /* no storage: a key for this page */
  }
  const key = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  try {
    sessionStorage.setItem(LANE_KEY, key);
  } catch {
    /* private mode */
  }
  return key;
}

function readPlacement() {
  try {
    const v = localStorage.getItem(PLACEMENT_KEY);
    return LIVE_PLACEMENTS.includes(v) ? v : LIVE_PLACEMENTS[0];
  } catch {
    return LIVE_PLACEMENTS[0];
  }
}

/**
 * @param {{store: any, history: any, pixels: any, canvas: any, api: any, builder: any, gallery: any, ops: any,
 *   toasts: any, guard: (fn: () => any) => any, stageWrap: HTMLElement, config: () => any, models: () => any[]}} o
 *   `config`: the server's config once it arrived (null before); `models`: the installed models
 */
export function createLive({ store, history, pixels, canvas, api, builder, gallery, ops, toasts, guard, stageWrap, config, models }) {
  const renderer = canvas.renderer;
  const client = laneKey();
  let opacity = readOpacity();
  let placement = readPlacement();
  // beside the box the render is seen whole; over it, at the bar's opacity
  const drawnOpacity = () => (placement === "beside" ? 1 : opacity);
  renderer.setLiveOpacity(drawnOpacity());
  /** the box each revision was sent with (where its render goes) */
  const boxes = new Map();
  /** the fast settings last sent and what they came from (the bar shows them) */
  let from = null;
  let params = null;
  /** the render on screen: {revision, item_id, image_id, url, bbox} */
  let current = null;

  async function send(revision) {
    const settings = store.get("settings") || {};
    const all = models();
    const main = mainModel(all, settings.model);
    const loras = normaliseLoraRows(settings.loras)
      .filter((r) => r.enabled)
      .map((r) => all.find((m) => m.id === r.model))
      .filter(Boolean);
    const fast = liveParams({ live: config()?.live, main, loras, settings });
    if (!fast) throw new Error("the server's live settings are not known yet");
    ({ from, params } = fast);
    const { document } = await builder.build({ forJob: true });
    document.params = { ...document.params, ...fast.params };
    boxes.set(revision, document.bbox);
    if (boxes.size > 200) boxes.delete(boxes.keys().next().value);
    return api.request("POST", "/live/jobs", { json: { document, client }, quiet: true });
  }

  function cancel(itemId) {
    api.request("POST", `/queue/items/${itemId}/cancel`, { quiet: true }).catch(() => {}); // finished meanwhile: nothing to do
  }

  const lane = createLiveScheduler({
    delayMs: () => config()?.live?.debounce_ms ?? FALLBACK_DEBOUNCE_MS,
    send,
    isBusy: () => history.inGesture,
    onOrphan: cancel,
    onChange: () => render(),
    now: () => performance.now(), // the timeline (bench/live.py: stroke end -> render on screen)
    onShow: (shown) => {
      const bbox = boxes.get(shown.revision) || store.get("bbox");
      const url = api.url(`/api/v1/images/${shown.image_id}/file`);
      renderer.setLive(url, liveRect(bbox, placement)).then(() => {
        if (!lane.on || lane.state().shown?.item_id !== shown.item_id) return; // off, or a newer one came
        current = { ...shown, url, bbox };
        lane.drawn(shown.revision);
        render();
      });
    },
  });

  const panel = createLivePanel({
    el: stageWrap,
    opacity,
    placement,
    actions: {
      toggle: () => setOn(!lane.on),
      setOpacity,
      setPlacement,
      toLayer: () => guard(toLayer),
      keep: () => guard(keep),
    },
  });

  function render() {
    const label = params && (config()?.schedulers || []).find((o) => o.name === params.scheduler)?.label;
    const settings = params ? `${label || params.scheduler} · ${params.steps} steps · CFG ${params.cfg_scale} · strength ${params.strength}` : "";
    panel.render({ ...lane.state(), shown: current, from, settings });
  }

  function setOn(on) {
    if (on && !config()?.live) {
      toasts.warning("Live painting needs the server's settings: wait for the connection");
      return;
    }
    for (const id of lane.setOn(on)) cancel(id);
    if (!on) {
      current = null;
      renderer.setLive(null, null);
    }
    render();
  }

  function setOpacity(o) {
    opacity = Math.min(1, Math.max(0, o));
    renderer.setLiveOpacity(drawnOpacity());
    panel.setOpacity(opacity);
    try {
      localStorage.setItem(OPACITY_KEY, String(opacity));
    } catch {
      /* private mode: the opacity lasts this page only */
    }
  }

  /** @param {string} p one of LIVE_PLACEMENTS */
  function setPlacement(p) {
    if (!LIVE_PLACEMENTS.includes(p)) return;
    placement = p;
    renderer.setLiveOpacity(drawnOpacity());
    if (current) renderer.setLive(current.url, liveRect(current.bbox, placement));
    panel.setPlacement(placement);
    try {
      localStorage.setItem(PLACEMENT_KEY, placement);
    } catch {
      /* private mode: the choice lasts this page only */
    }
  }

  async function toLayer() {
    if (!current) return;
    const b = current.bbox;
    const bitmap = await loadBitmap(current.url);
    // the render is not adopted as the layer's asset: a live image is deleted once superseded
    await ops.addFromBitmap(bitmap, { x: b.x, y: b.y, fit: { width: b.width, height: b.height }, name: `Live render ${current.item_id}` });
    toasts.success("Live render copied into a new raster layer");
  }

  async function keep() {
    if (!current) return;
    const board_id = gallery.selectedBoard;
    await api.request("POST", `/live/images/${current.image_id}/keep`, { json: board_id ? { board_id } : {} });
    toasts.success(`Live render kept in the gallery${board_id ? ` (${gallery.boards.get(board_id)?.name})` : ""}`);
  }

  // ---- what changes a render ----------------------------------------------------------------------------
  pixels.subscribe(({ layerId, rect }) => {
    if (!lane.on) return;
    const layer = store.get(layerId);
    if (!layer || layer.visible === false) return;
    const box = store.get("bbox");
    const moved = { x: rect.x + (layer.x || 0), y: rect.y + (layer.y || 0), width: rect.width, height: rect.height };
    // a reference layer steers the job wherever it lies; a dropped bitmap (empty rect) changes what is under the box
    if (layer.kind === "reference" || rect.width === 0 || overlaps(moved, box)) lane.change();
  });
  store.subscribe(({ diff }) => {
    if (lane.on && storeChangeMatters(diff)) lane.change();
  });
  // a stroke's end is a change of its own: the debounce counts from there, not from its last move
  history.subscribe((e) => {
    if (lane.on && e.type === "commit" && lane.state().revision > lane.state().sentRevision) lane.change();
  });

  /** After a reconnect: the items still open may have finished unheard; read them. */
  async function resync() {
    for (const id of lane.state().open) {
      // 404: a superseded item the server cleaned up (server/live.py), over as canceled
      const item = await api.request("GET", `/queue/items/${id}`, { quiet: true }).catch((err) => (err?.status === 404 ? { status: "canceled" } : null));
      if (!item || !["completed", "failed", "canceled"].includes(item.status)) continue;
      const gen = item.status === "completed" ? await api.request("GET", `/history/${item.generation_id}`, { quiet: true }).catch(() => null) : null;
      lane.status({ item_id: id, status: item.status, image_ids: gen ? gen.image_ids : [], error_message: item.error_message });
    }
  }

  render();
  return {
    /** A server event (app/jobs.js forwards them). @param {string} name @param {any} ev */
    onEvent(name, ev) {
      if (name === "queue_item_status_changed" && (ev.live || lane.state().open.includes(ev.item_id) || lane.on)) lane.status(ev);
      else if (name === "connect" && lane.on) guard(resync);
    },
    setOn,
    toggle: () => setOn(!lane.on),
    setOpacity,
    setPlacement,
    toLayer: () => guard(toLayer),
    keep: () => guard(keep),
    /** For tests and the bench: the lane's state, the render on screen, the live slot of the renderer. */
    state: () => ({ ...lane.state(), current, from, opacity, placement, drawn: { bbox: renderer.liveInfo().bbox, src: renderer.liveInfo().img?.src ?? null } }),
  };
}
