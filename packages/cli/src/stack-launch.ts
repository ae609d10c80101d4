/**
 * The whole serving stack on loopback, every stage a separate `node packages/<pkg>/dist/main.js`
 * process with its own environment and log file: candidate generation, `shards` retrieval
 * shards, ranking, then the orchestrator pointed at them. Ports are free loopback ports picked
 * here, except the orchestrator's when one is asked for.
 *
 * Layout of the state directory:
 *
 *   logs/<stage>.log        every stage's JSON logs (stdout and stderr)
 *   index/                  the retrieval shards' INDEX_DIR (indexes, journals, deleted items)
 *   users/                  the orchestrator's embedded user store
 *   deleted-items.txt       the orchestrator's DELETED_ITEMS_FILE (taken-down ids, one a line)
 *
 * Supervision (`supervise: true`, what `recsys start` asks for): a stage that exits on its own
 * (a crash, kill -9, an out-of-memory kill) is started again on the same ports, after a backoff
 * that doubles from `restartBackoffMs.initial` (1 s) up to `restartBackoffMs.max` (30 s) while
 * restarts keep failing or the stage keeps dying within a minute of starting, and goes back to
 * the initial delay once a restarted stage has served for a minute. The orchestrator is restarted
 * like any other stage (its clients reconnect to the same port); the other stages' restarts are
 * followed by the orchestrator's channels without a restart of their own. Every exit, restart and
 * failed restart is reported through `onStageEvent`.
 */
import { mkdir, writeFile, access } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVING_NODE_FLAGS } from "@recsys/runtime";
import { killSpawnedStages, startStageProcess, type StageProcess } from "./stack-process.js";

/** Stage names as the orchestrator reports them (and the log file names, "/" → "-"). */
export const STAGE_CANDIDATE_GENERATION = "candidate_generation";
export const STAGE_RANKING = "ranking";
export const STAGE_ORCHESTRATOR = "orchestrator";
export function retrievalStageName(shard: number): string {
  return `retrieval/shard-${shard}`;
}

export type StackStageKind = "candidate_generation" | "retrieval" | "ranking" | "orchestrator";

export interface StackOptions {
  /** Candidate-generation bundle directory, with the ranker in `<modelDir>/ranker/`. */
  readonly modelDir: string;
  /** DATASET of the orchestrator (the spec the bundle was trained on; file paths absolute). */
  readonly dataset: string;
  /** Where logs, indexes, the user store and the taken-down list live (created). */
  readonly stateDir: string;
  /** Retrieval shards (default 2). */
  readonly shards?: number;
  /** The orchestrator's gRPC port (default 0: any free port). */
  readonly orchestratorPort?: number;
  /** Start the ranking stage (default true); without it the orchestrator answers degraded. */
  readonly ranking?: boolean;
  /** Extra environment per stage kind (applied last). */
  readonly env?: Partial<Record<StackStageKind, Readonly<Record<string, string>>>>;
  /** Longest wait for one stage to serve (default 10 min: a first start may build an index). */
  readonly startTimeoutMs?: number;
  /** Extra node flags for every stage (after the runtime's SERVING_NODE_FLAGS, which every stage gets). */
  readonly nodeArgs?: readonly string[];
  /** Progress messages (default: none). */
  readonly log?: (message: string) => void;
  /** Restart a stage that exits on its own, with backoff (default false). */
  readonly supervise?: boolean;
  /** Backoff of restarts, ms (default initial 1000, max 30 000). */
  readonly restartBackoffMs?: { readonly initial?: number; readonly max?: number };
  /** Told when a stage exits on its own, is restarted, or fails to restart (supervise only). */
  readonly onStageEvent?: (event: StageEvent) => void;
}

export type StageEvent =
  | {
      readonly type: "exited";
      readonly stage: string;
      readonly pid: number;
      readonly code: number | string;
      readonly restartInMs: number;
      readonly logFile: string;
    }
  | { readonly type: "restarted"; readonly stage: string; readonly pid: number; readonly address: string; readonly restarts: number }
  | { readonly type: "restart-failed"; readonly stage: string; readonly error: string; readonly restartInMs: number };

