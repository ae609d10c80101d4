/**
 * The serving benchmark's load curve: Recommend calls paced at each of several rates (default
 * 100, 200, 300, 400 per second) for a fixed time each, with per point the achieved rate,
 * client-side p50/p99, errors, the share of degraded answers and the CPU milliseconds per
 * request of every stage process and of the load generator, so that the knee (where p99 or the
 * degraded share climbs) and what saturates first are visible.
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { cpuPerRequest, machineLoad, percentiles, processCpuMs, round, runLoad } from "./serve-load.js";

export interface CurvePoint {
  /** Target rate (requests started per second). */
  readonly rate: number;
  readonly requests: number;
  /** Completed requests per second. */
  readonly rps: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly errors: number;
  readonly errors_by_code: Record<string, number>;
  /** Answers marked degraded (a stage failed or was skipped) over answers. */
  readonly degraded_share: number;
  /** CPU milliseconds per completed request, by process (stages and the load generator). */
  readonly cpu_ms_per_request: Record<string, number>;
  readonly cpu_ms_per_request_total: number;
  /** Machine CPU busy share over the point (all processes, from the load average's source /proc/stat). */
  readonly machine_busy_share: number | null;
  readonly loadavg_1m: number;
  /** True when the time cap stopped the point before all its requests were sent. */
  readonly capped: boolean;
  /** CLOCK_MONOTONIC microseconds at the point's start and end (to cut CPU profiles). */
  readonly window_us: readonly [number, number];
}

export interface CurveOptions {
  readonly rates: readonly number[];
  /** Seconds at each rate. */
  readonly seconds: number;
  /** At most this many in flight (high enough not to limit the pace). */
  readonly concurrency: number;
  readonly send: () => Promise<{ readonly degraded: boolean }>;
  readonly errorKey: (error: unknown) => string;
  /** Processes whose CPU time is read: [name, pid]. */
  readonly processes: readonly (readonly [string, number])[];
  readonly log: (line: string) => void;
}

