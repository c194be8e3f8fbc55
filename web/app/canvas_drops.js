// Drops on the canvas: image files from the desktop and images dragged from the gallery become new
// layers where they are dropped. Files go through the one drop helper the gallery uses too
// (panels/drops.js: the same accepted types, the same warning for refused files).

import { loadBitmap } from "../panels/dom.js";
import { droppedImageFiles, installDropTarget } from "../panels/drops.js";

/**
 * @param {{stage: HTMLElement, stageWrap: HTMLElement, store: any, api: any, ops: any, toasts: any,
 *   guard: (fn: () => any) => Promise<any>}} deps `stage`: the Konva container (drop points are
 *   converted with its view); `stageWrap`: the element that takes the drops (and shows `.dropping`).
 */
export function installCanvasDrops({ stage, stageWrap, store, api, ops, toasts, guard }) {
  function canvasPoint(clientX, clientY) {
    const rect = stage.getBoundingClientRect();
    const view = store.get("view") || { x: 0, y: 0, scale: 1 };
    const scale = view.scale || 1;
    return { x: (clientX - rect.left - (view.x || 0)) / scale, y: (clientY - rect.top - (view.y || 0)) / scale };
  }
  installDropTarget(stageWrap, { types: ["Files", "application/x-image-id"], className: "dropping", onDrop });
  function onDrop(e) {
    if (!e.dataTransfer) return;
    const files = droppedImageFiles(e, toasts);
    const imageId = e.dataTransfer.getData("application/x-image-id");
    if (!files.length && !imageId) return;
    e.preventDefault();
    const at = canvasPoint(e.clientX, e.clientY);
    guard(async () => {
      if (imageId) {
        const image = await api.images.get(imageId.split(",")[0]);
        const bitmap = await loadBitmap(api.url(image.url));
        await ops.addFromBitmap(bitmap, { x: at.x - bitmap.width / 2, y: at.y - bitmap.height / 2, name: image.prompt ? image.prompt.slice(0, 40) : "Image" });
        return;
      }
      let offset = 0;
      for (const file of files) {
        let bitmap;
        try {
          bitmap = await createImageBitmap(file);
        } catch {
          throw new Error(`${file.name} is not an image this browser can read`);
        }
        await ops.addFromBitmap(bitmap, {
          x: Math.round(at.x - bitmap.width / 2 + offset),
          y: Math.round(at.y - bitmap.height / 2 + offset),
          name: file.name.replace(/\.[a-z0-9]+$/i, "").slice(0, 60) || "Image",
        });
        offset += 16;
      }
      toasts.success(files.length === 1 ? `Added ${files[0].name} as a layer` : `Added ${files.length} layers`);
    });
  }
  // a file dropped anywhere else must not make the browser navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}
