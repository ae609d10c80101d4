/**
 * `npm run bench -- burst [--json] [--levels 1,2,4,...] [--rounds N] [--max-in-flight N]`: bursts of
 * concurrent Recommend calls against the stack as `recsys start` runs it (four stages as separate
 * processes on loopback, the stages' default budgets), and at which concurrency each behaviour
 * starts: answers degraded (a stage budget missed), calls shed (RESOURCE_EXHAUSTED with a retry
 * hint, the orchestrator's MAX_IN_FLIGHT), errors.
 *
 * The same bursts run twice in one run, on one stack each time restarted with another
 * orchestrator setting: MAX_IN_FLIGHT=0 (no bound: every call admitted, the behaviour before load
 * shedding) and MAX_IN_FLIGHT=<--max-in-flight, default the orchestrator's default>. A burst is
 * `level` calls fired at once, `--rounds` times per level (one round after another, 200 ms apart).
 * Dataset and models: `recsys start`'s synthetic catalogue (users=2000, items=1000), trained once
 * into the cache directory and reused.
 *
 * Figures depend on the machine and on what else runs on it; the report prints the load average
 * and the core count. Run it under the shared lock: `flock /work/heavy.lock npm run bench -- burst`.
 */
import { join, resolve } from "node:path";
import { ensureStackModel, launchStack, type Stack } from "@recsys/cli";
import { loadDataset } from "@recsys/data";
import { RecommenderService } from "@recsys/gen";
import { configSchema } from "@recsys/orchestrator";
import { connect, isServiceError, status, statusName } from "@recsys/runtime";
import { repoRoot } from "./paths.js";
import { machineLoad, percentiles, round } from "./serve-load.js";

const SPEC = "synthetic:users=2000,items=1000";
const DEFAULT_LEVELS = [1, 2, 4, 8, 16, 32, 48, 64, 100, 150, 200];
/** A behaviour "starts" at the first level where it concerns more than this share of the calls. */
const ONSET_SHARE = 0.05;

interface Args {
  json: boolean;
  levels: number[];
  rounds: number;
  maxInFlight: number;
  cache: string;
}

function parse(argv: string[]): Args {
  const defaultMax = Number((configSchema.MAX_IN_FLIGHT as { default?: unknown }).default ?? 32);
  const a: Args = {
    json: false,
    levels: DEFAULT_LEVELS,
    rounds: 5,
    maxInFlight: defaultMax,
    cache: resolve(repoRoot(), "models", "bench-burst"),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === "--json") a.json = true;
    else if (flag === "--levels") a.levels = value().split(",").map(Number);
    else if (flag === "--rounds") a.rounds = Number(value());
    else if (flag === "--max-in-flight") a.maxInFlight = Number(value());
    else if (flag === "--cache") a.cache = resolve(value());
    else throw new Error(`unknown option ${flag}`);
  }
  if (a.levels.some((l) => !Number.isInteger(l) || l < 1)) throw new Error("--levels: positive integers");
  if (!Number.isInteger(a.rounds) || a.rounds < 1) throw new Error("--rounds: a positive integer");
  return a;
}

export interface LevelResult {
  readonly concurrency: number;
  readonly calls: number;
  /** Answered, not degraded. */
  readonly whole: number;
  readonly degraded: number;
  /** RESOURCE_EXHAUSTED with a retry hint (MAX_IN_FLIGHT). */
  readonly shed: number;
  readonly errors: number;
  /** Latency of the answered calls, ms. */
  readonly answeredP50Ms: number;
  readonly answeredP99Ms: number;
  /** Latency of the shed calls, ms (0 when none). */
  readonly shedP99Ms: number;
}

export interface Onsets {
  /** First level where more than 5 % of the calls came back degraded; null: none did. */
  readonly degraded: number | null;
  readonly shed: number | null;
  readonly errors: number | null;
}

export function onsets(levels: readonly LevelResult[]): Onsets {
  const first = (share: (l: LevelResult) => number): number | null => levels.find((l) => share(l) > ONSET_SHARE)?.concurrency ?? null;
  return {
    degraded: first((l) => l.degraded / l.calls),
    shed: first((l) => l.shed / l.calls),
    errors: first((l) => l.errors / l.calls),
  };
}

