// Model families as the server describes them (GET /api/v1/config `families`, from invoke_core/families):
// what the chosen model's family lacks (the web disables it, saying why), its schedulers, its defaults.
// Pure: no DOM.

/** A family feature -> what the message calls it (the features of invoke_core/families/base.py FEATURES). */
export const FEATURE_NAMES = Object.freeze({
  negative_prompt: "negative prompts",
  weighted_prompts: "prompt weighting",
  regions: "regional prompts",
  controlnet: "ControlNet",
  lora: "LoRA",
  inpaint_model: "inpainting models",
  true_cfg: "true CFG (their CFG scale is classifier-free guidance already)",
  reference: "reference images",
});

/** The family description of a model record, or null (no config yet, an unknown family). */
export function familyOf(config, model) {
  const families = config && config.families;
  return (model && families && families[model.family]) || null;
}

/**
 * Why the family cannot do `feature`, or null when it can (or nothing is known: nothing is disabled).
 * @param {any} family @param {keyof typeof FEATURE_NAMES} feature
 */
export function missing(family, feature) {
  if (!family || !Array.isArray(family.features) || family.features.includes(feature)) return null;
  return `${family.label} models have no ${FEATURE_NAMES[feature] || feature}`;
}

/**
 * Why the chosen model cannot do `feature`, or null: its family's gap (`missing`), else the model's own where
 * the server says it lacks what its family has (reference layers on a Qwen-Image model, not its edit model:
 * GET /api/v1/models `reference_kinds` null).
 * @param {any} family @param {any} model @param {keyof typeof FEATURE_NAMES} feature
 */
export function missingFor(family, model, feature) {
  const why = missing(family, feature);
  if (why || !model || feature !== "reference" || !("reference_kinds" in model) || model.reference_kinds !== null) return why;
  return `${model.name} takes no ${FEATURE_NAMES.reference}${family && family.label ? ` (of ${family.label}, only edit models do)` : ""}`;
}

/**
 * How a reference layer runs with the chosen model: the model kinds it may choose (the first the default),
 * [] where the model takes the picture itself, null where it takes none: the model's own `reference_kinds`,
 * else its family's (`reference_model_kind`, `features`). Null family and model: as SD (IP-Adapter).
 * @param {any} family @param {any} model @returns {string[] | null}
 */
export function referenceKinds(family, model) {
  if (model && "reference_kinds" in model) return model.reference_kinds === null ? null : [...model.reference_kinds];
  if (!family) return ["ip_adapter"];
  if (Array.isArray(family.features) && !family.features.includes("reference")) return null;
  return family.reference_model_kind ? [family.reference_model_kind] : [];
}

/** The scheduler options valid for the family (all of them when it is unknown). */
export function schedulerOptions(all, family) {
  const list = all || [];
  if (!family || !Array.isArray(family.schedulers)) return list;
  return list.filter((o) => family.schedulers.includes(o.name));
}

/**
 * The settings to change when the chosen model's family changes: the new family's defaults (steps,
 * guidance, scheduler) where the family is another one; else only a scheduler the family cannot use.
 * @param {any} before the previous model's family (null: unknown) @param {any} after
 * @param {{scheduler: string}} settings
 */
export function settingsForFamily(before, after, settings) {
  return settingsForModel(before, after, null, null, settings);
}

/**
 * The same for a change of model: a model's own defaults (GET /api/v1/models `defaults`, e.g. FLUX.1
 * schnell's 4 steps) stand for its family's, so dev -> schnell brings 4 steps and schnell -> dev 28.
 * @param {any} before @param {any} after the families @param {any} beforeModel @param {any} afterModel
 * @param {{scheduler: string}} settings
 */
