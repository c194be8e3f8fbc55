// The Gallery: a board tree (create, rename, nest or reorder by drag, delete with a choice about images, covers)
// and a virtualised image grid for the selected board with infinite scroll over the cursor API;
// star, move to a board by dragging onto it, delete; search and filters (starred, model, dates);
// files dropped on the gallery are uploaded into the selected board.
import { choose, debounce, h, iconButton, prompt } from "./dom.js";
import { droppedImageFiles } from "./drops.js";
import { icon } from "./icons.js";

const ALL = "__all__";
const NONE = "none";
const PAGE = 100;
const GAP = 4;
const MIN_CELL = 84;
/** Canvas assets (layer pixels, masks, control layer images) are stored as images too; the gallery leaves them
 * out. An image a user uploads to the gallery is "general", whatever they use it for. */
export const HIDDEN_CATEGORIES = new Set(["layer", "mask", "control"]);

/**
 * Where a board dropped on a board row goes, from the pointer's height in the row: the upper quarter
 * places it before the row, the lower quarter after it, the middle nests it into the row (as before).
 * A row showing its children has no "after" (that spot reads as "first child"): its lower part nests.
 * @param {number} y pointer offset from the row's top @param {number} height the row's height
 * @param {{after?: boolean}} [o] @returns {"before" | "into" | "after"}
 */
export function boardDropZone(y, height, { after = true } = {}) {
  const edge = Math.max(4, height / 4);
  if (y < edge) return "before";
  if (after && y > height - edge) return "after";
  return "into";
}

/**
 * What dropping board `draggedId` before/after board `targetId` does, read from the board tree
 * (`[{board: {id, parent_id}, children}]`, siblings in order): among the target's siblings,
 * `{op: "reorder", parent_id, ordered_ids}` (POST /boards/reorder: every sibling once); from another parent,
 * `{op: "move", parent_id, position}` (PATCH /boards/<id>: nest under the target's parent at that index).
 * null when nothing would change or the move is impossible (onto itself, or into its own sub-boards).
 * @param {any[]} tree @param {string} draggedId @param {string} targetId @param {"before" | "after"} where
 * @returns {{op: "reorder", parent_id: string | null, ordered_ids: string[]} | {op: "move", parent_id: string | null, position: number} | null}
 */
export function planBoardDrop(tree, draggedId, targetId, where) {
  if (draggedId === targetId) return null;
  /** @type {Map<string, {node: any, parent: string | null, siblings: any[]}>} */
  const at = new Map();
  const walk = (nodes, parent) => nodes.forEach((n) => (at.set(n.board.id, { node: n, parent, siblings: nodes }), walk(n.children, n.board.id)));
  walk(tree, null);
  const dragged = at.get(draggedId), target = at.get(targetId);
  if (!dragged || !target) return null;
  for (let p = target.parent; p; p = at.get(p)?.parent ?? null) if (p === draggedId) return null; // into its own subtree
  const others = target.siblings.map((n) => n.board.id).filter((id) => id !== draggedId);
  const index = others.indexOf(targetId) + (where === "after" ? 1 : 0);
  if (dragged.parent === target.parent) {
    const ordered = [...others.slice(0, index), draggedId, ...others.slice(index)];
    const now = target.siblings.map((n) => n.board.id);
    if (ordered.every((id, i) => id === now[i])) return null;
    return { op: "reorder", parent_id: target.parent, ordered_ids: ordered };
  }
  return { op: "move", parent_id: target.parent, position: index };
}

/**
 * The selected board is canvas state (saved in the canvas document's `ui` by app.js, restored with
 * `restoreSelection`); `onSelect` tells the app a person picked another board.
 * @param {{el: HTMLElement, api: any, toasts: any, guard: (fn: () => any) => any,
 *   onOpen: (image: any, neighbours: {prev: () => any, next: () => any}) => void,
 *   onSelect?: (selection: string) => void}} o
 */
