// Ids made in the browser: its client id (which saves are its own) and new canvas ids (a canvas
// exists in the journal, and is saved under its id, before the server has answered).

/** This browser's id, stamped on its saves (`ui.writer`): tells its own versions from another browser's. */
export function clientId(key) {
  let id = null;
  try {
    id = localStorage.getItem(key);
    if (!id) localStorage.setItem(key, (id = newCanvasId()));
  } catch {
    id = id || newCanvasId(); // storage blocked: one id for this page's life
  }
  return id;
}

/** A canvas id made here (32 lowercase hex digits): a canvas exists in the journal before the server has it. */
export function newCanvasId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
