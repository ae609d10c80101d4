import type { Candidate } from "./types.js";

/**
 * Keeps the `k` best (item, score) pairs pushed into it: higher score first, ties by item index
 * ascending (the protocol's tie-break). A bounded min-heap: O(log k) per push.
 */
export class TopK {
  private readonly items: Int32Array;
  private readonly scores: Float64Array;
  private size = 0;

  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`top-k size must be a non-negative integer, got ${k}`);
    this.items = new Int32Array(k);
    this.scores = new Float64Array(k);
  }

  get length(): number {
    return this.size;
  }

  /** The score an item must beat to enter (`-Infinity` while not full). */
  get threshold(): number {
    return this.size < this.k ? -Infinity : this.scores[0]!;
  }

  push(item: number, score: number): void {
    if (this.k === 0 || Number.isNaN(score)) return;
    if (this.size < this.k) {
      let i = this.size++;
      // Sift up: the root is the worst kept pair.
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(item, score, this.items[parent]!, this.scores[parent]!)) break;
        this.items[i] = this.items[parent]!;
        this.scores[i] = this.scores[parent]!;
        i = parent;
      }
      this.items[i] = item;
      this.scores[i] = score;
      return;
    }
    if (!worse(this.items[0]!, this.scores[0]!, item, score)) return;
    // Replace the root and sift down.
    let i = 0;
    const n = this.size;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && worse(this.items[right]!, this.scores[right]!, this.items[left]!, this.scores[left]!)) child = right;
      if (!worse(this.items[child]!, this.scores[child]!, item, score)) break;
      this.items[i] = this.items[child]!;
      this.scores[i] = this.scores[child]!;
      i = child;
    }
    this.items[i] = item;
    this.scores[i] = score;
  }

  /** The kept pairs, best first. Empties the heap (pops the worst repeatedly, filling from the end). */
  sorted(): Candidate[] {
    const n = this.size;
    const out = new Array<Candidate>(n);
    const items = this.items;
    const scores = this.scores;
    for (let end = n - 1; end >= 0; end--) {
      out[end] = { item: items[0]!, score: scores[0]! };
      // Move the last element to the root and sift it down within [0, end).
      const item = items[end]!;
      const score = scores[end]!;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= end) break;
        const right = left + 1;
        let child = left;
        if (right < end && worse(items[right]!, scores[right]!, items[left]!, scores[left]!)) child = right;
        if (!worse(items[child]!, scores[child]!, item, score)) break;
        items[i] = items[child]!;
        scores[i] = scores[child]!;
        i = child;
      }
      items[i] = item;
      scores[i] = score;
    }
    this.size = 0;
    return out;
  }
}

/** True when (itemA, scoreA) ranks below (itemB, scoreB). */
function worse(itemA: number, scoreA: number, itemB: number, scoreB: number): boolean {
  return scoreA < scoreB || (scoreA === scoreB && itemA > itemB);
}

/** Best first: score descending, then item index ascending. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.score > b.score) return -1;
  if (a.score < b.score) return 1;
  return a.item - b.item;
}
