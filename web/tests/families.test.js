import { test } from "node:test";
import assert from "node:assert/strict";
import { familyOf, missing, missingFor, referenceKinds, schedulerOptions, settingsForFamily } from "../families.js";

const config = {
  families: {
    "sd-1": { label: "Stable Diffusion 1.x", features: ["regions", "controlnet", "lora", "negative_prompt"], schedulers: ["euler", "dpmpp_2m", "heun"], defaults: { steps: 30, cfg_scale: 7.5, scheduler: "euler" } },
    "sd-3": { label: "Stable Diffusion 3.5", features: ["negative_prompt"], schedulers: ["euler", "heun"], defaults: { steps: 28, cfg_scale: 4.5, scheduler: "euler" } },
  },
};
const sd1 = config.families["sd-1"];
const sd3 = config.families["sd-3"];

test("a model's family comes from the server's config; unknown gives null", () => {
  assert.equal(familyOf(config, { family: "sd-3" }), sd3);
  assert.equal(familyOf(config, { family: "flux-9" }), null);
  assert.equal(familyOf(null, { family: "sd-3" }), null);
});

test("what a family lacks is named, with the family", () => {
  assert.equal(missing(sd3, "regions"), "Stable Diffusion 3.5 models have no regional prompts");
  assert.equal(missing(sd3, "controlnet"), "Stable Diffusion 3.5 models have no ControlNet");
  assert.equal(missing(sd1, "regions"), null);
  assert.equal(missing(null, "regions"), null, "nothing known: nothing disabled");
});

test("only the family's schedulers are offered", () => {
  const all = [{ name: "euler" }, { name: "dpmpp_2m" }, { name: "heun" }];
  assert.deepEqual(schedulerOptions(all, sd3).map((o) => o.name), ["euler", "heun"]);
  assert.equal(schedulerOptions(all, null), all);
});

test("choosing a model of another family takes its defaults; the same family keeps the user's settings", () => {
  assert.deepEqual(settingsForFamily(sd1, sd3, { scheduler: "dpmpp_2m" }), { steps: 28, cfg_scale: 4.5, scheduler: "euler", true_cfg_scale: 1 }, "no true CFG there: off");
  assert.deepEqual(settingsForFamily(sd1, sd1, { scheduler: "dpmpp_2m" }), {});
  assert.deepEqual(settingsForFamily(null, sd3, { scheduler: "dpmpp_2m" }), { scheduler: "euler" }, "an invalid scheduler is replaced");
  assert.deepEqual(settingsForFamily(null, sd3, { scheduler: "heun" }), {});
});

test("a model's own defaults stand for its family's: dev -> schnell -> dev", async () => {
  const { settingsForModel } = await import("../families.js");
  const flux = { label: "FLUX.1", schedulers: ["euler"], defaults: { steps: 28, cfg_scale: 3.5, scheduler: "euler" } };
  const dev = { id: "dev", family: "flux" };
  const schnell = { id: "schnell", family: "flux", defaults: { steps: 4, cfg_scale: 1, scheduler: "euler" } };
  assert.deepEqual(settingsForModel(flux, flux, dev, schnell, { scheduler: "euler" }), { steps: 4, cfg_scale: 1, scheduler: "euler" });
  assert.deepEqual(settingsForModel(flux, flux, schnell, dev, { scheduler: "euler" }), { steps: 28, cfg_scale: 3.5, scheduler: "euler" });
  assert.deepEqual(settingsForModel(flux, flux, dev, { id: "dev2", family: "flux" }, { scheduler: "euler" }), {}, "same family, no own defaults: kept");
});

test("true CFG stays as set on a family that has it, and goes into a job's params only above 1", async () => {
  const { paramsFromSettings } = await import("../document.js");
  const flux = { label: "FLUX.1", features: ["negative_prompt", "true_cfg"], schedulers: ["euler"], defaults: { steps: 28, cfg_scale: 3.5, scheduler: "euler" } };
  assert.deepEqual(settingsForFamily(sd1, flux, { scheduler: "euler" }), { steps: 28, cfg_scale: 3.5, scheduler: "euler" });
  assert.equal(missing(flux, "true_cfg"), null);
  assert.match(missing(sd1, "true_cfg"), /Stable Diffusion 1.x models have no true CFG/);
  assert.equal(paramsFromSettings({ true_cfg_scale: 2.5 }).true_cfg_scale, 2.5);
  assert.equal("true_cfg_scale" in paramsFromSettings({ true_cfg_scale: 1 }), false);
});

test("a model's own reference kinds stand for its family's: edit models take the picture, Qwen-Image none", () => {
  const qwen = { label: "Qwen-Image", features: ["reference"], reference_model_kind: null };
  const flux = { label: "FLUX.1", features: ["reference"], reference_model_kind: "redux" };
  const sd3 = { label: "Stable Diffusion 3.5", features: [], reference_model_kind: null };
  assert.deepEqual(referenceKinds(flux, { name: "dev", reference_kinds: ["redux"] }), ["redux"]);
  assert.deepEqual(referenceKinds(flux, { name: "Kontext", kind: "edit", reference_kinds: [] }), []);
  assert.equal(referenceKinds(qwen, { name: "Qwen", reference_kinds: null }), null);
  // a model list from before the field: the family says
  assert.deepEqual(referenceKinds(flux, { name: "old" }), ["redux"]);
  assert.equal(referenceKinds(sd3, { name: "sd3" }), null);
  assert.deepEqual(referenceKinds(null, null), ["ip_adapter"]);
  assert.equal(missingFor(qwen, { name: "Qwen", reference_kinds: null }, "reference"), "Qwen takes no reference images (of Qwen-Image, only edit models do)");
  assert.equal(missingFor(qwen, { name: "Edit", reference_kinds: [] }, "reference"), null);
  assert.equal(missingFor(sd3, { name: "sd3", reference_kinds: null }, "reference"), "Stable Diffusion 3.5 models have no reference images");
  assert.equal(missingFor(qwen, { name: "Qwen", reference_kinds: null }, "lora"), "Qwen-Image models have no LoRA");
  assert.equal(missingFor(qwen, { name: "Old" }, "reference"), null);
});
