// The keyboard-shortcuts dialog: the app's shortcut table (app/shortcuts.js), grouped, in the look of
// the other dialogs (.dialog-backdrop / .dialog, see dom.js's choose()). Opened with "?" (a row of the
// table) and from a "?" button in the top bar; closed with Esc, its close button or a backdrop click.

import { h } from "./dom.js";

/**
 * @param {{shortcuts: readonly {combo: string, description: string, group: string, when?: string}[],
 *   groups: readonly string[]}} o the table and its groups in display order
 */
export function createShortcutsDialog({ shortcuts, groups }) {
  /** @type {HTMLElement | null} */
  let backdrop = null;
  /** @type {Element | null} where focus goes back on close */
  let returnFocus = null;

  /** @param {KeyboardEvent} e */
  const onKey = (e) => {
    if (e.key !== "Escape") return;
    e.preventDefault();
    e.stopPropagation(); // Esc closes the dialog only: it must not also cancel or discard on the canvas
    close();
  };

  function groupSection(group) {
    const rows = shortcuts.filter((s) => s.group === group);
    return h(
      "section",
      { "data-testid": "shortcuts-group", "data-group": group },
      h("h4", { style: { margin: "4px 0 6px", fontSize: "12px", textTransform: "uppercase", letterSpacing: "0.04em", color: "var(--text-2)" } }, group),
      h(
        "table",
        { style: { width: "100%", borderCollapse: "collapse" } },
        h(
          "tbody",
          null,
          rows.map((s) =>
            h(
              "tr",
              { "data-testid": "shortcut-row", "data-combo": s.combo },
              h("td", { style: { padding: "3px 12px 3px 0", whiteSpace: "nowrap", verticalAlign: "top", width: "1%" } }, h("kbd", null, s.combo)),
              h(
                "td",
                { style: { padding: "3px 0", color: "var(--text-2)" } },
                s.description,
                s.when ? h("span", { style: { color: "var(--text-3)" } }, ` (${s.when})`) : null,
              ),
            ),
          ),
        ),
      ),
    );
  }

  function open() {
    if (backdrop) return;
    returnFocus = document.activeElement;
    const closeBtn = h("button", { class: "btn", "data-testid": "shortcuts-close", onclick: () => close() }, "Close");
    const box = h(
      "div",
      {
        class: "dialog",
        role: "dialog",
        "aria-modal": "true",
        "aria-label": "Keyboard shortcuts",
        "data-testid": "shortcuts-dialog",
        // a long list: wider than a question dialog, and it scrolls inside the window
        style: { width: "min(640px, calc(100% - 32px))", maxHeight: "calc(100vh - 64px)", overflowY: "auto" },
      },
      h("h3", null, "Keyboard shortcuts"),
      groups.map(groupSection),
      h("div", { class: "dialog-buttons" }, closeBtn),
    );
    backdrop = h("div", { class: "dialog-backdrop", onclick: (e) => e.target === backdrop && close() }, box);
    document.body.appendChild(backdrop);
    document.addEventListener("keydown", onKey, true);
    closeBtn.focus();
  }

  function close() {
    if (!backdrop) return;
    backdrop.remove();
    backdrop = null;
    document.removeEventListener("keydown", onKey, true);
    if (returnFocus instanceof HTMLElement && returnFocus.isConnected) returnFocus.focus({ preventScroll: true });
    returnFocus = null;
  }

  return {
    open,
    close,
    get isOpen() {
      return !!backdrop;
    },
  };
}

/**
 * The "?" button of the top bar (placed before the connection status, else at the end).
 * @param {HTMLElement} topbar @param {() => void} onClick
 */
export function addShortcutsButton(topbar, onClick) {
  const button = h(
    "button",
    { class: "icon-btn", type: "button", "data-testid": "shortcuts-button", title: "Keyboard shortcuts (?)", "aria-label": "Keyboard shortcuts", onclick: () => onClick() },
    "?",
  );
  const status = topbar.querySelector("#status");
  if (status) topbar.insertBefore(button, status);
  else topbar.append(button);
  return button;
}
