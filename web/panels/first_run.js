/**
 * The first-run hint over an empty canvas: how to paint, where Invoke is, and that the demo model paints
 * noise. Shown on a browser until its first stroke or Invoke (remembered in localStorage); it never takes
 * a pointer event, so it cannot get in the way of a gesture.
 */

import { generates } from "../document.js";
import { h } from "./dom.js";

const DONE_KEY = "invokeCanvas.firstRunDone";

/**
 * @param {{el: HTMLElement, storage?: Storage|null}} o
 * @returns {{setModels: (models: any[]) => void, dismiss: () => void}}
 */
export function createFirstRunHint({ el, storage = globalThis.localStorage }) {
  const read = () => {
    try {
      return storage?.getItem(DONE_KEY) === "1";
    } catch {
      return true; // no storage (a locked-down profile): do not nag on every load
    }
  };
  const demo = h("li", { "data-testid": "first-run-demo" }, "The demo model has random weights: it paints noise. Install a real model for real images.");
  const card = h(
    "div",
    { class: "first-run", "data-testid": "first-run-hint", role: "note" },
    h("b", null, "Start here"),
    h(
      "ul",
      null,
      h("li", null, "Paint with the brush ", h("kbd", null, "B"), "; the dashed box is what Invoke generates (move it with ", h("kbd", null, "C"), ")."),
      h("li", null, "Press Invoke or ", h("kbd", null, "Ctrl"), "+", h("kbd", null, "Enter"), "; results appear in the box: Accept, or Discard with ", h("kbd", null, "Esc"), "."),
      demo,
    ),
  );
  if (!read()) el.append(card);
  return {
    setModels(models) {
      demo.hidden = models.some((m) => !m.builtin && generates(m));
    },
    dismiss() {
      if (!card.isConnected) return;
      card.remove();
      try {
        storage?.setItem(DONE_KEY, "1");
      } catch {
        // nowhere to remember it: shown again next time
      }
    },
  };
}
