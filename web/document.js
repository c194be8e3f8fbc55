// The canvas-document builder: store records + layer pixels -> the JSON document the server takes
// (`CanvasDocumentIn`: {bbox, layers: [{id, kind, x, y, image_id, opacity, visible, region, control,
// name, locked, color}], params, ui}) for `POST /api/v1/canvas/jobs` and for autosave (`POST /api/v1/canvas`).
//
// Each layer's pixels are uploaded once as an image asset; a fingerprint of the exported pixels
// (position, size, two 32-bit hashes) decides whether a layer changed since its last upload, so an
// unchanged layer is never uploaded again.
//
// The saved document holds everything a restore needs, so any browser restores the same canvas:
// layers bottom first (their order is the stacking order, z), each with its name, lock and colour; a
// layer with no pixels yet is kept without an `image_id`; `ui` holds the rest of the front end's state
// (the random-seed toggle and the seed, the staging area, the selected board, jobs still running).
// A job document leaves empty layers out (the server requires pixels for a job's layers) and needs no `ui`.
//
// The pure parts (mapping, fingerprint, tracker, restore) need no DOM and are unit-tested.

/** @typedef {"raster"|"inpaint_mask"|"regional_guidance"|"control"|"reference"} LayerKind */
/**
 * @typedef {{id: string, type: "layer", kind: LayerKind, name: string, z: number, x: number, y: number,
 *   opacity: number, visible: boolean, locked: boolean, color?: string, prompt?: string,
 *   negative_prompt?: string, strength?: number, control?: ControlSettings}} LayerRecord
 *   (regions: `strength` in [0, 1], how much the region prompt replaces the main prompt inside it)
 * @typedef {{model: string, preprocessor: string, weight: number, begin: number, end: number, control_type?: string | null}} ControlSettings
 * @typedef {{model: string | null, weight: number, begin: number, end: number}} ReferenceSettings
 *   a reference layer's: its IP-Adapter (null: the family's default; FLUX.2 takes none), weight (0 adds
 *   nothing) and step range, as the server's ReferenceIn
 * @typedef {{id: "bbox", type?: string, x: number, y: number, width: number, height: number}} BBox
 * @typedef {{x: number, y: number, width: number, height: number, canvas: any}} Exported
 * @typedef {{image_id: string, x: number, y: number}} Asset
 */

export const LAYER_KINDS = /** @type {const} */ (["raster", "inpaint_mask", "regional_guidance", "control", "reference"]);

// The defaults and LoRA limits below are the server's as of writing; `applyServerConfig` replaces them
// with the ones GET /api/v1/config publishes (built from invoke_core), so they are live bindings.
export let DEFAULT_SETTINGS = Object.freeze({
  id: "settings",
  type: "settings",
  prompt: "",
  negative_prompt: "",
  model: null,
  steps: 30,
  cfg_scale: 7.5,
  true_cfg_scale: 1, // FLUX.1's classifier-free guidance with the negative prompt; 1 is off
  scheduler: "euler",
  seed: 0,
  random_seed: true,
  batch_size: 1,
  strength: 0.75,
  mask_blur: 8,
  infill: "patchmatch",
  scale: 1,
  loras: Object.freeze([]),
  hires_fix: null, // {scale, strength, upscaler?}: text to image in two passes (panels/upscale.js); null: off
});

/** Region strength when a layer or an older document has none (the server's RegionIn default). */
export let DEFAULT_REGION_STRENGTH = 0.8;
/** The server's limits on a job's LoRA stack (LoraIn, ParamsIn.loras). */
export let LORA_MAX = 10;
export let LORA_WEIGHT_MIN = -2;
export let LORA_WEIGHT_MAX = 2;

export let DEFAULT_BBOX = Object.freeze({ id: "bbox", type: "bbox", x: 0, y: 0, width: 512, height: 512 });

/** The server's config (GET /api/v1/config) once the Generate panel fetched it; null before. */
export let SERVER_CONFIG = /** @type {any} */ (null);

/**
 * @typedef {{min: number, max: number, exclusive_min?: boolean, step?: number|null, integer?: boolean}} NumberLimit
 *   one number field's range as GET /api/v1/config publishes it
 */

/**
 * The smallest value a field accepts: `min`, or one step above it when `min` itself is refused.
 * @param {NumberLimit} limit
 */
export function lowestAccepted(limit) {
  if (!limit.exclusive_min) return limit.min;
  return limit.min + (limit.step || 1e-6);
}

