// Keyboard shortcuts: ONE table of every shortcut of the app (what the shortcuts dialog lists) and the
// keydown handler that dispatches from it. Rows with an `action` are handled here; rows with
// `handledBy` are the canvas's own (canvas/index.js, canvas/viewport.js, tools/*.js) and are listed so
// the dialog tells the whole truth. Tool keys come from TOOLS (panels/toolbar.js).

import { TOOLS } from "../panels/toolbar.js";

/**
 * How a row matches a keydown: `key` compared case-insensitively with `KeyboardEvent.key`; `mod`
 * (Ctrl, or Cmd on a Mac), `shift`, `alt`: true = must be held, false = must not be, absent = either.
 * @typedef {{key: string, mod?: boolean, shift?: boolean, alt?: boolean}} KeyMatch
 */
/**
 * @typedef {{combo: string, description: string, group: string, when?: string,
 *   keys?: KeyMatch, action?: string, arg?: string, scope?: "anywhere" | "staging",
 *   onlyIf?: (e: KeyboardEvent) => boolean, handledBy?: string}} Shortcut
 * `when`: the context the row applies in (shown in the dialog; the same combo may mean another thing
 * in another context). `scope`: "anywhere" also while typing or in a dialog; "staging" only while
 * results are staged; absent: the canvas and the panels, not while typing, a dialog or the viewer open.
 */

const KEY_NAMES = { Enter: "Enter", Escape: "Esc", ArrowLeft: "←", ArrowRight: "→", ArrowUp: "↑", ArrowDown: "↓" };

/** The combo a key match reads as in the dialog: "Shift+Ctrl+Z", "Ctrl+Enter", "B". @param {KeyMatch} k */
export function comboLabel(k) {
  const key = KEY_NAMES[k.key] || (k.key.length === 1 ? k.key.toUpperCase() : k.key);
  return [k.shift ? "Shift" : "", k.mod ? "Ctrl" : "", k.alt ? "Alt" : "", key].filter(Boolean).join("+");
}

/** @param {Omit<Shortcut, "combo"> & {keys: KeyMatch}} row @returns {Shortcut} */
const keyed = (row) => ({ combo: comboLabel(row.keys), ...row });

/** Every shortcut, in the order the dialog lists them (and the handler tries them). @type {readonly Shortcut[]} */
export const SHORTCUTS = Object.freeze([
  // Ctrl+Enter works everywhere, the prompt box included (that is where it is wanted most)
  keyed({ keys: { key: "Enter", mod: true }, group: "Generate", description: "Invoke (works while typing too)", action: "invoke", scope: "anywhere" }),

  keyed({ keys: { key: "z", mod: true, alt: false, shift: false }, group: "History", description: "Undo", action: "undo" }),
  keyed({ keys: { key: "z", mod: true, alt: false, shift: true }, group: "History", description: "Redo", action: "redo" }),
  keyed({ keys: { key: "y", mod: true, alt: false }, group: "History", description: "Redo", action: "redo" }),

  // staging first: while results are staged these keys are theirs, before the canvas sees them
  keyed({ keys: { key: "Escape", mod: false, alt: false, shift: false }, group: "Staging", when: "results staged", description: "Discard the shown result (a stroke or drag in progress is cancelled instead)", action: "stagingEscape", scope: "staging" }),
  keyed({ keys: { key: "ArrowLeft", mod: false, alt: false }, group: "Staging", when: "results staged", description: "Previous result", action: "stagingPrev", scope: "staging" }),
  keyed({ keys: { key: "ArrowRight", mod: false, alt: false }, group: "Staging", when: "results staged", description: "Next result", action: "stagingNext", scope: "staging" }),
  // Enter on a focused button is that button's click, not an accept
  keyed({ keys: { key: "Enter", mod: false, alt: false }, group: "Staging", when: "results staged", description: "Accept the shown result as a new layer", action: "stagingAccept", scope: "staging", onlyIf: (e) => !(e.target && /** @type {any} */ (e.target).tagName === "BUTTON") }),

  ...TOOLS.map((t) => keyed({ keys: { key: t.key, mod: false, alt: false, shift: false }, group: "Tools", description: t.label, action: "selectTool", arg: t.name })),
  keyed({ keys: { key: "[", mod: false, alt: false }, group: "Tools", description: "Smaller brush (10%)", action: "brushSmaller" }),
  keyed({ keys: { key: "]", mod: false, alt: false }, group: "Tools", description: "Bigger brush (10%)", action: "brushBigger" }),

  // the canvas's own keys and gestures (canvas/index.js, canvas/viewport.js, tools/*.js)
  { combo: "Space+Drag", group: "Canvas", description: "Pan the view", handledBy: "canvas" },
  { combo: "Middle-drag", group: "Canvas", description: "Pan the view", handledBy: "canvas" },
  { combo: "Wheel", group: "Canvas", description: "Zoom at the cursor (a mouse wheel; a trackpad's two-finger scroll pans)", handledBy: "canvas" },
  { combo: "Ctrl+Wheel", group: "Canvas", description: "Zoom at the cursor (a trackpad pinch too)", handledBy: "canvas" },
  { combo: "Shift+Wheel", group: "Canvas", description: "Pan sideways", handledBy: "canvas" },
  { combo: "Two fingers", group: "Canvas", when: "touch screen", description: "Pan and pinch-zoom (a second finger cancels a one-finger stroke)", handledBy: "canvas" },
  { combo: "Esc", group: "Canvas", description: "Cancel the stroke, shape or drag in progress", handledBy: "canvas" },
  { combo: "Arrows", group: "Canvas", when: "move tool", description: "Nudge the layer 1 px", handledBy: "canvas" },
  { combo: "Shift+Arrows", group: "Canvas", when: "move tool", description: "Nudge the layer 10 px", handledBy: "canvas" },
  { combo: "Shift+Click", group: "Canvas", when: "brush, eraser", description: "A straight line from the end of the last stroke", handledBy: "canvas" },
  { combo: "Alt+Click", group: "Canvas", when: "brush", description: "Pick the colour under the pointer", handledBy: "canvas" },
  { combo: "Alt+Drag", group: "Canvas", when: "rectangle, lasso", description: "Erase the area instead of filling it", handledBy: "canvas" },
  { combo: "Shift+Drag", group: "Canvas", when: "rectangle", description: "A square", handledBy: "canvas" },
  { combo: "Shift+Drag", group: "Canvas", when: "box tool", description: "Keep the box's aspect ratio", handledBy: "canvas" },
  { combo: "Ctrl+Drag", group: "Canvas", when: "box tool", description: "Move the box without snapping to 8 px", handledBy: "canvas" },

  keyed({ keys: { key: "?", mod: false, alt: false }, group: "Help", description: "Show the keyboard shortcuts", action: "showShortcuts" }),
]);

