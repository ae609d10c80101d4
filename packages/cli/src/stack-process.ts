/**
 * One stage of the stack as a child process: `node <entry>` with its own environment, stdout and
 * stderr appended to a log file, on loopback ports given to it (GRPC_PORT / METRICS_PORT "0" or
 * absent: free ports picked here), started once its gRPC health check answers SERVING. Stopping
 * sends SIGTERM (the stages drain and exit 0) and SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { checkHealth } from "@recsys/runtime";

export interface StageProcessOptions {
  /** Display name, e.g. "retrieval/shard-0". */
  readonly name: string;
  /** The stage's main module (absolute path). */
  readonly entry: string;
  /** Environment variables of the stage (added to a minimal inherited environment). */
  readonly env: Readonly<Record<string, string>>;
  /** Log file (appended to). */
  readonly logFile: string;
  /** Longest wait for the stage to bind and answer SERVING (index builds can take minutes). */
  readonly startTimeoutMs?: number;
  /** Called about every minute while waiting, with the time waited so far. */
  readonly onWaiting?: (name: string, waitedMs: number) => void;
  /** Extra node flags, e.g. ["--max-old-space-size=4096"]. */
  readonly nodeArgs?: readonly string[];
  /** Aborted: stop waiting, stop the process and reject (the stack is being stopped). */
  readonly signal?: AbortSignal;
}

export interface StageProcess {
  readonly name: string;
  readonly pid: number;
  /** 127.0.0.1:<bound gRPC port>. */
  readonly address: string;
  readonly port: number;
  readonly metricsPort: number;
  /** http://127.0.0.1:<metrics port>/metrics */
  readonly metricsUrl: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 10 s); resolves when it has exited. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL (a crash); resolves when it has exited. */
  kill(): Promise<number | string>;
}

/** The environment every stage inherits: enough to run node, nothing of the caller's config. */
function baseEnvironment(): Record<string, string> {
  const keep = ["PATH", "HOME", "TMPDIR", "LANG", "TZ", "NODE_OPTIONS", "RECSYS_TF_BACKEND"];
  const out: Record<string, string> = {};
  for (const key of keep) {
    const value = process.env[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Free loopback ports, chosen by the OS (all bound at once so they differ, then released). A
 * stage is given its ports explicitly: nothing has to be read back from its logs, whatever
 * its LOG_LEVEL.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolvePromise, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolvePromise(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolvePromise) => server.close(() => resolvePromise()))));
  return ports;
}

/** The last `lines` lines of a log file, for error messages. */
export async function logTail(file: string, lines = 15): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Every stage process this process spawned that has not exited yet (serving or still starting). */
const spawnedStages = new Set<ChildProcess>();

/**
 * Stops every stage process this process spawned, serving or still starting: SIGTERM, then SIGKILL
 * after `graceMs` (a stage still loading its model dies at SIGTERM; a stopped one only at SIGKILL).
 */
export async function killSpawnedStages(graceMs: number): Promise<void> {
  const children = [...spawnedStages];
  const gone = children.map(
    (child) =>
      new Promise<void>((resolve) =>
        child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
      ),
  );
  for (const child of children) child.kill("SIGTERM");
  const timer = setTimeout(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }, graceMs);
  await Promise.all(gone);
  clearTimeout(timer);
}

/** Starts a stage and resolves once it serves (health SERVING), or rejects with its log tail. */
export async function startStageProcess(options: StageProcessOptions): Promise<StageProcess> {
  const { name, logFile } = options;
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const wanted = [options.env["GRPC_PORT"], options.env["METRICS_PORT"]].map((p) => (p === undefined || p === "" ? 0 : Number(p)));
  const picked = await freePorts(wanted.filter((p) => p === 0).length);
  const [port, metricsPort] = wanted.map((p) => (p === 0 ? picked.shift()! : p)) as [number, number];
  const address = `127.0.0.1:${port}`;
  const log = await open(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
      env: { ...baseEnvironment(), ...options.env, GRPC_PORT: String(port), METRICS_PORT: String(metricsPort) },
      stdio: ["ignore", log.fd, log.fd],
      // Own process group: a terminal's Ctrl-C reaches only the parent, which stops the stages
      // in order.
      detached: true,
    });
  } finally {
    await log.close();
  }
  spawnedStages.add(child);
  let exitedWith: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      spawnedStages.delete(child);
      exitedWith = code ?? signal ?? "unknown";
      resolve(exitedWith);
    });
    child.once("error", (error) => {
      spawnedStages.delete(child);
      exitedWith = `spawn error: ${error.message}`;
      resolve(exitedWith);
    });
  });
  const pid = child.pid ?? -1;

  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (exitedWith !== undefined) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  const stop = async (graceMs = 10_000): Promise<number | string> => {
    await kill("SIGTERM");
    const timer = setTimeout(() => void kill("SIGKILL"), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const started = Date.now();
  let nextNotice = started + 60_000;
  try {
    for (;;) {
      if (options.signal?.aborted === true) throw new Error(`${name}: start abandoned (the stack is stopping)`);
      if (exitedWith !== undefined) {
        throw new Error(`${name} exited (${exitedWith}) before serving; the end of ${logFile}:\n${await logTail(logFile)}`);
      }
      if (Date.now() - started > startTimeoutMs) {
        throw new Error(
          `${name} did not serve within ${Math.round(startTimeoutMs / 1000)} s; the end of ${logFile}:\n${await logTail(logFile)}`,
        );
      }
      if (Date.now() >= nextNotice) {
        options.onWaiting?.(name, Date.now() - started);
        nextNotice += 60_000;
      }
      // UNAVAILABLE until it binds (a stage binds once its model and index are loaded).
      const health = await checkHealth(address, { timeoutMs: 1000 }).catch(() => undefined);
      if (health === "SERVING") break;
      await sleep(200);
    }
  } catch (error) {
    await stop(2000);
    throw error;
  }
  return {
    name,
    pid,
    address,
    port,
    metricsPort,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    logFile,
    child,
    exited,
    hasExited: () => exitedWith !== undefined,
    stop,
    kill: async () => {
      await kill("SIGKILL");
      return exited;
    },
  };
}
