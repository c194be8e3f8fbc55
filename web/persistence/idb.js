// IndexedDB as promises: the journal's two stores, nothing else. A browser without IndexedDB (or
// with storage blocked) gets null, and the app runs on server saves alone.

const DB_NAME = "invokeCanvas";
const DB_VERSION = 1;
/** One entry per canvas: its records, base pixels and sync state (keyPath "id"). */
export const CANVASES = "canvases";
/** Tiles changed since the canvas's last server save (key [canvas, layer, tile]). */
export const TILES = "tiles";

/** @param {IDBRequest | IDBTransaction} r @returns {Promise<any>} */
function done(r) {
  return new Promise((resolve, reject) => {
    if ("onsuccess" in r && !(r instanceof IDBTransaction)) {
      r.onsuccess = () => resolve(/** @type {IDBRequest} */ (r).result);
      r.onerror = () => reject(r.error);
    } else {
      const t = /** @type {IDBTransaction} */ (r);
      t.oncomplete = () => resolve(undefined);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error || new Error("IndexedDB transaction aborted"));
    }
  });
}

/** @returns {Promise<IDBDatabase | null>} */
export async function openDatabase() {
  if (typeof indexedDB === "undefined") return null;
  try {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(CANVASES)) db.createObjectStore(CANVASES, { keyPath: "id" });
      if (!db.objectStoreNames.contains(TILES)) db.createObjectStore(TILES, { keyPath: ["canvas", "layer", "tile"] });
    };
    return await done(request);
  } catch {
    return null;
  }
}

/** Every key of one canvas's tiles: [canvas] sorts before [canvas, ...] and [canvas, []] after. */
export const canvasRange = (canvasId) => IDBKeyRange.bound([canvasId], [canvasId, []]);

/**
 * Write in one transaction: `puts` and `deletes` per store. Resolves when it is committed.
 * @param {IDBDatabase} db
 * @param {{[store: string]: {put?: any[], del?: (IDBValidKey | IDBKeyRange)[]}}} ops
 */
export function write(db, ops) {
  const names = Object.keys(ops);
  // relaxed: committed once the OS has it (a reload or a browser crash keeps it; the server holds the
  // durable copy). Strict waits for a disk flush, a window in which a closing page loses the write.
  const t = db.transaction(names, "readwrite", { durability: "relaxed" });
  for (const name of names) {
    const store = t.objectStore(name);
    for (const key of ops[name].del || []) store.delete(key);
    for (const value of ops[name].put || []) store.put(value);
  }
  return done(t);
}

/** @param {IDBDatabase} db @param {string} store @param {IDBValidKey} key */
export function get(db, store, key) {
  return done(db.transaction(store).objectStore(store).get(key));
}

/** @param {IDBDatabase} db @param {string} store @param {IDBKeyRange} [range] @returns {Promise<any[]>} */
export function getAll(db, store, range) {
  return done(db.transaction(store).objectStore(store).getAll(range));
}
