import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { absoluteSpec } from "./commands/start.js";
import { freePorts } from "./stack-process.js";
import { readStackState, readTitles, removeStackState, resolveAddress, writeStackState, type StackState } from "./stack-state.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cli-stack-state-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function state(pid: number, extra: Partial<StackState> = {}): StackState {
  return {
    address: "127.0.0.1:50051",
    pid,
    startedAt: "2026-01-01T00:00:00Z",
    dataset: "synthetic:",
    modelDir: "/m",
    runDir: "/r",
    stages: [],
    ...extra,
  };
}

describe("the client commands' address", () => {
  it("takes --address, then RECSYS_ADDRESS, then a running stack's state file", async () => {
    const path = join(dir, "stack.json");
    await writeStackState(path, state(process.pid));
    expect((await resolveAddress("10.0.0.1:1", path, { RECSYS_ADDRESS: "10.0.0.2:2" })).address).toBe("10.0.0.1:1");
    expect((await resolveAddress(undefined, path, { RECSYS_ADDRESS: "10.0.0.2:2" })).address).toBe("10.0.0.2:2");
    const fromFile = await resolveAddress(undefined, path, {});
    expect(fromFile).toMatchObject({ address: "127.0.0.1:50051", from: path });
  });

  it("explains what to do when no stack runs", async () => {
    const path = join(dir, "stack.json");
    await expect(resolveAddress(undefined, path, {})).rejects.toThrow(/no running stack recorded in .*npm start.*--address/);
    // A pid that cannot be running (beyond Linux's pid_max).
    await writeStackState(path, state(2 ** 30));
    await expect(resolveAddress(undefined, path, {})).rejects.toThrow(/is not running any more/);
    await writeFile(path, "{ not json");
    await expect(readStackState(path)).rejects.toThrow(/not a stack state file/);
  });

  it("removes the state file only when it is this process's", async () => {
    const path = join(dir, "stack.json");
    await writeStackState(path, state(process.pid + 1));
    await removeStackState(path);
    expect(await readStackState(path)).toBeDefined();
    await writeStackState(path, state(process.pid));
    await removeStackState(path);
    expect(await readStackState(path)).toBeUndefined();
  });

  it("reads the titles the stack wrote", async () => {
    const titles = join(dir, "titles.json");
    await writeFile(titles, JSON.stringify({ "1": "Toy Story (1995)" }));
    expect((await readTitles(state(1, { titlesFile: titles })))?.get("1")).toBe("Toy Story (1995)");
    expect(await readTitles(state(1))).toBeUndefined();
  });
});

describe("recsys start helpers", () => {
  it("makes dataset paths absolute, leaves synthetic specs alone", () => {
    expect(absoluteSpec("ml100k:../shared/data/ml-100k", "/work/main")).toBe("ml100k:/work/shared/data/ml-100k");
    expect(absoluteSpec("events:/data/x", "/w")).toBe("events:/data/x");
    expect(absoluteSpec("synthetic:users=10", "/w")).toBe("synthetic:users=10");
  });

  it("picks distinct free ports", async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const port of ports) {
      await new Promise<void>((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
      });
    }
  });
});
