// REST client for /api/v1 and the Socket.IO connection.
// Errors carry the server's message ({error, message, detail}); `onError` (usually a toast) sees each
// failed request once, and the promise rejects with an ApiError marked `reported`.

import { io } from "socket.io-client";

const TOKEN_KEY = "invokeCanvas.token";
/** What one keepalive body may hold (the browsers' quota is 64 KiB for all in flight; leave headroom). */
export const KEEPALIVE_MAX_BYTES = 60 * 1024;

/** An error answered by the server (or a network failure: status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string} [code]
   * @param {any} [detail]
   */
  constructor(status, message, code = "error", detail = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    /** true once onError has shown it */
    this.reported = false;
  }
}

/** The token from `?token=` (kept in sessionStorage so reloads keep it), or null. */
export function readToken() {
  try {
    const fromUrl = new URLSearchParams(location.search).get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      return fromUrl;
    }
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/**
 * @param {Record<string, any>|undefined} query
 * @returns {string}
 */
function queryString(query) {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * @typedef {{json?: any, query?: Record<string, any>, form?: FormData, quiet?: boolean, signal?: AbortSignal}} RequestOptions
 */

/**
 * @param {{base?: string, token?: string|null, onError?: (err: ApiError) => void}} [options]
 */
export function createApi({ base = "/api/v1", token = readToken(), onError = () => {} } = {}) {
  /**
   * @param {string} method
   * @param {string} path
   * @param {RequestOptions} [opts]
   */
  async function request(method, path, opts = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (opts.form) body = opts.form;
    else if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    let response;
    try {
      response = await fetch(base + path + queryString(opts.query), { method, headers, body, signal: opts.signal });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw report(new ApiError(0, "the server cannot be reached", "network"), opts);
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("application/json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const message = (data && data.message) || `${method} ${path} failed (${response.status})`;
      throw report(new ApiError(response.status, message, data && data.error, data && data.detail), opts);
    }
    return data;
  }

  /** @param {ApiError} err @param {RequestOptions} opts */
  function report(err, opts) {
    if (!opts.quiet) {
      try {
        onError(err);
      } finally {
        err.reported = true;
      }
    }
    return err;
  }

  /** An image URL usable in <img src>: image records come with signed URLs (`sig=`) when the server has a
   * token; any other image path carries the token (the server takes it in URLs of image files only). */
  function url(path) {
    if (!path) return path;
    if (!token || path.startsWith("data:") || path.startsWith("blob:") || /[?&]sig=/.test(path)) return path;
    return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  const get = (path, query, opts = {}) => request("GET", path, { ...opts, query });
  const post = (path, json, opts = {}) => request("POST", path, { ...opts, json });
  const patch = (path, json, opts = {}) => request("PATCH", path, { ...opts, json });
  const del = (path, query, opts = {}) => request("DELETE", path, { ...opts, query });
  const enc = encodeURIComponent;

  const api = {
    request,
    url,
    token,
    setErrorHandler(fn) {
      onError = fn;
    },
    health: () => get("/health"),
    /** Limits, defaults and option lists of a job (GET /config, built from invoke_core's definitions). */
    config: () => get("/config"),
    models: {
      list: () => get("/models"),
      /** What is loaded where (GET /models/cache): models, components, RAM and VRAM against their budgets. */
      cache: () => get("/models/cache"),
      /** @param {string} id @param {boolean} keep keep it loaded (loaded now and at every start) */
      keepLoaded: (id, keep) => patch(`/models/${enc(id)}`, { keep_loaded: keep }),
      /** @param {string} id @param {"native"|"fp8"|"nf4"|"int8"} weights how its denoiser's weights are stored */
      setWeights: (id, weights) => patch(`/models/${enc(id)}`, { weights }),
      /** Find and register in place every model under a folder on the server's machine (a background job). @param {string} path */
      scan: (path) => post("/models/scan", { path }),
      /** The state of an install or scan job: started, completed (with what it found) or failed. @param {string} id */
      job: (id) => get(`/models/install/${enc(id)}`),
    },
    images: {
      /**
       * @param {Blob} blob
       * @param {{category?: "general"|"mask"|"control"|"layer", board_id?: string|null, filename?: string}} [o]
       */
      upload(blob, o = {}) {
        const form = new FormData();
        form.append("file", blob, o.filename || "image.png");
        if (o.category) form.append("category", o.category);
        if (o.board_id) form.append("board_id", o.board_id);
        return request("POST", "/images", { form });
      },
      list: (query) => get("/images", query),
      get: (id) => get(`/images/${enc(id)}`),
      metadata: (id, opts) => get(`/images/${enc(id)}/metadata`, undefined, opts),
      recall: (id, opts) => get(`/images/${enc(id)}/recall`, undefined, opts),
      patch: (id, body) => patch(`/images/${enc(id)}`, body),
      patchMany: (ids, body) => patch("/images/batch", { ids, ...body }),
      remove: (id) => del(`/images/${enc(id)}`),
      removeMany: (ids) => post("/images/delete", { ids }),
      counts: () => get("/images/counts"),
      fileUrl: (id) => url(`${base}/images/${enc(id)}/file`),
      thumbnailUrl: (id) => url(`${base}/images/${enc(id)}/thumbnail`),
    },
    boards: {
      tree: () => get("/boards"),
      create: (name, parent_id = null) => post("/boards", { name, parent_id }),
      patch: (id, body) => patch(`/boards/${enc(id)}`, body),
      remove: (id, includeImages) => del(`/boards/${enc(id)}`, { include_images: includeImages ? "true" : "false" }),
      /** Sibling order under `parent_id` (null: the top level). @param {string|null} parent_id @param {string[]} ordered_ids */
      reorder: (parent_id, ordered_ids) => post("/boards/reorder", { parent_id, ordered_ids }),
    },
    canvas: {
      list: () => get("/canvas"),
      load: (id, opts) => get(`/canvas/${enc(id)}`, undefined, opts),
      /** @param {{name?: string, document: any, canvas_id?: string|null, autosave?: boolean}} body */
      save: (body, opts) => post("/canvas", body, opts),
      /**
       * The same save sent as the page goes away (pagehide): a keepalive fetch outlives the page, but
       * only for small bodies (browsers cap in-flight keepalive bodies at 64 KiB). Nobody reads the reply.
       * @returns {boolean} whether the browser took it
       */
      saveOnUnload(body) {
        const text = JSON.stringify(body);
        if (text.length > KEEPALIVE_MAX_BYTES) return false;
        /** @type {Record<string, string>} */
        const headers = { "Content-Type": "application/json" };
        if (token) headers.Authorization = `Bearer ${token}`;
        try {
          fetch(base + "/canvas", { method: "POST", headers, body: text, keepalive: true }).catch(() => {});
          return true;
        } catch {
          return false; // over the browser's keepalive quota
        }
      },
      rename: (id, name) => patch(`/canvas/${enc(id)}`, { name }),
      remove: (id) => del(`/canvas/${enc(id)}`),
      /** @param {{document: any, board_id?: string|null}} body */
      enqueue: (body) => post("/canvas/jobs", body),
    },
    queue: {
      items: (query) => get("/queue/items", query),
      cancel: (id) => post(`/queue/items/${id}/cancel`),
      cancelPending: () => post("/queue/cancel-pending"),
      pause: () => post("/queue/pause"),
      resume: () => post("/queue/resume"),
      retry: (ids) => post("/queue/retry", { ids }),
      clear: () => post("/queue/clear"),
      status: () => get("/queue/status"),
    },
    /**
     * Connect Socket.IO; `handlers` maps event names to callbacks. Also "connect" / "disconnect".
     * @param {Record<string, (payload: any) => void>} handlers
     */
    connect(handlers) {
      const socket = io({ auth: token ? { token } : {}, transports: ["websocket", "polling"] });
      for (const [name, fn] of Object.entries(handlers)) socket.on(name, fn);
      return socket;
    },
  };
  return api;
}
