/**
 * Load generation and latency statistics for the serving benchmark: a bounded request schedule
 * (fixed number of requests, a time cap, at most `concurrency` in flight, optionally paced at a
 * fixed rate), percentiles, and quantiles of Prometheus histograms scraped before and after.
 */

export interface LoadOptions {
  /** Requests to send in all. */
  readonly requests: number;
  /** At most this many in flight. */
  readonly concurrency: number;
  /** Start requests at this rate (per second); 0 = as fast as `concurrency` allows (closed loop). */
  readonly rate: number;
  /** Stop starting requests after this many seconds. */
  readonly timeCapSeconds: number;
}

export interface LoadResult<E> {
  /** Requests completed (successful or not). */
  readonly completed: number;
  /** Wall-clock seconds from the first start to the last completion. */
  readonly seconds: number;
  /** Completed requests per second. */
  readonly rps: number;
  /** Latencies (ms) of the successful requests, sorted. */
  readonly latenciesMs: Float64Array;
  /** Failures by key (e.g. gRPC status name). */
  readonly errors: Record<string, number>;
  /** What the successful calls returned, in completion order. */
  readonly outcomes: E[];
  /** True when the time cap stopped the run before every request was sent. */
  readonly capped: boolean;
}

/**
 * Sends `send(i)` for i = 0..requests-1 under the schedule. `send` resolves with an outcome or
 * rejects; `errorKey` names a rejection.
 */
export async function runLoad<E>(
  options: LoadOptions,
  send: (i: number) => Promise<E>,
  errorKey: (error: unknown) => string,
): Promise<LoadResult<E>> {
  const latencies: number[] = [];
  const outcomes: E[] = [];
  const errors: Record<string, number> = {};
  const started = performance.now();
  const capAt = started + options.timeCapSeconds * 1000;
  let next = 0;
  let completed = 0;
  let capped = false;
  let lastDone = started;

  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next;
      if (i >= options.requests) return;
      next = i + 1;
      if (options.rate > 0) {
        const wait = started + (i * 1000) / options.rate - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      if (performance.now() > capAt) {
        capped = true;
        return;
      }
      const t0 = performance.now();
      try {
        const outcome = await send(i);
        latencies.push(performance.now() - t0);
        outcomes.push(outcome);
      } catch (error) {
        const key = errorKey(error);
        errors[key] = (errors[key] ?? 0) + 1;
      }
      completed += 1;
      lastDone = performance.now();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, () => worker()));
  const seconds = (lastDone - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { completed, seconds, rps: seconds > 0 ? completed / seconds : 0, latenciesMs: sorted, errors, outcomes, capped };
}

/** The p-quantile (0..1) of sorted values, nearest rank; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export function percentiles(sorted: ArrayLike<number>): Percentiles {
  return { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99) };
}

/** Cumulative bucket counts of one histogram series: upper bound (seconds) → count. */
export type HistogramBuckets = Map<number, number>;

/** `x` rounded to `digits` decimals, for the report. */
export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** Sum and count of a histogram's observations. */
export interface SumCount {
  readonly sum: number;
  readonly count: number;
}

/**
 * The `_sum` and `_count` of histogram `name` in Prometheus text, keyed by the value of `label`
 * and added up over the other labels (e.g. over status codes): exact means, where the buckets
 * (1 ms, 2.5 ms, 5 ms, ...) only bound a quantile.
 */
export function parseHistogramSums(text: string, name: string, label: string): Map<string, SumCount> {
  const out = new Map<string, { sum: number; count: number }>();
  for (const line of text.split("\n")) {
    const kind = line.startsWith(`${name}_sum{`) ? "sum" : line.startsWith(`${name}_count{`) ? "count" : undefined;
    if (kind === undefined) continue;
    const open = line.indexOf("{");
    const close = line.indexOf("}");
    const labels = new Map<string, string>();
    for (const m of line.slice(open + 1, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1]!, m[2]!);
    const key = labels.get(label);
    if (key === undefined) continue;
    let entry = out.get(key);
    if (entry === undefined) out.set(key, (entry = { sum: 0, count: 0 }));
    entry[kind] += Number(line.slice(close + 1).trim());
  }
  return out;
}

/** Mean in milliseconds of the observations between two `parseHistogramSums` readings; NaN if none. */
export function meanMsBetween(before: SumCount | undefined, after: SumCount | undefined): number {
  if (after === undefined) return NaN;
  const count = after.count - (before?.count ?? 0);
  return count > 0 ? ((after.sum - (before?.sum ?? 0)) / count) * 1000 : NaN;
}

