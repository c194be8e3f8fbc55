// Non-blocking toasts for status and errors (data-testid="toast", data-kind="info|success|warning|error").
import { h } from "./dom.js";

/**
 * @param {HTMLElement} container
 * @returns {{show: (message: string, o?: {kind?: "info"|"success"|"warning"|"error", timeout?: number}) => HTMLElement,
 *   info: (m: string) => HTMLElement, success: (m: string) => HTMLElement, warning: (m: string) => HTMLElement,
 *   error: (m: string) => HTMLElement}}
 */
export function createToasts(container) {
  container.setAttribute("role", "status");
  container.setAttribute("aria-live", "polite");

  function show(message, { kind = "info", timeout } = {}) {
    const ms = timeout ?? (kind === "error" ? 8000 : kind === "warning" ? 6000 : kind === "success" ? 2600 : 3200);
    // The same message twice in a row refreshes the first instead of stacking.
    for (const el of container.children) {
      if (el.dataset.kind === kind && el.dataset.message === message) {
        el.remove();
        break;
      }
    }
    const close = () => {
      el.classList.add("leaving");
      setTimeout(() => el.remove(), 180);
    };
    const el = h(
      "div",
      { class: `toast toast-${kind}`, "data-testid": "toast", dataset: { kind, message } },
      h("span", { class: "toast-icon", "aria-hidden": "true" }, kind === "error" || kind === "warning" ? "!" : kind === "success" ? "✓" : "i"),
      h("span", { class: "toast-text" }, message),
      h("button", { class: "toast-close", "aria-label": "Dismiss", title: "Dismiss", onclick: close }, "×"),
    );
    container.appendChild(el);
    while (container.children.length > 4) container.firstElementChild.remove();
    if (ms > 0) setTimeout(close, ms);
    return el;
  }

  return {
    show,
    info: (m) => show(m, { kind: "info" }),
    success: (m) => show(m, { kind: "success" }),
    warning: (m) => show(m, { kind: "warning" }),
    error: (m) => show(m, { kind: "error" }),
  };
}
