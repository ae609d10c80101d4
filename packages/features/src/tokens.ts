/**
 * Search-query tokens: lower-cased unigrams (runs of letters and digits) followed by the bigrams
 * of consecutive unigrams ("a b"), in query order.
 */
export function queryTokens(query: string): string[] {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const out = words.slice();
  for (let i = 0; i + 1 < words.length; i++) out.push(`${words[i]} ${words[i + 1]}`);
  return out;
}
