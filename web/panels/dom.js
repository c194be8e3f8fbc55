// Tiny DOM helpers shared by the panels (no framework).

/**
 * Create an element. `attrs`: "class", "style" (object or string), "dataset" (object), "on<event>"
 * functions, boolean/number/string attributes; properties such as value/checked are set directly.
 * Children: nodes, strings, numbers, arrays, null/false (skipped).
 * @param {string} tag
 * @param {Record<string, any>|null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
      else if (key === "value" || key === "checked" || key === "selected" || key === "indeterminate") el[key] = value;
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** @param {Node} el @param {any[]} children */
function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replaceChildren(el, ...children) {
  el.textContent = "";
  append(el, children);
}

/** A panel section with a header (title + action buttons) and a body. */
export function section(title, { id, actions = [], testid } = {}) {
  const body = h("div", { class: "section-body" });
  const toggle = h("button", { class: "section-toggle", title: "Collapse", "aria-expanded": "true" }, "▾");
  const el = h(
    "section",
    { class: "panel-section", id, "data-testid": testid },
    h("header", { class: "section-header" }, toggle, h("h2", null, title), h("div", { class: "section-actions" }, actions)),
    body,
  );
  toggle.addEventListener("click", () => {
    const collapsed = el.classList.toggle("collapsed");
    toggle.setAttribute("aria-expanded", String(!collapsed));
  });
  return { el, body };
}

/** An icon button (`label` is the tooltip and accessible name). */
export function iconButton(icon, label, onClick, attrs = {}) {
  return h("button", { class: "icon-btn", title: label, "aria-label": label, onclick: onClick, ...attrs }, icon);
}

/** A labelled form row. */
export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control, hint ? h("span", { class: "field-hint" }, hint) : null);
}

/** Debounce `fn` by `ms`; the returned function has .flush() and .cancel(). */
export function debounce(fn, ms) {
  let timer = null;
  let lastArgs = [];
  const run = (...args) => {
    lastArgs = args;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...lastArgs);
    }, ms);
  };
  run.flush = () => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
      fn(...lastArgs);
    }
  };
  run.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  run.pending = () => timer !== null;
  return run;
}

/** True when keyboard focus is in a text field (shortcuts must not fire there). */
export function typingTarget(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  const type = /** @type {HTMLInputElement} */ (target).type;
  return !["checkbox", "radio", "range", "button", "color", "submit"].includes(type);
}

/** Load an image URL (or Blob) into an ImageBitmap. */
export async function loadBitmap(src) {
  if (src instanceof Blob) return createImageBitmap(src);
  const response = await fetch(src);
  if (!response.ok) throw new Error(`could not load the image (${response.status})`);
  return createImageBitmap(await response.blob());
}

/** A modal dialog; resolves with the value of the button pressed (or null on Esc / backdrop). */
export function choose({ title, message, buttons, testid = "dialog" }) {
  return new Promise((resolve) => {
    const close = (value) => {
      backdrop.remove();
      document.removeEventListener("keydown", onKey, true);
      resolve(value);
    };
    const onKey = (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        close(null);
      }
    };
    const box = h(
      "div",
      { class: "dialog", role: "dialog", "aria-modal": "true", "data-testid": testid },
      h("h3", null, title),
      message ? h("p", null, message) : null,
      h(
        "div",
        { class: "dialog-buttons" },
        buttons.map((b) =>
          h("button", { class: b.primary ? "btn primary" : b.danger ? "btn danger" : "btn", "data-testid": b.testid, onclick: () => close(b.value) }, b.label),
        ),
      ),
    );
    const backdrop = h("div", { class: "dialog-backdrop", onclick: (e) => e.target === backdrop && close(null) }, box);
    document.body.appendChild(backdrop);
    document.addEventListener("keydown", onKey, true);
    const first = box.querySelector(".btn.primary") || box.querySelector("button");
    if (first) /** @type {HTMLElement} */ (first).focus();
  });
}

/** Ask for a line of text in a dialog; resolves with the text or null. */
export function prompt({ title, value = "", label = "Name", okLabel = "OK", testid = "dialog" }) {
  return new Promise((resolve) => {
    const input = h("input", { type: "text", value, "aria-label": label, "data-testid": "dialog-input" });
    const close = (v) => {
      backdrop.remove();
      resolve(v);
    };
    const form = h(
      "form",
      { class: "dialog", role: "dialog", "aria-modal": "true", "data-testid": testid, onsubmit: (e) => (e.preventDefault(), close(input.value.trim() || null)) },
      h("h3", null, title),
      field(label, input),
      h(
        "div",
        { class: "dialog-buttons" },
        h("button", { type: "button", class: "btn", onclick: () => close(null) }, "Cancel"),
        h("button", { type: "submit", class: "btn primary", "data-testid": "dialog-ok" }, okLabel),
      ),
    );
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        close(null);
      }
    });
    const backdrop = h("div", { class: "dialog-backdrop" }, form);
    document.body.appendChild(backdrop);
    input.focus();
    input.select();
  });
}

/** A server datetime (ISO, UTC; naive ones carry no zone) as a Date. */
export function parseUtc(iso) {
  if (!iso) return new Date(NaN);
  return new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z");
}
