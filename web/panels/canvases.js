// The canvas menu in the top bar: the current canvas's name and save state; new, open, save a named
// version, save as a new canvas, rename, delete.
import { choose, h, parseUtc, prompt } from "./dom.js";
import { icon } from "./icons.js";

/**
 * @param {{el: HTMLElement, api: any, guard: (fn: () => any) => any, actions: {
 *   current: () => {id: string|null, name: string}, open: (id: string) => Promise<any>, create: (name: string) => Promise<any>,
 *   saveVersion: () => Promise<any>, saveAs: (name: string) => Promise<any>, rename: (name: string) => Promise<any>,
 *   remove: (id: string) => Promise<any>}}} o
 */
export function createCanvasMenu({ el, api, guard, actions }) {
  const name = h("span", { class: "canvas-name", "data-testid": "canvas-name" });
  const state = h("span", { class: "save-state", "data-testid": "save-status" });
  const button = h(
    "button",
    { class: "canvas-menu-btn", "data-testid": "canvas-menu", "aria-haspopup": "menu", "aria-expanded": "false", title: "Canvases", onclick: () => toggle() },
    icon("layers", 16),
    name,
    h("span", { class: "caret" }, "▾"),
  );
  const menu = h("div", { class: "menu", role: "menu", hidden: true, "data-testid": "canvas-menu-list" });
  el.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !menu.hidden) {
      e.stopPropagation();
      hide();
      button.focus();
    }
  });
  el.replaceChildren(button, state, menu);

  function item(label, fn, testid, extra = {}) {
    return h(
      "button",
      {
        class: "menu-item",
        role: "menuitem",
        "data-testid": testid,
        onclick: () => {
          hide();
          guard(fn);
        },
        ...extra,
      },
      label,
    );
  }

  async function toggle() {
    if (!menu.hidden) return hide();
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    const cur = actions.current();
    menu.replaceChildren(
      item("New canvas…", async () => {
        const n = await prompt({ title: "New canvas", value: "Untitled canvas", okLabel: "Create", testid: "canvas-name-dialog" });
        if (n) await actions.create(n);
      }, "canvas-new"),
      item("Save version", () => actions.saveVersion(), "canvas-save"),
      item("Save as new canvas…", async () => {
        const n = await prompt({ title: "Save as a new canvas", value: `${cur.name} copy`, okLabel: "Save", testid: "canvas-name-dialog" });
        if (n) await actions.saveAs(n);
      }, "canvas-save-as"),
      item("Rename…", async () => {
        const n = await prompt({ title: "Rename canvas", value: cur.name, okLabel: "Rename", testid: "canvas-name-dialog" });
        if (n && n !== cur.name) await actions.rename(n);
      }, "canvas-rename", { disabled: !cur.id }),
      h("div", { class: "menu-sep" }),
      h("div", { class: "menu-label" }, "Open"),
      h("div", { class: "menu-loading muted small" }, "Loading…"),
    );
    document.addEventListener("pointerdown", outside, true);
    try {
      const list = await api.canvas.list();
      const loadingEl = menu.querySelector(".menu-loading");
      if (!loadingEl) return;
      loadingEl.replaceWith(
        ...(list.length
          ? list.map((c) =>
              h(
                "div",
                { class: `menu-canvas${c.id === cur.id ? " current" : ""}`, "data-testid": "canvas-item", dataset: { canvasId: c.id } },
                h(
                  "button",
                  {
                    class: "menu-item grow",
                    role: "menuitem",
                    title: `Updated ${parseUtc(c.updated_at).toLocaleString()} · ${c.version_count ?? "?"} versions`,
                    onclick: () => {
                      hide();
                      if (c.id !== cur.id) guard(() => actions.open(c.id));
                    },
                  },
                  c.name,
                  h("small", null, when(c.updated_at)),
                ),
                h(
                  "button",
                  {
                    class: "icon-btn danger",
                    title: `Delete ${c.name}`,
                    "aria-label": `Delete ${c.name}`,
                    "data-testid": "canvas-delete",
                    onclick: async () => {
                      hide();
                      const ok = await choose({
                        title: `Delete canvas "${c.name}"?`,
                        message: "All its saved versions are deleted. Images in the gallery stay.",
                        buttons: [
                          { label: "Cancel", value: false },
                          { label: "Delete", value: true, danger: true, testid: "canvas-delete-confirm" },
                        ],
                      });
                      if (ok) guard(() => actions.remove(c.id));
                    },
                  },
                  icon("trash", 14),
                ),
              ),
            )
          : [h("div", { class: "muted small menu-empty" }, "No saved canvases yet")]),
      );
    } catch {
      hide();
    }
  }

  /** "14:05" today, else "27 Nov" (the server's datetimes are UTC without a zone). */
  function when(iso) {
    const d = parseUtc(iso);
    const today = new Date();
    return d.toDateString() === today.toDateString()
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleDateString([], { day: "numeric", month: "short" });
  }

  function outside(e) {
    if (!el.contains(e.target)) hide();
  }

  function hide() {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outside, true);
  }

  return {
    /** @param {string} text */
    setName(text) {
      name.textContent = text;
      document.title = `${text} · Invoke Canvas`;
    },
    /** "saved": the server has it; "local": only this browser's journal has it (yet).
     * @param {"saved"|"saving"|"local"|"dirty"|"error"|"idle"} s */
    setState(s) {
      state.dataset.state = s;
      state.textContent =
        { saved: "Saved", saving: "Saving…", local: "Saved locally", dirty: "Unsaved changes", error: "Not saved", idle: "" }[s] || "";
      state.title = s === "local" ? "Kept in this browser; it goes to the server as soon as the server answers" : "";
    },
    hide,
  };
}
