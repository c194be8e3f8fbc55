// The shortcut table (app/shortcuts.js): one row per combo in each context, every action handled,
// tool keys derived from the toolbar's TOOLS, and the dispatch picking the row today's keys expect.
import { test } from "node:test";
import assert from "node:assert/strict";

import { SHORTCUTS, SHORTCUT_GROUPS, comboLabel, findShortcut, shortcutHandlers } from "../app/shortcuts.js";
import { TOOLS } from "../panels/toolbar.js";

const key = (k, mods = {}) => ({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, repeat: false, target: null, ...mods });
const free = { blocked: false, staging: false };

test("no combo appears twice in the same context", () => {
  const seen = new Map();
  for (const row of SHORTCUTS) {
    const id = `${row.combo.toLowerCase()} | ${row.when || ""}`;
    assert.ok(!seen.has(id), `duplicate combo ${row.combo}${row.when ? ` (${row.when})` : ""}: "${seen.get(id)}" and "${row.description}"`);
    seen.set(id, row.description);
  }
});

test("every row has a combo, a description and a group; a key match, when it has one, reads as its combo", () => {
  for (const row of SHORTCUTS) {
    assert.ok(row.combo && row.description && row.group, JSON.stringify(row));
    assert.ok(SHORTCUT_GROUPS.includes(row.group));
    assert.ok(!!row.action !== !!row.handledBy, `${row.combo}: handled here (action) or elsewhere (handledBy), not both nor neither`);
    if (row.keys) assert.equal(row.combo, comboLabel(row.keys));
    if (row.action) assert.ok(row.keys, `${row.combo}: an action needs a key match`);
  }
});

test("every row with an action resolves to a handler", () => {
  const calls = [];
  const app = new Proxy({}, { get: (_, name) => (...args) => calls.push([name, ...args]) });
  const handlers = shortcutHandlers(/** @type {any} */ (app));
  const actions = SHORTCUTS.filter((r) => r.action);
  assert.ok(actions.length >= 10);
  for (const row of actions) {
    assert.equal(typeof handlers[row.action], "function", `no handler for ${row.action} (${row.combo})`);
    const before = calls.length;
    handlers[row.action](/** @type {any} */ (key(row.keys.key)), row.arg);
    assert.equal(calls.length, before + 1, `${row.action} calls the app`);
  }
  assert.deepEqual(Object.keys(handlers).sort(), [...new Set(actions.map((r) => r.action))].sort(), "no handler without a row");
});

test("tool keys are exactly TOOLS' keys, each selecting its tool", () => {
  const rows = SHORTCUTS.filter((r) => r.action === "selectTool");
  assert.deepEqual(
    rows.map((r) => [r.combo, r.arg]),
    TOOLS.map((t) => [t.key.toUpperCase(), t.name]),
  );
  for (const t of TOOLS) {
    assert.equal(findShortcut(key(t.key.toLowerCase()), free)?.arg, t.name);
    assert.equal(findShortcut(key(t.key.toUpperCase()), free)?.arg, t.name, "caps lock still selects");
    assert.equal(findShortcut(key(t.key, { shiftKey: true }), free), null, "Shift+key is not the tool");
    assert.equal(findShortcut(key(t.key, { ctrlKey: true }), free), null, "Ctrl+key is not the tool");
  }
});

test("dispatch: today's semantics", () => {
  const action = (e, state = free) => findShortcut(e, state)?.action ?? null;
  assert.equal(action(key("Enter", { ctrlKey: true })), "invoke");
  assert.equal(action(key("Enter", { metaKey: true }), { blocked: true, staging: false }), "invoke", "Ctrl+Enter works while typing");
  assert.equal(action(key("z", { ctrlKey: true }), { blocked: true, staging: false }), null, "nothing else while typing or in a dialog");
  assert.equal(action(key("z", { ctrlKey: true })), "undo");
  assert.equal(action(key("Z", { ctrlKey: true, shiftKey: true })), "redo");
  assert.equal(action(key("y", { ctrlKey: true })), "redo");
  assert.equal(action(key("z", { ctrlKey: true, altKey: true })), null);
  assert.equal(action(key("[")), "brushSmaller");
  assert.equal(action(key("]")), "brushBigger");
  assert.equal(action(key("[", { altKey: true })), null);
  assert.equal(action(key("?", { shiftKey: true })), "showShortcuts");
  // staging keys only while results are staged; otherwise Esc and the arrows are the canvas's
  const staged = { blocked: false, staging: true };
  assert.equal(action(key("Escape")), null);
  assert.equal(action(key("ArrowLeft")), null);
  assert.equal(action(key("Enter")), null);
  assert.equal(action(key("Escape"), staged), "stagingEscape");
  assert.equal(action(key("Escape", { shiftKey: true }), staged), null);
  assert.equal(action(key("ArrowLeft"), staged), "stagingPrev");
  assert.equal(action(key("ArrowRight", { shiftKey: true }), staged), "stagingNext");
  assert.equal(action(key("Enter"), staged), "stagingAccept");
  assert.equal(action(key("Enter", { target: { tagName: "BUTTON" } }), staged), null, "Enter on a button is its click");
});

test("a held tool key selects once but is still taken", () => {
  const picked = [];
  const handlers = shortcutHandlers(/** @type {any} */ ({ selectTool: (n) => picked.push(n) }));
  handlers.selectTool(/** @type {any} */ (key("b", { repeat: true })), "brush");
  handlers.selectTool(/** @type {any} */ (key("b")), "brush");
  assert.deepEqual(picked, ["brush"]);
});
