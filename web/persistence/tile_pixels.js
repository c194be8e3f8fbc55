// A tile's pixels in and out of the journal and a closing page's save (DOM canvases).

/** A journal tile's pixels, drawable (null: the tile was cleared). @param {Blob | ImageData | null} data */
export async function tileImage(data) {
  if (!data) return null;
  if (data instanceof Blob) return createImageBitmap(data);
  return canvasFromImageData(data);
}

/** @param {ImageData} data */
export function canvasFromImageData(data) {
  const c = document.createElement("canvas");
  c.width = data.width;
  c.height = data.height;
  /** @type {CanvasRenderingContext2D} */ (c.getContext("2d")).putImageData(data, 0, 0);
  return c;
}

/** A tile canvas as base64 PNG, synchronously (a closing page cannot wait for an encoder). */
export function tilePngBase64(tileCanvas, scratch) {
  let c = tileCanvas;
  if (typeof c.toDataURL !== "function") {
    scratch.width = tileCanvas.width;
    scratch.height = tileCanvas.height;
    const ctx = /** @type {CanvasRenderingContext2D} */ (scratch.getContext("2d"));
    ctx.clearRect(0, 0, scratch.width, scratch.height);
    ctx.drawImage(tileCanvas, 0, 0);
    c = scratch;
  }
  return c.toDataURL("image/png").slice("data:image/png;base64,".length);
}
