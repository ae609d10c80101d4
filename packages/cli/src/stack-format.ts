/**
 * Readable text for the stack's answers: a recommendation table (rank, item, title, score,
 * expected watch time, sources with their ranks, reasons), the versions of every stage, the
 * degraded flag with the failed stages, and per-stage timings when debug was asked.
 */
import type { RecommendResponse } from "@recsys/gen";

/** Left-aligned columns except those listed as numeric (right-aligned). */
export function formatColumns(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: ReadonlySet<number> = new Set(),
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : numeric.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export interface FormatRecommendOptions {
  /** Item id → title, when the catalogue is known. */
  readonly titles?: ReadonlyMap<string, string>;
  /** Client-side latency of the call, ms. */
  readonly elapsedMs?: number;
  /** Longest title shown (default 40). */
  readonly titleWidth?: number;
}

/** The recommendation table and its footer (versions, degraded, timings). */
export function formatRecommendations(userId: string, response: RecommendResponse, options: FormatRecommendOptions = {}): string {
  const titles = options.titles;
  const titleWidth = options.titleWidth ?? 40;
  const header = ["rank", "item", ...(titles === undefined ? [] : ["title"]), "score", "watch s", "sources", "reasons"];
  const rows = response.items.map((item, i) => [
    String(i + 1),
    item.itemId,
    ...(titles === undefined ? [] : [truncate(titles.get(item.itemId) ?? "", titleWidth)]),
    item.score.toFixed(3),
    item.expectedWatchSeconds.toFixed(1),
    item.provenance.map((p) => `${p.sourceName}#${p.rank}`).join(" "),
    item.reasons.join("; "),
  ]);
  const scoreColumn = titles === undefined ? 2 : 3;
  const numeric = new Set([0, scoreColumn, scoreColumn + 1]);
  const took = options.elapsedMs === undefined ? "" : `, ${options.elapsedMs.toFixed(0)} ms`;
  let out = `recommendations for user ${userId} (${response.items.length} items${took}${response.requestId === "" ? "" : `, request ${response.requestId}`})\n`;
  out += response.items.length === 0 ? "(no items)\n" : formatColumns(header, rows, numeric);
  out += `versions: ${response.versions.map((v) => `${v.component} ${v.modelVersion}${v.indexVersion === "" ? "" : ` (index ${v.indexVersion})`}`).join("; ")}\n`;
  if (response.degraded) {
    // grpc-js appends connection diagnostics to deadline messages: the first clause is the news.
    const brief = (code: string, message: string): string =>
      truncate(code === "DEADLINE_EXCEEDED" ? (message.split(",")[0] ?? message) : message, 160);
    out += `degraded: YES — ${response.failedStages.map((f) => `${f.stage}: ${f.code} ${brief(f.code, f.message)}`).join("; ")}\n`;
  } else {
    out += "degraded: no\n";
  }
  if (response.stageTimings.length > 0) {
    out += `timings: ${response.stageTimings.map((t) => `${t.stage} ${t.elapsedMs.toFixed(1)} ms${t.itemCount > 0 ? ` (${t.itemCount})` : ""}`).join(", ")}\n`;
  }
  return out;
}

/** A response as plain JSON (enum and map fields readable; bigint timestamps as strings). */
export function recommendationsJson(userId: string, response: RecommendResponse, elapsedMs?: number): unknown {
  return {
    user_id: userId,
    request_id: response.requestId,
    ...(elapsedMs === undefined ? {} : { elapsed_ms: Number(elapsedMs.toFixed(2)) }),
    items: response.items.map((item, i) => ({
      rank: i + 1,
      item_id: item.itemId,
      score: item.score,
      expected_watch_seconds: item.expectedWatchSeconds,
      provenance: item.provenance.map((p) => ({ source: p.sourceName, rank: p.rank, score: p.score })),
      reasons: item.reasons,
      ...(Object.keys(item.features).length === 0 ? {} : { features: item.features }),
    })),
    versions: response.versions.map((v) => ({ component: v.component, model_version: v.modelVersion, index_version: v.indexVersion })),
    degraded: response.degraded,
    failed_stages: response.failedStages.map((f) => ({ stage: f.stage, code: f.code, message: f.message })),
    ...(response.stageTimings.length === 0
      ? {}
      : { stage_timings: response.stageTimings.map((t) => ({ stage: t.stage, elapsed_ms: t.elapsedMs, item_count: t.itemCount })) }),
  };
}
