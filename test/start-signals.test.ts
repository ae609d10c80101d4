/**
 * `recsys start` as a user runs it (a tiny synthetic dataset, every stage a process), then stopped
 * by signals: one SIGTERM stops every stage; a second one while it stops kills them, and no stage
 * outlives the command either way.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const MAIN = fileURLToPath(new URL("../packages/cli/dist/main.js", import.meta.url));
const DATASET = "synthetic:users=60,items=40,events=8,impressions=0,seed=5";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Whether `pid` runs (a zombie, exited but not yet reaped by whoever inherited it, does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Started {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | string | null>;
  /** Stage pids to kill if the test leaves them behind. */
  readonly stagePids: number[];
  output(): string;
}

/** Runs `recsys start` in a new directory (removed, with anything left running, after the test). */
async function spawnStart(): Promise<Started> {
  const dir = await mkdtemp(join(tmpdir(), "recsys-start-"));
  let output = "";
  const child = spawn(
    process.execPath,
    [MAIN, "start", "--dataset", DATASET, "--dir", dir, "--epochs", "1", "--ranker-epochs", "1", "--shards", "1", "--users", "0"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  const stagePids: number[] = [];
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const pid of stagePids) if (alive(pid)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, child, exited, stagePids, output: () => output };
}

/** Starts `recsys start`; resolves once all its stages serve, with their pids. */
async function startStack(): Promise<Started> {
  const started = await spawnStart();
  const { dir, child, stagePids, output } = started;
  const state = await waitFor(
    "the stack to serve",
    async () => {
      if (child.exitCode !== null) throw new Error(`recsys start exited ${child.exitCode}:\n${output()}`);
      const text = await readFile(join(dir, "stack.json"), "utf8").catch(() => undefined);
      return text === undefined ? undefined : (JSON.parse(text) as { stages: Array<{ pid: number }> });
    },
    120_000,
  );
  stagePids.push(...state.stages.map((stage) => stage.pid));
  return started;
}

/** Pids of the processes whose environment mentions `dir` (the stages get paths under it). */
function processesMentioning(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(dir)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids.filter(alive);
}

describe("recsys start and signals", () => {
  it("stops the stages already spawned when interrupted while they start", async () => {
    const { dir, child, exited, stagePids, output } = await spawnStart();
    // Hold one stage back (SIGSTOP) so that the start-up cannot finish, then interrupt it.
    const held = await waitFor(
      "a stage process",
      async () => {
        if (child.exitCode !== null) throw new Error(`recsys start exited ${child.exitCode}:\n${output()}`);
        return processesMentioning(dir)[0];
      },
      120_000,
    );
    stagePids.push(held);
    process.kill(held, "SIGSTOP");
    await waitFor("the other stages", async () => (processesMentioning(dir).length >= 3 ? true : undefined), 30_000);
    stagePids.push(...processesMentioning(dir).filter((pid) => pid !== held));
    expect(output()).not.toMatch(/all stages serving/);
    child.kill("SIGINT");
    expect(await exited, output()).toBe(130);
    expect(output()).toMatch(/SIGINT while the stages start: stopping them/);
    await waitFor(
      "every stage to be gone",
      async () => (stagePids.some(alive) || processesMentioning(dir).length > 0 ? undefined : true),
      10_000,
    );
  }, 300_000);

  it("stops every stage on SIGTERM, and kills them on a second SIGTERM during the stop", async () => {
    const first = await startStack();
    expect(first.stagePids).toHaveLength(4);
    expect(first.stagePids.every(alive)).toBe(true);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.stagePids.filter(alive)).toEqual([]);

    // A stage that does not stop (stopped itself here with SIGSTOP) holds the graceful stop up:
    // the second SIGTERM comes while the command waits for it.
    const second = await startStack();
    process.kill(second.stagePids[0]!, "SIGSTOP");
    second.child.kill("SIGTERM");
    await waitFor("the stop to begin", async () => (/SIGTERM: stopping every stage/.test(second.output()) ? true : undefined), 10_000);
    second.child.kill("SIGTERM");
    const code = await second.exited;
    expect(code, second.output()).toBe(130);
    expect(second.output()).toMatch(/SIGTERM again: killing every stage now/);
    await waitFor("the stages to be gone", async () => (second.stagePids.some(alive) ? undefined : true), 5000);
  }, 300_000);
});
