/**
 * The state file `recsys start` writes while it serves (`models/stack.json` by default), so that
 * `recsys recommend` and `recsys event` find the orchestrator without being told: its address,
 * every stage's address, metrics URL, pid and log, and where the item titles are.
 *
 * Address resolution of the client commands: `--address`, else `RECSYS_ADDRESS`, else the state
 * file (when the process it names is still running), else an error saying how to start a stack.
 */
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Where `recsys start` keeps its run directories and the state file. */
export const DEFAULT_RUN_ROOT = "models";
export const STATE_FILE = "stack.json";

export interface StackStateStage {
  readonly name: string;
  readonly address: string;
  readonly metricsUrl: string;
  readonly pid: number;
  readonly logFile: string;
  /** Times the launcher restarted it (absent in files written before supervision). */
  readonly restarts?: number;
  /** "restarting" while it is down and a restart is pending. */
  readonly state?: "serving" | "restarting";
}

export interface StackState {
  /** The orchestrator's address: what clients dial. */
  readonly address: string;
  /** Pid of `recsys start`. */
  readonly pid: number;
  readonly startedAt: string;
  readonly dataset: string;
  readonly modelDir: string;
  readonly runDir: string;
  /** JSON object item id → title, when written. */
  readonly titlesFile?: string;
  readonly stages: readonly StackStateStage[];
}

export function stateFilePath(runRoot = DEFAULT_RUN_ROOT): string {
  return join(runRoot, STATE_FILE);
}

export async function writeStackState(path: string, state: StackState): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, path);
}

export async function readStackState(path: string): Promise<StackState | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as StackState;
    if (typeof state.address !== "string" || typeof state.pid !== "number") throw new Error("missing address or pid");
    return state;
  } catch (error) {
    throw new Error(`${path} is not a stack state file (${(error as Error).message})`);
  }
}

/** Removes the state file if it still describes this process's stack. */
export async function removeStackState(path: string, pid = process.pid): Promise<void> {
  const state = await readStackState(path).catch(() => undefined);
  if (state !== undefined && state.pid === pid) await rm(path, { force: true });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface ResolvedAddress {
  readonly address: string;
  /** Where it came from: "--address", "RECSYS_ADDRESS" or the state file's path. */
  readonly from: string;
  readonly state?: StackState;
}

/** The orchestrator address a client command should dial (see the module comment). */
export async function resolveAddress(
  flag: string | undefined,
  statePath: string,
  environment: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedAddress> {
  const state = await readStackState(statePath).catch(() => undefined);
  if (flag !== undefined && flag !== "") return { address: flag, from: "--address", ...(state === undefined ? {} : { state }) };
  const fromEnv = environment["RECSYS_ADDRESS"];
  if (fromEnv !== undefined && fromEnv !== "")
    return { address: fromEnv, from: "RECSYS_ADDRESS", ...(state === undefined ? {} : { state }) };
  if (state === undefined) {
    throw new Error(
      `no orchestrator address: no running stack recorded in ${statePath}; start one with 'npm start', or pass --address HOST:PORT or set RECSYS_ADDRESS`,
    );
  }
  if (!processAlive(state.pid)) {
    throw new Error(
      `the stack recorded in ${statePath} (recsys start, pid ${state.pid}) is not running any more; start it with 'npm start', or pass --address HOST:PORT`,
    );
  }
  return { address: state.address, from: statePath, state };
}

/** Item titles written by `recsys start` (empty map when there are none). */
export async function readTitles(state: StackState | undefined): Promise<Map<string, string> | undefined> {
  if (state?.titlesFile === undefined) return undefined;
  try {
    const parsed = JSON.parse(await readFile(state.titlesFile, "utf8")) as Record<string, string>;
    return new Map(Object.entries(parsed));
  } catch {
    return undefined;
  }
}
