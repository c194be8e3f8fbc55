// Writes a canvas's changes into the journal as they happen: the entry (the document now) and the
// tiles changed since the last write. Tiles go as PNG blobs, encoded off the main thread (a stroke's
// tiles are a few KiB each); a page going away (`now`) cannot wait for an encoder, so that last write
// stores the raw pixels (ImageData) of every tile not yet written, synchronously. Writes land in
// the order they were made: a slower, older write never replaces a newer entry or tile.

import { canvasToPng } from "../document.js";
import { dirtyKey, splitDirtyKey } from "./tile_tracker.js";

/**
 * @param {{getJournal: () => ReturnType<typeof import("./journal.js").createJournal>,
 *   tracker: ReturnType<typeof import("./tile_tracker.js").createTileTracker>,
 *   pixels: any, hasLayer: (id: string) => boolean,
 *   entryNow: () => import("./journal.js").JournalEntry,
 *   onWritten: (canvasId: string, upTo: number) => void}} deps `getJournal`: the journal (opened after the writer)
 */
export function createJournalWriter({ getJournal, tracker, pixels, hasLayer, entryNow, onWritten }) {
  let chain = Promise.resolve();
  /** dirty key -> seq of the newest tile write handed to IndexedDB; the entry's likewise */
  let issued = new Map();
  let issuedEntry = -1;
  /** dirty key -> seq, taken by a write still encoding (a `now` write takes them over) */
  let encoding = new Map();
  /** What the journal cost so far (bench/bench_journal.py reads it). */
  const stats = { writes: 0, tiles: 0, bytes: 0, mainMs: 0, durableMs: 0 };

  const tileOf = (t) => pixels.get(t.layer)?.tile(t.tile) ?? null;
  const sizeOf = (data) => (!data ? 0 : "size" in data ? data.size : data.data.byteLength);

  function issue(canvasId, entry, upTo, put, gone, t0) {
    const fresh = put.filter((r) => (issued.get(dirtyKey(r.layer, r.tile)) ?? -1) < r.seq);
    for (const r of fresh) issued.set(dirtyKey(r.layer, r.tile), r.seq);
    const newest = upTo > issuedEntry;
    if (!newest && !fresh.length && !gone.length) return Promise.resolve();
    if (newest) issuedEntry = upTo;
    stats.writes += 1;
    stats.tiles += fresh.length;
    stats.bytes += fresh.reduce((n, r) => n + sizeOf(r.data), 0) + (newest ? JSON.stringify(entry).length : 0);
    return getJournal().save(canvasId, newest ? entry : null, fresh, gone).then(() => {
      stats.durableMs += performance.now() - t0;
      onWritten(canvasId, upTo);
    });
  }

  /**
   * Write what changed since the last write. `drop`: tiles the server has now (removed);
   * `now`: the page is going away, queue the write before returning.
   * @param {{drop?: {layer: string, tile: string}[], now?: boolean, canvasId: string}} o
   */
  function write({ drop = [], now = false, canvasId }) {
    if (!getJournal().available) return Promise.resolve();
    const t0 = performance.now();
    const entry = entryNow();
    const upTo = entry.seq;
    const taken = tracker.takeUnjournaled();
    if (now) for (const [key, s] of encoding) if (!taken.some((t) => dirtyKey(t.layer, t.tile) === key)) taken.push({ ...splitDirtyKey(key), seq: s });
    const gone = [...drop];
    const records = [];
    for (const t of taken) {
      if (!hasLayer(t.layer)) {
        gone.push(t); // the layer was removed: its pixels went with it
        continue;
      }
      const tile = tileOf(t);
      const rec = { canvas: canvasId, layer: t.layer, tile: t.tile, seq: t.seq };
      if (!tile) records.push({ ...rec, data: null });
      else if (now) records.push({ ...rec, data: tile.ctx.getImageData(0, 0, pixels.tileSize, pixels.tileSize) });
      else {
        encoding.set(dirtyKey(t.layer, t.tile), t.seq);
        records.push(canvasToPng(tile.canvas).then((data) => ({ ...rec, data })));
      }
    }
    const failed = (err) => {
      tracker.requeue(taken);
      console.warn("the browser journal could not be written:", err);
    };
    if (now) {
      const done = issue(canvasId, entry, upTo, /** @type {any[]} */ (records), gone, t0).catch(failed);
      stats.mainMs += performance.now() - t0;
      return done;
    }
    stats.mainMs += performance.now() - t0;
    const step = chain.then(async () => {
      const put = await Promise.all(records);
      for (const r of put) if (encoding.get(dirtyKey(r.layer, r.tile)) === r.seq) encoding.delete(dirtyKey(r.layer, r.tile));
      await issue(canvasId, entry, upTo, put, gone, t0);
    });
    chain = step.catch(failed);
    return chain;
  }

  return {
    write,
    stats: () => ({ ...stats }),
    /** Another canvas opened: nothing issued for the last one matters to the next. */
    reset() {
      issued = new Map();
      issuedEntry = -1;
      encoding = new Map();
    },
  };
}