async function burstLevels(stack: Stack, users: readonly string[], args: Args, log: (m: string) => void): Promise<LevelResult[]> {
  const client = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 10_000 });
  const out: LevelResult[] = [];
  try {
    // Warm-up: connections and code paths.
    for (let i = 0; i < 20; i++) await client.recommend({ userId: users[i % users.length]!, count: 10 }).catch(() => undefined);
    let k = 0;
    for (const level of args.levels) {
      let whole = 0;
      let degraded = 0;
      let shed = 0;
      let errors = 0;
      const answered: number[] = [];
      const shedMs: number[] = [];
      for (let round = 0; round < args.rounds; round++) {
        await Promise.all(
          Array.from({ length: level }, async () => {
            const userId = users[k++ % users.length]!;
            const started = performance.now();
            try {
              const response = await client.recommend({ userId, count: 10 }, { deadline: Date.now() + 10_000 });
              answered.push(performance.now() - started);
              if (response.degraded) degraded += 1;
              else whole += 1;
            } catch (error) {
              if (
                isServiceError(error) &&
                error.code === status.RESOURCE_EXHAUSTED &&
                error.metadata.get("grpc-retry-pushback-ms").length > 0
              ) {
                shed += 1;
                shedMs.push(performance.now() - started);
              } else {
                errors += 1;
                if (errors <= 3)
                  log(
                    `error at concurrency ${level}: ${isServiceError(error) ? `${statusName(error.code)} ${error.details}` : String(error)}`,
                  );
              }
            }
          }),
        );
        await new Promise((r) => setTimeout(r, 200));
      }
      answered.sort((a, b) => a - b);
      shedMs.sort((a, b) => a - b);
      const p = percentiles(answered.length > 0 ? answered : [0]);
      const result: LevelResult = {
        concurrency: level,
        calls: level * args.rounds,
        whole,
        degraded,
        shed,
        errors,
        answeredP50Ms: round(p.p50, 1),
        answeredP99Ms: round(p.p99, 1),
        shedP99Ms: round(shedMs.length > 0 ? percentiles(shedMs).p99 : 0, 1),
      };
      log(`concurrency ${level}: ${JSON.stringify(result)}`);
      out.push(result);
    }
  } finally {
    client.$close();
  }
  return out;
}

function table(title: string, levels: readonly LevelResult[]): string {
  const header = "concurrency  calls  whole  degraded  shed  errors  answered p50/p99 ms  shed p99 ms";
  const rows = levels.map(
    (l) =>
      `${String(l.concurrency).padStart(11)}  ${String(l.calls).padStart(5)}  ${String(l.whole).padStart(5)}  ${String(l.degraded).padStart(8)}  ${String(l.shed).padStart(4)}  ${String(l.errors).padStart(6)}  ${`${l.answeredP50Ms}/${l.answeredP99Ms}`.padStart(19)}  ${String(l.shedP99Ms).padStart(11)}`,
  );
  const o = onsets(levels);
  const onset = (x: number | null): string => (x === null ? "not within the levels" : `at concurrency ${x}`);
  return `${title}\n${header}\n${rows.join("\n")}\n  degraded answers (>5 %) start ${onset(o.degraded)}; shedding starts ${onset(o.shed)}; errors start ${onset(o.errors)}\n`;
}

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`bench burst: ${(error as Error).message}\n`);
    return 2;
  }
  const log = (message: string): void => void process.stderr.write(`bench burst: ${message}\n`);
  const machine = await machineLoad();
  log(`machine: ${machine.cores} cores, load average ${machine.loadAverage1m}`);
  const dataset = await loadDataset(SPEC);
  const users = dataset.users.ids.slice(0, 500);
  const modelDir = join(args.cache, "bundle");
  const model = await ensureStackModel(
    dataset,
    modelDir,
    {
      holdout: "test",
      candidateGen: { epochs: 2, seed: 1 },
      ranker: { pipeline: { budget: 50, mergedSize: 150 }, train: { epochs: 1, maxExamplesPerUser: 10, seed: 1 } },
    },
    { retrain: false, log },
  );
  const results: Record<string, LevelResult[]> = {};
  for (const maxInFlight of [0, args.maxInFlight]) {
    const label = `MAX_IN_FLIGHT=${maxInFlight}${maxInFlight === 0 ? " (no bound)" : ""}`;
    log(`stack with ${label}`);
    const stack = await launchStack({
      modelDir: model.dir,
      dataset: SPEC,
      stateDir: join(args.cache, "run"),
      shards: 1,
      env: {
        orchestrator: { LOG_LEVEL: "warn", MAX_IN_FLIGHT: String(maxInFlight) },
        candidate_generation: { LOG_LEVEL: "warn" },
        retrieval: { LOG_LEVEL: "warn" },
        ranking: { LOG_LEVEL: "warn" },
      },
      log,
    });
    try {
      results[label] = await burstLevels(stack, users, args, log);
    } finally {
      await stack.stop(5000);
    }
  }
  const report = {
    date: new Date().toISOString(),
    machine: { cores: machine.cores, loadAverage1mAtStart: machine.loadAverage1m, loadAverage1mAtEnd: (await machineLoad()).loadAverage1m },
    dataset: SPEC,
    rounds: args.rounds,
    results: Object.fromEntries(Object.entries(results).map(([label, levels]) => [label, { levels, onsets: onsets(levels) }])),
  };
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stdout.write(
      `bursts of concurrent Recommend calls, ${args.rounds} per level; ${report.machine.cores} cores, load average ${report.machine.loadAverage1mAtStart} -> ${report.machine.loadAverage1mAtEnd}\n\n`,
    );
    for (const [label, levels] of Object.entries(results)) process.stdout.write(`${table(label, levels)}\n`);
  }
  return 0;
}