export function createGallery({ el, api, toasts, guard, onOpen, onSelect = () => {} }) {
  /** @type {any[]} */
  let tree = [];
  /** @type {Map<string, any>} */
  const boards = new Map();
  let selected = ALL;
  const expanded = new Set(JSON.parse(localStorage.getItem("invokeCanvas.expanded") || "[]"));
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

  // ---- boards ----------------------------------------------------------------------------------------
  const boardTree = h("ul", { class: "board-tree", "data-testid": "board-tree", role: "tree", "aria-label": "Boards" });
  const boardHeader = h(
    "div",
    { class: "board-header" },
    h("span", { class: "sub-title" }, "Boards"),
    h("span", { class: "spacer" }),
    iconButton(icon("plus", 16), "New board", () => guard(() => createBoard(null)), { "data-testid": "board-add" }),
  );

  async function createBoard(parentId) {
    const name = await prompt({ title: parentId ? "New sub-board" : "New board", value: "New board", okLabel: "Create", testid: "board-name-dialog" });
    if (!name) return;
    const board = await api.boards.create(name, parentId);
    if (parentId) expanded.add(parentId);
    saveExpanded();
    await loadTree();
    select(board.id);
  }

  async function renameBoard(board) {
    const name = await prompt({ title: "Rename board", value: board.name, okLabel: "Rename", testid: "board-name-dialog" });
    if (!name || name === board.name) return;
    await api.boards.patch(board.id, { name });
    await loadTree();
  }

  async function deleteBoard(board) {
    const count = countSubtree(board.id);
    const choice = await choose({
      title: `Delete board "${board.name}"?`,
      message: `Its sub-boards go with it. ${count} image${count === 1 ? "" : "s"} in them: keep them (they move to Uncategorised) or delete them too?`,
      buttons: [
        { label: "Cancel", value: null, testid: "board-delete-cancel" },
        { label: "Keep images", value: "keep", primary: true, testid: "board-delete-keep" },
        { label: "Delete images too", value: "delete", danger: true, testid: "board-delete-images" },
      ],
      testid: "board-delete-dialog",
    });
    if (!choice) return;
    const out = await api.boards.remove(board.id, choice === "delete");
    toasts.success(
      choice === "delete"
        ? `Deleted ${out.board_ids.length} board(s) and ${out.images_deleted} image(s)`
        : `Deleted ${out.board_ids.length} board(s); ${out.images_uncategorised} image(s) moved to Uncategorised`,
    );
    if (out.board_ids.includes(selected)) select(ALL);
    await loadTree();
    reload();
  }

  /** A row's count: its own images, and with its sub-boards' when they hold more ("0 · 3"). */
  function boardCount(own, total) {
    const plural = (n) => `${n} image${n === 1 ? "" : "s"}`;
    const title = total === own ? plural(own) : `${plural(own)} on this board, ${plural(total)} with its sub-boards`;
    return h("span", { class: "board-count", "data-testid": "board-count", title }, total === own ? String(own) : `${own} · ${total}`);
  }

  function countSubtree(id) {
    const node = findNode(tree, id);
    if (!node) return 0;
    const walk = (n) => n.board.image_count + n.children.reduce((s, c) => s + walk(c), 0);
    return walk(node);
  }

  function findNode(nodes, id) {
    for (const n of nodes) {
      if (n.board.id === id) return n;
      const f = findNode(n.children, id);
      if (f) return f;
    }
    return null;
  }

  function saveExpanded() {
    localStorage.setItem("invokeCanvas.expanded", JSON.stringify([...expanded]));
  }

  /** The board being dragged in this page (dataTransfer cannot be read during dragover). @type {string | null} */
  let draggingBoard = null;
  const DROP_CLASSES = ["drop-into", "drop-before", "drop-after"];

  /** Where a dragged board would go on this row: before/after (reorder among the row's siblings) or into it. */
  function boardZone(rowEl, e, boardId) {
    if (!boardId) return "into"; // "All images": back to the top level
    const r = rowEl.getBoundingClientRect();
    const node = findNode(tree, boardId);
    const zone = boardDropZone(e.clientY - r.top, r.height, { after: !(node?.children.length && expanded.has(boardId)) });
    if (zone === "into" || !draggingBoard) return zone;
    return planBoardDrop(tree, draggingBoard, boardId, zone) ? zone : null; // no line where nothing would change
  }

  /** Accept drops of images (move) and boards (nest, or reorder on a row's upper/lower part) on a row. */
  function dropTarget(rowEl, { boardId, special }) {
    rowEl.addEventListener("dragover", (e) => {
      const types = e.dataTransfer.types;
      const image = types.includes("application/x-image-id") && special !== ALL;
      const board = types.includes("application/x-board-id") && special !== NONE;
      if (!image && !board) return;
      const zone = image ? "into" : boardZone(rowEl, e, boardId);
      rowEl.classList.remove(...DROP_CLASSES);
      if (!zone) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
      rowEl.classList.add(`drop-${zone}`);
    });
    rowEl.addEventListener("dragleave", () => rowEl.classList.remove(...DROP_CLASSES));
    rowEl.addEventListener("drop", (e) => {
      rowEl.classList.remove(...DROP_CLASSES);
      const imageIds = e.dataTransfer.getData("application/x-image-id");
      const boardDragged = e.dataTransfer.getData("application/x-board-id");
      if (!imageIds && !boardDragged) return;
      e.preventDefault();
      e.stopPropagation();
      if (imageIds) {
        if (special === ALL) return;
        const target = special === NONE ? null : boardId;
        guard(() => moveImages(imageIds.split(","), target));
      } else if (boardDragged && boardDragged !== boardId) {
        const zone = boardZone(rowEl, e, boardId);
        if (zone === "before" || zone === "after") {
          const plan = planBoardDrop(tree, boardDragged, boardId, zone);
          if (plan) guard(() => placeBoard(boardDragged, plan));
          return;
        }
        guard(async () => {
          await api.boards.patch(boardDragged, { parent_id: special === ALL ? null : boardId });
          if (boardId) expanded.add(boardId);
          saveExpanded();
          await loadTree();
        });
      }
    });
  }

  /** Put a board before/after a sibling row: the reorder endpoint among its siblings, else a move to that place. */
  async function placeBoard(boardId, plan) {
    if (plan.op === "reorder") {
      await api.boards.reorder(plan.parent_id, plan.ordered_ids);
    } else {
      await api.boards.patch(boardId, { parent_id: plan.parent_id, position: plan.position });
    }
    await loadTree();
  }

  async function moveImages(ids, boardId) {
    if (ids.length === 1) await api.images.patch(ids[0], { board_id: boardId });
    else await api.images.patchMany(ids, { board_id: boardId });
    const name = boardId ? boards.get(boardId)?.name || "board" : "Uncategorised";
    toasts.success(`Moved ${ids.length} image${ids.length === 1 ? "" : "s"} to ${name}`);
    if (selected !== ALL) {
      images = images.filter((i) => !ids.includes(i.id) || boardId === selected);
      renderGrid();
    } else {
      images = images.map((i) => (ids.includes(i.id) ? { ...i, board_id: boardId } : i));
    }
    loadTree();
  }

  function specialRow(id, label, iconName) {
    const li = h(
      "li",
      {
        class: `board-row special${selected === id ? " active" : ""}`,
        "data-testid": "board-row",
        dataset: { boardId: id === ALL ? "" : id, special: id },
        role: "treeitem",
        "aria-selected": String(selected === id),
        onclick: () => select(id),
      },
      h("span", { class: "board-indent", style: { width: "18px" } }),
      h("span", { class: "board-cover" }, icon(iconName, 16)),
      h("span", { class: "board-name" }, label),
    );
    dropTarget(li, { boardId: null, special: id });
    return li;
  }

  function boardRow(node, depth) {
    const b = node.board;
    const hasChildren = node.children.length > 0;
    const open = expanded.has(b.id);
    const cover = b.cover_image_id
      ? h("img", { src: api.images.thumbnailUrl(b.cover_image_id), alt: "", loading: "lazy" })
      : icon("folder", 16);
    const li = h(
      "li",
      {
        class: `board-row${selected === b.id ? " active" : ""}${b.archived ? " archived" : ""}`,
        "data-testid": "board-row",
        dataset: { boardId: b.id },
        draggable: "true",
        role: "treeitem",
        "aria-selected": String(selected === b.id),
        "aria-expanded": hasChildren ? String(open) : null,
        onclick: () => select(b.id),
      },
      h("span", { class: "board-indent", style: { width: `${depth * 14}px` } }),
      hasChildren
        ? h(
            "button",
            {
              class: "twisty",
              "aria-label": open ? "Collapse" : "Expand",
              onclick: (e) => {
                e.stopPropagation();
                if (open) expanded.delete(b.id);
                else expanded.add(b.id);
                saveExpanded();
                renderTree();
              },
            },
            open ? "▾" : "▸",
          )
        : h("span", { class: "twisty" }),
      h("span", { class: "board-cover" }, cover),
      h("span", { class: "board-name", title: b.name }, b.name),
      boardCount(b.image_count, countSubtree(b.id)),
      h(
        "span",
        { class: "board-actions" },
        iconButton(icon("plus", 14), "New sub-board", (e) => (e.stopPropagation(), guard(() => createBoard(b.id))), { "data-testid": "board-add-child" }),
        iconButton("✎", "Rename", (e) => (e.stopPropagation(), guard(() => renameBoard(b))), { "data-testid": "board-rename" }),
        iconButton(icon("trash", 14), "Delete board", (e) => (e.stopPropagation(), guard(() => deleteBoard(b))), { "data-testid": "board-delete", class: "icon-btn danger" }),
      ),
    );
    li.style.setProperty("--drop-indent", `${depth * 14 + 4}px`); // the insertion line starts at the row's level
    li.querySelector(".board-name").addEventListener("dblclick", (e) => (e.stopPropagation(), guard(() => renameBoard(b))));
    li.addEventListener("dragstart", (e) => {
      if (e.target !== li) return;
      e.dataTransfer.setData("application/x-board-id", b.id);
      e.dataTransfer.effectAllowed = "move";
      draggingBoard = b.id;
    });
    li.addEventListener("dragend", () => (draggingBoard = null));
    dropTarget(li, { boardId: b.id, special: null });
    const rows = [li];
    if (open) for (const c of node.children) rows.push(...boardRow(c, depth + 1));
    return rows;
  }

  function renderTree() {
    const rows = [specialRow(ALL, "All images", "image"), specialRow(NONE, "Uncategorised", "folder")];
    for (const n of tree) rows.push(...boardRow(n, 0));
    boardTree.replaceChildren(...rows);
  }

  async function loadTree() {
    tree = await api.boards.tree();
    boards.clear();
    const walk = (nodes) => nodes.forEach((n) => (boards.set(n.board.id, n.board), walk(n.children)));
    walk(tree);
    if (selected !== ALL && selected !== NONE && !boards.has(selected)) select(ALL);
    renderTree();
    return tree;
  }

  function select(id, { quiet = false } = {}) {
    if (selected === id) return;
    selected = id;
    renderTree();
    reload();
    if (!quiet) onSelect(id);
  }

  /** Select what a saved canvas had selected ("__all__", "none" or a board id); a board that is gone: all images. */
  function restoreSelection(id) {
    select(id === ALL || id === NONE || boards.has(id) ? id : ALL, { quiet: true });
  }

  // ---- filters -----------------------------------------------------------------------------------------
  const search = h("input", { type: "search", placeholder: "Search prompts and models", "data-testid": "gallery-search", "aria-label": "Search images" });
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
  fromDate.addEventListener("change", () => ((filters.created_from = fromDate.value), reload()));
  toDate.addEventListener("change", () => ((filters.created_to = toDate.value), reload()));

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
    loadTree();
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
    if (HIDDEN_CATEGORIES.has(image.category)) return false;
    if (selected === NONE && image.board_id) return false;
    if (selected !== ALL && selected !== NONE && image.board_id !== selected) return false;
    if (filters.starred && !image.starred) return false;
    if (filters.model_name && image.model_name !== filters.model_name) return false;
    if (filters.search || filters.created_from || filters.created_to) return false; // re-query instead
    return true;
  }

  function onImageAdded(image) {
    if (matches(image) && !images.some((i) => i.id === image.id)) {
      images = [image, ...images];
      renderGrid();
    }
    if (image.board_id) debouncedTree();
  }
  const debouncedTree = debounce(() => loadTree().catch(() => {}), 300);
  const debouncedGrid = debounce(() => reload().catch(() => {}), 300);

  function onBoardChanged(ev) {
    debouncedTree();
    if (ev.change === "images" || ev.change === "deleted") debouncedGrid();
  }

  // ---- file drops: upload into the selected board ------------------------------------------------------------
  el.addEventListener("dragover", (e) => {
    if (e.dataTransfer.types.includes("Files")) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      el.classList.add("drop-files");
    }
  });
  el.addEventListener("dragleave", (e) => {
    if (!el.contains(/** @type {Node} */ (e.relatedTarget))) el.classList.remove("drop-files");
  });
  el.addEventListener("drop", (e) => {
    el.classList.remove("drop-files");
    const files = droppedImageFiles(e, toasts);
    if (!files.length) return;
    e.preventDefault();
    guard(() => uploadFiles(files));
  });

  async function uploadFiles(files) {
    const board_id = selected !== ALL && selected !== NONE ? selected : null;
    let done = 0;
    for (const file of files) {
      await api.images.upload(file, { category: "general", board_id, filename: file.name });
      done += 1;
    }
    toasts.success(`Uploaded ${done} image${done === 1 ? "" : "s"}${board_id ? ` to ${boards.get(board_id)?.name}` : ""}`);
  }

  el.replaceChildren(
    h("div", { class: "boards-pane" }, boardHeader, boardTree),
    h(
      "div",
      { class: "gallery-filters" },
      h("div", { class: "search-wrap" }, icon("search", 14), search),
      h("div", { class: "filter-row" }, starredBtn, modelFilter),
      h("div", { class: "filter-row dates" }, fromDate, h("span", { class: "muted" }, "–"), toDate),
    ),
    scroller,
    status,
  );

  renderTree();
  renderModelFilter();

  return {
    loadTree,
    reload,
    select,
    restoreSelection,
    /** the raw selection: "__all__", "none" or a board id (saved with the canvas) */
    get selection() {
      return selected;
    },
    get selectedBoard() {
      return selected === ALL || selected === NONE ? null : selected;
    },
    get boards() {
      return boards;
    },
    setModels(list) {
      modelNames = [...new Set((list || []).filter((m) => m.kind === "main" || m.kind === "inpaint").map((m) => m.name))];
      renderModelFilter();
    },
    onImageAdded,
    onBoardChanged,
    setStarred,
    deleteImage,
    moveImages,
    uploadFiles,
    open,
    /** Apply a changed image record (viewer edits). */
    patchLocal(image) {
      images = images.map((i) => (i.id === image.id ? { ...i, ...image } : i));
      renderGrid();
    },
  };
}