export function settingsForModel(before, after, beforeModel, afterModel, settings) {
  if (!after) return {};
  const own = (m) => (m && m.defaults) || null;
  const d = own(afterModel) || after.defaults || {};
  const was = own(beforeModel) || (before && before.defaults) || null;
  const otherFamily = before && before !== after && before.label !== after.label;
  const otherDefaults = (own(beforeModel) || own(afterModel)) && was && JSON.stringify(was) !== JSON.stringify(d);
  // true CFG off where the family has none (its field is disabled there, so nothing could turn it down)
  const trueCfg = Array.isArray(after.features) && !after.features.includes("true_cfg") ? { true_cfg_scale: 1 } : {};
  if (otherFamily || otherDefaults) return { steps: d.steps, cfg_scale: d.cfg_scale, scheduler: d.scheduler, ...trueCfg };
  if (Array.isArray(after.schedulers) && !after.schedulers.includes(settings.scheduler)) return { scheduler: d.scheduler };
  return {};
}

/** A reference model kind (GET /api/v1/models `kind`) -> what the Layers panel calls it. */
export const REFERENCE_KIND_NAMES = Object.freeze({ ip_adapter: "IP-Adapter", redux: "FLUX Redux" });

/** What a reference model kind is called (its own name where the web has no word for it). */
export function referenceKindName(kind) {
  return REFERENCE_KIND_NAMES[kind] || kind;
}

/**
 * What a reference layer's model select offers, and which kind of reference runs: a FLUX.1 model takes a
 * FLUX Redux or an IP-Adapter, and the kind (not the family) says which fields the layer has.
 * `options`: the models of every kind in `kinds` (of the family `familyName`; any family when null), in
 * `kinds` order. `defaultModel`: the model the server uses when the layer names none (the first installed one,
 * in `kinds` order, else the first built-in demo: as server-side). `kind`: the chosen model's kind where it
 * is an option, else the default's, else `kinds[0]`; null where there are no kinds (the main model takes
 * the picture itself, or none).
 * @param {string[] | null} kinds @param {any[]} models @param {string | null} familyName
 * @param {string | null} chosenId the layer's `reference.model`
 * @returns {{options: {model: any, kind: string}[], defaultModel: any, chosen: any, kind: string | null, several: boolean}}
 */
export function referenceChoice(kinds, models, familyName, chosenId) {
  const list = kinds || [];
  const options = list.flatMap((kind) =>
    (models || []).filter((m) => m.kind === kind && (!familyName || m.family === familyName)).map((model) => ({ model, kind })),
  );
  const defaultModel = (options.find((o) => !o.model.builtin) || options[0] || null)?.model || null;
  const chosen = (chosenId && options.find((o) => o.model.id === chosenId)?.model) || null;
  const kind = (chosen || defaultModel)?.kind || list[0] || null;
  return { options, defaultModel, chosen, kind, several: list.length > 1 };
}

/**
 * An entry's text in the reference model select: `option` one of `choice.options`, or null for the first
 * entry (no model chosen: the server's default). With several kinds "Default" says which kind it means
 * (the select groups the models by kind, `referenceGroups`); with one kind the texts stay as they were
 * ("Default IP-Adapter", the model's name).
 * @param {ReturnType<typeof referenceChoice>} choice @param {string[]} kinds
 * @param {{model: any, kind: string} | null} option
 */
export function referenceOptionText(choice, kinds, option) {
  if (!option) {
    if (!choice.defaultModel) return `No ${kinds.map(referenceKindName).join(" or ")} installed`;
    return choice.several ? `Default (${referenceKindName(choice.defaultModel.kind)})` : `Default ${referenceKindName(choice.defaultModel.kind)}`;
  }
  const m = option.model;
  return `${m.name}${m.description && !m.label ? ` · ${m.description.split(";")[0]}` : ""}${m.label ? " · random weights" : ""}`;
}

/**
 * The select's options by kind, for its optgroups: [kind's name, options] in `kinds` order, kinds without a
 * model left out (a kind word in each entry's text would repeat the field's label and crowd the name out).
 * @param {ReturnType<typeof referenceChoice>} choice @param {string[]} kinds
 * @returns {[string, {model: any, kind: string}[]][]}
 */
export function referenceGroups(choice, kinds) {
  return kinds.map((k) => [referenceKindName(k), choice.options.filter((o) => o.kind === k)]).filter(([, list]) => list.length);
}
