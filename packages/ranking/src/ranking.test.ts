import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { createStandardSources, datasetRequest, observeRows } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { loadRanker, rankerFromTraining, saveRanker } from "./bundle.js";
import { rankingCandidates, sourceItemStats } from "./dataset-inputs.js";
import { encodeCandidates, encodedRow } from "./encode.js";
import {
  buildRankingExamples,
  exampleCandidates,
  exampleContext,
  exampleCount,
  type ExampleOptions,
  type RankingExamples,
} from "./examples.js";
import { weightedLogisticLoss } from "./model.js";
import { MERGED_ORDER, runPipeline } from "./pipeline.js";
import { synthetic, withLaterActivity } from "./test-helpers.js";
import { fitRankingSpace, trainRanker } from "./trainer.js";
import type { RankingContext } from "./types.js";

beforeAll(async () => {
  await initBackend({ log: null });
});

const dataset = synthetic("users=300,items=250,events=25,impressions=60,seed=7");

describe("weightedLogisticLoss", () => {
  it("gives a positive its weight: weight T acts as T copies of the positive", () => {
    const grad = new Float32Array(2);
    const loss = weightedLogisticLoss([0, 0], [1, 0], [5, 1], grad);
    expect(loss).toBeCloseTo(Math.LN2, 12);
    expect(grad[0]).toBeCloseTo((5 * (0.5 - 1)) / 6, 7);
    expect(grad[1]).toBeCloseTo((1 * 0.5) / 6, 7);
    // Same loss and same total gradient on the positive's logit as five unit-weight copies.
    const z = [0.7, -0.3];
    const weighted = weightedLogisticLoss(z, [1, 0], [5, 1], grad);
    const copies = new Float32Array(6);
    const copied = weightedLogisticLoss([0.7, 0.7, 0.7, 0.7, 0.7, -0.3], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], copies);
    expect(weighted).toBeCloseTo(copied, 12);
    expect(grad[0]).toBeCloseTo(copies[0]! * 5, 6);
    expect(grad[1]).toBeCloseTo(copies[5]!, 7);
  });

  it("matches finite differences", () => {
    const z = [1.3, -0.4, 2.2, -3.1];
    const y = [1, 0, 1, 0];
    const w = [4, 1, 0.5, 1];
    const grad = new Float32Array(4);
    weightedLogisticLoss(z, y, w, grad);
    for (let i = 0; i < z.length; i++) {
      const h = 1e-5;
      const up = [...z];
      const down = [...z];
      up[i]! += h;
      down[i]! -= h;
      expect(grad[i]).toBeCloseTo((weightedLogisticLoss(up, y, w) - weightedLogisticLoss(down, y, w)) / (2 * h), 5);
    }
  });

  it("makes exp(logit) of a shared logit converge to Σ watch time / negatives (the paper's E[T] estimate)", () => {
    const watch = [2, 5, 8, 30];
    const negatives = 24;
    const labels = [...watch.map(() => 1), ...new Array<number>(negatives).fill(0)];
    const weights = [...watch, ...new Array<number>(negatives).fill(1)];
    const grad = new Float32Array(labels.length);
    let z = 0;
    for (let step = 0; step < 2000; step++) {
      weightedLogisticLoss(new Array<number>(labels.length).fill(z), labels, weights, grad);
      z -= 2 * grad.reduce((a, b) => a + b, 0);
    }
    expect(Math.exp(z)).toBeCloseTo(45 / 24, 4);
    // Unweighted, the odds would be the click odds 4 / 24 instead.
    expect(Math.abs(Math.exp(z) - 4 / 24)).toBeGreaterThan(1);
  });
});

function exampleOptions(rows: ArrayLike<number>, overrides: Partial<ExampleOptions> = {}): ExampleOptions {
  return { rows, budget: 20, negatives: 8, maxExamplesPerUser: 5, missedPositives: "keep", slateNegatives: true, seed: 3, ...overrides };
}

