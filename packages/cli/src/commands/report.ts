/**
 * `recsys report --input FILE[,FILE...] --out DIR`
 *
 * Writes DIR/report.html (one self-contained page: inline SVG, no script, no external resource)
 * and DIR/<figure>.svg from one or more `recsys evaluate --json` results (e.g. one per seed);
 * see ../report-html.ts for what is drawn.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs, UsageError } from "../args.js";
import type { EvaluationReport } from "../evaluate-report.js";
import { buildFigures, buildHtml } from "../report-html.js";

const USAGE = "usage: recsys report --input FILE[,FILE...] --out DIR   (FILEs: recsys evaluate --json outputs)";

function usageError(message: string): number {
  process.stderr.write(`recsys report: ${message}\n${USAGE}\n`);
  return 2;
}

/** Parses and checks one evaluate --json result. */
export function parseEvaluation(text: string, file: string): EvaluationReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); pass the output of recsys evaluate --json`);
  }
  const r = value as Partial<EvaluationReport> | null;
  if (
    r === null ||
    typeof r !== "object" ||
    typeof r.dataset !== "string" ||
    typeof r.protocols !== "object" ||
    r.protocols === null ||
    Object.keys(r.protocols).length === 0
  ) {
    throw new Error(
      `${file} is not a recsys evaluate --json result (no dataset or protocols); re-run recsys evaluate --json with this version`,
    );
  }
  return r as EvaluationReport;
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, { input: { type: "string", required: true }, out: { type: "string", required: true } });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const files = String(args["input"])
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f !== "");
  if (files.length === 0) return usageError("--input needs at least one file");
  const reports: EvaluationReport[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      process.stderr.write(`recsys report: cannot read ${file}: ${(err as Error).message}\n`);
      return 1;
    }
    try {
      reports.push(parseEvaluation(text, file));
    } catch (err) {
      process.stderr.write(`recsys report: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const out = String(args["out"]);
  await mkdir(out, { recursive: true });
  const figures = await buildFigures(reports);
  for (const f of figures) await writeFile(join(out, `${f.id}.svg`), f.svg);
  await writeFile(join(out, "report.html"), buildHtml(reports, figures, files, new Date().toISOString()));
  process.stdout.write(
    `wrote ${join(out, "report.html")} and ${figures.length} figures (${figures.map((f) => `${f.id}.svg`).join(", ")}) from ${files.length} result(s)\n`,
  );
  return 0;
}
