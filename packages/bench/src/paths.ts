import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest ancestor of this module with a package.json declaring workspaces. */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(from);
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { workspaces?: unknown }).workspaces !== undefined) return dir;
      } catch {
        // not a readable package.json: keep looking upwards
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`bench: no repository root (package.json with workspaces) above ${from}`);
    dir = parent;
  }
}

/**
 * The MovieLens 100K directory: $RECSYS_ML100K_DIR, else ../shared/data/ml-100k next to the
 * repository root. Throws with both places named when neither has u.data.
 */
export function ml100kDir(): string {
  const env = process.env["RECSYS_ML100K_DIR"];
  const candidates = env !== undefined && env !== "" ? [resolve(env)] : [];
  candidates.push(resolve(repoRoot(), "..", "shared", "data", "ml-100k"));
  for (const c of candidates) if (existsSync(join(c, "u.data"))) return c;
  throw new Error(`bench: MovieLens 100K not found (looked for u.data in ${candidates.join(", ")}); set RECSYS_ML100K_DIR`);
}
