// The image grid of the Gallery: the selected board's images (the board tree's selection), virtualised,
// with infinite scroll over the cursor API; the search field and filters (starred, model, dates);
// star, delete, open in the viewer, drag out (onto a board row or the canvas); live additions.
import { generates } from "../document.js";
import { debounce, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { ALL, NONE } from "./board_tree.js";

const PAGE = 100;
const GAP = 4;
/** Thumbnails at least this big: three a row in a ~240 px column, so ~2 rows show at 1440x900. */
const MIN_CELL = 70;
/** Canvas assets (layer pixels, masks, control layer images) are stored as images too; the gallery leaves them
 * out. An image a user uploads to the gallery is "general", whatever they use it for. */
export const HIDDEN_CATEGORIES = new Set(["layer", "mask", "control"]);

/**
 * @param {{api: any, toasts: any, guard: (fn: () => any) => any,
 *   onOpen: (image: any, neighbours: {prev: () => any, next: () => any}) => void,
 *   selection: () => string, boardName: (id: string) => string | undefined, onCountsChanged: () => any}} o
 *   selection: the board tree's selection ("__all__", "none" or a board id); onCountsChanged: images were
 *   moved or deleted (the tree's counts are stale)
 */
export function createImageGrid({ api, toasts, guard, onOpen, selection, boardName, onCountsChanged }) {
  /** @type {any[]} */
  let images = [];
  /** @type {string|null} */
  let cursor = null;
  let exhausted = false;
  let loading = false;
  let generation = 0;
  const filters = { search: "", starred: false, model_name: "", created_from: "", created_to: "" };
  /** @type {any[]} */
  let modelNames = [];

  async function moveImages(ids, boardId) {
    if (ids.length === 1) await api.images.patch(ids[0], { board_id: boardId });
    else await api.images.patchMany(ids, { board_id: boardId });
    const name = boardId ? boardName(boardId) || "board" : "Uncategorised";
    toasts.success(`Moved ${ids.length} image${ids.length === 1 ? "" : "s"} to ${name}`);
    if (selection() !== ALL) {
      images = images.filter((i) => !ids.includes(i.id) || boardId === selection());
      renderGrid();
    } else {
      images = images.map((i) => (ids.includes(i.id) ? { ...i, board_id: boardId } : i));
    }
    onCountsChanged();
  }

  // ---- filters -----------------------------------------------------------------------------------------
  const search = h("input", { type: "search", placeholder: "Search…", title: "Search prompts and model names", "data-testid": "gallery-search", "aria-label": "Search images" });
  const starredBtn = h("button", { class: "chip", "data-testid": "gallery-filter-starred", title: "Starred only", "aria-pressed": "false" }, icon("star", 14), "Starred");
  const modelFilter = h("select", { "data-testid": "gallery-filter-model", "aria-label": "Filter by model" });
  const fromDate = h("input", { type: "date", "data-testid": "gallery-filter-from", "aria-label": "From date", title: "From (inclusive)" });
  const toDate = h("input", { type: "date", "data-testid": "gallery-filter-to", "aria-label": "To date", title: "To (inclusive)" });
  const debouncedReload = debounce(() => reload(), 250);
  search.addEventListener("input", () => {
    filters.search = search.value.trim();
    debouncedReload();
  });
  starredBtn.addEventListener("click", () => {
    filters.starred = !filters.starred;
    starredBtn.classList.toggle("active", filters.starred);
    starredBtn.setAttribute("aria-pressed", String(filters.starred));
    reload();
  });
  modelFilter.addEventListener("change", () => {
    filters.model_name = modelFilter.value;
    reload();
  });
  fromDate.addEventListener("change", () => ((filters.created_from = fromDate.value), reload(), showDates()));
  toDate.addEventListener("change", () => ((filters.created_to = toDate.value), reload(), showDates()));
  // the date range folds away under a toggle; it stays open while a date is set (a filter never hides)
  const datesRow = h("div", { class: "filter-row dates", hidden: true }, fromDate, h("span", { class: "muted" }, "–"), toDate);
  const datesBtn = h("button", { class: "chip", "data-testid": "gallery-filter-dates", title: "Filter by date", "aria-expanded": "false" }, "Dates");
  let datesOpen = false;
  function showDates() {
    const set = !!(fromDate.value || toDate.value);
    datesRow.hidden = !(datesOpen || set);
    datesBtn.setAttribute("aria-expanded", String(!datesRow.hidden));
    datesBtn.classList.toggle("active", set);
  }
  datesBtn.addEventListener("click", () => {
    datesOpen = datesRow.hidden;
    showDates();
  });

  function renderModelFilter() {
    modelFilter.replaceChildren(h("option", { value: "" }, "Any model"), ...modelNames.map((n) => h("option", { value: n }, n)));
    modelFilter.value = filters.model_name;
  }

  // ---- grid --------------------------------------------------------------------------------------------
  const sizer = h("div", { class: "grid-sizer" });
  const scroller = h("div", { class: "grid-scroller", "data-testid": "gallery-grid", tabindex: "0" }, sizer);
  const status = h("div", { class: "grid-status", "data-testid": "gallery-status" });
  /** @type {Map<string, HTMLElement>} */
  const cells = new Map();
  let cols = 3;
  let cell = 100;

  function query(extra = {}) {
    /** @type {Record<string, any>} */
    const q = { limit: PAGE, ...extra };
    const selected = selection();
    if (selected !== ALL) q.board_id = selected;
    if (filters.search) q.search = filters.search;
    if (filters.starred) q.starred = true;
    if (filters.model_name) q.model_name = filters.model_name;
    // the date inputs are local days; the server compares UTC instants (created_to is exclusive)
    const localMidnight = (day, plus = 0) => {
      const [y, m, d] = day.split("-").map(Number);
      return new Date(y, m - 1, d + plus).toISOString();
    };
    if (filters.created_from) q.created_from = localMidnight(filters.created_from);
    if (filters.created_to) q.created_to = localMidnight(filters.created_to, 1);
    return q;
  }

  function reload() {
    generation += 1;
    images = [];
    cursor = null;
    exhausted = false;
    loading = false;
    scroller.scrollTop = 0;
    for (const c of cells.values()) c.remove();
    cells.clear();
    renderGrid();
    return loadMore();
  }

  async function loadMore() {
    if (loading || exhausted) return;
    loading = true;
    const mine = generation;
    status.textContent = "Loading…";
    try {
      // keep fetching while pages hold only canvas assets
      for (let guardPages = 0; guardPages < 10; guardPages++) {
        const page = await api.images.list(query(cursor ? { cursor } : {}));
        if (mine !== generation) return;
        const fresh = page.items.filter((i) => !HIDDEN_CATEGORIES.has(i.category) && !images.some((x) => x.id === i.id));
        images = images.concat(fresh);
        cursor = page.next_cursor;
        exhausted = !cursor;
        if (fresh.length || exhausted) break;
      }
    } catch (err) {
      exhausted = true;
      throw err;
    } finally {
      if (mine === generation) {
        loading = false;
        renderGrid();
      }
    }
    // fill the view if the first page did not
    if (!exhausted && needMore()) loadMore().catch(() => {});
  }

  function needMore() {
    const rowsLoaded = Math.ceil(images.length / cols);
    const lastVisibleRow = Math.ceil((scroller.scrollTop + scroller.clientHeight) / (cell + GAP));
    return lastVisibleRow + 3 >= rowsLoaded;
  }

  function layout() {
    const width = scroller.clientWidth - 6; // room for the hover outline on the right
    cols = Math.max(2, Math.floor((width + GAP) / (MIN_CELL + GAP)));
    cell = Math.floor((width - GAP * (cols - 1)) / cols);
  }

  function makeCell(image) {
    const star = iconButton(icon("star", 14), image.starred ? "Unstar" : "Star", (e) => {
      e.stopPropagation();
      guard(() => setStarred(image.id, !image.starred));
    }, { class: `icon-btn cell-star${image.starred ? " on" : ""}`, "data-testid": "gallery-star" });
    const del = iconButton(icon("trash", 14), "Delete image", (e) => {
      e.stopPropagation();
      guard(() => deleteImage(image.id));
    }, { class: "icon-btn cell-delete danger", "data-testid": "gallery-delete" });
    const el = h(
      "div",
      {
        class: "grid-cell",
        "data-testid": "gallery-image",
        dataset: { imageId: image.id },
        draggable: "true",
        title: image.prompt || image.file_name,
        tabindex: "-1",
        onclick: () => open(image.id),
      },
      h("img", { src: image.thumbnail_url ? api.url(image.thumbnail_url) : api.images.thumbnailUrl(image.id), alt: image.prompt || "image", loading: "lazy", draggable: "false" }),
      star,
      del,
    );
    el.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("application/x-image-id", image.id);
      e.dataTransfer.setData("text/plain", image.id);
      e.dataTransfer.effectAllowed = "copyMove";
    });
    return el;
  }

  function renderGrid() {
    layout();
    const rows = Math.ceil(images.length / cols);
    sizer.style.height = `${Math.max(0, rows * (cell + GAP) - GAP)}px`;
    const first = Math.max(0, Math.floor(scroller.scrollTop / (cell + GAP)) - 2);
    const last = Math.min(rows - 1, Math.ceil((scroller.scrollTop + scroller.clientHeight) / (cell + GAP)) + 2);
    const wanted = new Set();
    for (let r = first; r <= last; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const image = images[i];
        if (!image) break;
        wanted.add(image.id);
        let el = cells.get(image.id);
        // a cell is rebuilt only when its image record changed (records are replaced on change)
        if (!el || /** @type {any} */ (el)._image !== image) {
          const fresh = makeCell(image);
          /** @type {any} */ (fresh)._image = image;
          if (el) el.replaceWith(fresh);
          else sizer.appendChild(fresh);
          el = fresh;
          cells.set(image.id, el);
        }
        Object.assign(el.style, { width: `${cell}px`, height: `${cell}px`, transform: `translate(${c * (cell + GAP)}px, ${r * (cell + GAP)}px)` });
      }
    }
    for (const [id, el] of cells) {
      if (!wanted.has(id)) {
        el.remove();
        cells.delete(id);
      }
    }
    status.textContent = loading ? "Loading…" : images.length ? `${images.length}${exhausted ? "" : "+"} image${images.length === 1 ? "" : "s"}` : exhausted ? "No images here yet" : "";
  }

  scroller.addEventListener("scroll", () => {
    renderGrid();
    if (!exhausted && !loading && needMore()) guard(loadMore);
  });
  new ResizeObserver(() => renderGrid()).observe(scroller);

  async function setStarred(id, starred) {
    await api.images.patch(id, { starred });
    images = images.map((i) => (i.id === id ? { ...i, starred } : i));
    if (filters.starred && !starred) images = images.filter((i) => i.id !== id);
    renderGrid();
    return images.find((i) => i.id === id);
  }

  async function deleteImage(id) {
    await api.images.remove(id);
    images = images.filter((i) => i.id !== id);
    renderGrid();
    toasts.info("Image deleted");
    onCountsChanged();
  }

  function open(id) {
    const at = () => images.findIndex((i) => i.id === id);
    const image = images[at()];
    if (!image) return;
    onOpen(image, {
      prev: () => images[at() - 1] || null,
      next: () => images[at() + 1] || null,
    });
  }

  // ---- live updates --------------------------------------------------------------------------------------
  function matches(image) {
    const selected = selection();
    if (HIDDEN_CATEGORIES.has(image.category)) return false;
    if (selected === NONE && image.board_id) return false;
    if (selected !== ALL && selected !== NONE && image.board_id !== selected) return false;
    if (filters.starred && !image.starred) return false;
    if (filters.model_name && image.model_name !== filters.model_name) return false;
    if (filters.search || filters.created_from || filters.created_to) return false; // re-query instead
    return true;
  }

  /** A new image (Socket.IO): shown at the top when it belongs to what the grid shows. */
  function add(image) {
    if (matches(image) && !images.some((i) => i.id === image.id)) {
      images = [image, ...images];
      renderGrid();
    }
  }
  renderModelFilter();

  return {
    /** the filters, the grid and its status line, in page order */
    elements: [
      h(
        "div",
        { class: "gallery-filters" },
        // two lines (search and starred; model and the dates toggle): the grid keeps the height
        h("div", { class: "filter-row" }, h("div", { class: "search-wrap" }, icon("search", 14), search), starredBtn),
        h("div", { class: "filter-row" }, modelFilter, datesBtn),
        datesRow,
      ),
      scroller,
      status,
    ],
    reload,
    add,
    setStarred,
    deleteImage,
    moveImages,
    open,
    /** @param {any[]} list the installed models: main and inpaint ones' names fill the model filter */
    setModels(list) {
      modelNames = [...new Set((list || []).filter(generates).map((m) => m.name))];
      renderModelFilter();
    },
    /** Apply a changed image record (viewer edits). */
    patchLocal(image) {
      images = images.map((i) => (i.id === image.id ? { ...i, ...image } : i));
      renderGrid();
    },
  };
}
