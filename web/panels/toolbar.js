// The left toolbar: tools (icons, shortcut letters) and the brush settings of the `tool` record.
import { h } from "./dom.js";
import { icon } from "./icons.js";

/** Tools in toolbar order: name, label, shortcut key. */
export const TOOLS = [
  { name: "brush", label: "Brush", key: "B" },
  { name: "eraser", label: "Eraser", key: "E" },
  { name: "rect", label: "Rectangle fill", key: "R" },
  { name: "lasso", label: "Lasso fill", key: "L" },
  { name: "move", label: "Move layer", key: "V" },
  { name: "bbox", label: "Generation box", key: "C" },
  { name: "picker", label: "Colour picker", key: "I" },
  { name: "view", label: "Pan (hold Space)", key: "H" },
];

export const DEFAULT_TOOL = Object.freeze({
  id: "tool",
  type: "tool",
  name: "brush",
  brush_size: 32,
  brush_hardness: 0.8,
  brush_color: "#ffffff",
  brush_opacity: 1,
});

/**
 * @param {{el: HTMLElement, store: any, selectTool: (name: string) => void}} o
 */
export function createToolbar({ el, store, selectTool }) {
  const tool = () => ({ ...DEFAULT_TOOL, ...(store.get("tool") || {}) });
  const setTool = (patch) => store.apply({ put: [{ ...tool(), ...patch }] }, { history: false });

  const buttons = new Map();
  const toolList = h(
    "div",
    { class: "tool-list", role: "toolbar", "aria-label": "Tools", "aria-orientation": "vertical" },
    TOOLS.map((t) => {
      const b = h(
        "button",
        {
          class: "tool-btn",
          "data-testid": `tool-${t.name}`,
          dataset: { tool: t.name },
          title: `${t.label} (${t.key})`,
          "aria-label": `${t.label} (${t.key})`,
          "aria-pressed": "false",
          onclick: () => selectTool(t.name),
        },
        icon(t.name, 20),
        h("span", { class: "tool-key" }, t.key),
      );
      buttons.set(t.name, b);
      return b;
    }),
  );

  const color = h("input", {
    type: "color",
    class: "color-input",
    "data-testid": "brush-color",
    "aria-label": "Brush colour",
    title: "Brush colour",
    oninput: (e) => setTool({ brush_color: e.target.value }),
  });
  const swatch = h("label", { class: "color-swatch", title: "Brush colour (I picks from the canvas)" }, color);

  /** A compact labelled number control with a slider that appears on focus. */
  function numberControl({ label, key, min, max, step, scale = 1, testid, unit = "" }) {
    const input = h("input", {
      type: "number",
      min: min * scale,
      max: max * scale,
      step: step * scale,
      "data-testid": testid,
      "aria-label": label,
      title: label,
      onchange: (e) => {
        const v = Math.min(max, Math.max(min, Number(e.target.value) / scale));
        if (Number.isFinite(v)) setTool({ [key]: v });
      },
    });
    const range = h("input", {
      type: "range",
      class: "mini-range",
      min,
      max,
      step,
      "aria-label": label,
      tabindex: "-1",
      oninput: (e) => setTool({ [key]: Number(e.target.value) }),
    });
    const wrap = h("div", { class: "mini-field" }, h("span", { class: "mini-label" }, label, unit ? h("small", null, unit) : null), input, range);
    return { wrap, input, range, key, scale };
  }

  const controls = [
    numberControl({ label: "Size", key: "brush_size", min: 1, max: 1000, step: 1, testid: "brush-size", unit: "px" }),
    numberControl({ label: "Hard", key: "brush_hardness", min: 0, max: 1, step: 0.01, scale: 100, testid: "brush-hardness", unit: "%" }),
    numberControl({ label: "Opac", key: "brush_opacity", min: 0.01, max: 1, step: 0.01, scale: 100, testid: "brush-opacity", unit: "%" }),
  ];

  const preview = h("div", { class: "brush-preview", title: "Brush" }, h("div", { class: "brush-dot" }));

  el.replaceChildren(toolList, h("div", { class: "toolbar-sep" }), swatch, preview, ...controls.map((c) => c.wrap));

  function render() {
    const t = tool();
    for (const [name, b] of buttons) {
      const on = name === t.name;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    }
    if (document.activeElement !== color) color.value = t.brush_color;
    swatch.style.setProperty("--swatch", t.brush_color);
    for (const c of controls) {
      const v = t[c.key];
      if (document.activeElement !== c.input) c.input.value = String(Math.round(v * c.scale * 100) / 100);
      if (document.activeElement !== c.range) c.range.value = String(v);
    }
    const dot = /** @type {HTMLElement} */ (preview.firstChild);
    const d = Math.max(3, Math.min(36, t.brush_size / 2));
    dot.style.width = dot.style.height = `${d}px`;
    dot.style.background = t.brush_color;
    dot.style.opacity = String(t.brush_opacity);
    const soft = (1 - t.brush_hardness) * d * 0.6;
    dot.style.boxShadow = soft > 0.5 ? `0 0 ${soft}px ${soft / 2}px ${t.brush_color}` : "none";
  }

  render();
  const unsubscribe = store.subscribe(({ diff }) => {
    if ((diff.put || []).some((r) => r.id === "tool")) render();
  });
  return { render, destroy: unsubscribe };
}
