// Live painting's pure parts: which fast settings a live job runs with (from the server's config and
// models, never hard-coded here), and the scheduler that turns a stream of canvas changes into live jobs
// (debounce, one request at a time, supersede, only ever showing a newer render). No DOM, no timers of
// its own (injected): unit-tested in web/tests/live_lane.test.js.

/**
 * The params a live job overrides: the fast settings of the first that has its own among the enabled
 * LoRAs (an LCM or Lightning LoRA makes any model fast), the main model (`live_defaults`, GET /models),
 * else its family (GET /config `live.families`); a fixed seed (the artist's own when the seed is fixed,
 * else the server's live seed) and one image. Null while the config or the model is unknown.
 * @param {{live: any, main: any, loras?: any[], settings: any}} o
 *   `live`: GET /config `live`; `main`: the main model's record; `loras`: the records of the enabled LoRAs
 * @returns {null | {params: {steps: number, cfg_scale: number, scheduler: string, strength: number, seed: number, batch_size: 1}, from: string}}
 */
export function liveParams({ live, main, loras = [], settings }) {
  if (!live || !main) return null;
  const lora = loras.find((r) => r && r.live_defaults);
  const fast = (lora && lora.live_defaults) || main.live_defaults || (live.families || {})[main.family] || null;
  if (!fast) return null;
  const from = lora && lora.live_defaults ? `LoRA ${lora.name || lora.id}` : main.live_defaults ? main.name || main.id : `${main.family} defaults`;
  const s = settings || {};
  const seed = s.random_seed === false && Number.isInteger(s.seed) ? s.seed : live.seed;
  return {
    params: { steps: fast.steps, cfg_scale: fast.cfg_scale, scheduler: fast.scheduler, strength: fast.strength, seed, batch_size: 1 },
    from,
  };
}

/** Does a change of the store matter to a live render (the layers, the box, the prompt and model)? */
export function storeChangeMatters(diff) {
  const put = (diff && diff.put) || [];
  const removed = (diff && diff.remove) || [];
  return put.some((r) => r && (r.type === "layer" || r.id === "bbox" || r.id === "settings")) || removed.length > 0;
}

