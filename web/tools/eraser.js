// Eraser: the brush engine removing alpha (coverage, on masks). Same stroke/undo behaviour.

import { createBrushTool } from "./brush.js";

export const createEraserTool = () => createBrushTool({ erase: true });
