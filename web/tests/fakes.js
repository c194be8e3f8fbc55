// Test doubles for the pure modules: a tiny software "canvas" (integer translations, opaque
// source-over, clearRect, fillRect with #rrggbb) and a fake tile store for history.

/** Parse "#rrggbb" (the only colour form the fake understands). */
function parseColor(s) {
  const m = /^#([0-9a-f]{6})$/i.exec(String(s));
  if (!m) throw new Error(`fake canvas: unsupported colour ${s}`);
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255, 255];
}

export class FakeCanvas {
  constructor(width, height) {
    this.width = width; this.height = height;
    this.data = new Uint8ClampedArray(width * height * 4);
    this.ctx = new FakeContext(this);
  }
  getContext() { return this.ctx; }
}

class FakeContext {
  constructor(canvas) {
    this.canvas = canvas;
    this.tx = 0; this.ty = 0;
    this.globalAlpha = 1; this.globalCompositeOperation = "source-over"; this.fillStyle = "#000000";
    this.stack = [];
  }
  save() { this.stack.push([this.tx, this.ty, this.globalAlpha, this.globalCompositeOperation, this.fillStyle]); }
  restore() { [this.tx, this.ty, this.globalAlpha, this.globalCompositeOperation, this.fillStyle] = this.stack.pop(); }
  translate(x, y) { this.tx += x; this.ty += y; }
  setTransform(a, b, c, d, e, f) { this.tx = e; this.ty = f; }
  _each(x, y, w, h, fn) {
    const c = this.canvas;
    const x0 = Math.max(0, Math.round(x + this.tx)), y0 = Math.max(0, Math.round(y + this.ty));
    const x1 = Math.min(c.width, Math.round(x + this.tx + w)), y1 = Math.min(c.height, Math.round(y + this.ty + h));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) fn((py * c.width + px) * 4, px, py);
  }
  clearRect(x, y, w, h) { this._each(x, y, w, h, (i) => this.canvas.data.fill(0, i, i + 4)); }
  fillRect(x, y, w, h) {
    const rgba = parseColor(this.fillStyle);
    const erase = this.globalCompositeOperation === "destination-out";
    this._each(x, y, w, h, (i) => { if (erase) this.canvas.data.fill(0, i, i + 4); else this.canvas.data.set(rgba, i); });
  }
  drawImage(src, dx, dy) {
    const s = src.data ? src : src.canvas;
    this._each(dx, dy, s.width, s.height, (i, px, py) => {
      const sx = px - Math.round(dx + this.tx), sy = py - Math.round(dy + this.ty);
      const j = (sy * s.width + sx) * 4;
      if (this.globalCompositeOperation === "copy" || s.data[j + 3]) this.canvas.data.set(s.data.subarray(j, j + 4), i);
    });
  }
  getImageData(x, y, w, h) {
    const out = new Uint8ClampedArray(w * h * 4);
    const c = this.canvas;
    for (let py = 0; py < h; py++) for (let px = 0; px < w; px++) {
      const sx = x + px, sy = y + py;
      if (sx < 0 || sy < 0 || sx >= c.width || sy >= c.height) continue;
      out.set(c.data.subarray((sy * c.width + sx) * 4, (sy * c.width + sx) * 4 + 4), (py * w + px) * 4);
    }
    return { width: w, height: h, data: out };
  }
}

export const fakeCanvasFactory = (w, h) => new FakeCanvas(w, h);

/**
 * A minimal pixel store for history tests: each "tile" is a Uint8Array; paint() announces the edit
 * first, like TiledBitmap does.
 */
export function createFakePixels(size = 4) {
  let listener = null;
  const layers = new Map();
  const makeLayer = (id) => {
    const tiles = new Map();
    const layer = {
      size, tiles,
      snapshotTile: (key) => (tiles.has(key) ? tiles.get(key).slice() : null),
      restoreTile: (key, snap) => { if (snap) tiles.set(key, snap.slice()); else tiles.delete(key); },
      paint(key, value) {
        listener?.(id, layer, [key]);
        const t = tiles.get(key) ?? new Uint8Array(size * size * 4);
        t.fill(value);
        tiles.set(key, t);
      },
      read: (key) => (tiles.has(key) ? [...tiles.get(key)] : null),
    };
    return layer;
  };
  return {
    ensure(id) { if (!layers.has(id)) layers.set(id, makeLayer(id)); return layers.get(id); },
    get: (id) => layers.get(id),
    setEditListener(fn) { listener = fn; },
  };
}
