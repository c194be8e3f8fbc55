// Files dropped from the desktop, on the canvas (new layers) or on the gallery (uploads): one list of
// the image types accepted (those the server stores), one message naming what was refused.

/** What the server stores (db/assets.py): the canvas and the gallery accept the same. */
export const ACCEPTED_IMAGES = Object.freeze({
  label: "PNG, JPEG or WebP",
  types: Object.freeze(["image/png", "image/jpeg", "image/webp"]),
  extensions: /\.(png|jpe?g|webp)$/i,
});

/** @param {{name: string, type: string}} file */
export function isAcceptedImage(file) {
  return ACCEPTED_IMAGES.types.includes(file.type) || ACCEPTED_IMAGES.extensions.test(file.name);
}

/**
 * The files of a drop, accepted and refused, and the message for the refused ones (null when none).
 * @template {{name: string, type: string}} F
 * @param {Iterable<F>} files
 * @returns {{accepted: F[], refused: F[], message: string | null}}
 */
export function sortDroppedFiles(files) {
  const accepted = [];
  const refused = [];
  for (const f of files) (isAcceptedImage(f) ? accepted : refused).push(f);
  if (!refused.length) return { accepted, refused, message: null };
  const shown = refused.slice(0, 3).map((f) => f.name || "unnamed file");
  const names = shown.join(", ") + (refused.length > shown.length ? ` and ${refused.length - shown.length} more` : "");
  const verb = refused.length === 1 ? "is not an image that can be added" : "are not images that can be added";
  return { accepted, refused, message: `${names} ${verb}: drop ${ACCEPTED_IMAGES.label} images` };
}

/**
 * The one drop handler's file part, for the canvas and the gallery: the accepted image files of a drop
 * event; refused files are named in a warning toast.
 * @param {DragEvent} e @param {{warning: (m: string) => unknown}} toasts
 * @returns {File[]}
 */
export function droppedImageFiles(e, toasts) {
  const { accepted, message } = sortDroppedFiles(e.dataTransfer ? [...(e.dataTransfer.files || [])] : []);
  if (message) {
    e.preventDefault(); // handled: the browser must not open the file
    toasts.warning(message);
  }
  return accepted;
}

/**
 * The one drop target behaviour of the canvas and the gallery: while a drag of `types` it accepts
 * is over `el`, the drop is allowed (copy) and `el` has `className`; `onDrop(e)` gets the drop.
 * @param {HTMLElement} el
 * @param {{types: string[], className: string, onDrop: (e: DragEvent) => void}} o
 */
export function installDropTarget(el, { types, className, onDrop }) {
  el.addEventListener("dragover", (e) => {
    const offered = e.dataTransfer ? [...e.dataTransfer.types] : [];
    if (!offered.some((t) => types.includes(t))) return;
    e.preventDefault();
    /** @type {DataTransfer} */ (e.dataTransfer).dropEffect = "copy";
    el.classList.add(className);
  });
  el.addEventListener("dragleave", (e) => {
    if (!el.contains(/** @type {Node} */ (e.relatedTarget))) el.classList.remove(className);
  });
  el.addEventListener("drop", (e) => {
    el.classList.remove(className);
    onDrop(e);
  });
}
