// The Staging bar: results of the last invoke over the canvas. Thumbnails, prev / next (arrow keys),
// accept (a new raster layer at the box), discard one / all, save to gallery without accepting.
import { h, iconButton } from "./dom.js";
import { icon } from "./icons.js";

/**
 * @param {{el: HTMLElement, store: any, thumbnailUrl: (id: string) => string,
 *   actions: {select: (i: number) => void, accept: () => void, discard: () => void, discardAll: () => void, save: () => void}}} o
 */
export function createStagingPanel({ el, store, thumbnailUrl, actions }) {
  el.setAttribute("data-testid", "staging");
  el.setAttribute("aria-label", "Staging area");

  function render() {
    const staging = store.get("staging");
    const items = (staging && staging.items) || [];
    el.hidden = items.length === 0;
    el.classList.toggle("open", items.length > 0);
    if (!items.length) {
      el.replaceChildren();
      return;
    }
    const index = Math.min(Math.max(0, staging.index || 0), items.length - 1);
    const current = items[index];
    el.replaceChildren(
      h(
        "div",
        { class: "staging-thumbs" },
        items.map((item, i) =>
          h(
            "button",
            {
              class: `staging-thumb${i === index ? " active" : ""}${item.saved ? " saved" : ""}`,
              "data-testid": "staging-thumb",
              dataset: { imageId: item.image_id },
              title: `Result ${i + 1}${item.saved ? " (saved)" : ""}`,
              onclick: () => actions.select(i),
            },
            h("img", { src: thumbnailUrl(item.image_id), alt: `Result ${i + 1}` }),
          ),
        ),
      ),
      h(
        "div",
        { class: "staging-controls" },
        iconButton(icon("left", 18), "Previous (←)", () => actions.select((index - 1 + items.length) % items.length), { "data-testid": "staging-prev" }),
        h("span", { class: "staging-count", "data-testid": "staging-count" }, `${index + 1} / ${items.length}`),
        iconButton(icon("right", 18), "Next (→)", () => actions.select((index + 1) % items.length), { "data-testid": "staging-next" }),
        h("span", { class: "sep" }),
        h("button", { class: "btn primary", "data-testid": "staging-accept", title: "Accept: a new raster layer in the box (Enter)", onclick: actions.accept }, icon("check", 16), "Accept"),
        h(
          "button",
          {
            class: `btn${current.saved ? " done" : ""}`,
            "data-testid": "staging-save",
            title: "Keep this result in the gallery (in the selected board) without accepting it",
            onclick: actions.save,
          },
          icon("save", 16),
          current.saved ? "Saved" : "Save",
        ),
        h("button", { class: "btn", "data-testid": "staging-discard", title: "Discard this result (Esc)", onclick: actions.discard }, icon("x", 16), "Discard"),
        h("button", { class: "btn ghost", "data-testid": "staging-discard-all", title: "Discard all results", onclick: actions.discardAll }, "Discard all"),
      ),
    );
  }

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "staging") || (diff.remove || []).includes("staging")) render();
  });
  return { render, destroy: unsubscribe };
}
