import { compareIds } from "@recsys/data";

/**
 * Keeps the best `k` (score, id) pairs seen so far: a binary min-heap whose root is the worst
 * kept pair (lowest score, then largest id under `compareIds`), so the final order is
 * deterministic even with tied scores.
 */
export class TopK {
  private readonly scores: Float64Array;
  private readonly ids: string[] = [];
  private n = 0;

  constructor(private readonly k: number) {
    this.scores = new Float64Array(k);
  }

  /** The score a new pair must beat (or tie with a smaller id) to enter; -Infinity until full. */
  threshold(): number {
    return this.n < this.k ? -Infinity : this.scores[0]!;
  }

  push(score: number, id: string): void {
    if (this.n < this.k) {
      let i = this.n++;
      this.scores[i] = score;
      this.ids[i] = id;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.worse(i, parent)) break;
        this.swap(i, parent);
        i = parent;
      }
      return;
    }
    const rootScore = this.scores[0]!;
    if (score < rootScore || (score === rootScore && compareIds(id, this.ids[0]!) >= 0)) return;
    this.scores[0] = score;
    this.ids[0] = id;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < this.n && this.worse(l, w)) w = l;
      if (r < this.n && this.worse(r, w)) w = r;
      if (w === i) break;
      this.swap(i, w);
      i = w;
    }
  }

  /** The kept pairs, best first. */
  sorted(): { id: string; score: number }[] {
    const out: { id: string; score: number }[] = [];
    for (let i = 0; i < this.n; i++) out.push({ id: this.ids[i]!, score: this.scores[i]! });
    out.sort((a, b) => (a.score !== b.score ? b.score - a.score : compareIds(a.id, b.id)));
    return out;
  }

  private worse(a: number, b: number): boolean {
    const sa = this.scores[a]!;
    const sb = this.scores[b]!;
    return sa < sb || (sa === sb && compareIds(this.ids[a]!, this.ids[b]!) > 0);
  }

  private swap(a: number, b: number): void {
    const s = this.scores[a]!;
    this.scores[a] = this.scores[b]!;
    this.scores[b] = s;
    const id = this.ids[a]!;
    this.ids[a] = this.ids[b]!;
    this.ids[b] = id;
  }
}