/**
 * A field's text parsed and clamped into the server's range (rounded for integers); undefined when it
 * is not a number.
 * @param {any} v
 * @param {NumberLimit} limit
 */
export function clampToLimit(v, limit) {
  if (v === "" || v === null || v === undefined) return undefined;
  let n = Number(v);
  if (!Number.isFinite(n)) return undefined;
  if (limit.integer) n = Math.round(n);
  return Math.min(limit.max, Math.max(lowestAccepted(limit), n));
}

/**
 * Take the defaults and LoRA limits from the server's config (the body of GET /api/v1/config); values
 * it lacks keep their current ones. Records already in the store keep their values.
 * @param {any} config
 */
export function applyServerConfig(config) {
  if (!config || typeof config !== "object") return;
  SERVER_CONFIG = config;
  const numbers = config.numbers || {};
  const params = config.defaults?.params || {};
  const number = (key, fallback) => (Number.isFinite(numbers[key]?.default) ? numbers[key].default : fallback);
  const text = (value, fallback) => (typeof value === "string" && value ? value : fallback);
  const d = DEFAULT_SETTINGS;
  DEFAULT_SETTINGS = Object.freeze({
    ...d,
    steps: number("steps", d.steps),
    cfg_scale: number("cfg_scale", d.cfg_scale),
    true_cfg_scale: number("true_cfg_scale", d.true_cfg_scale),
    scheduler: text(params.scheduler, d.scheduler),
    seed: number("seed", d.seed), // the server's is null (random): the field keeps 0
    batch_size: number("batch_size", d.batch_size),
    strength: number("strength", d.strength),
    mask_blur: number("mask_blur", d.mask_blur),
    infill: text(params.infill, d.infill),
    scale: number("scale", d.scale),
  });
  DEFAULT_BBOX = Object.freeze({ ...DEFAULT_BBOX, width: number("bbox_width", DEFAULT_BBOX.width), height: number("bbox_height", DEFAULT_BBOX.height) });
  DEFAULT_REGION_STRENGTH = number("region_strength", DEFAULT_REGION_STRENGTH);
  if (Number.isFinite(numbers.lora_weight?.min) && Number.isFinite(numbers.lora_weight?.max)) {
    LORA_WEIGHT_MIN = numbers.lora_weight.min;
    LORA_WEIGHT_MAX = numbers.lora_weight.max;
  }
  if (Number.isInteger(config.max_loras) && config.max_loras >= 0) LORA_MAX = config.max_loras;
}

const REGION_COLORS = ["#e0533d", "#3d8be0", "#4fbf6a", "#d9a400", "#a35be0", "#e05ba8", "#2bb5b5"];

/**
 * A new layer record with the defaults of its kind.
 * @param {LayerKind} kind
 * @param {{id?: string, name?: string, z?: number, index?: number, control_model?: string}} [o]
 * @returns {LayerRecord}
 */
export function newLayer(kind, o = {}) {
  if (!LAYER_KINDS.includes(kind)) throw new Error(`unknown layer kind ${JSON.stringify(kind)}`);
  const names = { raster: "Raster", inpaint_mask: "Inpaint mask", regional_guidance: "Region", control: "Control", reference: "Reference" };
  const index = o.index ?? 1;
  /** @type {LayerRecord} */
  const layer = {
    id: o.id || newId(),
    type: "layer",
    kind,
    name: o.name || `${names[kind]} ${index}`,
    z: o.z ?? 0,
    x: 0,
    y: 0,
    opacity: 1,
    visible: true,
    locked: false,
  };
  if (kind === "inpaint_mask") layer.color = "#e0533d";
  if (kind === "regional_guidance") {
    layer.color = REGION_COLORS[index % REGION_COLORS.length];
    layer.prompt = "";
    layer.negative_prompt = "";
    layer.strength = DEFAULT_REGION_STRENGTH;
  }
  if (kind === "control") {
    layer.control = { model: o.control_model || "", preprocessor: "none", weight: 1, begin: 0, end: 1 };
  }
  if (kind === "reference") layer.reference = { ...DEFAULT_REFERENCE };
  return layer;
}

/** A reference layer's settings when it has none (the server's ReferenceIn defaults). */
export const DEFAULT_REFERENCE = Object.freeze({ model: null, weight: 1, begin: 0, end: 1 });

/**
 * A reference layer's settings as a document carries them: weight in [0, 2], 0 <= begin < end <= 1 (a
 * range the other way round is the whole range), the model only when one is chosen.
 * @param {any} r
 */
