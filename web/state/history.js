// Unlimited undo/redo of store diffs and pixel-tile diffs. A gesture (mark ... commit) collects
// every record's first "before" and every touched tile's "before" snapshot; commit reads the
// "after" side once. So a 500-event brush stroke is one step holding only the tiles it touched.
// Changes made outside mark/commit group per task tick (a microtask commits them) into one step.

import { EPHEMERAL_TYPES } from "./store.js";

/** @typedef {import("./store.js").Store} Store */
/** @typedef {import("./store.js").StoreRecord} StoreRecord */
/**
 * The subset of the pixel registry history needs (canvas/tiles.js createPixelRegistry, or a fake).
 * @typedef {{ensure(id: string): TileStore, get(id: string): TileStore | undefined,
 *            setEditListener(fn: ((layerId: string, bitmap: TileStore, keys: string[]) => void) | null): void}} PixelStore
 * @typedef {{snapshotTile(key: string): any, restoreTile(key: string, snap: any): void, size: number}} TileStore
 */
/** @typedef {{layerId: string, key: string, before: any, after: any}} TileChange */
/** @typedef {{id: string, before: StoreRecord | undefined, after: StoreRecord | undefined}} RecordChange */
/** @typedef {{label: string, records: RecordChange[], tiles: TileChange[], bytes: number}} Step */
/**
 * @typedef {{label: string, implicit: boolean, records: Map<string, StoreRecord | undefined>,
 *            tiles: Map<string, Map<string, any>>}} Gesture
 */
/** @typedef {{type: "commit" | "undo" | "redo" | "cancel" | "clear", label?: string}} HistoryEvent */

/** @param {any} snap @param {number} size */
const snapBytes = (snap, size) => (snap ? size * size * 4 : 0);

/**
 * @param {Store} store
 * @param {PixelStore | null} [pixels] may be attached later with attachPixels
 */
