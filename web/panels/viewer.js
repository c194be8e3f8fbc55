// The image viewer: the full image, its metadata, and actions: recall parameters, recall layers (its
// regional-guidance and control layers, when it had any), send to canvas as a layer, use as control
// image, star, set as board cover, download, delete; ← → step through the grid.
import { h, iconButton, parseUtc } from "./dom.js";
import { icon } from "./icons.js";

/**
 * @param {{api: any, guard: (fn: () => any) => any, actions: {
 *   recall: (image: any, params: any) => void, recallLayers: (image: any, params: any) => Promise<number>, sendToCanvas: (image: any) => any, useAsControl: (image: any) => any, useAsReference: (image: any) => any,
 *   setStarred: (id: string, starred: boolean) => Promise<any>, deleteImage: (id: string) => Promise<any>,
 *   setCover: (image: any) => Promise<any>, boardName: (id: string|null) => string|null}}} o
 */
export function createViewer({ api, guard, actions }) {
  /** @type {HTMLElement|null} */
  let root = null;
  /** @type {any} */
  let current = null;
  /** @type {{prev: () => any, next: () => any}|null} */
  let nav = null;
  let token = 0;

  function close() {
    if (!root) return;
    root.remove();
    root = null;
    current = null;
    document.removeEventListener("keydown", onKey, true);
  }

  function onKey(e) {
    if (!root) return;
    if (e.target instanceof HTMLElement && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
    if (e.key === "Escape") {
      e.stopPropagation();
      e.preventDefault();
      close();
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.stopPropagation();
      e.preventDefault();
      const to = nav && (e.key === "ArrowLeft" ? nav.prev() : nav.next());
      if (to) show(to);
    }
  }

  /** @param {any} image @param {{prev: () => any, next: () => any}} [neighbours] */
  function open(image, neighbours) {
    nav = neighbours || null;
    if (!root) {
      root = h("div", { class: "viewer-backdrop", "data-testid": "viewer", role: "dialog", "aria-modal": "true", "aria-label": "Image viewer" });
      root.addEventListener("click", (e) => e.target === root && close());
      document.body.appendChild(root);
      document.addEventListener("keydown", onKey, true);
    }
    show(image);
  }

  function row(label, value) {
    if (value === undefined || value === null || value === "") return null;
    return h("div", { class: "meta-row" }, h("dt", null, label), h("dd", null, String(value)));
  }

  async function show(image) {
    current = image;
    const mine = ++token;
    const starBtn = h(
      "button",
      { class: `btn${image.starred ? " on" : ""}`, "data-testid": "viewer-star", onclick: () => guard(toggleStar) },
      icon("star", 16),
      image.starred ? "Starred" : "Star",
    );
    async function toggleStar() {
      const updated = await actions.setStarred(image.id, !image.starred);
      show({ ...image, ...(updated || {}), starred: !image.starred });
    }
    const boardName = actions.boardName(image.board_id);
    const meta = h("dl", { class: "meta", "data-testid": "viewer-metadata" }, h("div", { class: "muted small" }, "Loading metadata…"));
    // the recall tells whether the image had regions or control layers to bring back
    const recalled = api.images.recall(image.id, { quiet: true }).catch(() => null);
    const layersBtn = h(
      "button",
      {
        class: "btn",
        "data-testid": "viewer-recall-layers",
        hidden: true,
        title: "Add its regional-guidance and control layers to the canvas, where they were (one undo step)",
        onclick: () =>
          guard(async () => {
            const params = (await recalled) || (await api.images.recall(image.id));
            if (await actions.recallLayers(image, params)) close();
          }),
      },
      icon("layers", 16),
      "Recall layers",
    );
    const prev = nav && nav.prev();
    const next = nav && nav.next();
    root.replaceChildren(
      h(
        "div",
        { class: "viewer" },
        h(
          "div",
          { class: "viewer-image" },
          h("img", { src: api.url(image.url), alt: image.prompt || image.file_name, "data-testid": "viewer-image" }),
          prev ? iconButton(icon("left", 22), "Previous (←)", () => show(prev), { class: "icon-btn viewer-nav left" }) : null,
          next ? iconButton(icon("right", 22), "Next (→)", () => show(next), { class: "icon-btn viewer-nav right" }) : null,
        ),
        h(
          "aside",
          { class: "viewer-side" },
          h(
            "header",
            { class: "viewer-head" },
            h("h3", null, `${image.width} × ${image.height}`),
            h("span", { class: "spacer" }),
            iconButton(icon("x", 18), "Close (Esc)", close, { "data-testid": "viewer-close" }),
          ),
          h(
            "div",
            { class: "viewer-actions" },
            h("button", { class: "btn primary", "data-testid": "viewer-recall", title: "Put its prompt, seed, settings and LoRAs into Generate", onclick: () => guard(recall) }, icon("recall", 16), "Recall parameters"),
            layersBtn,
            h("button", { class: "btn", "data-testid": "viewer-to-canvas", title: "Add it to the canvas as a new raster layer in the box", onclick: () => guard(async () => (await actions.sendToCanvas(image), close())) }, icon("layers", 16), "Send to canvas"),
            h("button", { class: "btn", "data-testid": "viewer-to-control", title: "A new control layer with this image, fitted to the box", onclick: () => guard(async () => (await actions.useAsControl(image), close())) }, icon("image", 16), "Use as control"),
            h("button", { class: "btn", "data-testid": "viewer-to-reference", title: "A new reference layer with this image, beside the box (models that take reference images: FLUX.2)", onclick: () => guard(async () => (await actions.useAsReference(image), close())) }, icon("image", 16), "Use as reference"),
            starBtn,
            image.board_id
              ? h("button", { class: "btn", "data-testid": "viewer-set-cover", title: `Make it the cover of ${boardName}`, onclick: () => guard(() => actions.setCover(image)) }, icon("folder", 16), "Set as cover")
              : null,
            h("a", { class: "btn", href: api.url(image.url), download: image.file_name || `${image.id}.png`, "data-testid": "viewer-download" }, icon("download", 16), "Download"),
            h(
              "button",
              {
                class: "btn danger",
                "data-testid": "viewer-delete",
                onclick: () =>
                  guard(async () => {
                    const to = (nav && (nav.next() || nav.prev())) || null;
                    await actions.deleteImage(image.id);
                    if (to) show(to);
                    else close();
                  }),
              },
              icon("trash", 16),
              "Delete",
            ),
          ),
          meta,
        ),
      ),
    );

    async function recall() {
      const params = (await recalled) || (await api.images.recall(image.id));
      actions.recall(image, params);
    }

    recalled.then((params) => {
      if (mine !== token || !root || !params) return;
      const count = (key) => (Array.isArray(params[key]) ? params[key].length : 0);
      const parts = [["regions", "region"], ["controls", "control layer"], ["references", "reference layer"]]
        .filter(([key]) => count(key))
        .map(([key, what]) => `${count(key)} ${what}${count(key) === 1 ? "" : "s"}`);
      if (!parts.length) return;
      layersBtn.hidden = false;
      layersBtn.title = `Add its ${parts.join(" and ")} to the canvas, where they were (one undo step)`;
    });

    try {
      const data = await api.images.metadata(image.id).catch(() => ({}));
      if (mine !== token || !root) return;
      const params = data || {};
      const model = params.model && typeof params.model === "object" ? params.model.name : params.model_name || image.model_name;
      const recallBtn = root.querySelector("[data-testid=viewer-recall]");
      const hasParams = ["prompt", "seed", "steps", "cfg_scale", "scheduler"].some((k) => params[k] !== undefined && params[k] !== null && params[k] !== "");
      if (recallBtn && !hasParams) {
        recallBtn.setAttribute("disabled", "");
        recallBtn.title = "This image carries no generation parameters";
      }
      meta.replaceChildren(
        ...[
        row("Prompt", params.prompt ?? image.prompt),
        row("Negative", params.negative_prompt ?? image.negative_prompt),
        row("Model", model),
        row("Seed", params.seed),
        row("Steps", params.steps),
        row("CFG", params.cfg_scale),
        row("Scheduler", params.scheduler),
        row("LoRAs", Array.isArray(params.loras) && params.loras.length ? params.loras.map((l) => `${l.name || l.id} ${Number(l.weight).toFixed(2)}`).join(", ") : null),
        row("Regions", regionSummary(params.regions)),
        row("Controls", Array.isArray(params.controls) && params.controls.length ? params.controls.map((c) => `${c.model?.name || c.model?.id || "?"} · ${c.preprocessor} ${Number(c.weight).toFixed(2)}`).join("; ") : null),
        row("Strength", params.strength),
        row("Mode", params.mode),
        row("Board", boardName || "Uncategorised"),
        row("Origin", image.origin),
        row("Created", parseUtc(image.created_at).toLocaleString()),
        row("File", `${image.file_name} · ${(image.file_size / 1024).toFixed(0)} KB`),
        ].filter(Boolean),
      );
    } catch {
      /* metadata is optional */
    }
  }

  return {
    open,
    close,
    get isOpen() {
      return !!root;
    },
    get current() {
      return current;
    },
  };
}

/** The regions of a job as the viewer lists them: each used region's prompt and strength, and how many were
 * folded into the main prompt or dropped. @param {any} regions */
function regionSummary(regions) {
  const items = regions && Array.isArray(regions.items) ? regions.items : [];
  if (!items.length) return null;
  const used = items.filter((r) => r.use === "region").map((r) => `"${r.prompt}" ${Number(r.strength ?? 0.8).toFixed(2)}`);
  const merged = items.filter((r) => r.use === "main").length;
  const dropped = items.filter((r) => r.use === "dropped").length;
  return [...used, merged ? `${merged} merged into the prompt` : "", dropped ? `${dropped} too small, dropped` : ""].filter(Boolean).join("; ");
}