/** Do two rectangles overlap (empty ones never do)? */
export function overlaps(a, b) {
  if (!a || !b || a.width <= 0 || a.height <= 0 || b.width <= 0 || b.height <= 0) return false;
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Where the render is drawn: over the box (at the bar's opacity), or beside it, to its right (whole). */
export const LIVE_PLACEMENTS = ["over", "beside"];
/** Canvas pixels between the box and a render drawn beside it. */
export const BESIDE_GAP = 16;

/**
 * The rectangle the render of a job sent with `bbox` is drawn in, for a placement (LIVE_PLACEMENTS).
 * @param {{x: number, y: number, width: number, height: number}} bbox @param {string} placement
 */
export function liveRect(bbox, placement) {
  if (placement !== "beside") return bbox;
  return { x: bbox.x + bbox.width + BESIDE_GAP, y: bbox.y, width: bbox.width, height: bbox.height };
}

const TERMINAL = new Set(["completed", "failed", "canceled"]);

/**
 * Changes in, live jobs out. Each change bumps the revision; `delayMs` after the last one (and once no
 * gesture is open: `isBusy`) the state is sent with `send(revision)` -> Promise<{item_id}>, never two
 * requests at once (a change during one is sent when it returns). The server cancels the older items
 * (server/live.py); here a finished item's render is shown only when it is of a newer revision than the
 * one on screen, so the screen ends on the render of the last state sent.
 * @param {{delayMs: number | (() => number), send: (revision: number) => Promise<{item_id: number}>,
 *   isBusy?: () => boolean, onShow?: (shown: {revision: number, item_id: number, image_id: string}) => void,
 *   onChange?: () => void, onOrphan?: (itemId: number) => void,
 *   timers?: {set: (fn: () => void, ms: number) => any, clear: (t: any) => void}, now?: () => number}} o
 *   `onOrphan`: an item queued for a state no longer wanted (Live was turned off while it was sent): cancel it.
 */
export function createLiveScheduler({
  delayMs, send, isBusy = () => false, onShow = () => {}, onChange = () => {}, onOrphan = () => {},
  timers = { set: (fn, ms) => setTimeout(fn, ms), clear: (t) => clearTimeout(t) }, now = () => Date.now(),
}) {
  let on = false;
  let revision = 0;
  let sentRevision = 0;
  let timer = null;
  let inFlight = false;
  let error = null;
  /** item id -> {revision, sentAt} of the items sent and not finished */
  const open = new Map();
  /** status events of items whose request has not returned yet (a fast job can finish first) */
  const early = new Map();
  /** @type {null | {revision: number, item_id: number, image_id: string}} */
  let shown = null;
  const counts = { sent: 0, completed: 0, canceled: 0, failed: 0 };
  /** per revision sent: when it changed last, was sent, queued and shown (the `now` clock) */
  const timeline = new Map();
  let changedAt = 0;

  function arm() {
    if (timer !== null) timers.clear(timer);
    timer = timers.set(fire, typeof delayMs === "function" ? delayMs() : delayMs);
  }

  function fire() {
    timer = null;
    if (!on) return;
    if (isBusy()) return arm(); // a stroke in progress: its end is the change that counts
    if (inFlight || revision === sentRevision) return; // sent when the request returns / nothing new
    dispatch();
  }

  function dispatch() {
    const rev = revision;
    sentRevision = rev;
    inFlight = true;
    error = null;
    counts.sent += 1;
    timeline.set(rev, { revision: rev, changedAt, sentAt: now(), queuedAt: null, shownAt: null, item_id: null });
    while (timeline.size > 200) timeline.delete(timeline.keys().next().value);
    onChange();
    Promise.resolve()
      .then(() => send(rev))
      .then((out) => {
        const t = timeline.get(rev);
        if (t) Object.assign(t, { queuedAt: now(), item_id: out.item_id });
        if (!on) return onOrphan(out.item_id);
        open.set(out.item_id, { revision: rev });
        const ev = early.get(out.item_id);
        early.delete(out.item_id);
        if (ev) status(ev);
      })
      .catch((err) => {
        error = err;
      })
      .finally(() => {
        inFlight = false;
        early.clear();
        onChange();
        if (on && revision !== sentRevision && timer === null) fire();
      });
  }

  /** A queue item's status event (`queue_item_status_changed`). */
  function status(ev) {
    const entry = open.get(ev.item_id);
    if (!entry) {
      if (on && inFlight && ev.live !== false) {
        early.set(ev.item_id, ev);
        while (early.size > 50) early.delete(early.keys().next().value);
      }
      return;
    }
    if (!TERMINAL.has(ev.status)) return onChange();
    open.delete(ev.item_id);
    counts[ev.status] += 1;
    const image = ev.image_ids && ev.image_ids[0];
    if (ev.status === "completed" && image && (!shown || entry.revision > shown.revision)) {
      shown = { revision: entry.revision, item_id: ev.item_id, image_id: image };
      onShow(shown);
    }
    if (ev.status === "failed") error = new Error(ev.error_message || ev.error_type || "the live job failed");
    onChange();
  }

  return {
    /** Something under the box changed. */
    change() {
      if (!on) return;
      revision += 1;
      changedAt = now();
      arm();
      onChange();
    },
    /** Turn on (the current state is sent at once) or off. Off returns the ids of the items still open, to cancel. */
    setOn(value) {
      if (value === on) return [];
      on = value;
      if (on) {
        revision += 1;
        changedAt = now();
        if (!inFlight) dispatch();
        return [];
      }
      if (timer !== null) timers.clear(timer);
      timer = null;
      const ids = [...open.keys()];
      open.clear();
      early.clear();
      shown = null;
      error = null;
      onChange();
      return ids;
    },
    status,
    /** The render on screen was drawn (for the timeline: stroke end -> render on screen). */
    drawn(rev) {
      const t = timeline.get(rev);
      if (t && t.shownAt === null) t.shownAt = now();
    },
    get on() {
      return on;
    },
    /** What the panel and the tests read. */
    state() {
      const phase = !on ? "off" : error ? "error" : timer !== null ? "waiting" : inFlight || open.size ? "rendering" : shown && shown.revision === revision ? "done" : "idle";
      return {
        on, phase, revision, sentRevision, shown, error: error ? String(error.message || error) : null,
        open: [...open.keys()], counts: { ...counts }, timeline: [...timeline.values()],
      };
    },
  };
}
