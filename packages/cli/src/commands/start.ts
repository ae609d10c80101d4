/**
 * `recsys start [--dataset SPEC] [--dir DIR] [--shards N] [--port P] [--no-serve] [...]` — the
 * README's main job (`npm start`):
 *
 * 1. loads the dataset (default: the embedded synthetic one, at the size START_SYNTHETIC_SPEC so
 *    that a first start trains in a couple of minutes on two cores);
 * 2. trains the candidate generator and the ranker behind it into `<dir>/<kind>-<fingerprint>/bundle`,
 *    or reuses the bundle already there (same dataset fingerprint and holdout; or, to serve, the
 *    bundle `recsys retrain` published there, trained on the stack's own store), and evaluates a
 *    newly trained one with protocol lastout next to the baselines;
 * 3. starts the four stages as separate processes on loopback (candidate generation, N retrieval
 *    shards, ranking, orchestrator; logs in `<run>/logs/`), waits for health SERVING on each,
 *    prints a few users' recommendations with their reasons, the addresses, /metrics URLs and the
 *    `recsys recommend` command, writes `<dir>/stack.json` for the client commands, and serves
 *    until Ctrl-C / SIGTERM, which stops every stage (orchestrator first). A stage that dies on
 *    its own (the orchestrator too) is restarted with backoff, said on stderr and counted in
 *    stack.json (`recsys status` shows it).
 *
 * `--no-serve`: train (or reuse), evaluate, exit.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { isAbsolute, join, resolve } from "node:path";
import { loadDataset, type Dataset } from "@recsys/data";
import { RecommenderService } from "@recsys/gen";
import { connect } from "@recsys/runtime";
import { parseArgs, UsageError } from "../args.js";
import { formatColumns, formatRecommendations } from "../stack-format.js";
import { launchStack, stackPaths, type Stack, type StageEvent } from "../stack-launch.js";
import { ensureStackModel, type Holdout, type StackModelSettings } from "../stack-model.js";
import { killSpawnedStages, logTail } from "../stack-process.js";
import { DEFAULT_RUN_ROOT, STATE_FILE, removeStackState, writeStackState, type StackState } from "../stack-state.js";
import { formatDuration } from "../train-progress.js";
import { run as evaluate } from "./evaluate.js";

/**
 * The synthetic dataset `npm start` uses without --dataset: the generator's defaults at 2,000
 * users and 1,000 items (~80k watches). The full default (`synthetic:`, 5,000 users, 2,000 items,
 * ~194k watches) takes over 10 minutes to train on the two shared cores of the development
 * machine; pass `--dataset synthetic:` for it.
 */
export const START_SYNTHETIC_SPEC = "synthetic:users=2000,items=1000";

/** Training settings of `recsys start`: small and quick, the serving path is the point. */
export function startModelSettings(epochs: number, rankerEpochs: number, seed: number, holdout: Holdout): StackModelSettings {
  return {
    holdout,
    candidateGen: { epochs, seed },
    ranker: {
      pipeline: { budget: 50, mergedSize: 150 },
      train: { epochs: rankerEpochs, maxExamplesPerUser: 10, seed },
    },
  };
}

const USAGE =
  "usage: recsys start [--dataset SPEC] [--dir DIR] [--shards N] [--port P] [--no-serve] [--retrain]\n" +
  "                    [--epochs N] [--ranker-epochs N] [--seed S] [--holdout test|none] [--users N] [--count N]";

function log(message: string): void {
  process.stderr.write(`recsys start: ${message}\n`);
}

/** `ml100k:../x` → `ml100k:/abs/x` (the stages run with another working directory). */
export function absoluteSpec(spec: string, cwd = process.cwd()): string {
  const colon = spec.indexOf(":");
  if (colon < 0) return spec;
  const kind = spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  if ((kind === "ml100k" || kind === "events") && rest !== "" && !isAbsolute(rest)) return `${kind}:${resolve(cwd, rest)}`;
  return spec;
}

/** True when 127.0.0.1:port can be bound now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once("error", () => resolvePromise(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolvePromise(true)));
  });
}

/**
 * Writes the catalogue's titles for `recsys recommend` (item id → title) and returns them;
 * undefined for very large catalogues or when no item has a title.
 */
async function writeTitles(dataset: Dataset, file: string): Promise<Map<string, string> | undefined> {
  const { ids, titles } = dataset.items;
  if (ids.length > 200_000) return undefined;
  const out = new Map<string, string>();
  for (let i = 0; i < ids.length; i++) if (titles[i] !== "") out.set(ids[i]!, titles[i]!);
  if (out.size === 0) return undefined;
  await writeFile(file, JSON.stringify(Object.fromEntries(out)));
  return out;
}