/** One stage as the supervisor sees it. */
export interface StageStatus {
  readonly name: string;
  readonly kind: StackStageKind;
  /** The current process (the last one, while a restart is pending). */
  readonly process: StageProcess;
  /** Restarts since the stack started. */
  readonly restarts: number;
  /** "serving": the current process runs; "restarting": it exited and a restart is pending. */
  readonly state: "serving" | "restarting";
}

export interface Stack {
  readonly candidateGeneration: StageProcess;
  readonly retrieval: readonly StageProcess[];
  /** Undefined when started with `ranking: false`. */
  readonly ranking: StageProcess | undefined;
  /** The current orchestrator process (replaced by restartOrchestrator). */
  readonly orchestrator: StageProcess;
  readonly stateDir: string;
  readonly deletedItemsFile: string;
  /** Every running stage, orchestrator last. */
  stages(): StageProcess[];
  /** Every stage with its restarts and state, orchestrator last. */
  status(): StageStatus[];
  /**
   * Starts a new orchestrator with the same environment (and port, unless it was 0) after the
   * current one has exited (stop or kill it first).
   */
  restartOrchestrator(): Promise<StageProcess>;
  /** Stops the orchestrator first, then the other stages (SIGTERM, SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** The main module of a stage package (`@recsys/<pkg>` resolves to dist/index.js; main.js is next to it). */
export function stageEntry(pkg: "candidate-gen-service" | "retrieval-service" | "ranking-service" | "orchestrator"): string {
  const index = fileURLToPath(import.meta.resolve(`@recsys/${pkg}`));
  return join(dirname(index), "main.js");
}

export function stackPaths(stateDir: string): { logs: string; index: string; users: string; deletedItems: string } {
  return {
    logs: join(stateDir, "logs"),
    index: join(stateDir, "index"),
    users: join(stateDir, "users"),
    deletedItems: join(stateDir, "deleted-items.txt"),
  };
}

const COMMON_ENV = { GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "info" };

export async function launchStack(options: StackOptions): Promise<Stack> {
  const shards = options.shards ?? 2;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be a positive integer, got ${shards}`);
  const log = options.log ?? (() => undefined);
  const paths = stackPaths(options.stateDir);
  await mkdir(paths.logs, { recursive: true });
  await mkdir(paths.index, { recursive: true });
  await mkdir(paths.users, { recursive: true });
  try {
    await access(paths.deletedItems);
  } catch {
    await writeFile(paths.deletedItems, "# taken-down item ids, one per line (the orchestrator re-reads this file when it changes)\n");
  }
  const extra = (kind: StackStageKind): Readonly<Record<string, string>> => options.env?.[kind] ?? {};
  const startTimeoutMs = options.startTimeoutMs ?? 600_000;
  const onWaiting = (name: string, waitedMs: number): void =>
    log(
      `still waiting for ${name} (${Math.round(waitedMs / 1000)} s${name.startsWith("retrieval") ? "; a first start builds its index" : ""})`,
    );
  const stopController = new AbortController();
  const start = (name: string, entry: string, env: Record<string, string>): Promise<StageProcess> =>
    startStageProcess({
      signal: stopController.signal,
      name,
      entry,
      env: { ...COMMON_ENV, ...env },
      logFile: join(paths.logs, `${name.replace(/\//g, "-")}.log`),
      startTimeoutMs,
      onWaiting,
      nodeArgs: [...SERVING_NODE_FLAGS, ...(options.nodeArgs ?? [])],
    });

  const started: StageProcess[] = [];
  // If this process exits without stopping the stack (an uncaught error, process.exit), the
  // stages (own process groups) would outlive it: ask them to stop.
  const onExit = (): void => {
    for (const stage of started) {
      if (stage.hasExited()) continue;
      try {
        process.kill(stage.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  };
  process.on("exit", onExit);
  // A signal while the stages start (a first start builds indexes for minutes; Ctrl-C then is
  // natural): stop every stage spawned so far, serving or not, and exit. Without this the default
  // action ended this process and left them running (they have their own process groups, and
  // "exit" handlers do not run on a signal). The caller installs its own handlers once the stack
  // is up.
  let interrupted = false;
  const onSignalWhileStarting = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal} while the stages start: stopping them`);
    void killSpawnedStages(3000).finally(() => process.exit(130));
  };
  const startSignals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const signal of startSignals) process.on(signal, onSignalWhileStarting);
  const stopWatchingSignals = (): void => {
    for (const signal of startSignals) process.off(signal, onSignalWhileStarting);
  };
  const track = async (p: Promise<StageProcess>): Promise<StageProcess> => {
    const stage = await p;
    started.push(stage);
    log(`${stage.name} serving on ${stage.address} (pid ${stage.pid})`);
    return stage;
  };

  // Supervision: one slot per stage, holding its current process.
  interface Slot {
    readonly name: string;
    readonly kind: StackStageKind;
    readonly entry: string;
    readonly env: Record<string, string>;
    current: StageProcess;
    restarts: number;
    state: "serving" | "restarting";
    startedAt: number;
    nextDelayMs: number;
  }
  const slots: Slot[] = [];
  let stopRequested = false;
  const initialDelayMs = options.restartBackoffMs?.initial ?? 1000;
  const maxDelayMs = options.restartBackoffMs?.max ?? 30_000;
  const emit = options.onStageEvent ?? (() => undefined);
  const watch = (slot: Slot): void => {
    const proc = slot.current;
    void proc.exited.then(async (code) => {
      if (stopRequested || slot.current !== proc || options.supervise !== true) return;
      // A stage that served for a minute starts the backoff over; one that dies quickly doubles it.
      if (Date.now() - slot.startedAt >= 60_000) slot.nextDelayMs = initialDelayMs;
      let delayMs = slot.nextDelayMs;
      slot.state = "restarting";
      emit({ type: "exited", stage: slot.name, pid: proc.pid, code, restartInMs: delayMs, logFile: proc.logFile });
      for (;;) {
        await new Promise((r) => setTimeout(r, delayMs));
        if (stopRequested) return;
        slot.nextDelayMs = Math.min(maxDelayMs, delayMs * 2);
        try {
          const next = await track(start(slot.name, slot.entry, slot.env));
          if (stopRequested) {
            await next.stop(2000);
            return;
          }
          slot.current = next;
          slot.restarts += 1;
          slot.state = "serving";
          slot.startedAt = Date.now();
          emit({ type: "restarted", stage: slot.name, pid: next.pid, address: next.address, restarts: slot.restarts });
          watch(slot);
          return;
        } catch (error) {
          delayMs = slot.nextDelayMs;
          emit({ type: "restart-failed", stage: slot.name, error: (error as Error).message.split("\n")[0]!, restartInMs: delayMs });
        }
      }
    });
  };
  const supervised =
    (kind: StackStageKind, name: string, entry: string, env: Record<string, string>) =>
    async (p: Promise<StageProcess>): Promise<StageProcess> => {
      const proc = await p;
      // Restarts keep the ports the first process got, so that clients reconnect to them.
      const slot: Slot = {
        name,
        kind,
        entry,
        env: { ...env, GRPC_PORT: String(proc.port), METRICS_PORT: String(proc.metricsPort) },
        current: proc,
        restarts: 0,
        state: "serving",
        startedAt: Date.now(),
        nextDelayMs: initialDelayMs,
      };
      slots.push(slot);
      watch(slot);
      return proc;
    };
  const startSupervised = (kind: StackStageKind, name: string, entry: string, env: Record<string, string>): Promise<StageProcess> =>
    supervised(kind, name, entry, env)(track(start(name, entry, env)));
  try {
    log(
      `starting ${shards + 2} stages (candidate generation, ${shards} retrieval shard${shards === 1 ? "" : "s"}${options.ranking === false ? "" : ", ranking"}), logs in ${paths.logs}`,
    );
    const results = await Promise.allSettled([
      startSupervised("candidate_generation", STAGE_CANDIDATE_GENERATION, stageEntry("candidate-gen-service"), {
        MODEL_PATH: options.modelDir,
        ...extra("candidate_generation"),
      }),
      ...Array.from({ length: shards }, (_, shard) =>
        startSupervised("retrieval", retrievalStageName(shard), stageEntry("retrieval-service"), {
          MODEL_PATH: options.modelDir,
          INDEX_DIR: paths.index,
          SHARD_INDEX: String(shard),
          SHARD_COUNT: String(shards),
          ...extra("retrieval"),
        }),
      ),
      options.ranking === false
        ? Promise.resolve(undefined)
        : startSupervised("ranking", STAGE_RANKING, stageEntry("ranking-service"), { MODEL_PATH: options.modelDir, ...extra("ranking") }),
    ]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure !== undefined) throw failure.reason;
    const [cg, ...rest] = results.map((r) => (r as PromiseFulfilledResult<StageProcess | undefined>).value);
    const retrieval = rest.slice(0, shards) as StageProcess[];
    const ranking = rest[shards];
    // Slots in stack order (they were pushed as the stages came up): orchestrator appended last.
    const order = [cg!, ...retrieval, ...(ranking === undefined ? [] : [ranking])].map((p) => p.name);
    slots.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    const slotOf = (name: string): Slot => slots.find((slot) => slot.name === name)!;

    const orchestratorEnv: Record<string, string> = {
      GRPC_PORT: String(options.orchestratorPort ?? 0),
      CANDIDATE_GENERATION_ADDRESS: cg!.address,
      RETRIEVAL_ADDRESSES: retrieval.map((s) => s.address).join(","),
      // Without a ranking stage: an address nothing listens on (port 1 is never bound by us),
      // so every Rank fails fast and the orchestrator answers in merged order, flagged degraded.
      RANKING_ADDRESS: ranking?.address ?? "127.0.0.1:1",
      MODEL_PATH: options.modelDir,
      DATASET: options.dataset,
      USER_STORE: "embedded",
      USER_STORE_PATH: paths.users,
      DELETED_ITEMS_FILE: paths.deletedItems,
      DELETED_ITEMS_POLL_INTERVAL: "2s",
      ...extra("orchestrator"),
    };
    const startOrchestrator = (): Promise<StageProcess> => track(start(STAGE_ORCHESTRATOR, stageEntry("orchestrator"), orchestratorEnv));
    await supervised("orchestrator", STAGE_ORCHESTRATOR, stageEntry("orchestrator"), orchestratorEnv)(startOrchestrator());
    const orchestratorSlot = slotOf(STAGE_ORCHESTRATOR);
    // A restart keeps the port the first process got, so clients can reconnect to it.
    orchestratorEnv["GRPC_PORT"] = String(orchestratorSlot.current.port);
    const current = (): StageProcess[] => slots.map((slot) => slot.current);

    let stopping: Promise<void> | undefined;
    const stack: Stack = {
      get candidateGeneration() {
        return slotOf(STAGE_CANDIDATE_GENERATION).current;
      },
      get retrieval() {
        return retrieval.map((s) => slotOf(s.name).current);
      },
      get ranking() {
        return ranking === undefined ? undefined : slotOf(STAGE_RANKING).current;
      },
      get orchestrator() {
        return orchestratorSlot.current;
      },
      stateDir: options.stateDir,
      deletedItemsFile: paths.deletedItems,
      stages: current,
      status: () =>
        slots.map((slot) => ({ name: slot.name, kind: slot.kind, process: slot.current, restarts: slot.restarts, state: slot.state })),
      async restartOrchestrator() {
        if (options.supervise === true)
          throw new Error("restartOrchestrator: the stack is supervised (a dead orchestrator is restarted by itself)");
        if (!orchestratorSlot.current.hasExited())
          throw new Error("restartOrchestrator: the orchestrator is still running (stop or kill it first)");
        orchestratorSlot.current = await startOrchestrator();
        orchestratorSlot.restarts += 1;
        return orchestratorSlot.current;
      },
      stop(graceMs = 10_000) {
        stopRequested = true;
        // A restart under way stops waiting for its process and stops it.
        stopController.abort();
        stopping ??= (async () => {
          await orchestratorSlot.current.stop(graceMs);
          await Promise.all(
            current()
              .filter((s) => s !== orchestratorSlot.current)
              .map((s) => s.stop(graceMs)),
          );
          process.off("exit", onExit);
        })();
        return stopping;
      },
    };
    return stack;
  } catch (error) {
    stopRequested = true;
    stopController.abort();
    await Promise.all(started.map((s) => s.stop(2000)));
    process.off("exit", onExit);
    throw error;
  } finally {
    stopWatchingSignals();
  }
}
