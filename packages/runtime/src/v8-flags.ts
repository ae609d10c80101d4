/**
 * V8 settings of the serving processes: garbage collection tuned for latency rather than memory.
 * Measured with the four stages and the load generator on one 2-core machine, 1M items, 100
 * Recommend/s (`npm run bench -- serve` and the same stack with each flag on and off):
 *
 * - `--no-allocation-site-pretenuring`: V8 allocates an allocation site's objects directly in the
 *   old generation once enough of them survived a minor GC. In a serving process the sites that
 *   qualify build messages and candidate lists (a model load or a burst of calls is enough); the
 *   young objects those old ones point to then survive each scavenge and are promoted, to be freed
 *   only by the next mark-compact. On the ranking stage alone at 100 Rank calls/s: 78 KB promoted
 *   per call and 6 ms per scavenge with pretenuring, 7.5 KB and 1.6 ms without (with requests
 *   decoded by the service wrap, see `decodeRequest` in service.ts).
 * - `--no-memory-reducer`: the memory reducer starts full GCs when a process looks idle (a stage
 *   between calls does) to shrink its heap: 35-45 ms pauses that freed ~2 MB of 95 MB on the
 *   candidate-generation stage.
 * - `--heap-growing-percent=100`: the next full GC when the heap has doubled since the last one.
 *   The default factor let the ranking stage's heap grow from 140 to 147 MB between mark-compacts:
 *   6 of them (35-45 ms each) in a 30 s run; none with the flag. Costs memory: up to twice each
 *   stage's live heap.
 * - `--min-semi-space-size=16`: the young generation starts at its full 16 MB instead of growing
 *   from 1 MB under load (p99 53-70 ms vs 83-92 ms with the three flags above alone, two runs
 *   each). V8 reads it only at start-up.
 *
 * The stage launcher (`recsys start`, the benchmark) and the container images start every stage
 * with SERVING_NODE_FLAGS; `runService` also applies the ones V8 honours when set at run time
 * (RUNTIME_V8_FLAGS), so a stage started as plain `node main.js` keeps the most important ones,
 * except those its command line sets otherwise (`--heap-growing-percent=300` stays 300).
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** V8 flags V8 reads whenever a GC runs: settable at run time. */
export const RUNTIME_V8_FLAGS = ["--no-allocation-site-pretenuring", "--no-memory-reducer", "--heap-growing-percent=100"] as const;

/** Node command-line flags of every serving process. */
export const SERVING_NODE_FLAGS = [...RUNTIME_V8_FLAGS, "--min-semi-space-size=16"] as const;

/** A V8 flag's name without dashes, `no-` or value: "--no-memory_reducer" → "memory-reducer". */
function flagName(arg: string): string {
  return arg.replace(/^--?/, "").split("=")[0]!.replace(/_/g, "-").replace(/^no-/, "");
}

/**
 * The RUNTIME_V8_FLAGS that the command line (`execArgv`) does not set itself, in either sense:
 * `node --heap-growing-percent=300 main.js` or `--allocation-site-pretenuring` wins.
 */
export function runtimeFlagsToApply(execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.filter((arg) => arg.startsWith("-")).map(flagName));
  return RUNTIME_V8_FLAGS.filter((flag) => !given.has(flagName(flag)));
}

/** Applies the RUNTIME_V8_FLAGS the command line did not set (see runtimeFlagsToApply); returns them. */
export function applyServingV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const flags = runtimeFlagsToApply(execArgv);
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}

/**
 * One full GC at the end of a stage's start-up (runService calls it before the service binds).
 * V8 schedules the next full GC from the heap the last one left: after a start-up that loaded a
 * 1M-item catalogue and replayed the source state, the orchestrator still held ~100 MB of
 * start-up garbage, and its first mark-compact under traffic (40-60 ms, plus marking work on the
 * other core) came within the benchmark's first 30 s. `gc` is taken from a new context after
 * `--expose-gc` (the flag only affects contexts created later): the main context gets no `gc`.
 */
export function collectStartupGarbage(): { ms: number; heapUsedBytes: number } {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const started = performance.now();
  gc();
  return { ms: performance.now() - started, heapUsedBytes: getHeapStatistics().used_heap_size };
}