async function printSamples(
  stack: Stack,
  dataset: Dataset,
  users: number,
  count: number,
  titles: Map<string, string> | undefined,
): Promise<void> {
  const client = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 10_000 });
  try {
    // The first calls open the orchestrator's channels to every stage and warm the code up; on a
    // busy machine they can exceed the stages' budgets and come back degraded. Not shown.
    const sample = dataset.users.ids.slice(0, users);
    for (const userId of [...sample, ...sample]) await client.recommend({ userId, count }).catch(() => undefined);
    for (const userId of sample) {
      const started = performance.now();
      const response = await client.recommend({ userId, count });
      process.stdout.write(
        `\n${formatRecommendations(userId, response, { elapsedMs: performance.now() - started, ...(titles === undefined ? {} : { titles }) })}`,
      );
    }
  } finally {
    client.$close();
  }
}

function printStack(stack: Stack, statePath: string, sampleUser: string): void {
  const rows = stack.stages().map((s) => [s.name, s.address, s.metricsUrl, String(s.pid), s.logFile]);
  // The client commands read the default state file; another one must be named.
  const state = resolve(statePath) === resolve(DEFAULT_RUN_ROOT, STATE_FILE) ? "" : ` --state ${statePath}`;
  process.stdout.write(`\n${formatColumns(["stage", "gRPC", "metrics", "pid", "log"], rows)}`);
  process.stdout.write(
    `\nserving; the public API is recsys.v1.RecommenderService at ${stack.orchestrator.address} (state in ${statePath}). Try:\n` +
      `  npm run recsys -- recommend --user ${sampleUser} --count 10${state}\n` +
      `  npm run recsys -- event --user ${sampleUser} --watch <item id>${state}\n` +
      `  grpcurl -plaintext -d '{"user_id":"${sampleUser}","count":5}' ${stack.orchestrator.address} recsys.v1.RecommenderService/Recommend\n` +
      `  grpcurl -plaintext -d '{"items":[{"item_id":"new-1","title":"A new upload"}]}' ${stack.orchestrator.address} recsys.v1.CatalogueService/UpsertItems\n` +
      `  grpcurl -plaintext -d '{"item_ids":["new-1"]}' ${stack.orchestrator.address} recsys.v1.CatalogueService/DeleteItems\n` +
      `  npm run recsys -- retrain   (trains on what this stack logged, gates, publishes; every stage picks it up)\n` +
      `Ctrl-C stops every stage.\n`,
  );
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string", default: START_SYNTHETIC_SPEC },
      dir: { type: "string", default: DEFAULT_RUN_ROOT },
      shards: { type: "number", default: 2 },
      port: { type: "number", default: 50051 },
      "no-serve": { type: "boolean", default: false },
      retrain: { type: "boolean", default: false },
      evaluate: { type: "boolean" },
      epochs: { type: "number", default: 3 },
      "ranker-epochs": { type: "number", default: 2 },
      seed: { type: "number", default: 1 },
      holdout: { type: "string", default: "test" },
      users: { type: "number", default: 3 },
      count: { type: "number", default: 5 },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys start: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const usageError = (message: string): number => {
    process.stderr.write(`recsys start: ${message}\n${USAGE}\n`);
    return 2;
  };
  const holdout = String(args["holdout"]);
  if (holdout !== "test" && holdout !== "none") return usageError(`--holdout must be test or none, got '${holdout}'`);
  for (const name of ["shards", "epochs", "ranker-epochs", "users", "count"] as const) {
    const v = Number(args[name]);
    if (!Number.isInteger(v) || v < (name === "users" ? 0 : 1))
      return usageError(`--${name} must be a ${name === "users" ? "non-negative" : "positive"} integer, got ${v}`);
  }
  const port = Number(args["port"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return usageError(`--port must be 0..65535, got ${port}`);
  const serve = args["no-serve"] !== true;
  const spec = absoluteSpec(String(args["dataset"]));
  const root = resolve(String(args["dir"]));
  const started = performance.now();

  const dataset = await loadDataset(spec);
  log(`loaded ${dataset.spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} events`);
  for (const w of dataset.report.warnings) log(`warning: ${w}`);
  const runDir = join(root, `${spec.split(":")[0]}-${dataset.fingerprint.slice(0, 8)}`);
  await mkdir(runDir, { recursive: true });
  const modelDir = join(runDir, "bundle");
  const settings = startModelSettings(Number(args["epochs"]), Number(args["ranker-epochs"]), Number(args["seed"]), holdout);
  // To serve, a bundle `recsys retrain` published on this stack's store is served as it is (the
  // stores are seeded already: the orchestrator then does not load DATASET).
  const model = await ensureStackModel(dataset, modelDir, settings, {
    retrain: args["retrain"] === true,
    ...(serve ? { storeDir: stackPaths(runDir).users } : {}),
    log,
  });
  if (!model.reused) log(`trained both models in ${formatDuration(model.seconds)}`);

  const wantEvaluate = typeof args["evaluate"] === "boolean" ? args["evaluate"] : !serve || !model.reused;
  if (wantEvaluate) {
    if (holdout === "none") log("not evaluating: --holdout none trained on every event (nothing left to score)");
    else {
      log(`== recsys evaluate --dataset ${spec} --model ${modelDir}`);
      const code = await evaluate(["--dataset", spec, "--model", modelDir]);
      if (code !== 0) return code;
    }
  }
  if (!serve) return 0;

  let orchestratorPort = port;
  if (port !== 0 && !(await portFree(port))) {
    log(`port ${port} is in use: the orchestrator takes any free port instead (see the table below)`);
    orchestratorPort = 0;
  }
  const titlesFile = join(runDir, "titles.json");
  const titles = await writeTitles(dataset, titlesFile);
  const statePath = join(root, STATE_FILE);
  let writeState: () => Promise<void> = async () => undefined;
  const onStageEvent = (event: StageEvent): void => {
    void (async () => {
      switch (event.type) {
        case "exited":
          log(
            `${event.stage} (pid ${event.pid}) exited unexpectedly (${event.code}); restarting it in ${(event.restartInMs / 1000).toFixed(1)} s. ` +
              `The end of ${event.logFile}:\n${await logTail(event.logFile)}`,
          );
          break;
        case "restarted":
          log(`${event.stage} restarted: serving again on ${event.address} (pid ${event.pid}; restart ${event.restarts})`);
          break;
        case "restart-failed":
          log(`${event.stage} failed to restart (${event.error}); trying again in ${(event.restartInMs / 1000).toFixed(1)} s`);
          break;
      }
      await writeState().catch(() => undefined);
    })();
  };
  const stack = await launchStack({
    supervise: true,
    onStageEvent,
    modelDir,
    dataset: spec,
    stateDir: runDir,
    shards: Number(args["shards"]),
    orchestratorPort,
    log,
  });
  let stopping = false;
  const stopAll = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`${why}: stopping every stage`);
    await stack.stop();
    await removeStackState(statePath);
    log("stopped");
  };
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolvePromise) => (finish = resolvePromise));
  // From the moment the stages run, a signal stops them: the first one gracefully; another one
  // while they stop (an impatient Ctrl-C, or npm and a supervisor both passing SIGTERM on) kills
  // every stage at once. (With `once`, the second signal's default action ended this process and
  // left the stages, in their own process groups, running; before the handlers were installed, so
  // did a signal during the sample recommendations.)
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      // Exit 130 when a second signal came meanwhile, whichever path ends first (the kill lets
      // the graceful stop finish too).
      void stopAll(signal).then(() => finish(signals > 1 ? 130 : 0));
      return;
    }
    log(`${signal} again: killing every stage now`);
    void killSpawnedStages(0)
      .then(() => removeStackState(statePath))
      .finally(() => finish(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  const startedAt = new Date().toISOString();
  const writeOnce = async (): Promise<void> => {
    if (stopping) return;
    const state: StackState = {
      address: stack.orchestrator.address,
      pid: process.pid,
      startedAt,
      dataset: spec,
      modelDir,
      runDir,
      ...(titles === undefined ? {} : { titlesFile }),
      stages: stack.status().map(({ process: s, restarts, state: stageState }) => ({
        name: s.name,
        address: s.address,
        metricsUrl: s.metricsUrl,
        pid: s.pid,
        logFile: s.logFile,
        restarts,
        state: stageState,
      })),
    };
    await writeStackState(statePath, state);
  };
  // One write at a time (restart events can come together; they share the temporary file).
  let writing = Promise.resolve();
  writeState = () => (writing = writing.catch(() => undefined).then(writeOnce));
  try {
    await writeState();
    log(`all stages serving (${formatDuration((performance.now() - started) / 1000)} since start)`);
    if (Number(args["users"]) > 0) await printSamples(stack, dataset, Number(args["users"]), Number(args["count"]), titles);
    printStack(stack, statePath, dataset.users.ids[0] ?? "1");
  } catch (error) {
    if (stopping) return finished; // a signal stopped the stack under the sample calls
    await stopAll("startup failed");
    throw error;
  }
  if (stopping) return finished;

  // A stage dying on its own is restarted by the launcher (onStageEvent says so); while it is down
  // the orchestrator answers without it, flagged degraded.
  return finished;
}
