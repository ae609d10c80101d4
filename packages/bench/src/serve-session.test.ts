/**
 * `npm run bench -- serve --anonymous` end to end on a small catalogue (the benchmark itself runs
 * at 1M items): the served bundle gets a session model, every request is an anonymous session,
 * the requests succeed, and the session source ran in each of them and nominated candidates.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runServeBench } from "./test-helpers.js";
import { loadDataset } from "@recsys/data";
import { anonymousSessions, sessionSourceSkipped, sessionSourceUse } from "./serve-bench.js";
import { prng } from "./serve-load.js";

let cache: string | undefined;

afterAll(async () => {
  if (cache !== undefined) await rm(cache, { recursive: true, force: true });
});

const bench = runServeBench;

describe("bench serve --anonymous", () => {
  it("serves anonymous sessions from a bundle with a session model, the session source in every request", async () => {
    cache = await mkdtemp(join(tmpdir(), "bench-serve-anonymous-"));
    const { code, stdout, stderr } = await bench([
      "--json",
      "--anonymous",
      "--items",
      "3000",
      "--users",
      "200",
      "--requests",
      "40",
      "--rate",
      "40",
      "--sequential",
      "10",
      "--in-process",
      "0",
      "--ann-queries",
      "0",
      "--no-ann-clustered",
      "--curve",
      "0",
      "--cache",
      cache,
    ]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as Record<string, unknown>;
    expect(report["anonymous"]).toBe(true);
    expect(report["items"]).toBe(3000);
    expect(report["requests"]).toBe(40);
    expect(report["errors"]).toBe(0);
    expect(report["p99_ms"] as number).toBeGreaterThan(0);
    const session = report["session_source"] as {
      requests: number;
      candidates_per_request: number;
      answers: number;
      answers_with_session_items: number;
    };
    expect(session.answers).toBe(40);
    expect(session.requests).toBeGreaterThanOrEqual(40);
    expect(session.candidates_per_request).toBeGreaterThan(0);
    expect(session.answers_with_session_items).toBeGreaterThan(0);
    // Anonymous: no candidate generation or retrieval call, the ranker still ranks.
    const stages = report["stages"] as Record<string, { count: number }>;
    expect(stages["candidate_generation"]).toBeUndefined();
    expect(stages["retrieval"]).toBeUndefined();
    expect(stages["ranking"]?.count).toBe(40);
    const hops = report["hops"] as { sequential: Array<{ hop: string }> };
    expect(hops.sequential.map((h) => h.hop)).toEqual(["Recommend", "Rank"]);
    for (const stage of ["orchestrator", "ranking", "load generator"])
      expect((report["cpu_ms_per_request"] as Record<string, number>)[stage], stage).toBeGreaterThan(0);
    // The session model is in the served sibling bundle, not in the logged-in benchmark's bundle.
    const [run] = (await readdir(cache)).filter((name) => existsSync(join(cache!, name, "bundle")));
    expect(run).toBeDefined();
    expect(existsSync(join(cache, run!, "bundle-session", "session", "manifest.json"))).toBe(true);
    expect(existsSync(join(cache, run!, "bundle-session", "session", "weights.f32"))).toBe(true);
    expect(existsSync(join(cache, run!, "bundle", "session"))).toBe(false);
  }, 300_000);
});

describe("sessionSourceUse", () => {
  const metrics = (count: number, sum: number): string =>
    [
      `recsys_orchestrator_candidates_sum{source="popular"} 900`,
      `recsys_orchestrator_candidates_count{source="popular"} 9`,
      `recsys_orchestrator_candidates_sum{source="session"} ${sum}`,
      `recsys_orchestrator_candidates_count{source="session"} ${count}`,
    ].join("\n");
  const answer = (...sources: string[][]) =>
    ({ items: sources.map((names) => ({ provenance: names.map((sourceName) => ({ sourceName })) })) }) as never;

  it("counts the requests the session source ran in between two scrapes and the answers holding its items", () => {
    const use = sessionSourceUse(metrics(5, 250), metrics(8, 400), [answer(["popular"], ["session", "co-watch"]), answer(["popular"])]);
    expect(use).toEqual({ requests: 3, candidates_per_request: 50, answers: 2, answers_with_session_items: 1 });
    expect(sessionSourceSkipped(use)).toBeUndefined();
  });

  it("flags a load whose answered requests did not all run the session source, or where it nominated nothing", () => {
    const none = sessionSourceUse("", metrics(0, 0).replace(/.*session.*\n?/g, ""), [answer(["popular"])]);
    expect(none.requests).toBe(0);
    expect(sessionSourceSkipped(none)).toMatch(/ran in 0 of the 1 answered/);
    expect(sessionSourceSkipped({ requests: 4, candidates_per_request: 0, answers: 4, answers_with_session_items: 0 })).toMatch(
      /nominated no candidate/,
    );
  });
});

describe("anonymousSessions", () => {
  it("draws sessions of 1-5 items, each the latest watches of one user, oldest first", async () => {
    const dataset = await loadDataset("synthetic:users=60,items=300,events=6,impressions=0,seed=3");
    const histories = new Map<string, string[]>();
    for (let row = 0; row < dataset.events.user.length; row++) {
      const key = String(dataset.events.user[row]);
      const list = histories.get(key) ?? [];
      list.push(dataset.items.ids[dataset.events.item[row]!]!);
      histories.set(key, list);
    }
    const tails = [...histories.values()].map((h) => h.join(" "));
    const sessions = anonymousSessions(dataset, 200, prng(1));
    expect(sessions).toHaveLength(200);
    const lengths = new Set(sessions.map((s) => s.length));
    expect(Math.min(...lengths)).toBe(1);
    expect(Math.max(...lengths)).toBe(5);
    for (const session of sessions)
      expect(
        tails.some((h) => ` ${h}`.endsWith(` ${session.join(" ")}`)),
        session.join(" "),
      ).toBe(true);
  });
});
