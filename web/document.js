// The canvas-document builder: store records + layer pixels -> the JSON document the server takes
// (`CanvasDocumentIn`: {bbox, layers: [{id, kind, x, y, image_id, opacity, visible, region, control}],
// params}) for `POST /api/v1/canvas/jobs` and for autosave (`POST /api/v1/canvas`).
//
// Each layer's pixels are uploaded once as an image asset; a fingerprint of the exported pixels
// (position, size, two 32-bit hashes) decides whether a layer changed since its last upload, so an
// unchanged layer is never uploaded again. The server's document schema is strict: what it has no
// field for (layer names, lock, colours, staging, the random-seed toggle) travels in "extras", kept
// beside the canvas id in localStorage by app.js.
//
// The pure parts (mapping, fingerprint, tracker, restore) need no DOM and are unit-tested.

/** @typedef {"raster"|"inpaint_mask"|"regional_guidance"|"control"} LayerKind */
/**
 * @typedef {{id: string, type: "layer", kind: LayerKind, name: string, z: number, x: number, y: number,
 *   opacity: number, visible: boolean, locked: boolean, color?: string, prompt?: string,
 *   negative_prompt?: string, control?: ControlSettings}} LayerRecord
 * @typedef {{model: string, preprocessor: string, weight: number, begin: number, end: number}} ControlSettings
 * @typedef {{id: "bbox", type?: string, x: number, y: number, width: number, height: number}} BBox
 * @typedef {{x: number, y: number, width: number, height: number, canvas: any}} Exported
 * @typedef {{image_id: string, x: number, y: number}} Asset
 */

export const LAYER_KINDS = /** @type {const} */ (["raster", "inpaint_mask", "regional_guidance", "control"]);

export const DEFAULT_SETTINGS = Object.freeze({
  id: "settings",
  type: "settings",
  prompt: "",
  negative_prompt: "",
  model: null,
  steps: 30,
  cfg_scale: 7.5,
  scheduler: "euler",
  seed: 0,
  random_seed: true,
  batch_size: 1,
  strength: 0.75,
  mask_blur: 8,
  infill: "patchmatch",
  scale: 1,
});

export const DEFAULT_BBOX = Object.freeze({ id: "bbox", type: "bbox", x: 0, y: 0, width: 512, height: 512 });

const REGION_COLORS = ["#e0533d", "#3d8be0", "#4fbf6a", "#d9a400", "#a35be0", "#e05ba8", "#2bb5b5"];

/**
 * A new layer record with the defaults of its kind.
 * @param {LayerKind} kind
 * @param {{id?: string, name?: string, z?: number, index?: number, control_model?: string}} [o]
 * @returns {LayerRecord}
 */
export function newLayer(kind, o = {}) {
  if (!LAYER_KINDS.includes(kind)) throw new Error(`unknown layer kind ${JSON.stringify(kind)}`);
  const names = { raster: "Raster", inpaint_mask: "Inpaint mask", regional_guidance: "Region", control: "Control" };
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
  }
  if (kind === "control") {
    layer.control = { model: o.control_model || "", preprocessor: "none", weight: 1, begin: 0, end: 1 };
  }
  return layer;
}

/** A random id (letters and digits), unique enough for layers. */
export function newId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return "l" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The `params` of a document from the settings record. A random seed is left out (the server picks).
 * @param {Partial<typeof DEFAULT_SETTINGS>} s
 */
export function paramsFromSettings(s) {
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
  return params;
}

/**
 * One layer of the document: the record's settings, the asset's position and image id.
 * A control layer needs a ControlNet model: a job (`strict`) refuses it without one with a clear
 * error; a save keeps the layer and leaves its control settings out until a model is chosen.
 * @param {LayerRecord} layer
 * @param {Asset} asset
 * @param {{strict?: boolean}} [o]
 */
export function layerToJson(layer, asset, { strict = true } = {}) {
  /** @type {Record<string, any>} */
  const out = {
    id: layer.id,
    kind: layer.kind,
    x: Math.round(asset.x),
    y: Math.round(asset.y),
    image_id: asset.image_id,
    opacity: clamp01(layer.opacity ?? 1),
    visible: layer.visible !== false,
  };
  if (layer.kind === "regional_guidance") {
    out.region = { prompt: layer.prompt || "", negative_prompt: layer.negative_prompt || "" };
  }
  if (layer.kind === "control") {
    const c = layer.control || /** @type {any} */ ({});
    if (!c.model) {
      if (strict) throw new Error(`control layer "${layer.name || layer.id}" has no ControlNet model: choose one or hide the layer`);
      return out;
    }
    out.control = {
      model: c.model,
      preprocessor: c.preprocessor || "none",
      weight: Number(c.weight ?? 1),
      begin: clamp01(Number(c.begin ?? 0)),
      end: clamp01(Number(c.end ?? 1)),
    };
  }
  return out;
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
 *   forJob?: boolean,                  true: only visible layers (a generation); false: all (a save)
 * }} o
 * @returns {Promise<{document: {bbox: any, layers: any[], params: any}, empty: string[]}>}
 *   `empty`: ids of layers with no pixels (left out of the document)
 */