/** The groups in the order they first appear in the table. */
export const SHORTCUT_GROUPS = Object.freeze([...new Set(SHORTCUTS.map((s) => s.group))]);

/** @param {KeyMatch} k @param {{key: string, ctrlKey?: boolean, metaKey?: boolean, shiftKey?: boolean, altKey?: boolean}} e */
function matches(k, e) {
  const mod = !!(e.ctrlKey || e.metaKey);
  if (k.mod !== undefined && k.mod !== mod) return false;
  if (k.shift !== undefined && k.shift !== !!e.shiftKey) return false;
  if (k.alt !== undefined && k.alt !== !!e.altKey) return false;
  return typeof e.key === "string" && e.key.toLowerCase() === k.key.toLowerCase();
}

/**
 * The row a keydown triggers, or null. `blocked`: typing in a field, a dialog or the viewer open
 * (only "anywhere" rows then); `staging`: results are staged.
 * @param {any} e a KeyboardEvent (or an object with its fields) @param {{blocked: boolean, staging: boolean}} state
 * @returns {Shortcut | null}
 */
export function findShortcut(e, { blocked, staging }) {
  for (const row of SHORTCUTS) {
    if (!row.action || !row.keys) continue;
    if (blocked && row.scope !== "anywhere") continue;
    if (row.scope === "staging" && !staging) continue;
    if (matches(row.keys, e) && (!row.onlyIf || row.onlyIf(e))) return row;
  }
  return null;
}

/**
 * The handlers of the table's actions, by action name. Each gets the keydown event and the row's `arg`.
 * @param {{invoke: () => void, undo: () => void, redo: () => void, selectTool: (name: string) => void,
 *   brushSizeBy: (sign: 1 | -1) => void, stagingEscape: (e: KeyboardEvent) => void, stepStaging: (by: 1 | -1) => void,
 *   acceptStaged: () => void, showShortcuts: () => void}} app
 * @returns {Record<string, (e: KeyboardEvent, arg?: string) => void>}
 */
export function shortcutHandlers(app) {
  return {
    invoke: () => app.invoke(),
    undo: () => app.undo(),
    redo: () => app.redo(),
    stagingEscape: (e) => app.stagingEscape(e),
    stagingPrev: () => app.stepStaging(-1),
    stagingNext: () => app.stepStaging(1),
    stagingAccept: () => app.acceptStaged(),
    selectTool: (e, name) => {
      if (!e.repeat) app.selectTool(/** @type {string} */ (name)); // a held key selects once (and is still taken)
    },
    brushSmaller: () => app.brushSizeBy(-1),
    brushBigger: () => app.brushSizeBy(1),
    showShortcuts: () => app.showShortcuts(),
  };
}

/**
 * Listen for the shortcuts. Capture phase: keys handled here (tools, staging arrows, undo) do not also
 * reach the canvas's tool handlers (the move tool would nudge with the arrows). Space-pan is the
 * canvas's; Esc is the canvas's (it cancels a gesture) unless results are staged: then a gesture in
 * progress is cancelled, else a result discarded.
 * @param {{handlers: Record<string, (e: KeyboardEvent, arg?: string) => void>, isBlocked: (e: KeyboardEvent) => boolean,
 *   hasStaging: () => boolean}} o
 * @returns {() => void} remove the listener
 */
export function installShortcuts({ handlers, isBlocked, hasStaging }) {
  /** @param {KeyboardEvent} e */
  const onKeyDown = (e) => {
    const row = findShortcut(e, { blocked: isBlocked(e), staging: hasStaging() });
    if (!row) return;
    e.preventDefault();
    e.stopPropagation(); // handled here only: the canvas's own handler (Esc, arrows) must not run a second time
    handlers[/** @type {string} */ (row.action)](e, row.arg);
  };
  window.addEventListener("keydown", onKeyDown, true);
  return () => window.removeEventListener("keydown", onKeyDown, true);
}
