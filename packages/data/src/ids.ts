const CANONICAL_INT = /^(0|[1-9][0-9]*)$/;

/**
 * Order of external ids "as written": numeric when both are canonical non-negative integers
 * (so ml-100k's "9" < "10"), otherwise by UTF-16 code units. Used for index assignment and for
 * the evaluation protocol's tie-breaks, so every package orders ids the same way.
 */
export function compareIds(a: string, b: string): number {
  if (CANONICAL_INT.test(a) && CANONICAL_INT.test(b)) {
    if (a.length !== b.length) return a.length - b.length;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}