export async function buildDocument(o) {
  const chosen = o.layers.filter((l) => !o.forJob || l.visible !== false);
  /** @type {string[]} */
  const empty = [];
  const entries = await Promise.all(
    chosen.map(async (layer) => {
      if (o.forJob && layer.kind === "control" && !(layer.control && layer.control.model)) {
        layerToJson(layer, { image_id: "", x: 0, y: 0 }); // throws the clear error before any upload
      }
      const exported = o.exportLayer(layer.id);
      if (!exported || !exported.width || !exported.height) {
        empty.push(layer.id);
        return null;
      }
      const fp = fingerprint(o.readPixels(exported), exported.width, exported.height, exported.x, exported.y);
      const imageId = await o.tracker.resolve(layer.id, fp, () => o.upload(exported, layer));
      return layerToJson(layer, { image_id: imageId, x: exported.x, y: exported.y }, { strict: !!o.forJob });
    }),
  );
  return {
    document: {
      bbox: bboxToJson(o.bbox),
      layers: entries.filter(Boolean),
      params: paramsFromSettings(o.settings),
    },
    empty,
  };
}

/**
 * What the server's strict document cannot hold, kept beside it (localStorage).
 * @param {{layers: LayerRecord[], settings: Record<string, any>, staging?: any}} o
 * @param {string[]} emptyIds layers with no pixels (kept so an empty layer survives a reload)
 */
export function documentExtras(o, emptyIds = []) {
  const empty = new Set(emptyIds);
  return {
    v: 1,
    layers: o.layers.map((l) => {
      const { type, ...rest } = l;
      return { ...rest, empty: empty.has(l.id) };
    }),
    settings: { seed: o.settings.seed, random_seed: !!o.settings.random_seed },
    staging: o.staging && o.staging.items && o.staging.items.length ? o.staging : null,
  };
}

/**
 * The records to load from a saved document (and its extras, when this browser has them), and the
 * pixels to import afterwards.
 * @param {{bbox: any, layers: any[], params: any}} document
 * @param {ReturnType<typeof documentExtras>|null} [extras]
 */
export function recordsFromDocument(document, extras = null) {
  const byId = new Map((extras && Array.isArray(extras.layers) ? extras.layers : []).map((l) => [l.id, l]));
  const docIds = new Set((document.layers || []).map((l) => l.id));
  /** @type {LayerRecord[]} */
  const layers = [];
  /** @type {{layer_id: string, image_id: string, x: number, y: number}[]} */
  const imports = [];
  let index = 0;
  for (const l of document.layers || []) {
    const extra = byId.get(l.id) || {};
    index += 1;
    const base = newLayer(l.kind, { id: l.id, index });
    /** @type {LayerRecord} */
    const rec = {
      ...base,
      name: extra.name || base.name,
      locked: !!extra.locked,
      color: extra.color || base.color,
      opacity: l.opacity ?? 1,
      visible: l.visible !== false,
      z: typeof extra.z === "number" ? extra.z : index,
      x: 0,
      y: 0,
    };
    if (!rec.color) delete rec.color;
    if (l.region) {
      rec.prompt = l.region.prompt || "";
      rec.negative_prompt = l.region.negative_prompt || "";
    }
    if (l.control) rec.control = { ...l.control };
    layers.push(rec);
    imports.push({ layer_id: l.id, image_id: l.image_id, x: l.x || 0, y: l.y || 0 });
  }
  for (const extra of byId.values()) {
    if (docIds.has(extra.id) || !extra.empty || !LAYER_KINDS.includes(extra.kind)) continue;
    const { empty, ...rest } = extra;
    layers.push({ ...newLayer(extra.kind, { id: extra.id }), ...rest, type: "layer", x: 0, y: 0 });
  }
  layers.sort((a, b) => a.z - b.z);
  layers.forEach((l, i) => (l.z = i + 1));
  const p = document.params || {};
  const settings = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(DEFAULT_SETTINGS)) {
    if (key in p && key !== "id" && key !== "type") settings[key] = p[key];
  }
  settings.random_seed = p.seed === undefined || p.seed === null;
  if (extras && extras.settings) {
    settings.random_seed = !!extras.settings.random_seed;
    if (typeof extras.settings.seed === "number") settings.seed = extras.settings.seed;
  }
  if (typeof p.seed === "number") settings.seed = p.seed;
  const bbox = { ...DEFAULT_BBOX, ...(document.bbox || {}) };
  const staging = extras && extras.staging ? { ...extras.staging, id: "staging", type: "staging" } : null;
  return { layers, imports, settings, bbox, staging };
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
 * @param {{store: any, pixels: any, api: any}} deps
 */
export function createDocumentBuilder({ store, pixels, api }) {
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
    const layers = store.layers();
    const settings = store.get("settings") || DEFAULT_SETTINGS;
    const result = await buildDocument({
      layers,
      bbox: store.get("bbox") || DEFAULT_BBOX,
      settings,
      exportLayer: (id) => pixels.exportLayer(id),
      readPixels: readCanvasPixels,
      upload,
      tracker,
      forJob: !!o.forJob,
    });
    const extras = documentExtras({ layers, settings, staging: store.get("staging") }, result.empty);
    return { document: result.document, extras };
  }

  /** After importing a layer's pixels from an asset: remember them so they are not uploaded again. */
  function rememberImported(layerId, imageId) {
    const exported = pixels.exportLayer(layerId);
    if (!exported) return;
    const fp = fingerprint(readCanvasPixels(exported), exported.width, exported.height, exported.x, exported.y);
    tracker.remember(layerId, fp, imageId);
  }

  return { build, tracker, rememberImported };
}
