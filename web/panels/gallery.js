// The Gallery: the board tree (board_tree.js) beside the image grid of its selected board (image_grid.js);
// files dropped on the gallery are uploaded into the selected board. This module wires the two and
// keeps the one API app.js uses.
import { debounce } from "./dom.js";
import { droppedImageFiles, installDropTarget } from "./drops.js";
import { createBoardTree } from "./board_tree.js";
import { createImageGrid } from "./image_grid.js";

export { boardDropZone, planBoardDrop } from "./board_tree.js";
export { HIDDEN_CATEGORIES } from "./image_grid.js";

/**
 * The selected board is canvas state (saved in the canvas document's `ui` by app.js, restored with
 * `restoreSelection`); `onSelect` tells the app a person picked another board.
 * @param {{el: HTMLElement, api: any, toasts: any, guard: (fn: () => any) => any,
 *   onOpen: (image: any, neighbours: {prev: () => any, next: () => any}) => void,
 *   onSelect?: (selection: string) => void}} o
 */
export function createGallery({ el, api, toasts, guard, onOpen, onSelect = () => {} }) {
  const grid = createImageGrid({
    api, toasts, guard, onOpen,
    selection: () => tree.selection,
    boardName: (id) => tree.boards.get(id)?.name,
    onCountsChanged: () => tree.loadTree(),
  });
  const tree = createBoardTree({
    api, toasts, guard, onSelect,
    reloadImages: () => grid.reload(),
    moveImages: (ids, boardId) => grid.moveImages(ids, boardId),
  });

  const debouncedTree = debounce(() => tree.loadTree().catch(() => {}), 300);
  const debouncedGrid = debounce(() => grid.reload().catch(() => {}), 300);

  // ---- file drops: upload into the selected board ------------------------------------------------------------
  installDropTarget(el, {
    types: ["Files"],
    className: "drop-files",
    onDrop: (e) => {
      const files = droppedImageFiles(e, toasts);
      if (!files.length) return;
      e.preventDefault();
      guard(() => uploadFiles(files));
    },
  });

  async function uploadFiles(files) {
    const board_id = tree.selectedBoard;
    let done = 0;
    for (const file of files) {
      await api.images.upload(file, { category: "general", board_id, filename: file.name });
      done += 1;
    }
    toasts.success(`Uploaded ${done} image${done === 1 ? "" : "s"}${board_id ? ` to ${tree.boards.get(board_id)?.name}` : ""}`);
  }

  el.replaceChildren(tree.el, ...grid.elements);

  return {
    loadTree: tree.loadTree,
    reload: grid.reload,
    select: tree.select,
    restoreSelection: tree.restoreSelection,
    /** the raw selection: "__all__", "none" or a board id (saved with the canvas) */
    get selection() {
      return tree.selection;
    },
    get selectedBoard() {
      return tree.selectedBoard;
    },
    get boards() {
      return tree.boards;
    },
    setModels: grid.setModels,
    onImageAdded(image) {
      grid.add(image);
      if (image.board_id) debouncedTree();
    },
    onBoardChanged(ev) {
      debouncedTree();
      if (ev.change === "images" || ev.change === "deleted") debouncedGrid();
    },
    setStarred: grid.setStarred,
    deleteImage: grid.deleteImage,
    moveImages: grid.moveImages,
    uploadFiles,
    open: grid.open,
    patchLocal: grid.patchLocal,
  };
}