/** Busy and total jiffies of the whole machine from /proc/stat; undefined off Linux. */
async function machineTicks(): Promise<{ busy: number; total: number } | undefined> {
  const { readFile } = await import("node:fs/promises");
  try {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((s, x) => s + x, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export async function measureLoadCurve(o: CurveOptions): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  const readCpu = async (): Promise<Map<string, number | undefined>> =>
    new Map(await Promise.all(o.processes.map(async ([name, pid]) => [name, await processCpuMs(pid)] as const)));
  for (const rate of o.rates) {
    const requests = Math.max(1, Math.round(rate * o.seconds));
    const cpuBefore = await readCpu();
    const ticksBefore = await machineTicks();
    const startUs = Number(process.hrtime.bigint() / 1000n);
    const load = await runLoad({ requests, concurrency: o.concurrency, rate, timeCapSeconds: o.seconds * 1.5 + 5 }, o.send, o.errorKey);
    const endUs = Number(process.hrtime.bigint() / 1000n);
    const ticksAfter = await machineTicks();
    const cpu = cpuPerRequest(cpuBefore, await readCpu(), load.completed);
    const p = percentiles(load.latenciesMs);
    const errors = Object.values(load.errors).reduce((s, n) => s + n, 0);
    const degraded = load.outcomes.filter((r) => r.degraded).length;
    const cpuTotal = Object.values(cpu).reduce((s, ms) => s + ms, 0);
    const busy =
      ticksBefore !== undefined && ticksAfter !== undefined && ticksAfter.total > ticksBefore.total
        ? (ticksAfter.busy - ticksBefore.busy) / (ticksAfter.total - ticksBefore.total)
        : null;
    const point: CurvePoint = {
      rate,
      requests: load.completed,
      rps: round(load.rps, 1),
      p50_ms: round(p.p50),
      p99_ms: round(p.p99),
      errors,
      errors_by_code: load.errors,
      degraded_share: load.outcomes.length > 0 ? round(degraded / load.outcomes.length, 4) : 0,
      cpu_ms_per_request: Object.fromEntries(Object.entries(cpu).map(([name, ms]) => [name, round(ms)])),
      cpu_ms_per_request_total: round(cpuTotal),
      machine_busy_share: busy === null ? null : round(busy, 3),
      loadavg_1m: (await machineLoad()).loadAverage1m,
      capped: load.capped,
      window_us: [startUs, endUs],
    };
    points.push(point);
    o.log(
      `curve ${rate}/s: ${point.rps} req/s, p50 ${point.p50_ms} ms, p99 ${point.p99_ms} ms, ${errors} errors, degraded ${(100 * point.degraded_share).toFixed(1)}%, ` +
        `CPU/request ${point.cpu_ms_per_request_total} ms (${Object.entries(point.cpu_ms_per_request)
          .map(([n, ms]) => `${n} ${ms}`)
          .join(", ")}), machine busy ${busy === null ? "?" : `${(100 * busy).toFixed(0)}%`}`,
    );
  }
  return points;
}

/** The curve as a text table for the report. */
export function formatCurve(points: readonly CurvePoint[]): string {
  if (points.length === 0) return "";
  const names = [...new Set(points.flatMap((p) => Object.keys(p.cpu_ms_per_request)))];
  let out = `\nload curve (Recommend paced at each rate; CPU ms per request by process)\n`;
  out += `  rate/s  achieved  p50 ms  p99 ms  errors  degraded  ${names.map((n) => n.padStart(Math.max(8, n.length))).join("  ")}  total  machine busy\n`;
  for (const p of points) {
    out +=
      `  ${String(p.rate).padStart(6)}  ${p.rps.toFixed(1).padStart(8)}  ${p.p50_ms.toFixed(1).padStart(6)}  ${p.p99_ms.toFixed(1).padStart(6)}  ${String(p.errors).padStart(6)}  ${`${(100 * p.degraded_share).toFixed(1)}%`.padStart(8)}  ` +
      `${names.map((n) => (p.cpu_ms_per_request[n] ?? NaN).toFixed(2).padStart(Math.max(8, n.length))).join("  ")}  ${p.cpu_ms_per_request_total.toFixed(2).padStart(5)}  ${p.machine_busy_share === null ? "?" : `${(100 * p.machine_busy_share).toFixed(0)}%`}\n`;
  }
  return out;
}

/** One function's share of a stage's CPU in a window. */
export interface ProfileEntry {
  readonly function: string;
  /** Self CPU milliseconds per request. */
  readonly self_ms_per_request: number;
  /** Share of the process's samples in the window. */
  readonly share: number;
}

interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/**
 * Self time by function inside a time window of the V8 CPU profiles (`--cpu-prof`) that the stage
 * processes wrote to `dir` on exit (file names carry the pid), per request of the window. V8's
 * profile clock is CLOCK_MONOTONIC in microseconds, as process.hrtime here. "(idle)" samples are
 * left out; "(program)" and "(garbage collector)" stay.
 */
export async function profileByStage(
  dir: string,
  stages: ReadonlyMap<number, string>,
  window: readonly [number, number],
  requests: number,
  top = 12,
): Promise<Record<string, ProfileEntry[]>> {
  const out: Record<string, ProfileEntry[]> = {};
  for (const file of await readdir(dir)) {
    const m = /^CPU\.\d+\.\d+\.(\d+)\.0\.\d+\.cpuprofile$/.exec(file);
    const stage = m === null ? undefined : stages.get(Number(m[1]));
    if (stage === undefined) continue;
    const profile = JSON.parse(await readFile(join(dir, file), "utf8")) as CpuProfile;
    const frame = new Map(profile.nodes.map((n) => [n.id, n.callFrame] as const));
    const selfUs = new Map<string, number>();
    let t = profile.startTime;
    let total = 0;
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i] ?? 0;
      t += dt;
      if (t < window[0] || t > window[1]) continue;
      const f = frame.get(profile.samples[i]!);
      if (f === undefined || f.functionName === "(idle)") continue;
      const key =
        f.url === "" ? f.functionName || "(anonymous)" : `${f.functionName || "(anonymous)"} ${basename(f.url)}:${f.lineNumber + 1}`;
      // A sample stands for the time since the previous one.
      selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
      total += dt;
    }
    if (total === 0) continue;
    out[stage] = [...selfUs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ function: fn, self_ms_per_request: round(us / 1000 / Math.max(1, requests), 3), share: round(us / total, 3) }));
  }
  return out;
}

/** Profiles as text for the report. */
export function formatProfiles(rate: number, profiles: Record<string, ProfileEntry[]>): string {
  let out = `\nwhere each stage's CPU goes at ${rate}/s (V8 CPU profiles, self time, top functions)\n`;
  for (const [stage, entries] of Object.entries(profiles)) {
    out += `  ${stage}\n`;
    for (const e of entries)
      out += `    ${e.self_ms_per_request.toFixed(3).padStart(7)} ms/req  ${(100 * e.share).toFixed(1).padStart(5)}%  ${e.function}\n`;
  }
  return out;
}
