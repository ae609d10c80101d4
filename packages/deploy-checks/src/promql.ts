/**
 * Metric names used by a PromQL expression, with a small tokenizer (no full parser): string
 * literals, label matchers `{...}`, grouping clauses `by (...)`, `without (...)`, `on (...)`,
 * `ignoring (...)`, `group_left (...)`, `group_right (...)`, range and subquery brackets `[...]`
 * and numbers/durations are removed; what remains as an identifier not followed by `(` (a
 * function or aggregation) and not a keyword is a metric name.
 */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "inf",
  "nan",
  "atan2",
]);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;

export function metricNames(expr: string): Set<string> {
  let text = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  text = text.replace(/\{[^}]*\}/g, " ");
  text = text.replace(GROUPING, " ");
  text = text.replace(/\[[^\]]*\]/g, " ");
  text = text.replace(/\boffset\s+-?\d+[a-z]+/g, " ");
  const names = new Set<string>();
  const token = /[a-zA-Z_:][a-zA-Z0-9_:]*|\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*/gi;
  for (let match = token.exec(text); match !== null; match = token.exec(text)) {
    const word = match[0];
    if (/^\d/.test(word)) continue;
    const rest = text.slice(match.index + word.length);
    if (/^\s*\(/.test(rest)) continue; // a function or an aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return names;
}

/** Prometheus' own series, always present in a server scraping targets. */
export const PROMETHEUS_SERIES = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"]);

/**
 * Metric names declared in a Prometheus text exposition (`# TYPE name kind`), with the series
 * names a histogram or summary produces (_bucket, _sum, _count).
 */
export function exposedMetricNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const match = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (match === null) continue;
    const [, name, kind] = match;
    names.add(name!);
    if (kind === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name! + suffix);
    if (kind === "summary") for (const suffix of ["_sum", "_count"]) names.add(name! + suffix);
  }
  return names;
}
