import { growInt32 } from "./growable.js";
import { compareSources, type MergedCandidate, type Provenance, type SourceResult } from "./types.js";

export interface MergeOptions {
  /** Maximum number of merged candidates (non-negative integer). */
  readonly size: number;
  /** The user's history: never returned. */
  readonly watched: ReadonlySet<number>;
  /** Other items never returned. */
  readonly exclude?: ReadonlySet<number>;
  /**
   * Items a source contributes per round (positive integer; default 1 for every source): a
   * weighted round-robin, e.g. { "co-watch": 2 } gives co-watch two slots for each one of the others.
   */
  readonly weights?: Readonly<Partial<Record<string, number>>>;
}

/** Item -> position in the merged list being built; -1 everywhere between calls. */
let scratch = new Int32Array(0);

/**
 * Merges source lists into one deduplicated candidate list that keeps, for every item, where each
 * source ranked it.
 *
 * Policy:
 * - Watched and excluded items are dropped from every list first.
 * - Selection is a round-robin over the sources in `SOURCE_ORDER` (`compareSources`): each round,
 *   every source in turn contributes its best-ranked items not selected yet (one, or its
 *   `weights` entry), until `size` items are selected or every list is exhausted. So each source
 *   gets about size * weight / (sum of weights) slots when it has enough items, a source with a
 *   short list leaves its slots to the others, and an item nominated by several sources takes
 *   one slot only (the slot of the first source to reach it).
 * - The result is in selection order (round by round, sources in `SOURCE_ORDER` within a
 *   round), which is deterministic given the inputs.
 * - Each selected item carries the provenance of every source that listed it (also beyond the
 *   point where the round-robin stopped reading that source), sorted by `compareSources`; rank is
 *   the position in that source's list as given (before dropping watched items). If a source lists
 *   an item twice, its first (best) position counts.
 *
 * Two results with the same source name are an error.
 */
export function mergeCandidates(results: readonly SourceResult[], options: MergeOptions): MergedCandidate[] {
  const { size, watched, exclude } = options;
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`merge size must be a non-negative integer, got ${size}`);
  const ordered = [...results].sort((a, b) => compareSources(a.source, b.source));
  const quota = ordered.map((r) => {
    const w = options.weights?.[r.source] ?? 1;
    if (!Number.isInteger(w) || w < 1) throw new RangeError(`merge weight of source "${r.source}" must be a positive integer, got ${w}`);
    return w;
  });
  for (let s = 1; s < ordered.length; s++) {
    if (ordered[s]!.source === ordered[s - 1]!.source) {
      throw new Error(`mergeCandidates: source "${ordered[s]!.source}" appears twice in the results`);
    }
  }
  // 1. Round-robin selection. `slot` (item -> index in merged, -1 when not selected) is a shared
  // scratch array, restored to -1 before returning.
  const merged: { item: number; provenance: Provenance[] }[] = [];
  let slot = scratch;
  const cursor = new Array<number>(ordered.length).fill(0);
  const done = new Array<boolean>(ordered.length).fill(false);
  let active = ordered.length;
  try {
    while (merged.length < size && active > 0) {
      for (let s = 0; s < ordered.length && merged.length < size; s++) {
        const candidates = ordered[s]!.candidates;
        for (let turn = 0; turn < quota[s]! && !done[s] && merged.length < size; turn++) {
          let k = cursor[s]!;
          while (k < candidates.length) {
            const item = candidates[k]!.item;
            if (!(item < slot.length && slot[item]! >= 0) && !watched.has(item) && exclude?.has(item) !== true) break;
            k++;
          }
          cursor[s] = k;
          if (k === candidates.length) {
            done[s] = true;
            active--;
            break;
          }
          const item = candidates[k]!.item;
          if (!Number.isInteger(item) || item < 0)
            throw new RangeError(`source "${ordered[s]!.source}" nominated a bad item index ${item}`);
          if (item >= slot.length) slot = scratch = growInt32(slot, item + 1, -1);
          cursor[s] = k + 1;
          slot[item] = merged.length;
          merged.push({ item, provenance: [] });
        }
      }
    }
    // 2. Provenance of the selected items from every source's full list, sources in order.
    for (const result of ordered) {
      const candidates = result.candidates;
      for (let rank = 0; rank < candidates.length; rank++) {
        const c = candidates[rank]!;
        const at = c.item < slot.length ? slot[c.item]! : -1;
        if (at < 0) continue;
        const list = merged[at]!.provenance;
        if (list.length > 0 && list[list.length - 1]!.source === result.source) continue; // duplicate in one source: keep the best rank
        list.push(
          c.because === undefined
            ? { source: result.source, rank, score: c.score }
            : { source: result.source, rank, score: c.score, because: c.because },
        );
      }
    }
  } finally {
    for (const m of merged) slot[m.item] = -1;
  }
  return merged;
}
