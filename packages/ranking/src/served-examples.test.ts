import { datasetFromStoreEvents, type StoreCatalogueItem, type StoreEvent } from "@recsys/data";
import { createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { rankerFromTraining } from "./bundle.js";
import { exampleCandidates, exampleContext } from "./examples.js";
import { buildServedExamples } from "./served-examples.js";
import { synthetic } from "./test-helpers.js";
import { trainRanker } from "./trainer.js";

beforeAll(async () => {
  await initBackend({ log: null });
});

/** Provenance as the store logs it: `rank` 0-based here, 1-based in the log. */
const prov = (source: string, rank: number) => [{ source, rank: rank + 1, score: 10 - rank }];
const HOUR = 3600;
const CATALOGUE: StoreCatalogueItem[] = ["a", "b", "c", "d", "e"].map((itemId) => ({ itemId, channel: "ch", updatedAt: 0 }));

describe("buildServedExamples", () => {
  it("labels shown items watched within the window as positives weighted by watch time, credits a watch once, and keeps the logged provenance", () => {
    const events: StoreEvent[] = [
      { kind: "watch", seq: 1, userId: "u", itemId: "e", timestamp: 0 },
      {
        kind: "served",
        seq: 2,
        userId: "u",
        timestamp: 10,
        requestId: "r1",
        modelVersions: {},
        items: [
          { itemId: "a", position: 1, provenance: prov("popular", 0) },
          { itemId: "b", position: 2, provenance: [...prov("dnn", 3), ...prov("co-watch", 1)] },
          { itemId: "c", position: 3, provenance: prov("fresh", 0) },
        ],
      },
      { kind: "impression", seq: 3, userId: "u", itemId: "a", timestamp: 10, requestId: "r1" },
      { kind: "impression", seq: 4, userId: "u", itemId: "b", timestamp: 10, requestId: "r1" },
      { kind: "watch", seq: 5, userId: "u", itemId: "a", timestamp: 20, watchSeconds: 120 },
      // c was served but not shown (the client's impressions leave it out): never a candidate.
      { kind: "watch", seq: 6, userId: "u", itemId: "c", timestamp: 25, watchSeconds: 50 },
      {
        kind: "served",
        seq: 7,
        userId: "u",
        timestamp: 100,
        requestId: "r2",
        modelVersions: {},
        items: [
          { itemId: "b", position: 1, provenance: prov("popular", 1) },
          { itemId: "d", position: 2, provenance: prov("popular", 2) },
        ],
      },
      // b watched 7 h after r2: outside the 6 h window, a negative.
      { kind: "watch", seq: 8, userId: "u", itemId: "b", timestamp: 100 + 7 * HOUR, watchSeconds: 30 },
      // d watched within the window of r2: a positive with weight 1 (no watch seconds).
      { kind: "watch", seq: 9, userId: "u", itemId: "d", timestamp: 100 + HOUR },
    ];
    const dataset = datasetFromStoreEvents("store:test", events, CATALOGUE);
    const rows = Int32Array.from({ length: dataset.events.user.length }, (_, r) => r);
    const ex = buildServedExamples(dataset, {
      rows,
      sources: createStandardSources(dataset),
      windowSeconds: 6 * HOUR,
      maxExamplesPerUser: 10,
    });
    expect(Array.from(ex.asOf)).toEqual([10, 100]);
    expect(Array.from(ex.historyLength)).toEqual([1, 3]); // e; then e, a, c
    const ids = (e: number) => exampleCandidates(dataset, ex, e).map((c) => c.itemId);
    expect(ids(0)).toEqual(["a", "b"]);
    expect(ids(1)).toEqual(["b", "d"]);
    expect(Array.from(ex.label)).toEqual([1, 0, 0, 1]);
    expect(Array.from(ex.weight)).toEqual([120, 1, 1, 1]);
    const b = exampleCandidates(dataset, ex, 0)[1]!;
    expect(b.provenance.map((p) => [p.source, p.rank]).sort()).toEqual([
      ["co-watch", 1],
      ["dnn", 3],
    ]);
    // Estimated merged position: min over sources of rank × 2 sources + the source's order.
    expect(b.position).toBeGreaterThanOrEqual(2);
    expect(ex.servedStats).toMatchObject({ requests: 2, kept: 2, shown: 4, positives: 2, incompleteWindows: 0 });
    // Watches known only until r2's window is still open: r2's labels are incomplete, it is left out.
    const early = buildServedExamples(dataset, {
      rows,
      sources: createStandardSources(dataset),
      windowSeconds: 6 * HOUR,
      maxExamplesPerUser: 10,
      labelsUntil: 10 + 6 * HOUR + 1,
    });
    expect(Array.from(early.asOf)).toEqual([10]);
    expect(early.servedStats.incompleteWindows).toBe(1);
  });

  it("refuses a dataset without a served log", () => {
    const dataset = synthetic("users=20,items=30,events=5,seed=1");
    expect(() =>
      buildServedExamples(dataset, { rows: [0], sources: createStandardSources(dataset), windowSeconds: 60, maxExamplesPerUser: 1 }),
    ).toThrow(/no served log/);
  });
});

describe("trainRanker from the served log", () => {
  it("learns to put the watched shown items first on later answers (AUC well above chance)", async () => {
    // The generator's slates as served answers (provenance: position in the slate from "popular"),
    // its clicks as watches: train on the first 70% of the time, score the rest.
    const base = synthetic("users=300,items=250,events=25,impressions=60,seed=7");
    const { impressions: im, users, items, events: ev } = base;
    const store: StoreEvent[] = [];
    let seq = 0;
    for (let r = 0; r < ev.user.length; r++) {
      store.push({
        kind: "watch",
        seq: seq++,
        userId: users.ids[ev.user[r]!]!,
        itemId: items.ids[ev.item[r]!]!,
        timestamp: ev.timestamp[r]!,
        watchSeconds: ev.weight[r]!,
      });
    }
    for (let u = 0; u < users.ids.length; u++) {
      let k = im.userOffsets[u]!;
      while (k < im.userOffsets[u + 1]!) {
        const t = im.timestamp[k]!;
        const slate = [];
        for (; k < im.userOffsets[u + 1]! && im.timestamp[k] === t; k++)
          slate.push({ itemId: items.ids[im.item[k]!]!, position: slate.length + 1, provenance: prov("popular", slate.length) });
        store.push({
          kind: "served",
          seq: seq++,
          userId: users.ids[u]!,
          timestamp: t - 1,
          requestId: `r${seq}`,
          modelVersions: {},
          items: slate,
        });
      }
    }
    const catalogue = items.ids.map((itemId, i) => ({ itemId, channel: items.channel.values[items.channel.codes[i]!]!, updatedAt: 0 }));
    const dataset = datasetFromStoreEvents("store:synthetic", store, catalogue);
    const times = Float64Array.from(dataset.served!.timestamp).sort();
    const cut = times[Math.floor(times.length * 0.7)]!;
    const rows: number[] = [];
    for (let r = 0; r < dataset.events.user.length; r++) if (dataset.events.timestamp[r]! < cut) rows.push(r);
    const result = await trainRanker(dataset, {
      rows,
      sources: createStandardSources(dataset),
      budget: 30,
      served: { windowSeconds: 6 * HOUR },
      train: { epochs: 2, maxExamplesPerUser: 20, seed: 1 },
    });
    expect(result.stats.examples).toBeGreaterThan(100);
    const ranker = rankerFromTraining(result, {
      datasetSpec: dataset.spec,
      datasetFingerprint: dataset.fingerprint,
      holdout: "none",
      candidateGenVersion: "none",
      pipeline: { budget: 30, mergedSize: 60 },
    });
    try {
      // Held-out answers after the cut: AUC of the ranker's scores (watched vs not) against the served order's.
      const all = buildServedExamples(dataset, {
        rows: Int32Array.from({ length: dataset.events.user.length }, (_, r) => r),
        sources: createStandardSources(dataset),
        windowSeconds: 6 * HOUR,
        maxExamplesPerUser: 1000,
      });
      let pairs = 0;
      let won = 0;
      let wonServed = 0;
      for (let e = 0; e < all.user.length; e++) {
        if (all.asOf[e]! < cut) continue;
        const cands = exampleCandidates(dataset, all, e);
        const scores = ranker.score(exampleContext(dataset, all, e), cands, all.asOf[e]!);
        const c0 = all.candidateOffsets[e]!;
        for (let i = 0; i < cands.length; i++) {
          if (all.label[c0 + i] !== 1) continue;
          for (let j = 0; j < cands.length; j++) {
            if (all.label[c0 + j] !== 0) continue;
            pairs++;
            won += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
            wonServed += i < j ? 1 : 0;
          }
        }
      }
      expect(pairs).toBeGreaterThan(100);
      // The generator's clicks follow slate position strongly, so the served order is a strong
      // reference (~0.87 here): the ranker, which sees the logged rank, must come close to it.
      expect(won / pairs).toBeGreaterThan(0.75);
      expect(won / pairs).toBeGreaterThan(wonServed / pairs - 0.05);
    } finally {
      ranker.dispose();
    }
  }, 120_000);
});
