// Which 256x256 tiles of which layers changed since the server last had the canvas, each with the
// sequence number of its last change: the journal stores exactly these, a closing page sends them,
// and a finished sync forgets the ones it carried. Tile keys are in layer coordinates (the bitmap's).

import { parseTileKey, tileKeysForRect } from "../canvas/tiles.js";

/** One key for a layer's tile: layer ids never hold a tab. */
export const dirtyKey = (layerId, tile) => `${layerId}\t${tile}`;
export function splitDirtyKey(key) {
  const i = key.indexOf("\t");
  return { layer: key.slice(0, i), tile: key.slice(i + 1) };
}

/**
 * @param {{pixels: {subscribe: (fn: (e: {layerId: string, rect: {x: number, y: number, width: number, height: number}}) => void) => () => void, tileSize: number},
 *   nextSeq: () => number, ignore?: () => boolean}} o
 *   `nextSeq`: the canvas's change counter (records and tiles share it); `ignore`: true while pixels
 *   change without being an edit (a canvas being loaded)
 */
export function createTileTracker({ pixels, nextSeq, ignore = () => false }) {
  /** @type {Map<string, number>} dirty key -> seq of its last change, not yet on the server */
  const dirty = new Map();
  /** @type {Map<string, number>} the subset not yet written to the journal */
  const unjournaled = new Map();
  /** @type {Set<(layerId: string) => void>} */
  const listeners = new Set();

  pixels.subscribe(({ layerId, rect }) => {
    // a dropped layer reports an empty rect: its pixels went with the layer record
    if (ignore() || !(rect.width > 0 && rect.height > 0)) return;
    const seq = nextSeq();
    for (const tile of tileKeysForRect(rect, pixels.tileSize)) {
      const key = dirtyKey(layerId, tile);
      dirty.set(key, seq);
      unjournaled.set(key, seq);
    }
    for (const fn of listeners) fn(layerId);
  });

  return {
    /** @param {(layerId: string) => void} fn called after a tracked change */
    onChange(fn) { listeners.add(fn); },
    get size() { return dirty.size; },
    get pendingJournal() { return unjournaled.size; },
    /** Every unsynced tile: [{layer, tile, tx, ty, seq}]. */
    dirty() {
      return [...dirty].map(([key, seq]) => ({ ...splitDirtyKey(key), ...parseTileKey(splitDirtyKey(key).tile), seq }));
    },
    /** The tiles changed since the last journal write, forgotten as they are handed out. */
    takeUnjournaled() {
      const out = [...unjournaled].map(([key, seq]) => ({ ...splitDirtyKey(key), seq }));
      unjournaled.clear();
      return out;
    },
    /** Put back what a failed journal write took. @param {{layer: string, tile: string, seq: number}[]} tiles */
    requeue(tiles) {
      for (const t of tiles) {
        const key = dirtyKey(t.layer, t.tile);
        if (dirty.has(key) && !unjournaled.has(key)) unjournaled.set(key, dirty.get(key));
      }
    },
    /** Tiles restored from the journal are still unsynced (and already journaled). @param {{layer: string, tile: string, seq: number}[]} tiles */
    adopt(tiles) {
      for (const t of tiles) dirty.set(dirtyKey(t.layer, t.tile), t.seq);
    },
    /** A sync that started at `seq` carried every change up to it. @returns the keys forgotten */
    syncedUpTo(seq) {
      const gone = [];
      for (const [key, s] of dirty) if (s <= seq) { dirty.delete(key); unjournaled.delete(key); gone.push(splitDirtyKey(key)); }
      return gone;
    },
    /** A layer removed, or a canvas replaced: forget its tiles (undefined: all). @param {string} [layerId] */
    forget(layerId) {
      for (const map of [dirty, unjournaled]) {
        for (const key of [...map.keys()]) if (layerId === undefined || splitDirtyKey(key).layer === layerId) map.delete(key);
      }
    },
  };
}
