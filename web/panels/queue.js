// The Queue panel: items with status and progress, cancel one / all, pause / resume, retry, clear.
// The server is the source of truth: `reload()` re-reads the list (on connect), events update it.
import { h, iconButton } from "./dom.js";
import { icon } from "./icons.js";

const STATUS_LABEL = { pending: "Pending", in_progress: "Running", completed: "Done", failed: "Failed", canceled: "Canceled" };
const MAX_SHOWN = 200;

/**
 * `onCountChange`: pending + running items, after each render. `onProgressChange`: the running item's
 * progress (step / total in [0, 1]; 0 before its first step) or null when nothing runs, on each change.
 * @param {{el: HTMLElement, api: any, guard: (fn: () => any) => any, onCountChange?: (active: number) => void,
 *   onProgressChange?: (fraction: number | null) => void,
 *   thumbnailUrl: (id: string) => string, onOpenImage?: (id: string) => void}} o
 */
export function createQueuePanel({ el, api, guard, onCountChange = () => {}, onProgressChange = () => {}, thumbnailUrl, onOpenImage }) {
  /** @type {Map<number, any>} */
  const items = new Map();
  /** @type {Map<number, {step: number, total: number}>} */
  const progress = new Map();
  /** @type {Map<number, string[]>} */
  const images = new Map();
  let paused = false;

  const pauseBtn = h("button", { class: "btn small", "data-testid": "queue-pause", onclick: () => guard(togglePause) });
  const summary = h("span", { class: "queue-summary", "data-testid": "queue-summary" });
  const list = h("ul", { class: "queue-list", "data-testid": "queue-list" });
  // the summary sits in the panel's header, where it shows even when the panel is collapsed
  const header = el.closest(".panel")?.querySelector(".panel-header");
  if (header) header.append(summary);
  el.replaceChildren(
    h(
      "div",
      { class: "queue-toolbar" },
      header ? null : summary,
      h("span", { class: "spacer" }),
      pauseBtn,
      h("button", { class: "btn small", "data-testid": "queue-cancel-all", title: "Cancel the running item and every pending one", onclick: () => guard(cancelAll) }, icon("x", 14), "Cancel all"),
      h("button", { class: "btn small ghost", "data-testid": "queue-clear", title: "Remove finished items from the list (their images stay)", onclick: () => guard(clear) }, "Clear"),
    ),
    list,
  );

  async function togglePause() {
    const status = paused ? await api.queue.resume() : await api.queue.pause();
    paused = status.paused;
    render();
  }

  async function cancelAll() {
    const running = [...items.values()].filter((i) => i.status === "in_progress");
    await api.queue.cancelPending();
    for (const item of running) await api.queue.cancel(item.id).catch(() => {});
  }

  async function clear() {
    await api.queue.clear();
    for (const [id, item] of items) if (!["pending", "in_progress"].includes(item.status)) items.delete(id);
    render();
  }

  async function reload() {
    /** @type {any[]} */
    let all = [];
    let after;
    for (let page = 0; page < 20; page++) {
      const batch = await api.queue.items({ limit: 1000, after_id: after });
      all = all.concat(batch);
      if (batch.length < 1000) break;
      after = batch[batch.length - 1].id;
    }
    const status = await api.queue.status();
    paused = status.paused;
    items.clear();
    for (const item of all.filter((i) => !i.live).slice(-MAX_SHOWN)) items.set(item.id, item);
    render();
  }

  /** A `queue_item_status_changed` event (live-painting items are the Live bar's, not listed here). */
  function onStatus(ev) {
    if (ev.live) return;
    const prev = items.get(ev.item_id) || { id: ev.item_id, batch_id: ev.batch_id, generation_id: ev.generation_id };
    items.set(ev.item_id, { ...prev, status: ev.status, error_type: ev.error_type, error_message: ev.error_message, worker: ev.worker ?? prev.worker });
    if (ev.image_ids && ev.image_ids.length) images.set(ev.item_id, ev.image_ids);
    if (ev.status !== "in_progress") progress.delete(ev.item_id);
    while (items.size > MAX_SHOWN) items.delete(items.keys().next().value);
    render();
  }

  /** @type {number | null | undefined} what onProgressChange was last told (undefined: nothing yet) */
  let toldProgress;
  /** The running item's progress (the oldest one running, the one the worker is on), or null. */
  function runningFraction() {
    let running = null;
    for (const item of items.values()) if (item.status === "in_progress" && (!running || item.id < running.id)) running = item;
    if (!running) return null;
    const p = progress.get(running.id);
    return p && p.total > 0 ? Math.min(1, Math.max(0, p.step / p.total)) : 0;
  }
  function tellProgress() {
    const f = runningFraction();
    if (f === toldProgress) return;
    toldProgress = f;
    onProgressChange(f);
  }

  /** A `generation_progress` event. */
  function onProgress(ev) {
    progress.set(ev.item_id, { step: ev.step, total: ev.total, phase: ev.phase || null });
    tellProgress();
    const row = list.querySelector(`[data-item-id="${ev.item_id}"]`);
    if (row) {
      const bar = row.querySelector(".progress > i");
      const pct = ev.total ? Math.round((100 * ev.step) / ev.total) : 0;
      if (bar) /** @type {HTMLElement} */ (bar).style.width = `${pct}%`;
      const label = row.querySelector(".queue-step");
      if (label) label.textContent = stepLabel(progress.get(ev.item_id));
    }
  }

  /** "3/20", or why step 1 is late: the fast path compiles the model for a new size once; an upscale's part. */
  function stepLabel(p) {
    if (p.phase === "compiling") return "compiling for this size (first time)…";
    return p.phase === "upscaling" || p.phase === "refining" ? `${p.phase} ${p.step}/${p.total}` : `${p.step}/${p.total}`;
  }

  function row(item) {
    const p = progress.get(item.id);
    const pct = item.status === "completed" ? 100 : p && p.total ? Math.round((100 * p.step) / p.total) : 0;
    const active = item.status === "pending" || item.status === "in_progress";
    const thumbs = (images.get(item.id) || []).map((id) =>
      h("img", { class: "queue-thumb", src: thumbnailUrl(id), alt: "", loading: "lazy", title: "Open", onclick: () => onOpenImage && onOpenImage(id) }),
    );
    return h(
      "li",
      { class: `queue-item status-${item.status}`, "data-testid": "queue-item", dataset: { status: item.status, itemId: String(item.id) } },
      h(
        "div",
        { class: "queue-line" },
        h("span", { class: "queue-id" }, `#${item.id}`),
        h("span", { class: `status-pill ${item.status}` }, STATUS_LABEL[item.status] || item.status),
        h("span", { class: "queue-step" }, item.status === "in_progress" && p ? stepLabel(p) : ""),
        // with remote workers: which one runs (or ran) it; the embedded default's own thread needs no name
        item.worker && item.worker !== "embedded"
          ? h("span", { class: "queue-worker", "data-testid": "queue-worker", title: `Worker ${item.worker}${item.attempts > 1 ? `, attempt ${item.attempts}` : ""}` }, item.worker)
          : null,
        h("span", { class: "spacer" }),
        thumbs,
        active
          ? iconButton(icon("x", 14), "Cancel", () => guard(() => api.queue.cancel(item.id)), { "data-testid": "queue-cancel" })
          : item.status === "failed" || item.status === "canceled"
            ? iconButton(icon("recall", 14), "Retry", () => guard(() => api.queue.retry([item.id])), { "data-testid": "queue-retry" })
            : null,
      ),
      item.status === "in_progress"
        ? h("div", { class: "progress", role: "progressbar", "aria-valuenow": String(pct), "aria-valuemin": "0", "aria-valuemax": "100" }, h("i", { style: { width: `${pct}%` } }))
        : null,
      item.error_message && item.status === "failed" ? h("div", { class: "queue-error", title: item.error_message }, item.error_message) : null,
    );
  }

  function render() {
    const all = [...items.values()].sort((a, b) => b.id - a.id);
    const counts = { pending: 0, in_progress: 0 };
    for (const i of all) if (i.status in counts) counts[i.status] += 1;
    list.replaceChildren(...all.map(row));
    if (!all.length) list.append(h("li", { class: "empty-note" }, "Nothing queued. Press Invoke (Ctrl+Enter)."));
    const parts = [];
    if (counts.in_progress) parts.push(`${counts.in_progress} running`);
    if (counts.pending) parts.push(`${counts.pending} pending`);
    summary.textContent = (paused ? "Paused" + (parts.length ? " · " : "") : "") + (parts.join(" · ") || (paused ? "" : "Idle"));
    summary.title = `${counts.in_progress} running, ${counts.pending} pending${paused ? ", paused" : ""}`;
    pauseBtn.replaceChildren(icon(paused ? "play" : "pause", 14), paused ? "Resume" : "Pause");
    pauseBtn.classList.toggle("warn", paused);
    el.classList.toggle("paused", paused);
    summary.classList.toggle("paused", paused);
    onCountChange(counts.pending + counts.in_progress);
    tellProgress();
  }

  render();
  return { reload, onStatus, onProgress, render, get paused() { return paused; }, items };
}
