import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBundle, saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset, Rng, trainingRows } from "@recsys/data";
import { replayExamples } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run as evaluate } from "./commands/evaluate.js";
import { run as trainRanker } from "./commands/train-ranker.js";
import { run as trainSession } from "./commands/train-session.js";
import { createSessionPipelineSources, loadBundleSession } from "./session-pipeline.js";

/**
 * A planted order pattern only a sequence model can read: groups of four items {x, y, z1, z2};
 * a user who watches x then y watches z1 next, one who watches y then x watches z2. z1 and z2 are
 * co-watched with x and y equally often, so co-watch, popularity and the order-free history
 * features cannot tell them apart; the session model can. Each user goes through three groups
 * (distinct), one triple after the other: the test item is the third of the last triple.
 */
async function writePlanted(dir: string): Promise<void> {
  const rng = new Rng(7, 1);
  const groups = 8;
  const users = 320;
  const lines = ["user_id,item_id,timestamp"];
  for (let u = 0; u < users; u++) {
    const picked: number[] = [];
    while (picked.length < 3) {
      const g = rng.int(groups);
      if (!picked.includes(g)) picked.push(g);
    }
    let t = 1_700_000_000 + u * 37;
    for (const g of picked) {
      const forward = rng.int(2) === 0;
      const triple = forward ? [`x${g}`, `y${g}`, `z${g}a`] : [`y${g}`, `x${g}`, `z${g}b`];
      for (const item of triple) {
        lines.push(`u${u},${item},${t}`);
        t += 600;
      }
    }
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "events.csv"), `${lines.join("\n")}\n`);
}

let root = "";
let spec = "";

async function capture(
  command: (argv: string[]) => Promise<number>,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await command(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

beforeAll(async () => {
  await initBackend({ log: null });
  root = await mkdtemp(join(tmpdir(), "recsys-session-ranker-"));
  await writePlanted(join(root, "data"));
  spec = `events:${join(root, "data")}`;
  const dataset = await loadDataset(spec);
  await saveBundle(join(root, "cg"), await trainCandidateGen(dataset, { holdout: "test", maxSteps: 20 }));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys train-ranker behind the bundle's session model", () => {
  it("trains the ranker behind the session source, records it, and ranks the planted next item better than the ranker without it", async () => {
    const dir = join(root, "cg");
    const session = await capture(trainSession, ["--dataset", spec, "--model", dir, "--epochs", "15", "--seed", "1"]);
    expect(session.code, session.stderr).toBe(0);
    const small = ["--epochs", "2", "--budget", "10", "--merged-size", "20", "--seed", "1"];
    const without = await capture(trainRanker, ["--dataset", spec, "--model", dir, "--no-session", ...small]);
    expect(without.code, without.stderr).toBe(0);
    expect(without.stdout).toContain(join(dir, "ranker-nosession"));
    const behind = await capture(trainRanker, ["--dataset", spec, "--model", dir, ...small]);
    expect(behind.code, behind.stderr).toBe(0);
    expect(behind.stderr).toMatch(/session source: the bundle's sasrec session model/);

    // The manifests record the sources; the session model is named in the one trained behind it.
    const read = async (sub: string): Promise<Record<string, any>> => JSON.parse(await readFile(join(dir, sub, "manifest.json"), "utf8"));
    const sessionManifest = await read("session");
    const main = await read("ranker");
    const old = await read("ranker-nosession");
    expect(main.space.sources).toContain("session");
    expect(main.sessionModel).toEqual({ kind: "sasrec", savedAt: sessionManifest.savedAt });
    expect(old.space.sources).not.toContain("session");
    expect(old.sessionModel).toBeUndefined();
    expect(main.space.sources.filter((s: string) => s !== "session")).toEqual(old.space.sources);

    const r = await capture(evaluate, ["--dataset", spec, "--model", dir, "--protocols", "lastout", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const section = JSON.parse(r.stdout).protocols.lastout as Record<string, any>;
    expect(section.pipeline.ranker.sources).toEqual(old.space.sources);
    expect(section.pipeline.session_ranker.sources).toContain("session");
    const metric = (name: string, m: string): number => section.models[name].metrics[m] as number;
    // The session model alone reads the order: it finds the planted item.
    expect(metric("session_model", "ndcg@10")).toBeGreaterThan(0.8);
    // Both pipelines retrieve it; only the ranker trained behind the session source puts it first.
    expect(section.pipeline.sources.session.recall).toBeGreaterThan(0.9);
    const behindNdcg = metric("pipeline_with_session", "ndcg@10");
    const withoutNdcg = metric("pipeline_with_session_nosession_ranker", "ndcg@10");
    expect(behindNdcg).toBeGreaterThan(withoutNdcg + 0.1);
    expect(metric("pipeline_with_session", "mrr")).toBeGreaterThan(metric("pipeline", "mrr") + 0.1);
    const paired = section.comparisons.find(
      (c: Record<string, any>) =>
        c.a === "pipeline_with_session" && c.b === "pipeline_with_session_nosession_ranker" && c.metric === "ndcg@10",
    );
    expect(paired).toBeDefined();

    // A session model retrained after the ranker: evaluate refuses the ranker trained behind the old one.
    const sessionPath = join(dir, "session", "manifest.json");
    const original = await readFile(sessionPath, "utf8");
    await writeFile(sessionPath, JSON.stringify({ ...sessionManifest, savedAt: "2000-01-01T00:00:00.000Z" }));
    try {
      await expect(capture(evaluate, ["--dataset", spec, "--model", dir, "--protocols", "lastout"])).rejects.toThrow(
        /was trained behind the session model .* retrain it with recsys train-ranker/,
      );
    } finally {
      await writeFile(sessionPath, original);
    }
  }, 600_000);

  it("replays the session source as it serves: the state of each example's earlier rows only", async () => {
    const dir = join(root, "cg");
    const dataset = await loadDataset(spec);
    const bundle = await loadBundle(dir);
    const loaded = await loadBundleSession(dir, dataset, bundle);
    expect(loaded).not.toBeNull();
    const model = loaded!.model;
    try {
      const settings = { budget: 10, mergedSize: 20 };
      const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
      const replayed = createSessionPipelineSources(dataset, bundle, settings, model);
      const served = createSessionPipelineSources(dataset, bundle, settings, model).source("session")!;
      let checked = 0;
      for (const ex of replayExamples(dataset, replayed, { rows, budget: settings.budget })) {
        if (ex.user % 40 !== 0) continue;
        // Every history row is strictly earlier than the example (the planted times are distinct).
        const userRows = Array.from(rows).filter((row) => dataset.events.user[row] === ex.user);
        for (const row of userRows) {
          const before = dataset.events.timestamp[row]! < ex.asOf;
          expect(ex.history.includes(dataset.events.item[row]!)).toBe(before);
        }
        const fresh = served.candidates({ user: ex.user, history: ex.history, asOf: ex.asOf, budget: settings.budget });
        const got = ex.results.find((s) => s.source === "session")!;
        expect(got.candidates.map((c) => [c.item, c.score])).toEqual(fresh.candidates.map((c) => [c.item, c.score]));
        checked++;
      }
      expect(checked).toBeGreaterThan(20);
    } finally {
      model.dispose();
      bundle.dispose();
    }
  }, 120_000);
});
