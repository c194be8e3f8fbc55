// The browser's journal of a canvas in IndexedDB: one entry (the document as it is now, its layers'
// image ids those the server last had, with the layers' offsets, the change counter and the sync
// state) and the raw pixels of every tile changed since that server version. Written as changes
// happen, so a reload or a crash loses nothing; the server copy catches up in the background.
//
// Tiles are stored as ImageData (raw RGBA): reading a tile is synchronous, so even the page's last
// moment (pagehide) can queue its write, where encoding a PNG (asynchronous) could not finish.

import { CANVASES, TILES, canvasRange, get, getAll, openDatabase, write } from "./idb.js";

/**
 * @typedef {{id: string, name: string, base_version: number, on_server: boolean, seq: number, dirty: boolean,
 *   synced_seq: number, document: any, origins: Record<string, {x: number, y: number}>, times: Record<string, {t: number, seq: number}>,
 *   saved_at: number}} JournalEntry   tiles with seq <= synced_seq are in the server's version already
 * @typedef {{canvas: string, layer: string, tile: string, seq: number, data: ImageData | null}} JournalTile
 */

/** @param {IDBDatabase | null} db */
export function createJournal(db) {
  return {
    get available() { return !!db; },
    /** @param {string} id @returns {Promise<{entry: JournalEntry | null, tiles: JournalTile[]}>} */
    async read(id) {
      if (!db) return { entry: null, tiles: [] };
      const [entry, tiles] = await Promise.all([get(db, CANVASES, id), getAll(db, TILES, canvasRange(id))]);
      return { entry: entry ?? null, tiles };
    },
    /**
     * One durable write for canvas `id`: the entry (null: keep the stored one), tiles put and tiles removed.
     * @param {string} id @param {JournalEntry | null} entry @param {JournalTile[]} put @param {{layer: string, tile: string}[]} [drop]
     */
    save(id, entry, put = [], drop = []) {
      if (!db) return Promise.resolve();
      return write(db, {
        [CANVASES]: { put: entry ? [entry] : [] },
        [TILES]: { put, del: drop.map((t) => [id, t.layer, t.tile]) },
      });
    },
    /** Forget a canvas (deleted, or the server has all of it and the entry is rewritten). @param {string} id */
    clearTiles(id) {
      if (!db) return Promise.resolve();
      return write(db, { [TILES]: { del: [canvasRange(id)] } });
    },
    /** @param {string} id */
    remove(id) {
      if (!db) return Promise.resolve();
      return write(db, { [CANVASES]: { del: [id] }, [TILES]: { del: [canvasRange(id)] } });
    },
  };
}

/** The journal, or one that keeps nothing when IndexedDB is unavailable (private modes, blocked storage). */
export async function openJournal() {
  return createJournal(await openDatabase());
}