export function referenceSettings(r) {
  const v = { ...DEFAULT_REFERENCE, ...(r && typeof r === "object" ? r : {}) };
  const num = (x, d) => (Number.isFinite(Number(x)) ? Number(x) : d);
  const weight = Math.round(Math.min(2, Math.max(0, num(v.weight, 1))) * 1000) / 1000;
  let begin = clamp01(num(v.begin, 0));
  let end = clamp01(num(v.end, 1));
  if (!(begin < end)) [begin, end] = [0, 1];
  /** @type {Record<string, any>} */
  const out = { weight, begin, end };
  if (typeof v.model === "string" && v.model) out.model = v.model;
  return out;
}

/**
 * Where a picture loaded into a reference layer goes: at its own shape (the picture is the reference,
 * not its place), no taller than the box, beside the box so it does not cover what the job repaints.
 * @param {{width: number, height: number}} picture @param {{x: number, y: number, width: number, height: number}} bbox
 */
export function referenceRect(picture, bbox) {
  const s = Math.min(1, bbox.height / picture.height);
  return {
    x: bbox.x + bbox.width + 16,
    y: bbox.y,
    width: Math.max(1, Math.round(picture.width * s)),
    height: Math.max(1, Math.round(picture.height * s)),
  };
}

/** A random id (letters and digits), unique enough for layers. */
export function newId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return "l" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The `params` of a document from the settings record. A random seed is left out (the server picks).
 * `loras`: the enabled rows of the LoRA stack, in order, that `loraFits` accepts (by default all);
 * left out when none (the server's default is an empty stack).
 * @param {Partial<typeof DEFAULT_SETTINGS>} s
 * @param {{loraFits?: (row: LoraRow) => boolean}} [o]
 */
export function paramsFromSettings(s, { loraFits = () => true } = {}) {
  const v = { ...DEFAULT_SETTINGS, ...s };
  /** @type {Record<string, any>} */
  const params = {
    prompt: String(v.prompt ?? ""),
    negative_prompt: String(v.negative_prompt ?? ""),
    model: v.model || null,
    steps: Math.round(Number(v.steps)),
    cfg_scale: Number(v.cfg_scale),
    scheduler: String(v.scheduler),
    batch_size: Math.round(Number(v.batch_size)),
    strength: Number(v.strength),
    mask_blur: Math.round(Number(v.mask_blur)),
    infill: v.infill,
    scale: Number(v.scale),
  };
  if (!v.random_seed) params.seed = Math.round(Number(v.seed));
  if (Number(v.true_cfg_scale) > 1) params.true_cfg_scale = Number(v.true_cfg_scale); // absent: off
  const loras = normaliseLoraRows(v.loras)
    .filter((row) => row.enabled && loraFits(row))
    .slice(0, LORA_MAX)
    .map((row) => ({ model: row.model, weight: row.weight }));
  if (loras.length) params.loras = loras;
  const hires = hiresParams(v.hires_fix);
  if (hires) params.hires_fix = hires; // absent: off
  return params;
}

/** Hires fix's settings when it is turned on (the server's HiresFixIn defaults). */
export const DEFAULT_HIRES = Object.freeze({ scale: 2, strength: 0.45, upscaler: null });

/** `settings.hires_fix` as a job's params carry it (null: off). @param {any} value */
export function hiresParams(value) {
  if (!value || typeof value !== "object") return null;
  const scale = Number(value.scale);
  const strength = Number(value.strength);
  const out = {
    scale: Number.isFinite(scale) && scale > 1 && scale <= 4 ? scale : DEFAULT_HIRES.scale,
    strength: Number.isFinite(strength) && strength > 0 && strength <= 1 ? strength : DEFAULT_HIRES.strength,
  };
  return typeof value.upscaler === "string" && value.upscaler ? { ...out, upscaler: value.upscaler } : out;
}

/**
 * @typedef {{model: string, name: string, weight: number, enabled: boolean}} LoraRow
 *   one row of the LoRA stack (settings.loras): the LoRA's model id, its name (shown even when the
 *   LoRA is no longer installed), its weight and whether it is sent
 */

/** A LoRA weight clamped to the server's range and rounded to 1/1000. @param {any} w */
export function clampLoraWeight(w) {
  const n = Number(w);
  if (!Number.isFinite(n)) return 1;
  return Math.round(Math.min(LORA_WEIGHT_MAX, Math.max(LORA_WEIGHT_MIN, n)) * 1000) / 1000;
}

/**
 * Clean LoRA rows (from the store, a saved document or a recall): rows without a model id are
 * dropped, a model listed twice keeps its first row, at most LORA_MAX rows.
 * @param {any} rows
 * @returns {LoraRow[]}
 */
export function normaliseLoraRows(rows) {
  if (!Array.isArray(rows)) return [];
  const seen = new Set();
  /** @type {LoraRow[]} */
  const out = [];
  for (const r of rows) {
    if (!r || typeof r.model !== "string" || !r.model || seen.has(r.model)) continue;
    seen.add(r.model);
    out.push({
      model: r.model,
      name: typeof r.name === "string" && r.name ? r.name.slice(0, NAME_MAX) : r.model,
      weight: clampLoraWeight(r.weight ?? 1),
      enabled: r.enabled !== false,
    });
    if (out.length >= LORA_MAX) break;
  }
  return out;
}

/**
 * The main model a job uses: the chosen one, or the server's default when none is chosen (marked
 * `default` by GET /models; older servers: the first installed main model that is not a built-in
 * demo, else the demo).
 * @param {any[]} models records from GET /models
 * @param {string|null|undefined} chosen settings.model
 */
/** The model kinds a job runs on (invoke_core/model_records.py GENERATING_KINDS). */
export const GENERATING_KINDS = ["main", "inpaint", "edit"];
/** Whether a model record is one a job can run on. @param {{kind?: string}} m */
export const generates = (m) => GENERATING_KINDS.includes(String(m && m.kind));
/** The model kinds a control layer runs with (invoke_core/model_records.py CONTROL_KINDS). */
export const CONTROL_KINDS = ["controlnet", "control_lora"];
/** @param {any} m a model record */
export const controls = (m) => CONTROL_KINDS.includes(String(m && m.kind));

export function mainModel(models, chosen) {
  const usable = (models || []).filter(generates);
  return (
    usable.find((m) => m.id === chosen) ||
    (chosen ? null : usable.find((m) => m.kind === "main" && m.default) || usable.find((m) => m.kind === "main" && !m.builtin) || usable.find((m) => m.id === "demo") || usable.find((m) => m.kind === "main")) ||
    null
  );
}

/**
 * Why a LoRA row cannot go with a job on this main model, or null when it fits: the LoRA is no
 * longer installed, or it is for another model family (the server refuses both).
 * @param {LoraRow} row
 * @param {any[]} models records from GET /models
 * @param {any|null} main the main model record (mainModel()); null: unknown, only installation is checked
 * @returns {null|{reason: "missing"|"family", message: string}}
 */
export function loraMisfit(row, models, main) {
  const record = (models || []).find((m) => m.id === row.model && m.kind === "lora");
  if (!record) return { reason: "missing", message: `${row.name || row.model} is not installed` };
  if (main && record.family !== main.family) {
    return { reason: "family", message: `${record.name} is a ${record.family} LoRA; ${main.name} is ${main.family}` };
  }
  return null;
}

const COLOR_RE = /^#[0-9a-fA-F]{6}$/;
export const NAME_MAX = 200;

/**
 * One layer of the document: the record's settings (name, lock and colour included), and the
 * asset's position and image id. `asset` null: a layer with no pixels yet (saved without `image_id`;
 * a job leaves such layers out).
 * A control layer needs a ControlNet model: a job (`strict`) refuses it without one with a clear
 * error; a save keeps the layer and leaves its control settings out until a model is chosen.
 * @param {LayerRecord} layer
 * @param {Asset|null} asset
 * @param {{strict?: boolean}} [o]
 */
export function layerToJson(layer, asset, { strict = true } = {}) {
  /** @type {Record<string, any>} */
  const out = { id: layer.id, kind: layer.kind };
  if (asset) {
    out.x = Math.round(asset.x);
    out.y = Math.round(asset.y);
    out.image_id = asset.image_id;
  }
  out.opacity = clamp01(layer.opacity ?? 1);
  out.visible = layer.visible !== false;
  if (layer.kind === "regional_guidance") {
    out.region = { prompt: layer.prompt || "", negative_prompt: layer.negative_prompt || "", strength: regionStrength(layer.strength) };
  }
  if (layer.kind === "control") {
    const c = layer.control || /** @type {any} */ ({});
    if (!c.model) {
      if (strict) throw new Error(`control layer "${layer.name || layer.id}" has no ControlNet model: choose one or hide the layer`);
    } else {
      out.control = {
        model: c.model,
        preprocessor: c.preprocessor || "none",
        weight: Number(c.weight ?? 1),
        begin: clamp01(Number(c.begin ?? 0)),
        end: clamp01(Number(c.end ?? 1)),
        mode: c.mode || "balanced",
      };
      if (c.control_type) out.control.control_type = c.control_type; // a Union ControlNet's
    }
  }
  if (layer.kind === "reference") out.reference = referenceSettings(layer.reference);
  const name = typeof layer.name === "string" ? layer.name.trim().slice(0, NAME_MAX) : "";
  if (name) out.name = name;
  out.locked = !!layer.locked;
  if (typeof layer.color === "string" && COLOR_RE.test(layer.color)) out.color = layer.color.toLowerCase();
  return out;
}

/** A region strength in [0, 1] (the default when missing or not a number). @param {any} v */
export function regionStrength(v) {
  const n = typeof v === "number" ? v : Number.NaN;
  return Number.isFinite(n) ? Math.round(clamp01(n) * 1000) / 1000 : DEFAULT_REGION_STRENGTH;
}

/** @param {number} v */
function clamp01(v) {
  return Math.min(1, Math.max(0, Number(v)));
}

/** @param {BBox} b */
export function bboxToJson(b) {
  return { x: Math.round(b.x), y: Math.round(b.y), width: Math.round(b.width), height: Math.round(b.height) };
}

/**
 * A fingerprint of exported pixels: position, size and two independent 32-bit hashes of the RGBA
 * bytes (FNV-1a and a multiply-rotate hash over 32-bit words).
 * @param {ArrayLike<number> & {buffer?: ArrayBufferLike, byteOffset?: number, byteLength?: number}} data RGBA bytes
 * @param {number} width
 * @param {number} height
 * @param {number} x
 * @param {number} y
 */
export function fingerprint(data, width, height, x, y) {
  let h1 = 0x811c9dc5;
  let h2 = 0x9e3779b9;
  const n = data.length;
  const words = n >> 2;
  /** @type {Uint32Array|null} */
  let u32 = null;
  if (data.buffer && (data.byteOffset ?? 0) % 4 === 0) {
    u32 = new Uint32Array(data.buffer, data.byteOffset ?? 0, words);
  }
  for (let i = 0; i < words; i++) {
    const w = u32 ? u32[i] : (data[4 * i] | (data[4 * i + 1] << 8) | (data[4 * i + 2] << 16) | (data[4 * i + 3] << 24)) >>> 0;
    h1 = Math.imul(h1 ^ w, 0x01000193);
    h2 = Math.imul((h2 ^ w) + i, 0x85ebca6b);
    h2 = (h2 << 13) | (h2 >>> 19);
  }
  for (let i = words * 4; i < n; i++) {
    h1 = Math.imul(h1 ^ data[i], 0x01000193);
    h2 = Math.imul(h2 ^ data[i], 0xc2b2ae35);
  }
  const hex = (v) => (v >>> 0).toString(16).padStart(8, "0");
  return `${Math.round(x)},${Math.round(y)},${width}x${height}:${hex(h1)}${hex(h2)}`;
}

/**
 * Remembers which asset holds which pixels, so a layer is uploaded only when its pixels changed.
 * Concurrent requests for the same pixels (an invoke during an autosave) share one upload.
 */
export function createAssetTracker() {
  /** @type {Map<string, {fp: string, image_id: string}>} layer id -> last upload */
  const byLayer = new Map();
  /** @type {Map<string, string>} fingerprint -> image id (any layer: duplicates share an asset) */
  const byPrint = new Map();
  /** @type {Map<string, Promise<string>>} fingerprint -> upload in flight */
  const inFlight = new Map();
  let uploads = 0;

  return {
    /** The image id already holding these pixels for this layer (or any layer), or null. */
    lookup(layerId, fp) {
      const known = byLayer.get(layerId);
      if (known && known.fp === fp) return known.image_id;
      return byPrint.get(fp) ?? null;
    },
    /** Record that `image_id` holds `fp` for `layerId` (after an upload or a restore). */
    remember(layerId, fp, imageId) {
      byLayer.set(layerId, { fp, image_id: imageId });
      byPrint.set(fp, imageId);
    },
    forget(layerId) {
      byLayer.delete(layerId);
    },
    /** The server deleted these assets (event `assets_deleted`): pixels they held are uploaded again. @param {Iterable<string>} imageIds */
    drop(imageIds) {
      const gone = new Set(imageIds);
      for (const [layerId, known] of byLayer) if (gone.has(known.image_id)) byLayer.delete(layerId);
      for (const [fp, imageId] of byPrint) if (gone.has(imageId)) byPrint.delete(fp);
    },
    /**
     * The image id for these pixels, uploading with `upload()` only when no asset holds them yet.
     * @param {string} layerId
     * @param {string} fp
     * @param {() => Promise<string>} upload resolves to the new image id
     */
    async resolve(layerId, fp, upload) {
      const known = this.lookup(layerId, fp);
      if (known) {
        byLayer.set(layerId, { fp, image_id: known });
        return known;
      }
      let pending = inFlight.get(fp);
      if (!pending) {
        uploads += 1;
        pending = upload().finally(() => inFlight.delete(fp));
        inFlight.set(fp, pending);
      }
      const imageId = await pending;
      this.remember(layerId, fp, imageId);
      return imageId;
    },
    /** How many uploads were started (for tests and diagnostics). */
    get uploads() {
      return uploads;
    },
    get size() {
      return byLayer.size;
    },
  };
}

/**
 * Build the document from records and exported pixels. Pure apart from the injected functions.
 * @param {{
 *   layers: LayerRecord[],            bottom first
 *   bbox: BBox,
 *   settings: Record<string, any>,
 *   exportLayer: (id: string) => Exported|null,
 *   readPixels: (exported: Exported) => ArrayLike<number>,
 *   upload: (exported: Exported, layer: LayerRecord) => Promise<string>,
 *   tracker: ReturnType<typeof createAssetTracker>,
 *   forJob?: boolean,                  true: only visible layers with pixels (a generation); false: all (a save)
 *   ui?: Record<string, any>|null,     the front end's state, saved as `ui` (saves only)
 *   loraFits?: (row: LoraRow) => boolean,  which enabled LoRA rows go into params (default: all)
 *   negatives?: boolean,               false: a job's negative prompts go empty (a family without them)
 * }} o
 * @returns {Promise<{document: {bbox: any, layers: any[], params: any, ui?: any}, empty: string[]}>}
 *   `empty`: ids of layers with no pixels (saved without an image_id; left out of a job)
 */
export async function buildDocument(o) {
  const chosen = o.layers.filter((l) => !o.forJob || l.visible !== false);
  /** @type {string[]} */
  const empty = [];
  const entries = await Promise.all(
    chosen.map(async (layer) => {
      if (o.forJob && layer.kind === "control" && !(layer.control && layer.control.model)) {
        layerToJson(layer, null); // throws the clear error before any upload
      }
      const exported = o.exportLayer(layer.id);
      if (!exported || !exported.width || !exported.height) {
        empty.push(layer.id);
        return o.forJob ? null : layerToJson(layer, null, { strict: false });
      }
      const fp = fingerprint(o.readPixels(exported), exported.width, exported.height, exported.x, exported.y);
      const imageId = await o.tracker.resolve(layer.id, fp, () => o.upload(exported, layer));
      return layerToJson(layer, { image_id: imageId, x: exported.x, y: exported.y }, { strict: !!o.forJob });
    }),
  );
  /** @type {{bbox: any, layers: any[], params: any, ui?: any}} */
  const document = {
    bbox: bboxToJson(o.bbox),
    layers: entries.filter(Boolean),
    params: paramsFromSettings(o.settings, { loraFits: o.loraFits }),
  };
  if (!o.forJob && o.ui) document.ui = o.ui;
  if (o.forJob && o.negatives === false) {
    // the family reads no negative prompt: the job goes without, the text stays for another model
    document.params.negative_prompt = "";
    for (const layer of document.layers) if (layer.region) layer.region.negative_prompt = "";
  }
  return { document, empty };
}

/**
 * The document's `ui`: what the front end needs beyond layers and params to restore the canvas as
 * it was, in any browser.
 * @param {{settings: Record<string, any>, staging?: any, board?: string|null,
 *   jobs?: Iterable<[number, {bbox: any, generation_id?: string}]>}} o
 */
export function uiState(o) {
  const s = o.settings || {};
  /** @type {Record<string, any>} */
  const ui = { v: 2, random_seed: s.random_seed !== false };
  if (typeof s.seed === "number" && Number.isFinite(s.seed)) ui.seed = s.seed;
  const st = o.staging;
  if (st && Array.isArray(st.items) && st.items.length) {
    ui.staging = { items: st.items, index: st.index || 0, bbox: st.bbox ?? null };
  }
  if (o.board) ui.board = o.board;
  // the whole LoRA stack, disabled rows and names included (params.loras holds only what a job sends)
  const loras = normaliseLoraRows(s.loras);
  if (loras.length) ui.loras = loras;
  const jobs = o.jobs ? [...o.jobs] : [];
  if (jobs.length) ui.jobs = jobs.map(([item_id, job]) => ({ item_id, bbox: job.bbox, generation_id: job.generation_id ?? null }));
  return ui;
}

/**
 * The records to load from a saved document, the pixels to import afterwards and the rest of the
 * UI state (staging, jobs, board).
 * @param {{bbox: any, layers: any[], params: any, ui?: any}} document
 */
export function recordsFromDocument(document) {
  const ui = document.ui && typeof document.ui === "object" ? document.ui : {};
  /** @type {LayerRecord[]} */
  const layers = [];
  /** @type {{layer_id: string, image_id: string, x: number, y: number}[]} */
  const imports = [];
  /** @type {Record<string, number>} */
  const perKind = {};
  for (const l of document.layers || []) {
    if (!l || !LAYER_KINDS.includes(l.kind)) continue;
    perKind[l.kind] = (perKind[l.kind] || 0) + 1;
    const base = newLayer(l.kind, { id: l.id, index: perKind[l.kind] });
    /** @type {LayerRecord} */
    const rec = {
      ...base,
      name: typeof l.name === "string" && l.name ? l.name : base.name,
      locked: !!l.locked,
      opacity: l.opacity ?? 1,
      visible: l.visible !== false,
      z: layers.length + 1,
      x: 0,
      y: 0,
    };
    if (typeof l.color === "string" && COLOR_RE.test(l.color)) rec.color = l.color;
    if (l.region) {
      rec.prompt = l.region.prompt || "";
      rec.negative_prompt = l.region.negative_prompt || "";
      rec.strength = regionStrength(l.region.strength);
    }
    if (l.control) rec.control = { ...l.control };
    if (l.kind === "reference") rec.reference = { ...DEFAULT_REFERENCE, ...referenceSettings(l.reference) };
    layers.push(rec);
    if (l.image_id) imports.push({ layer_id: l.id, image_id: l.image_id, x: l.x || 0, y: l.y || 0 });
  }
  const p = document.params || {};
  const settings = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(DEFAULT_SETTINGS)) {
    if (key in p && key !== "id" && key !== "type") settings[key] = p[key];
  }
  const fixed = typeof p.seed === "number";
  settings.random_seed = typeof ui.random_seed === "boolean" ? ui.random_seed : !fixed;
  if (fixed) settings.seed = p.seed;
  else if (typeof ui.seed === "number") settings.seed = ui.seed;
  // the LoRA stack: from ui (all rows); a document without it (an older save, a job) has only the sent ones
  settings.loras = normaliseLoraRows(Array.isArray(ui.loras) ? ui.loras : Array.isArray(p.loras) ? p.loras : []);
  const bbox = { ...DEFAULT_BBOX, ...(document.bbox || {}) };
  const st = ui.staging;
  const staging =
    st && Array.isArray(st.items) && st.items.length
      ? { id: "staging", type: "staging", items: st.items, index: Math.min(Math.max(0, st.index || 0), st.items.length - 1), bbox: st.bbox ?? null }
      : null;
  /** @type {[number, {bbox: any, generation_id: string|null}][]} */
  const jobs = (Array.isArray(ui.jobs) ? ui.jobs : [])
    .filter((j) => j && Number.isInteger(j.item_id))
    .map((j) => [j.item_id, { bbox: j.bbox, generation_id: j.generation_id ?? null }]);
  const board = typeof ui.board === "string" ? ui.board : null;
  return { layers, imports, settings, bbox, staging, jobs, board };
}