export function createHistory(store, pixels = null) {
  /** @type {Step[]} */
  let undoStack = [];
  /** @type {Step[]} */
  let redoStack = [];
  /** @type {Gesture | null} */
  let open = null;
  let applying = false;
  let bytes = 0;
  /** @type {PixelStore | null} */
  let px = null;
  /** @type {Set<(e: HistoryEvent) => void>} */
  const listeners = new Set();

  /** @param {HistoryEvent} e */
  const emit = (e) => { for (const fn of [...listeners]) fn(e); };

  /** @param {string} label @param {boolean} implicit @returns {Gesture} */
  const newGesture = (label, implicit) => ({ label, implicit, records: new Map(), tiles: new Map() });

  function ensureOpen() {
    if (open) return open;
    const g = newGesture("edit", true);
    open = g;
    // Everything changed in this tick becomes one step, unless someone marks first.
    queueMicrotask(() => { if (open === g) history.commit(); });
    return g;
  }

  store.subscribe((change) => {
    if (change.source === "load") { history.clear(); return; }
    if (applying || !change.history || change.source === "undo" || change.source === "redo") return;
    /** @type {Gesture | null} */
    let g = null;
    for (const [id, prev] of change.before) {
      const type = (prev ?? store.get(id))?.type;
      if (type && EPHEMERAL_TYPES.has(type)) continue;
      g ??= ensureOpen();
      if (!g.records.has(id)) g.records.set(id, prev);
    }
  });

  /** @param {string} layerId @param {TileStore} bitmap @param {string[]} keys */
  function onTileEdit(layerId, bitmap, keys) {
    if (applying) return;
    const g = ensureOpen();
    let m = g.tiles.get(layerId);
    if (!m) { m = new Map(); g.tiles.set(layerId, m); }
    for (const k of keys) if (!m.has(k)) m.set(k, bitmap.snapshotTile(k));
  }

  /** @param {Gesture} g */
  const isEmpty = (g) => g.records.size === 0 && g.tiles.size === 0;

  /** @param {RecordChange[]} records @param {"before" | "after"} side @param {"undo" | "redo"} source */
  function applyRecords(records, side, source) {
    const put = [], remove = [];
    for (const r of records) { const rec = r[side]; if (rec) put.push(rec); else remove.push(r.id); }
    if (put.length || remove.length) store.apply({ put, remove }, { history: false, source });
  }

  /** @param {TileChange[]} tiles @param {"before" | "after"} side */
  function applyTiles(tiles, side) {
    if (!tiles.length) return;
    if (!px) throw new Error("history has pixel steps but no pixel store attached");
    for (const t of tiles) px.ensure(t.layerId).restoreTile(t.key, t[side]);
  }

  /** Put a gesture's "before" state back (cancel). @param {Gesture} g */
  function revert(g) {
    applying = true;
    try {
      const put = [], remove = [];
      for (const [id, before] of g.records) { if (before) put.push(before); else if (store.get(id)) remove.push(id); }
      if (put.length || remove.length) store.apply({ put, remove }, { history: false, source: "undo" });
      for (const [layerId, m] of g.tiles) {
        if (!px) break;
        const b = px.ensure(layerId);
        for (const [k, snap] of m) b.restoreTile(k, snap);
      }
    } finally { applying = false; }
  }

  const history = {
    /** Attach (or replace) the pixel registry whose tile edits are recorded. @param {PixelStore} p */
    attachPixels(p) {
      if (px === p) return;
      px?.setEditListener(null);
      px = p;
      p.setEditListener(onTileEdit);
    },
    get pixels() { return px; },

    /** Open a gesture: every change until commit() is one step. An open gesture is committed first. @param {string} [label] */
    mark(label = "edit") {
      if (open) history.commit();
      open = newGesture(label, false);
    },

    /** Is an explicit gesture (mark without commit yet) open? */
    get inGesture() { return !!open && !open.implicit; },

    /** Close the open gesture into a step. Returns true when it changed anything. */
    commit() {
      const g = open;
      if (!g) return false;
      open = null;
      if (isEmpty(g)) return false;
      /** @type {Step} */
      const step = { label: g.label, records: [], tiles: [], bytes: 0 };
      for (const [id, before] of g.records) {
        const after = store.get(id);
        if (after !== before) step.records.push({ id, before, after });
      }
      for (const [layerId, m] of g.tiles) {
        const b = px?.get(layerId);
        for (const [key, before] of m) {
          const after = b ? b.snapshotTile(key) : null;
          if (!before && !after) continue;
          step.tiles.push({ layerId, key, before, after });
          const size = /** @type {TileStore} */ (b ?? px?.ensure(layerId)).size;
          step.bytes += snapBytes(before, size) + snapBytes(after, size);
        }
      }
      if (!step.records.length && !step.tiles.length) return false;
      undoStack.push(step);
      for (const s of redoStack) bytes -= s.bytes;
      redoStack = [];
      bytes += step.bytes;
      emit({ type: "commit", label: step.label });
      return true;
    },

    /** Drop the open gesture, restoring what it changed (Esc during a stroke). */
    cancel() {
      const g = open;
      if (!g) return false;
      open = null;
      revert(g);
      emit({ type: "cancel", label: g.label });
      return true;
    },

    /** Commit pending implicit changes (so counts and undo see them). */
    flush() { if (open?.implicit) history.commit(); },

    /** Undo one step. During a gesture it cancels that gesture instead (the stroke in progress). */
    undo() {
      if (open && !open.implicit) return history.cancel();
      history.flush();
      const step = undoStack.pop();
      if (!step) return false;
      applying = true;
      try { applyRecords(step.records, "before", "undo"); applyTiles(step.tiles, "before"); } finally { applying = false; }
      redoStack.push(step);
      emit({ type: "undo", label: step.label });
      return true;
    },

    redo() {
      if (open) history.commit();
      const step = redoStack.pop();
      if (!step) return false;
      applying = true;
      try { applyRecords(step.records, "after", "redo"); applyTiles(step.tiles, "after"); } finally { applying = false; }
      undoStack.push(step);
      emit({ type: "redo", label: step.label });
      return true;
    },

    // Getters never commit (a subscriber reading them mid-tick must not split a step); a pending
    // implicit step counts as the step it is about to become.
    get canUndo() { return undoStack.length > 0 || (!!open && !isEmpty(open)); },
    get canRedo() { return redoStack.length > 0 && !(open?.implicit && !isEmpty(open)); },
    /** Steps that can be undone. */
    get size() { return undoStack.length + (open?.implicit && !isEmpty(open) ? 1 : 0); },
    /** Steps that can be redone. */
    get redoSize() { return open?.implicit && !isEmpty(open) ? 0 : redoStack.length; },
    /** Tile bytes held by committed undo and redo steps. */
    get bytes() { return bytes; },
    /** Labels of the undo steps, oldest first (for a history panel or debugging). */
    labels() { return undoStack.map((s) => s.label); },

    /** Forget everything (a new document). An open gesture is dropped without reverting. */
    clear() {
      open = null;
      undoStack = []; redoStack = []; bytes = 0;
      emit({ type: "clear" });
    },

    /** @param {(e: HistoryEvent) => void} fn @returns {() => void} */
    subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  };
  if (pixels) history.attachPixels(pixels);
  return history;
}

/** @typedef {ReturnType<typeof createHistory>} History */
