import { mkdtemp, rm, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDataset } from "@recsys/data";
import { afterAll, describe, expect, it } from "vitest";
import { exportEventsDir } from "./export-events.js";
import { runReference } from "./pytorch-reference.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("exportEventsDir", () => {
  it("writes a dataset that events: reads back with the same users, items, events and searches", async () => {
    const dir = await mkdtemp(join(tmpdir(), "export-events-"));
    dirs.push(dir);
    const original = await loadDataset("synthetic:users=60,items=300,seed=5");
    await exportEventsDir(original, dir);
    const back = await loadDataset(`events:${dir}`);
    expect(back.users.ids).toEqual(original.users.ids);
    expect(back.items.ids).toEqual(original.items.ids);
    expect(Array.from(back.events.user)).toEqual(Array.from(original.events.user));
    expect(Array.from(back.events.item)).toEqual(Array.from(original.events.item));
    expect(Array.from(back.events.timestamp)).toEqual(Array.from(original.events.timestamp));
    expect(back.searches.query).toEqual(original.searches.query);
    expect(Array.from(back.users.age)).toEqual(Array.from(original.users.age));
    expect(original.searches.query.length).toBeGreaterThan(0);
  });
});

describe("runReference", () => {
  const options = { data: "ml100k:/nowhere", batches: 2, warmup: 1, batchSize: 8, negatives: 5, threads: 1 };

  it("reports why when the interpreter cannot start (the bench then prints no ratio)", async () => {
    const r = await runReference({ ...options, python: "/nonexistent/python3" });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/nonexistent/);
  });

  it("names python3-torch when torch is missing, and reads the figures of a run that succeeds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fake-python-"));
    dirs.push(dir);
    const noTorch = join(dir, "no-torch");
    await writeFile(noTorch, "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n");
    await chmod(noTorch, 0o755);
    const missing = await runReference({ ...options, python: noTorch });
    expect(missing.ok).toBe(false);
    if (!missing.ok) expect(missing.reason).toMatch(/python3-torch/);
    const fake = join(dir, "fake");
    // Echoes the thread count it was given, to show the arguments are passed.
    await writeFile(
      fake,
      '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --threads ] && T=$2; shift; done\necho "{\\"engine\\":\\"fake\\",\\"examples_per_second\\":1234,\\"threads\\":$T,\\"ms_per_batch\\":2}"\n',
    );
    await chmod(fake, 0o755);
    const ok = await runReference({ ...options, threads: 2, python: fake });
    expect(ok.ok).toBe(true);
    if (ok.ok) {
      expect(ok.result.examples_per_second).toBe(1234);
      expect(ok.result.threads).toBe(2);
    }
  });
});