describe("training data", () => {
  it("changes nothing for an example at t when an event and an impression after t are added", () => {
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "none");
    const times = Float64Array.from(rows, (r) => dataset.events.timestamp[r]!).sort();
    const t = times[Math.floor(times.length * 0.6)]! + 0.5;
    // A user active both before and after t, and an item they never watched.
    let u = 0;
    const ev = dataset.events;
    while (!(ev.timestamp[ev.userOffsets[u]!]! < t && ev.timestamp[ev.userOffsets[u + 1]! - 1]! > t)) u++;
    const watched = new Set(Array.from(ev.item.subarray(ev.userOffsets[u]!, ev.userOffsets[u + 1]!)));
    let item = 0;
    while (watched.has(item)) item++;
    const later = withLaterActivity(dataset, u, item, t, 120);
    const rowsLater = trainingRows(lastoutSplit(later.events, later.users.ids.length), "none");
    const opts = { maxExamplesPerUser: Infinity, minHistory: 1 };
    const a = buildRankingExamples(dataset, createStandardSources(dataset, { mergedSize: 50 }), exampleOptions(rows, opts));
    const b = buildRankingExamples(later, createStandardSources(later, { mergedSize: 50 }), exampleOptions(rowsLater, opts));
    const before = (x: RankingExamples): number => {
      let n = 0;
      while (n < exampleCount(x) && x.asOf[n]! < t) n++;
      return n;
    };
    const n = before(a);
    expect(n).toBeGreaterThan(100);
    expect(before(b)).toBe(n);
    const c = a.candidateOffsets[n]!;
    expect(b.candidateOffsets[n]).toBe(c);
    const k = a.sources.length;
    for (const key of ["user", "asOf", "historyLength"] as const) expect(b[key].subarray(0, n)).toEqual(a[key].subarray(0, n));
    for (const key of ["item", "label", "weight", "position", "watchCount", "trending"] as const)
      expect(b[key].subarray(0, c)).toEqual(a[key].subarray(0, c));
    expect(b.rank.subarray(0, c * k)).toEqual(a.rank.subarray(0, c * k));
    expect(b.score.subarray(0, c * k)).toEqual(a.score.subarray(0, c * k));
    for (let e = 0; e < n; e++) expect(exampleContext(later, b, e)).toEqual(exampleContext(dataset, a, e));
    // Not vacuous: the added event is itself a new example (kept even if missed) after t.
    expect(exampleCount(b)).toBe(exampleCount(a) + 1);
  });

  it("uses the generator's skipped slate items as negatives and watch seconds as positive weights", () => {
    const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
    const ex = buildRankingExamples(dataset, createStandardSources(dataset, { mergedSize: 50 }), exampleOptions(rows));
    expect(ex.stats.slateNegatives).toBeGreaterThan(0);
    for (let e = 0; e < exampleCount(ex); e++) {
      const c = ex.candidateOffsets[e]!;
      expect(ex.label[c]).toBe(1);
      expect(ex.weight[c]).toBe(dataset.events.weight[ex.row[e]!]);
      for (let j = c + 1; j < ex.candidateOffsets[e + 1]!; j++) expect([ex.label[j], ex.weight[j]]).toEqual([0, 1]);
    }
  });
});

