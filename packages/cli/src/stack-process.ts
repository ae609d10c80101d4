/**
 * One stage of the stack as a child process: `node <entry>` with its own environment, stdout and
 * stderr appended to a log file, the bound ports read from the stage's "serving" log line (every
 * stage logs `{"msg":"serving","port":…,"metricsPort":…}` once bound, so GRPC_PORT=0 and
 * METRICS_PORT=0 work), then health SERVING asked over gRPC. Stopping sends SIGTERM (the stages
 * drain and exit 0) and SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { open, readFile, stat } from "node:fs/promises";
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
  /** Called about every 10 s while waiting, with the time waited so far. */
  readonly onWaiting?: (name: string, waitedMs: number) => void;
  /** Extra node flags, e.g. ["--max-old-space-size=4096"]. */
  readonly nodeArgs?: readonly string[];
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

interface ServingLine {
  readonly port: number;
  readonly metricsPort: number;
}

/** Finds the stage's `serving` log line in `text` (JSON lines, other output ignored). */
export function findServingLine(text: string): ServingLine | undefined {
  for (const line of text.split("\n")) {
    if (!line.includes('"serving"')) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: unknown; port?: unknown; metricsPort?: unknown };
      if (parsed.msg === "serving" && typeof parsed.port === "number" && typeof parsed.metricsPort === "number") {
        return { port: parsed.port, metricsPort: parsed.metricsPort };
      }
    } catch {
      // not a JSON line
    }
  }
  return undefined;
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

/** Starts a stage and resolves once it serves (health SERVING), or rejects with its log tail. */
export async function startStageProcess(options: StageProcessOptions): Promise<StageProcess> {
  const { name, logFile } = options;
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  // The log may already hold earlier runs: read only what this process writes.
  const offset = await stat(logFile).then(
    (s) => s.size,
    () => 0,
  );
  const log = await open(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
      env: { ...baseEnvironment(), ...options.env },
      stdio: ["ignore", log.fd, log.fd],
      // Own process group: a terminal's Ctrl-C reaches only the parent, which stops the stages
      // in order.
      detached: true,
    });
  } finally {
    await log.close();
  }
  let exitedWith: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedWith = code ?? signal ?? "unknown";
      resolve(exitedWith);
    });
    child.once("error", (error) => {
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
  let nextNotice = started + 10_000;
  let serving: ServingLine | undefined;
  try {
    while (serving === undefined) {
      if (exitedWith !== undefined) {
        throw new Error(`${name} exited (${exitedWith}) before serving; the end of ${logFile}:\n${await logTail(logFile)}`);
      }
      if (Date.now() - started > startTimeoutMs) {
        throw new Error(`${name} did not serve within ${Math.round(startTimeoutMs / 1000)} s; the end of ${logFile}:\n${await logTail(logFile)}`);
      }
      if (Date.now() >= nextNotice) {
        options.onWaiting?.(name, Date.now() - started);
        nextNotice += 10_000;
      }
      const text = await readFile(logFile, "utf8").then((t) => t.slice(offset), () => "");
      serving = findServingLine(text);
      if (serving === undefined) await sleep(100);
    }
    const address = `127.0.0.1:${serving.port}`;
    const health = await checkHealth(address, { timeoutMs: 5000 });
    if (health !== "SERVING") throw new Error(`${name} at ${address} answers health ${health}, not SERVING`);
  } catch (error) {
    await stop(2000);
    throw error;
  }
  return {
    name,
    pid,
    address: `127.0.0.1:${serving.port}`,
    port: serving.port,
    metricsPort: serving.metricsPort,
    metricsUrl: `http://127.0.0.1:${serving.metricsPort}/metrics`,
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
