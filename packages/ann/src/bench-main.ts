#!/usr/bin/env node
/**
 * Runs `benchAnn` from the command line and prints its result as JSON, e.g.
 *   node packages/ann/dist/bench-main.js --items 100000 --dim 64 --queries 500 --efs 100,200,400 \
 *     --index-dir /tmp/ann-100k --reuse
 */
import { parseArgs } from "node:util";
import { benchAnn } from "./bench.js";

const { values } = parseArgs({
  options: {
    items: { type: "string", default: "100000" },
    dim: { type: "string", default: "64" },
    queries: { type: "string", default: "500" },
    efs: { type: "string", default: "100,200,400,800" },
    k: { type: "string", default: "100" },
    M: { type: "string" },
    "ef-construction": { type: "string" },
    "head-fraction": { type: "string" },
    "norm-quantile": { type: "string" },
    "plain-ip": { type: "boolean", default: false },
    "index-dir": { type: "string" },
    reuse: { type: "boolean", default: false },
  },
});

function int(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

const result = await benchAnn({
  items: int("items", values.items)!,
  dim: int("dim", values.dim)!,
  queries: int("queries", values.queries)!,
  efs: values.efs.split(",").map((s) => int("efs", s)!),
  k: int("k", values.k)!,
  ...(values.M !== undefined ? { M: int("M", values.M)! } : {}),
  ...(values["ef-construction"] !== undefined ? { efConstruction: int("ef-construction", values["ef-construction"])! } : {}),
  ...(values["head-fraction"] !== undefined ? { headFraction: int("head-fraction", values["head-fraction"])! } : {}),
  ...(values["plain-ip"]
    ? { normQuantile: null }
    : values["norm-quantile"] !== undefined
      ? { normQuantile: int("norm-quantile", values["norm-quantile"])! }
      : {}),
  ...(values["index-dir"] !== undefined ? { indexDir: values["index-dir"], reuseIndex: values.reuse } : {}),
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