describe("encodeCandidates", () => {
  it("encodes a training example exactly as the serving path encodes the same candidates", () => {
    const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
    const ex = buildRankingExamples(dataset, createStandardSources(dataset, { mergedSize: 50 }), exampleOptions(rows));
    const space = fitRankingSpace(dataset, rows, ex, {}, 20_000, new Rng(1));
    // Serving: a source set fed with every training row (time-gated), asked at each example's time.
    const serving = createStandardSources(dataset, { mergedSize: 50 });
    observeRows(serving, dataset, rows);
    const stats = sourceItemStats(serving);
    const picked = Array.from({ length: 40 }, (_, j) => Math.floor((j * exampleCount(ex)) / 40)).sort((x, y) => ex.asOf[x]! - ex.asOf[y]!);
    const ev = dataset.events;
    const us = dataset.users;
    let compared = 0;
    for (const e of picked) {
      const u = ex.user[e]!;
      const t = ex.asOf[e]!;
      // The request as a client would send it: earlier watches (any order), every logged impression
      // (later ones included: the encoder must ignore them), demographics from the user table.
      const earlier = Array.from(rows).filter((r) => ev.user[r] === u && r < ex.row[e]!);
      const imp = dataset.impressions;
      const ctx: RankingContext = {
        watches: [...earlier].reverse().map((r) => ({ itemId: dataset.items.ids[ev.item[r]!]!, timestamp: ev.timestamp[r]! })),
        searches: [],
        impressions: Array.from({ length: imp.userOffsets[u + 1]! - imp.userOffsets[u]! }, (_, k) => ({
          itemId: dataset.items.ids[imp.item[imp.userOffsets[u]! + k]!]!,
          timestamp: imp.timestamp[imp.userOffsets[u]! + k]!,
        })),
        age: us.age[u]!,
        gender: us.gender.values[us.gender.codes[u]!]!,
        occupation: us.occupation.values[us.occupation.codes[u]!]!,
        geo: us.geo.values[us.geo.codes[u]!]!,
        requestTime: t,
      };
      const history = Int32Array.from(earlier, (r) => ev.item[r]!);
      const run = serving.run(datasetRequest(dataset, u, history, t, 20));
      const served = encodeCandidates(space, ctx, rankingCandidates(dataset, run.merged, stats, t), t);
      const trainCands = exampleCandidates(dataset, ex, e);
      const trained = encodeCandidates(space, exampleContext(dataset, ex, e), trainCands, t);
      trainCands.forEach((c, k) => {
        if (c.position < 0) return; // a missed positive or a slate item outside the merged list
        const p = run.merged.findIndex((m) => dataset.items.ids[m.item] === c.itemId);
        expect(p).toBe(c.position);
        expect(encodedRow(served, p)).toEqual(encodedRow(trained, k));
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(200);
  });
});

describe("trainRanker", () => {
  it("beats the merged source order on held-out next watches, and survives a save/load round trip", async () => {
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "val");
    const settings = { budget: 30, mergedSize: 60 };
    const result = await trainRanker(dataset, {
      rows,
      sources: createStandardSources(dataset, { mergedSize: settings.mergedSize }),
      budget: settings.budget,
      train: { epochs: 3, maxExamplesPerUser: 15, negatives: 10, seed: 1 },
    });
    const about = {
      datasetSpec: dataset.spec,
      datasetFingerprint: dataset.fingerprint,
      holdout: "val" as const,
      candidateGenVersion: "none",
      pipeline: settings,
    };
    const ranker = rankerFromTraining(result, about);
    const run = runPipeline(dataset, {
      split,
      target: "val",
      sources: createStandardSources(dataset, { mergedSize: settings.mergedSize }),
      ...settings,
      rankers: [{ name: "ranker", ranker }],
    });
    const ndcg = (name: string): number => {
      let sum = 0;
      run.lists.get(name)!.forEach((list, u) => {
        if (list === null) return;
        const r = list.indexOf(dataset.events.item[split.valRow[u]!]!);
        if (r >= 0 && r < 10) sum += 1 / Math.log2(r + 2);
      });
      return sum / run.users;
    };
    expect(run.merged.recall).toBeGreaterThan(0.2);
    expect(ndcg("ranker")).toBeGreaterThan(ndcg(MERGED_ORDER) * 1.2);

    const dir = await mkdtemp(join(tmpdir(), "ranker-"));
    try {
      await saveRanker(dir, result, about);
      const loaded = await loadRanker(dir);
      const e = 5;
      const ctx = exampleContext(dataset, result.examples, e);
      const cands = exampleCandidates(dataset, result.examples, e);
      expect(loaded.score(ctx, cands, result.examples.asOf[e]!)).toEqual(ranker.score(ctx, cands, result.examples.asOf[e]!));
      expect(loaded.manifest.modelVersion).toMatch(/^rk-\d{14}-[0-9a-f]{8}$/);
      // The catalogue came back through the worker's typed columns and the sliced index.
      const [a, b] = [loaded.space.catalog, ranker.space.catalog];
      expect(a.upload).toBeInstanceOf(Float64Array);
      expect(Array.from(a.upload)).toEqual(Array.from(b.upload));
      expect([a.channel, a.tagOffsets, a.tagCodes]).toEqual([b.channel, b.tagOffsets, b.tagCodes]);
      for (const id of [b.ids[0]!, b.ids[b.ids.length - 1]!, "no-such-item"]) expect(a.indexOf(id), id).toBe(b.indexOf(id));
      loaded.dispose();
    } finally {
      ranker.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
