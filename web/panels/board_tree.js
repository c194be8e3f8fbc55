// The board tree of the Gallery: "All images", "Uncategorised" and the boards (nested, in order) with
// their image counts and covers; expand/collapse (kept per browser in localStorage); create, rename,
// delete (with a choice about images); drag a board to nest or reorder it; drop images on a row to
// move them there. It owns the selection ("__all__", "none" or a board id); the image grid shows it.
import { choose, h, iconButton, prompt } from "./dom.js";
import { icon } from "./icons.js";

export const ALL = "__all__";
export const NONE = "none";

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
 * @param {{api: any, toasts: any, guard: (fn: () => any) => any,
 *   reloadImages: () => any, moveImages: (ids: string[], boardId: string | null) => Promise<any>,
 *   onSelect?: (selection: string) => void}} o
 *   reloadImages: the selection changed or boards were deleted (re-query the grid); moveImages: images
 *   dropped on a row (null: Uncategorised); onSelect: a person picked another board
 */
export function createBoardTree({ api, toasts, guard, reloadImages, moveImages, onSelect = () => {} }) {
  /** @type {any[]} */
  let tree = [];
  /** @type {Map<string, any>} */
  const boards = new Map();
  let selected = ALL;
  const expanded = new Set(JSON.parse(localStorage.getItem("invokeCanvas.expanded") || "[]"));

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
    reloadImages();
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
    reloadImages();
    if (!quiet) onSelect(id);
  }

  /** Select what a saved canvas had selected ("__all__", "none" or a board id); a board that is gone: all images. */
  function restoreSelection(id) {
    select(id === ALL || id === NONE || boards.has(id) ? id : ALL, { quiet: true });
  }

  renderTree();

  return {
    el: h("div", { class: "boards-pane" }, boardHeader, boardTree),
    loadTree,
    select,
    restoreSelection,
    /** the raw selection: "__all__", "none" or a board id */
    get selection() {
      return selected;
    },
    /** the selected board's id; null for "All images" and "Uncategorised" */
    get selectedBoard() {
      return selected === ALL || selected === NONE ? null : selected;
    },
    /** board id -> board record, from the last loadTree */
    get boards() {
      return boards;
    },
  };
}
