import { test } from "node:test";
import assert from "node:assert/strict";
import { familyOf, missing, missingFor, referenceChoice, referenceGroups, referenceKinds, referenceOptionText, schedulerOptions, settingsForFamily } from "../families.js";

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

const demoRedux = { id: "demo-flux-redux", name: "Demo FLUX Redux (tiny)", family: "flux", kind: "redux", builtin: true, label: "random weights" };
const demoFluxIp = { id: "demo-flux-ip-adapter", name: "Demo FLUX IP-Adapter (tiny)", family: "flux", kind: "ip_adapter", builtin: true, label: "random weights" };
const demoSdIp = { id: "demo-ip-adapter", name: "Demo IP-Adapter (tiny)", family: "sd-1", kind: "ip_adapter", builtin: true, label: "random weights" };
const main = { id: "demo-flux", name: "Demo FLUX", family: "flux", kind: "main", builtin: true };

test("a FLUX.1 reference layer offers its family's FLUX Redux and IP-Adapters, in kinds order; Default means the first kind's demo", () => {
  const models = [demoFluxIp, main, demoSdIp, demoRedux];
  const c = referenceChoice(["redux", "ip_adapter"], models, "flux", null);
  assert.deepEqual(c.options.map((o) => [o.model.id, o.kind]), [["demo-flux-redux", "redux"], ["demo-flux-ip-adapter", "ip_adapter"]]);
  assert.equal(c.defaultModel, demoRedux);
  assert.equal(c.chosen, null);
  assert.equal(c.kind, "redux");
  assert.equal(c.several, true);
  assert.equal(referenceChoice(["redux", "ip_adapter"], models, "flux", "demo-flux-ip-adapter").kind, "ip_adapter", "the chosen model's kind");
  assert.equal(referenceChoice(["redux", "ip_adapter"], models, "flux", "demo-flux-redux").kind, "redux");
  const other = referenceChoice(["redux", "ip_adapter"], models, "flux", "demo-ip-adapter");
  assert.equal(other.chosen, null, "an SD adapter is no option for FLUX.1");
  assert.equal(other.kind, "redux", "then the default's kind");
});

test("Default is the first installed model of the kinds, in kinds order, before any built-in demo", () => {
  const installedIp = { id: "xlabs", name: "XLabs IP-Adapter", family: "flux", kind: "ip_adapter", builtin: false };
  const installedRedux = { id: "redux-dev", name: "FLUX.1 Redux dev", family: "flux", kind: "redux", builtin: false };
  const kinds = ["redux", "ip_adapter"];
  const onlyIp = referenceChoice(kinds, [demoRedux, demoFluxIp, installedIp], "flux", null);
  assert.equal(onlyIp.defaultModel, installedIp, "an installed IP-Adapter before the demo Redux");
  assert.equal(onlyIp.kind, "ip_adapter");
  assert.equal(referenceChoice(kinds, [installedIp, demoRedux, installedRedux], "flux", null).defaultModel, installedRedux, "kinds order among the installed");
  const none = referenceChoice(kinds, [demoSdIp], "flux", null);
  assert.deepEqual(none.options, []);
  assert.equal(none.defaultModel, null);
  assert.equal(none.kind, "redux", "nothing installed: the first kind");
});

test("no kinds: nothing to choose, no kind in effect", () => {
  for (const kinds of [[], null]) {
    const c = referenceChoice(kinds, [demoRedux], "flux", "demo-flux-redux");
    assert.deepEqual([c.options, c.defaultModel, c.chosen, c.kind, c.several], [[], null, null, null, false]);
  }
});

test("the select's Default names its kind where there are several, and the models come grouped by kind", () => {
  const models = [demoRedux, demoFluxIp, demoSdIp];
  const kinds = ["redux", "ip_adapter"];
  const flux = referenceChoice(kinds, models, "flux", null);
  assert.deepEqual([null, ...flux.options].map((o) => referenceOptionText(flux, kinds, o)), [
    "Default (FLUX Redux)",
    "Demo FLUX Redux (tiny) · random weights",
    "Demo FLUX IP-Adapter (tiny) · random weights",
  ]);
  assert.deepEqual(referenceGroups(flux, kinds).map(([label, list]) => [label, list.map((o) => o.model.id)]), [
    ["FLUX Redux", ["demo-flux-redux"]],
    ["IP-Adapter", ["demo-flux-ip-adapter"]],
  ]);
  const onlyIp = referenceChoice(kinds, [demoFluxIp], "flux", null);
  assert.deepEqual(referenceGroups(onlyIp, kinds).map(([label]) => label), ["IP-Adapter"], "a kind without models: no group");
  assert.equal(referenceOptionText(onlyIp, kinds, null), "Default (IP-Adapter)");
  const sd = referenceChoice(["ip_adapter"], models, "sd-1", null);
  assert.deepEqual([null, ...sd.options].map((o) => referenceOptionText(sd, ["ip_adapter"], o)), ["Default IP-Adapter", "Demo IP-Adapter (tiny) · random weights"]);
  const installed = { id: "x", name: "x", family: "sd-1", kind: "ip_adapter", builtin: false, description: "ip-adapter_sd15; from models/" };
  assert.equal(referenceOptionText(sd, ["ip_adapter"], { model: installed, kind: "ip_adapter" }), "x · ip-adapter_sd15");
  assert.equal(referenceOptionText(referenceChoice(["redux"], [], "flux", null), ["redux"], null), "No FLUX Redux installed");
  assert.equal(referenceOptionText(referenceChoice(["redux", "ip_adapter"], [], "flux", null), ["redux", "ip_adapter"], null), "No FLUX Redux or IP-Adapter installed");
});
