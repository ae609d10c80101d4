/**
 * Runs the PyTorch reference (packages/bench/reference/youtube_dnn.py) with Debian's
 * python3-torch and returns its figures, or the reason it could not run. The training benchmark
 * runs it right before and right after its own measurement, on the same data file.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The script, kept in the repository beside this package's sources. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL("../reference/youtube_dnn.py", import.meta.url));

export interface ReferenceResult {
  readonly engine: string;
  readonly data: string;
  readonly examples: number;
  readonly items: number;
  readonly threads: number;
  readonly batches: number;
  readonly examples_per_second: number;
  readonly examples_per_cpu_second: number | null;
  readonly ms_per_batch: number;
  readonly first_loss: number;
  readonly last_loss: number;
}

export type ReferenceOutcome = { readonly ok: true; readonly result: ReferenceResult } | { readonly ok: false; readonly reason: string };

export interface ReferenceOptions {
  /** `ml100k:DIR` or `events:DIR` (the same file our trainer reads). */
  readonly data: string;
  readonly batches: number;
  readonly warmup: number;
  readonly batchSize: number;
  readonly negatives: number;
  readonly threads: number;
  /** The interpreter; default $RECSYS_PYTHON, else /usr/bin/python3 (where Debian's python3-torch installs), else python3. */
  readonly python?: string;
}

/** Runs the reference once; never throws (a failure is an outcome with its reason). */
export function runReference(o: ReferenceOptions): Promise<ReferenceOutcome> {
  const python = o.python ?? (process.env["RECSYS_PYTHON"] || (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"));
  if (!existsSync(REFERENCE_SCRIPT)) return Promise.resolve({ ok: false, reason: `${REFERENCE_SCRIPT} is missing` });
  const args = [
    REFERENCE_SCRIPT,
    "--data",
    o.data,
    "--batches",
    String(o.batches),
    "--warmup",
    String(o.warmup),
    "--batch-size",
    String(o.batchSize),
    "--negatives",
    String(o.negatives),
    "--threads",
    String(o.threads),
  ];
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    // PASSIVE: idle OpenMP threads sleep instead of spinning (the machine may be shared).
    const child = spawn(python, args, {
      env: { ...process.env, OMP_WAIT_POLICY: "PASSIVE", OMP_NUM_THREADS: String(o.threads) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", (err) => resolve({ ok: false, reason: `${python}: ${err.message}` }));
    child.on("close", (code) => {
      if (code !== 0) {
        const last = stderr.trim().split("\n").pop() ?? "";
        const hint = /No module named 'torch'/.test(stderr) ? " (install Debian's python3-torch: apt-get install -y python3-torch)" : "";
        resolve({ ok: false, reason: `exit ${code}: ${last}${hint}` });
        return;
      }
      const line = stdout.trim().split("\n").pop() ?? "";
      try {
        const r = JSON.parse(line) as ReferenceResult;
        if (!(r.examples_per_second > 0)) throw new Error("no examples_per_second");
        resolve({ ok: true, result: r });
      } catch (err) {
        resolve({ ok: false, reason: `unreadable output (${err instanceof Error ? err.message : String(err)}): ${line.slice(0, 200)}` });
      }
    });
  });
}
