import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SearchHit } from "./vector-index.js";

/** A fresh temporary directory and a function removing it. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `recsys-ann-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** |got ∩ want| / |want| over the ids. */
export function overlap(got: readonly SearchHit[], want: readonly SearchHit[]): number {
  if (want.length === 0) return 1;
  const ids = new Set(want.map((h) => h.id));
  let found = 0;
  for (const h of got) if (ids.has(h.id)) found++;
  return found / want.length;
}

export function row(vectors: Float32Array, dim: number, i: number): Float32Array {
  return vectors.subarray(i * dim, (i + 1) * dim);
}
