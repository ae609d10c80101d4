export type * from "./types.js";
export { compareIds } from "./ids.js";
