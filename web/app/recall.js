// Recall: a generated image's parameters into Generate, its region, control and reference layers back
// onto the canvas, and gallery images onto the canvas (as a new layer, a control or a reference layer).

import { DEFAULT_REFERENCE, DEFAULT_SETTINGS, controls as runsControl, generates, hiresParams, normaliseLoraRows, referenceRect, referenceSettings, regionStrength } from "../document.js";
import { loadBitmap } from "../panels/dom.js";
import { asOneStep } from "../panels/layers.js";

/**
 * @param {{store: any, history: any, api: any, toasts: any, ops: any, models: () => any[]}} deps
 *   `ops`: the layer operations (panels/layers.js); `models`: the installed models, as last listed.
 */
export function createRecall({ store, history, api, toasts, ops, models: listModels }) {
  /** The parameters of a generated image (GET /images/<id>/recall) into Generate: prompts, sampling,
   * seed, model, img2img/inpaint settings, box size and the LoRA stack (LoRAs no longer installed are
   * left out, with one warning naming them). */
  function recallParameters(params) {
    if (!params || !Object.keys(params).length) {
      toasts.info("This image carries no generation parameters");
      return;
    }
    const s = { ...DEFAULT_SETTINGS, ...(store.get("settings") || {}) };
    const next = { ...s };
    for (const key of ["prompt", "negative_prompt", "steps", "cfg_scale", "scheduler", "strength", "mask_blur", "infill", "scale"]) {
      if (params[key] !== undefined && params[key] !== null) next[key] = params[key];
    }
    next.true_cfg_scale = typeof params.true_cfg_scale === "number" ? params.true_cfg_scale : 1; // absent: off
    if (typeof params.seed === "number") {
      next.seed = params.seed;
      next.random_seed = false;
    }
    const models = listModels();
    const usable = models.filter(generates);
    const byId = params.model_id ? usable.find((x) => x.id === params.model_id) : null;
    const byName = params.model_name ? usable.find((x) => x.name === params.model_name) : null;
    if (byId || byName) next.model = (byId || byName).id;
    // the LoRA stack: as the image had it (absent: none)
    const recalled = Array.isArray(params.loras) ? params.loras : [];
    const missing = recalled.filter((l) => !l || l.installed === false || !l.model);
    next.loras = normaliseLoraRows(
      recalled
        .filter((l) => l && l.installed !== false && l.model)
        .map((l) => ({ model: l.model, name: l.name || l.model, weight: l.weight ?? 1, enabled: true })),
    );
    // hires fix: as the image had it (absent: off); an upscaler no longer installed becomes a plain resize
    const hires = params.hires_fix && typeof params.hires_fix === "object" ? params.hires_fix : null;
    next.hires_fix = hires ? hiresParams({ ...hires, upscaler: hires.installed === false ? null : hires.upscaler }) : null;
    store.apply({ put: [next] }, { history: false });
    if (hires && hires.installed === false) toasts.warning(`Hires fix upscaler "${hires.upscaler_name || "unknown"}" is not installed: a plain resize instead`);
    if (params.width && params.height && params.width % 8 === 0 && params.height % 8 === 0) {
      const b = store.get("bbox");
      if (b.width !== params.width || b.height !== params.height) store.apply({ put: [{ ...b, width: params.width, height: params.height }] });
    }
    toasts.success("Parameters recalled into Generate");
    if (missing.length) {
      const names = missing.map((l) => `"${(l && (l.name || l.model)) || "unnamed"}"`).join(", ");
      toasts.warning(`Not installed, left out of the LoRA list: ${names}`);
    }
  }

  /**
   * The regional-guidance, control and reference layers of a generated image (its recall's `regions`,
   * `controls` and `references`) added back to the canvas as ONE undo step: each with its settings and its pixels
   * (the asset the job used) at its canvas position. Items whose asset was deleted, or whose
   * ControlNet is not installed, are skipped with one warning.
   */
  async function recallLayers(params) {
    const regions = Array.isArray(params?.regions) ? params.regions : [];
    const controls = Array.isArray(params?.controls) ? params.controls : [];
    const references = Array.isArray(params?.references) ? params.references : [];
    /** @type {string[]} */
    const skipped = [];
    const models = listModels();
    const label = (item, kind) => `${kind} "${item.name || item.prompt || item.model_name || item.layer_id || "?"}"`;
    const usable = [
      ...regions.map((r) => ({ kind: "regional_guidance", item: r })),
      ...controls.map((c) => ({ kind: "control", item: c })),
      ...references.map((r) => ({ kind: "reference", item: r })),
    ].filter(({ kind, item }) => {
      const what = label(item, kind === "regional_guidance" ? "region" : kind);
      if (item.available === false || !item.image_id) {
        skipped.push(`${what} (its image was deleted)`);
        return false;
      }
      if (kind === "control" && (item.installed === false || !item.model || !models.some((m) => m.id === item.model && runsControl(m)))) {
        skipped.push(`${what} (ControlNet ${item.model_name || item.model || "?"} is not installed)`);
        return false;
      }
      return true;
    });
    // fetch every picture first: a failed download adds nothing (no half step)
    const loaded = await Promise.all(usable.map(async (u) => ({ ...u, bitmap: await loadBitmap(api.images.fileUrl(u.item.image_id)) })));
    if (loaded.length) {
      await asOneStep(history, "recall layers", async () => {
        for (const { kind, item, bitmap } of loaded) {
          /** @type {Record<string, any>} */
          const extra = {};
          if (typeof item.color === "string" && /^#[0-9a-fA-F]{6}$/.test(item.color)) extra.color = item.color.toLowerCase();
          if (kind === "regional_guidance") {
            extra.prompt = item.prompt || "";
            extra.negative_prompt = item.negative_prompt || "";
            extra.strength = regionStrength(item.strength);
          } else if (kind === "control") {
            extra.control = {
              model: item.model,
              preprocessor: item.preprocessor || "none",
              weight: Number(item.weight ?? 1),
              begin: Number(item.begin ?? 0),
              end: Number(item.end ?? 1),
              mode: item.mode || "balanced",
              ...(item.control_type ? { control_type: item.control_type } : {}),
            };
          } else if (kind === "reference") {
            // its IP-Adapter where it is installed, else the family's default; weight and step range as recorded
            const model = item.installed !== false && typeof item.model === "string" && item.model ? item.model : null;
            extra.reference = { ...DEFAULT_REFERENCE, ...referenceSettings({ ...item, model }) };
          }
          await ops.addFromBitmap(bitmap, { kind, x: Number(item.x) || 0, y: Number(item.y) || 0, name: item.name || undefined, extra });
        }
        // the box goes back where the image was made, so the recalled masks line up with it as they did
        const bb = params.bbox;
        if (Array.isArray(bb) && bb.length === 4 && bb.every(Number.isInteger) && bb[2] > 0 && bb[3] > 0 && bb[2] % 8 === 0 && bb[3] % 8 === 0) {
          store.apply({ put: [{ ...store.get("bbox"), x: bb[0], y: bb[1], width: bb[2], height: bb[3] }] });
        }
      });
      const count = (kind, what) => {
        const n = loaded.filter((l) => l.kind === kind).length;
        return n ? `${n} ${what} layer${n === 1 ? "" : "s"}` : "";
      };
      const parts = [count("regional_guidance", "region"), count("control", "control"), count("reference", "reference")].filter(Boolean);
      toasts.success(`Recalled ${parts.join(" and ")} onto the canvas`);
    }
    if (skipped.length) toasts.warning(`Skipped ${skipped.join(", ")}`);
    return loaded.length;
  }

  async function sendImageToCanvas(image) {
    const bitmap = await loadBitmap(api.url(image.url));
    const b = store.get("bbox");
    await ops.addFromBitmap(bitmap, { x: b.x, y: b.y, name: image.prompt ? image.prompt.slice(0, 40) : "Image" });
    toasts.success("Added to the canvas as a new layer");
  }

  async function useAsControl(image) {
    const bitmap = await loadBitmap(api.url(image.url));
    const b = store.get("bbox");
    await asOneStep(history, "control layer", async () => {
      const layer = ops.add("control");
      await ops.replacePixels(layer.id, bitmap, b);
    });
    toasts.success("A new control layer uses the image");
  }

  async function useAsReference(image) {
    const bitmap = await loadBitmap(api.url(image.url));
    const rect = referenceRect(bitmap, store.get("bbox"));
    await ops.addFromBitmap(bitmap, { kind: "reference", x: rect.x, y: rect.y, fit: rect });
    toasts.success("A new reference layer uses the image");
  }

  return { recallParameters, recallLayers, sendImageToCanvas, useAsControl, useAsReference };
}
