// A flat store of records {id, type, ...}. Records are frozen and replaced, never mutated, so
// anyone holding one (history, renderers) can compare by identity. Pure: no DOM.

/** @typedef {{id: string, type: string, [key: string]: any}} StoreRecord */
/** @typedef {{put?: StoreRecord[], remove?: string[]}} Diff */
/** @typedef {"user" | "undo" | "redo" | "load"} Source */
/**
 * What subscribers receive. `before` maps every id the diff touched to its previous record
 * (undefined when it did not exist), so history can invert a diff without copying the store.
 * @typedef {{diff: {put: StoreRecord[], remove: string[]}, source: Source, history: boolean,
 *            before: Map<string, StoreRecord | undefined>}} Change
 */

/** Record types that describe the session, not the document: never recorded by history. */
export const EPHEMERAL_TYPES = Object.freeze(new Set(["view", "selection", "tool"]));

/** @param {unknown} r @returns {StoreRecord} */
function check(r) {
  if (!r || typeof r !== "object") throw new TypeError(`store record must be an object, got ${String(r)}`);
  const rec = /** @type {any} */ (r);
  if (typeof rec.id !== "string" || !rec.id) throw new TypeError(`store record needs a string id: ${JSON.stringify(r)}`);
  if (typeof rec.type !== "string" || !rec.type) throw new TypeError(`store record ${rec.id} needs a string type`);
  return Object.isFrozen(rec) ? rec : Object.freeze({ ...rec });
}

/**
 * @param {StoreRecord[]} [initialRecords]
 */
export function createStore(initialRecords = []) {
  /** @type {Map<string, StoreRecord>} */
  let records = new Map();
  for (const r of initialRecords) { const rec = check(r); records.set(rec.id, rec); }
  /** @type {Set<(change: Change) => void>} */
  const listeners = new Set();
  /** @type {StoreRecord[] | null} cached layers() result, dropped on any layer change */
  let layerCache = null;

  /** @param {Change} change */
  function emit(change) {
    // Copy: a listener may unsubscribe (or subscribe) while we iterate.
    for (const fn of [...listeners]) fn(change);
  }

  const store = {
    /** @param {string} id @returns {StoreRecord | undefined} */
    get: (id) => records.get(id),

    /** @param {string} type @returns {StoreRecord[]} */
    list(type) {
      const out = [];
      for (const r of records.values()) if (r.type === type) out.push(r);
      return out;
    },

    /** Layers bottom first (by z, then id so the order is total). @returns {StoreRecord[]} */
    layers() {
      if (!layerCache) {
        layerCache = store.list("layer").sort((a, b) => (a.z ?? 0) - (b.z ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      }
      return layerCache;
    },

    /**
     * Put (insert or replace) and remove records; one notification per call.
     * @param {Diff} diff
     * @param {{history?: boolean, source?: Source}} [opts] history=false keeps it out of undo
     * @returns {Change | null} null when nothing changed
     */
    apply(diff, { history = true, source = "user" } = {}) {
      const put = (diff.put ?? []).map(check);
      const remove = (diff.remove ?? []).filter((id) => records.has(id));
      /** @type {Map<string, StoreRecord | undefined>} */
      const before = new Map();
      const changedPut = [];
      for (const rec of put) {
        const prev = records.get(rec.id);
        if (prev === rec) continue; // same frozen object: nothing to do
        if (!before.has(rec.id)) before.set(rec.id, prev);
        changedPut.push(rec);
      }
      for (const id of remove) if (!before.has(id)) before.set(id, records.get(id));
      if (!changedPut.length && !remove.length) return null;
      for (const rec of changedPut) records.set(rec.id, rec);
      for (const id of remove) records.delete(id);
      if ([...before.values()].some((r) => r?.type === "layer") || changedPut.some((r) => r.type === "layer")) layerCache = null;
      const change = { diff: { put: changedPut, remove }, source, history, before };
      emit(change);
      return change;
    },

    /**
     * Shortcut: merge fields into an existing record (or create {id, type, ...fields}).
     * @param {string} id @param {Record<string, any>} fields
     * @param {{history?: boolean, source?: Source, type?: string}} [opts]
     */
    update(id, fields, { type, ...opts } = {}) {
      const prev = records.get(id);
      if (!prev && !type && !fields.type) throw new Error(`store.update: no record ${id} and no type to create it`);
      return store.apply({ put: [{ ...(prev ?? { id, type: type ?? fields.type }), ...fields, id }] }, opts);
    },

    /** @param {(change: Change) => void} fn @returns {() => void} unsubscribe */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },

    /** All records (frozen; safe to keep or serialise). @returns {StoreRecord[]} */
    snapshot: () => [...records.values()],

    /**
     * Replace everything (a new document). Subscribers see source "load"; history clears itself.
     * @param {StoreRecord[]} list
     */
    load(list) {
      const next = new Map();
      for (const r of list) { const rec = check(r); next.set(rec.id, rec); }
      /** @type {Map<string, StoreRecord | undefined>} */
      const before = new Map();
      const remove = [];
      for (const [id, rec] of records) { before.set(id, rec); if (!next.has(id)) remove.push(id); }
      for (const id of next.keys()) if (!before.has(id)) before.set(id, undefined);
      records = next;
      layerCache = null;
      emit({ diff: { put: [...next.values()], remove }, source: "load", history: false, before });
    },
  };
  return store;
}

/** @typedef {ReturnType<typeof createStore>} Store */