/**
 * A document saved before the server held the UI state, with the extras this browser kept in
 * localStorage (format v1): the same document in the current format (names, lock, colours and empty
 * layers on the layers, the rest in `ui`). A one-time migration.
 * @param {{bbox: any, layers: any[], params: any, ui?: any}} document
 * @param {any} extras
 * @param {any[]} [jobs] the item id -> job entries this browser kept
 */
export function migrateExtras(document, extras, jobs = []) {
  if (document.ui || !extras || extras.v !== 1 || !Array.isArray(extras.layers)) return document;
  const byId = new Map(extras.layers.map((l) => [l.id, l]));
  const docIds = new Set((document.layers || []).map((l) => l.id));
  const entries = (document.layers || []).map((l, i) => {
    const extra = byId.get(l.id) || {};
    const layer = { ...l };
    if (extra.name) layer.name = String(extra.name).slice(0, NAME_MAX);
    layer.locked = !!extra.locked;
    if (typeof extra.color === "string" && COLOR_RE.test(extra.color)) layer.color = extra.color;
    return { z: typeof extra.z === "number" ? extra.z : i + 1, layer };
  });
  for (const extra of extras.layers) {
    if (docIds.has(extra.id) || !extra.empty || !LAYER_KINDS.includes(extra.kind)) continue;
    const record = { ...newLayer(extra.kind, { id: extra.id }), ...extra, type: "layer" };
    entries.push({ z: typeof extra.z === "number" ? extra.z : entries.length + 1, layer: layerToJson(record, null, { strict: false }) });
  }
  entries.sort((a, b) => a.z - b.z);
  const settings = { random_seed: document.params?.seed === undefined || document.params?.seed === null, ...(extras.settings || {}) };
  const ui = uiState({ settings, staging: extras.staging, jobs });
  return { ...document, layers: entries.map((e) => e.layer), ui };
}

