// What to open when this browser's journal and the server's latest version disagree (pure).
//
// The journal holds what this browser changed since the version it last had from the server (its
// base). The rule: no local changes: the server's version. Local changes, and every newer server
// version is this browser's own (a save sent as the page closed, whose reply it never read): the
// journal. Local changes and another browser saved meanwhile: merge record by record (a layer
// with its pixels, the box, the settings, the staging area), the newer change winning; the server
// keeps the other browser's version whole as a named copy when the merge is saved.

import { canonicalJson } from "../document.js";

/** Record ids a document's parts belong to (the store's ids). */
const SETTINGS = "settings";
const BBOX = "bbox";
const STAGING = "staging";

/**
 * A saved document's parts by record id, as canonical JSON: what tells two versions apart.
 * @param {{bbox?: any, layers?: any[], params?: any, ui?: any} | null} doc
 * @returns {Map<string, string>}
 */
export function documentEntries(doc) {
  /** @type {Map<string, string>} */
  const out = new Map();
  if (!doc) return out;
  const ui = doc.ui && typeof doc.ui === "object" ? doc.ui : {};
  out.set(BBOX, canonicalJson(doc.bbox ?? null));
  out.set(SETTINGS, canonicalJson({ params: doc.params ?? null, seed: ui.seed ?? null, random_seed: ui.random_seed ?? null, loras: ui.loras ?? null }));
  out.set(STAGING, canonicalJson(ui.staging ?? null));
  for (const layer of doc.layers || []) if (layer && typeof layer.id === "string") out.set(layer.id, canonicalJson(layer));
  return out;
}

/**
 * Ids whose entry differs between two versions (added, removed or changed).
 * @param {Map<string, string>} before @param {Map<string, string>} after
 */
export function changedIds(before, after) {
  const out = new Set();
  for (const [id, text] of after) if (before.get(id) !== text) out.add(id);
  for (const id of before.keys()) if (!after.has(id)) out.add(id);
  return out;
}

/**
 * @typedef {{base_version: number, dirty: boolean, seq?: number}} JournalState
 * @typedef {{version: number, writer: string | null, seq?: number | null}} ServerState
 *   `seq`: the journal's change counter when the server's version was made (saved in `ui.seq`); a
 *   save this browser sent as its page closed may hold everything the journal holds, or more
 */

/**
 * @param {JournalState | null} journal this browser's entry for the canvas (null: none)
 * @param {ServerState | null} server the server's latest (null: the server has no such canvas)
 * @param {string} client this browser's id
 * @returns {"server" | "journal" | "merge"}
 */
export function decide(journal, server, client) {
  if (!journal || !journal.dirty) return server ? "server" : "journal";
  if (!server || server.version <= journal.base_version) return "journal";
  if (server.writer !== client) return "merge";
  const sent = typeof server.seq === "number" ? server.seq : -1;
  return typeof journal.seq === "number" && sent >= journal.seq ? "server" : "journal";
}

/**
 * Which side each record comes from in a merge. A record changed on one side only comes from that
 * side; changed on both, the newer change wins (`localTimes`: when this browser last changed each
 * record, removals included; `serverTime`: when the server's version was saved).
 * @param {{localIds: Iterable<string>, localTimes: Record<string, number>, serverIds: Iterable<string>,
 *          serverChanged: Set<string>, serverTime: number}} o
 * @returns {{local: Set<string>, server: Set<string>}} ids to take from each side (absent: removed)
 */
export function mergePlan(o) {
  const localIds = new Set(o.localIds);
  const serverIds = new Set(o.serverIds);
  const local = new Set();
  const server = new Set();
  for (const id of new Set([...localIds, ...serverIds])) {
    const localChanged = Object.prototype.hasOwnProperty.call(o.localTimes, id);
    const serverChanged = o.serverChanged.has(id);
    const takeLocal = localChanged && (!serverChanged || o.localTimes[id] > o.serverTime);
    if (takeLocal ? localIds.has(id) : serverIds.has(id)) (takeLocal ? local : server).add(id);
    else if (!takeLocal && !serverChanged && !serverIds.has(id) && localIds.has(id)) local.add(id); // unchanged, only here
  }
  return { local, server };
}

/**
 * The merged document: each part (box, settings, staging area, each layer) from the side `mergePlan`
 * picks; layers in this browser's order, the other browser's new layers after them. `ui` is this
 * browser's (its running jobs and board) with the picked staging and seed.
 * @param {{base: any | null, server: any, local: any, localTimes: Record<string, number>, serverTime: number}} o
 *   `base`: the version the journal started from (null: none), `server`: the newer one, `local`: the journal's
 * @returns {{document: any, localLayers: Set<string>}} `localLayers`: layers whose journal tiles apply
 */
export function mergeDocuments({ base, server, local, localTimes, serverTime }) {
  const L = documentEntries(local);
  const S = documentEntries(server);
  const plan = mergePlan({ localIds: L.keys(), localTimes, serverIds: S.keys(), serverChanged: changedIds(documentEntries(base), S), serverTime });
  const from = (id) => (plan.local.has(id) ? local : server);
  const lui = local.ui && typeof local.ui === "object" ? local.ui : {};
  const sui = server.ui && typeof server.ui === "object" ? server.ui : {};
  const settingsUi = from(SETTINGS) === local ? lui : sui;
  const ui = { ...lui, seed: settingsUi.seed, random_seed: settingsUi.random_seed, loras: settingsUi.loras, staging: (from(STAGING) === local ? lui : sui).staging };
  for (const key of Object.keys(ui)) if (ui[key] === undefined) delete ui[key];
  const byId = (doc) => new Map((doc.layers || []).map((l) => [l.id, l]));
  const localLayers = byId(local);
  const serverLayers = byId(server);
  const order = [...localLayers.keys(), ...[...serverLayers.keys()].filter((id) => !localLayers.has(id))];
  const layers = [];
  const taken = new Set();
  for (const id of order) {
    if (plan.local.has(id)) { layers.push(localLayers.get(id)); taken.add(id); }
    else if (plan.server.has(id)) layers.push(serverLayers.get(id));
  }
  return {
    document: { bbox: from(BBOX).bbox, layers, params: from(SETTINGS).params, ui },
    localLayers: taken,
  };
}
