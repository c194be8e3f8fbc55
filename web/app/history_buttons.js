// Undo and redo: the top bar's two buttons (enabled as the history allows) and the actions the
// buttons and the shortcuts share.

import { icon } from "../panels/icons.js";

/**
 * @param {{history: any, store: any, stage: HTMLElement, undoBtn: HTMLButtonElement, redoBtn: HTMLButtonElement,
 *   onChange: () => void}} deps `onChange`: an undo or redo ran (the canvas changed)
 */
export function createHistoryButtons({ history, store, stage, undoBtn, redoBtn, onChange }) {
  undoBtn.append(icon("undo", 18));
  redoBtn.append(icon("redo", 18));
  const can = (v) => (typeof v === "function" ? v.call(history) : !!v);
  function render() {
    undoBtn.disabled = !can(history.canUndo);
    redoBtn.disabled = !can(history.canRedo);
  }
  function undo() {
    if (can(history.canUndo)) history.undo();
    render();
    onChange();
  }
  function redo() {
    if (can(history.canRedo)) history.redo();
    render();
    onChange();
  }
  undoBtn.addEventListener("click", () => undo());
  redoBtn.addEventListener("click", () => redo());
  store.subscribe(() => render());
  if (typeof history.subscribe === "function") history.subscribe(() => render());
  // pixel edits end with a pointer release on the stage
  stage.addEventListener("pointerup", () => render());
  return { undo, redo, render };
}