/**
 * The `_bucket` series of histogram `name` in Prometheus text, keyed by the value of `label`
 * (e.g. stage). Other labels must not vary.
 */
export function parseHistogram(text: string, name: string, label: string): Map<string, HistogramBuckets> {
  const out = new Map<string, HistogramBuckets>();
  const prefix = `${name}_bucket{`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const close = line.indexOf("}");
    const labels = new Map<string, string>();
    for (const m of line.slice(prefix.length, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1]!, m[2]!);
    const key = labels.get(label);
    const le = labels.get("le");
    if (key === undefined || le === undefined) continue;
    const value = Number(line.slice(close + 1).trim());
    let buckets = out.get(key);
    if (buckets === undefined) out.set(key, (buckets = new Map()));
    buckets.set(le === "+Inf" ? Infinity : Number(le), value);
  }
  return out;
}

/** after − before, bucket by bucket (the observations made in between). */
export function diffBuckets(after: HistogramBuckets, before: HistogramBuckets | undefined): HistogramBuckets {
  const out: HistogramBuckets = new Map();
  for (const [le, count] of after) out.set(le, count - (before?.get(le) ?? 0));
  return out;
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside the bucket as
 * Prometheus' histogram_quantile does (the lower bound of the first bucket is 0; a quantile in
 * the +Inf bucket is reported as the largest finite bound). NaN when empty.
 */
export function histogramQuantile(buckets: HistogramBuckets, q: number): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? buckets.get(bounds[bounds.length - 1]!) ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const count = buckets.get(le)!;
    if (count >= rank) {
      if (le === Infinity) return lower;
      const inBucket = count - below;
      return inBucket <= 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket;
    }
    lower = le;
    below = count;
  }
  return lower;
}

/** Total observations of a cumulative histogram. */
export function histogramCount(buckets: HistogramBuckets): number {
  return buckets.get(Infinity) ?? 0;
}

/** A small deterministic PRNG (mulberry32) for picking users. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** CPU load of the machine: 1-minute load average and core count. */
export async function machineLoad(): Promise<{ loadAverage1m: number; cores: number }> {
  const os = await import("node:os");
  return { loadAverage1m: Number(os.loadavg()[0]!.toFixed(2)), cores: os.cpus().length };
}

/**
 * Milliseconds one core takes for a fixed integer loop (the best of `repeats`): the speed the
 * host gives this machine at the moment of the reading. Virtual machines of the same kind differ
 * (seen in this workplace: one ran the loop in 411 ms or 553 ms from one run to the next), and
 * every latency figure moves with it, so the report prints it beside them.
 */
export function referenceLoopMs(iterations = 100_000_000, repeats = 3): number {
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    let x = r;
    for (let i = 0; i < iterations; i++) x = (x + i * 7) % 1_000_003;
    best = Math.min(best, performance.now() - t0);
    sink += x;
  }
  // The loop's result is used, so the compiler cannot drop the loop.
  return sink < 0 ? NaN : best;
}

/** /proc/<pid>/<name>, or undefined where /proc is not available or the process is gone. */
async function readProcFile(pid: number, name: string): Promise<string | undefined> {
  const { readFile } = await import("node:fs/promises");
  try {
    return await readFile(`/proc/${pid}/${name}`, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) a process has used so far, in milliseconds, from /proc/<pid>/stat;
 * undefined where /proc is not available (not Linux) or the process is gone.
 */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  const text = await readProcFile(pid, "stat");
  if (text === undefined) return undefined;
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  // USER_HZ is 100 on every Linux architecture Node runs on.
  return Number.isFinite(ticks) ? ticks * 10 : undefined;
}

/**
 * Resident memory of a process (VmRSS of /proc/<pid>/status) in MiB; undefined where /proc is not
 * available or the process is gone.
 */
export async function processRssMb(pid: number): Promise<number | undefined> {
  const text = await readProcFile(pid, "status");
  if (text === undefined) return undefined;
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  return match === null ? undefined : Number(match[1]) / 1024;
}

/** CPU milliseconds per request of each named process between two `processCpuMs` readings. */
export function cpuPerRequest(
  before: ReadonlyMap<string, number | undefined>,
  after: ReadonlyMap<string, number | undefined>,
  requests: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of after) {
    const start = before.get(name);
    if (start === undefined || end === undefined || requests <= 0) continue;
    out[name] = (end - start) / requests;
  }
  return out;
}
