// What the chosen model's family cannot do, disabled where it is offered, with the reason as the
// tooltip (the rules in families.js, from the server's description of each family). The LoRA picker
// lists only LoRAs of the model's family already (panels/loras.js).

import { missingFor } from "../families.js";

/** testid of the control -> the family feature it needs */
const GAPS = [
  ["layer-add-regional_guidance", "regions"],
  ["layer-add-control", "controlnet"],
  ["layer-add-reference", "reference"],
  ["negative-prompt", "negative_prompt"],
  ["true-cfg", "true_cfg"],
];

/**
 * @param {ParentNode} root @param {any} family the chosen model's family (null: unknown, all enabled)
 * @param {any} [model] the chosen model (GET /api/v1/models): what it lacks of its family's
 */
export function applyFamilyGaps(root, family, model = null) {
  for (const [testid, feature] of GAPS) {
    const el = /** @type {HTMLButtonElement | HTMLTextAreaElement | null} */ (root.querySelector(`[data-testid="${testid}"]`));
    if (!el) continue;
    if (!("titleBase" in el.dataset)) el.dataset.titleBase = el.title || "";
    const why = missingFor(family, model, /** @type {any} */ (feature));
    el.disabled = !!why;
    el.title = why || el.dataset.titleBase || "";
    el.toggleAttribute("data-family-gap", !!why);
  }
}
