/**
 * A small benchmark of a user store, for `bench-main.ts` and the serving benchmark: append
 * throughput for given batch sizes and concurrencies, and `get` latency on users with full
 * histories.
 */
import type { UserEvent, UserSnapshot, UserStore } from "./types.js";

export interface UserStoreBenchOptions {
  /** Distinct users written and read (default 1000). */
  readonly users?: number;
  /** Events per append call, one case each (default [1, 100]). */
  readonly batchSizes?: readonly number[];
  /** Append calls in flight at once, one case each (default [1, 32]). */
  readonly concurrencies?: readonly number[];
  /** How long each append case runs (default 1000 ms). */
  readonly durationMs?: number;
  /** Sequential `get` calls timed (default 2000). */
  readonly gets?: number;
}

export interface LatencyFigures {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

export interface AppendFigures extends LatencyFigures {
  readonly batchSize: number;
  readonly concurrency: number;
  readonly appends: number;
  readonly eventsPerSecond: number;
}

export interface UserStoreBenchResult {
  readonly backend: string;
  readonly append: readonly AppendFigures[];
  /** `get` of a user holding full watch / search / impression lists. */
  readonly get: LatencyFigures & { readonly calls: number; readonly watchesPerUser: number };
}

function latency(samples: number[]): LatencyFigures {
  samples.sort((a, b) => a - b);
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN;
  const mean = samples.reduce((s, x) => s + x, 0) / Math.max(1, samples.length);
  return { p50Ms: at(0.5), p99Ms: at(0.99), meanMs: mean };
}

export async function benchUserStore(store: UserStore, options: UserStoreBenchOptions = {}): Promise<UserStoreBenchResult> {
  const users = options.users ?? 1000;
  const durationMs = options.durationMs ?? 1000;
  const append: AppendFigures[] = [];
  let clock = 1_700_000_000;
  for (const batchSize of options.batchSizes ?? [1, 100]) {
    for (const concurrency of options.concurrencies ?? [1, 32]) {
      const samples: number[] = [];
      let next = 0;
      const started = performance.now();
      const deadline = started + durationMs;
      const worker = async (): Promise<void> => {
        while (performance.now() < deadline) {
          const events: UserEvent[] = [];
          for (let k = 0; k < batchSize; k++) {
            const n = next++;
            const userId = `bench-u${n % users}`;
            events.push(
              n % 10 === 9
                ? { kind: "search", userId, query: `query ${n % 997}`, timestamp: clock++ }
                : n % 3 === 2
                  ? { kind: "impression", userId, itemId: `item${n % 5000}`, timestamp: clock++, position: 1 + (n % 20) }
                  : { kind: "watch", userId, itemId: `item${n % 5000}`, timestamp: clock++, watchSeconds: 30 },
            );
          }
          const t = performance.now();
          await store.append(events);
          samples.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      const seconds = (performance.now() - started) / 1000;
      append.push({
        batchSize,
        concurrency,
        appends: samples.length,
        eventsPerSecond: (samples.length * batchSize) / seconds,
        ...latency(samples),
      });
    }
  }

  // Full histories, then timed reads.
  const { maxWatches, maxSearches, maxImpressions } = store.limits;
  const chunk: UserSnapshot[] = [];
  for (let u = 0; u < users; u++) {
    const userId = `bench-u${u}`;
    chunk.push({
      userId,
      profile: { age: 20 + (u % 50), gender: u % 2 === 0 ? "F" : "M", geo: String(u % 90) },
      watches: Array.from({ length: maxWatches }, (_, k) => ({
        userId,
        itemId: `item${(u * 31 + k) % 5000}`,
        timestamp: clock + k,
        watchSeconds: 60,
      })),
      searches: Array.from({ length: maxSearches }, (_, k) => ({ userId, query: `query ${(u + k) % 997}`, timestamp: clock + k })),
      impressions: Array.from({ length: maxImpressions }, (_, k) => ({
        userId,
        itemId: `item${(u * 7 + k) % 5000}`,
        timestamp: clock + k,
        position: 1 + (k % 20),
      })),
    });
    if (chunk.length === 100 || u === users - 1) {
      await store.putUsers(chunk.splice(0));
    }
  }
  const calls = options.gets ?? 2000;
  const samples: number[] = [];
  for (let k = 0; k < calls; k++) {
    const userId = `bench-u${(k * 7919) % users}`;
    const t = performance.now();
    const state = await store.get(userId);
    samples.push(performance.now() - t);
    if (state === undefined || state.watches.length !== maxWatches) {
      throw new Error(`bench: ${userId} should have ${maxWatches} watches, has ${state?.watches.length ?? "no state"}`);
    }
  }
  return { backend: store.backend, append, get: { calls, watchesPerUser: maxWatches, ...latency(samples) } };
}

/** The figures as a plain-text table. */
export function formatBenchResult(result: UserStoreBenchResult): string {
  const lines = [`${result.backend}:`];
  for (const a of result.append) {
    lines.push(
      `  append batch=${String(a.batchSize).padStart(3)} concurrency=${String(a.concurrency).padStart(2)}: ` +
        `${Math.round(a.eventsPerSecond).toLocaleString("en-US").padStart(9)} events/s ` +
        `(${a.appends} appends, latency p50 ${a.p50Ms.toFixed(2)} ms, p99 ${a.p99Ms.toFixed(2)} ms)`,
    );
  }
  const g = result.get;
  lines.push(
    `  get (${g.watchesPerUser} watches/user, ${g.calls} calls): p50 ${g.p50Ms.toFixed(3)} ms, p99 ${g.p99Ms.toFixed(3)} ms, mean ${g.meanMs.toFixed(3)} ms`,
  );
  return lines.join("\n");
}