/** JSON with object keys sorted: equal documents give equal text, whatever the key order. */
export function canonicalJson(value) {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

// ---- DOM side: the builder bound to a canvas and the API ---------------------------------------------

/**
 * @param {any} exported
 * @returns {Uint8ClampedArray}
 */
export function readCanvasPixels(exported) {
  const c = exported.canvas;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  return ctx.getImageData(0, 0, exported.width, exported.height).data;
}

/** @param {any} canvas @returns {Promise<Blob>} */
export function canvasToPng(canvas) {
  if (typeof canvas.convertToBlob === "function") return canvas.convertToBlob({ type: "image/png" });
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the layer as PNG"))), "image/png"),
  );
}

/**
 * The document builder bound to the store, the canvas pixels and the API.
 * @param {{store: any, pixels: any, api: any, uiExtras?: () => {board?: string|null, jobs?: Iterable<[number, any]>},
 *   loraFits?: (row: LoraRow) => boolean, negatives?: () => boolean}} deps
 *   uiExtras: state the store does not hold (the gallery's board, running jobs), saved in `ui`;
 *   loraFits: which enabled LoRA rows go into `params.loras` (installed, of the main model's family);
 *   negatives: whether the main model's family reads negative prompts (else a job goes without)
 */
export function createDocumentBuilder({ store, pixels, api, uiExtras = () => ({}), loraFits = () => true, negatives = () => true }) {
  const tracker = createAssetTracker();

  async function upload(exported, layer) {
    const blob = await canvasToPng(exported.canvas);
    const category = layer.kind === "inpaint_mask" || layer.kind === "regional_guidance" ? "mask" : layer.kind === "control" ? "control" : "layer";
    const image = await api.images.upload(blob, { category, filename: `${layer.id}.png` });
    return image.id;
  }

  /**
   * @param {{forJob?: boolean}} [o]
   */
  async function build(o = {}) {
    const settings = store.get("settings") || DEFAULT_SETTINGS;
    const result = await buildDocument({
      layers: store.layers(),
      bbox: store.get("bbox") || DEFAULT_BBOX,
      settings,
      exportLayer: (id) => pixels.exportLayer(id),
      readPixels: readCanvasPixels,
      upload,
      tracker,
      forJob: !!o.forJob,
      loraFits,
      negatives: negatives(),
      ui: o.forJob ? null : uiState({ settings, staging: store.get("staging"), ...uiExtras() }),
    });
    return { document: result.document, empty: result.empty };
  }

  /** After importing a layer's pixels from an asset: remember them so they are not uploaded again. */
  function rememberImported(layerId, imageId) {
    const exported = pixels.exportLayer(layerId);
    if (!exported) return;
    const fp = fingerprint(readCanvasPixels(exported), exported.width, exported.height, exported.x, exported.y);
    tracker.remember(layerId, fp, imageId);
  }

  /**
   * The document now, synchronously and without uploads: each layer's pixels are named by
   * `assetOf(layer)` (the asset the server last had, or null), the changes since travel as tiles.
   * What a journal entry and a closing page's save hold.
   * @param {(layer: LayerRecord) => Asset | null} assetOf
   */
  function snapshot(assetOf) {
    const settings = store.get("settings") || DEFAULT_SETTINGS;
    return {
      bbox: bboxToJson(store.get("bbox") || DEFAULT_BBOX),
      layers: store.layers().map((/** @type {LayerRecord} */ l) => layerToJson(l, assetOf(l), { strict: false })),
      params: paramsFromSettings(settings, { loraFits }),
      ui: uiState({ settings, staging: store.get("staging"), ...uiExtras() }),
    };
  }

  return { build, snapshot, tracker, rememberImported };
}
