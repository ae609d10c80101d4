/**
 * `recsys retrain` end to end on an embedded store filled through the user store's API (watches,
 * served answers, impressions): it publishes a better candidate (prebuilt shard indexes, `current`
 * flipped from the directory `recsys start` writes to a symlink, status file), and refuses a
 * deliberately broken one (--epochs 0), leaving the serving bundle in place.
 */
import { existsSync } from "node:fs";
import { lstat, mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { datasetBefore, generateSynthetic, loadDataset, parseSyntheticSpec, registerStoreOpener } from "@recsys/data";
import { DEFAULT_SEQUENCE_CONFIG, saveSequenceModel, trainSequenceModel, userSequences } from "@recsys/sequence";
import { initBackend } from "@recsys/tf";
import { openUserStore, type RedisUserStore, type UserEvent } from "@recsys/user-store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadServingSessionModel } from "@recsys/orchestrator";
import { run } from "./commands/retrain.js";
import { startModelSettings } from "./commands/start.js";
import { holdoutCutoff, retrain, storeTimeWindowEnd } from "./retrain.js";
import { ensureStackModel, storeTrainedModel } from "./stack-model.js";
import { openStoreContents } from "./store-opener.js";

const SPEC = "users=300,items=200,events=30,impressions=40,seed=3";
let root: string;
let storeDir: string;
let current: string;

/** The generator's history as the API would have logged it: watches, and its slates as served answers + impressions. */
function apiEvents(): UserEvent[] {
  const d = generateSynthetic(`synthetic:${SPEC}`, parseSyntheticSpec(SPEC));
  const out: { t: number; e: UserEvent }[] = [];
  const { events: ev, impressions: im, users, items } = d;
  for (let r = 0; r < ev.user.length; r++) {
    out.push({
      t: ev.timestamp[r]!,
      e: {
        kind: "watch",
        userId: users.ids[ev.user[r]!]!,
        itemId: items.ids[ev.item[r]!]!,
        timestamp: ev.timestamp[r]!,
        watchSeconds: ev.weight[r]!,
      },
    });
  }
  let n = 0;
  for (let u = 0; u < users.ids.length; u++) {
    let k = im.userOffsets[u]!;
    while (k < im.userOffsets[u + 1]!) {
      const t = im.timestamp[k]!;
      const requestId = `req-${++n}`;
      const slate: { itemId: string; position: number; provenance: { source: string; rank: number; score: number }[] }[] = [];
      for (; k < im.userOffsets[u + 1]! && im.timestamp[k] === t; k++) {
        slate.push({
          itemId: items.ids[im.item[k]!]!,
          position: slate.length + 1,
          provenance: [{ source: "popular", rank: slate.length + 1, score: 1 }],
        });
      }
      out.push({
        t: t - 1,
        e: {
          kind: "served",
          userId: users.ids[u]!,
          timestamp: t - 1,
          requestId,
          items: slate,
          modelVersions: { candidate_generation: "bootstrap" },
        },
      });
      for (const s of slate)
        out.push({
          t: t - 1,
          e: { kind: "impression", userId: users.ids[u]!, itemId: s.itemId, timestamp: t - 1, position: s.position, requestId },
        });
    }
  }
  return out.sort((a, b) => a.t - b.t).map((x) => x.e);
}

beforeAll(async () => {
  await initBackend({ log: null });
  registerStoreOpener(openStoreContents);
  root = await mkdtemp(join(tmpdir(), "retrain-"));
  storeDir = join(root, "users");
  const store = await openUserStore({ backend: "embedded", path: storeDir });
  try {
    const events = apiEvents();
    for (let i = 0; i < events.length; i += 5000) await store.append(events.slice(i, i + 5000), { publish: false });
  } finally {
    await store.close();
  }
  // The serving bundle: trained on the first half of the period, in a plain directory as `recsys start` writes it.
  const d = generateSynthetic(`synthetic:${SPEC}`, parseSyntheticSpec(SPEC));
  const times = Float64Array.from(d.events.timestamp).sort();
  const early = datasetBefore(d, times[Math.floor(times.length / 2)]!);
  // Mean pooling, which the candidate keeps (retrain trains the serving bundle's architecture).
  const trained = await trainCandidateGen(early, { holdout: "none", epochs: 2, seed: 1, model: { historyPooling: "mean" } });
  current = join(root, "bundle");
  await saveBundle(current, trained);
  trained.model.dispose();
  // Its session model (what `recsys train-session` writes): a small GRU4Rec on the same window.
  const rows = Int32Array.from({ length: early.events.user.length }, (_, r) => r);
  const session = trainSequenceModel(userSequences(early, rows), early.items.ids.length, {
    ...DEFAULT_SEQUENCE_CONFIG,
    encoder: { kind: "gru4rec", dim: 16, maxLength: 20, numBlocks: 1 },
    maxEpochs: 2,
  });
  await saveSequenceModel(join(current, "session"), session.model, early.items.ids, {
    datasetSpec: early.spec,
    datasetFingerprint: early.fingerprint,
    holdout: "none",
    epochs: session.epochs,
  });
  session.model.dispose();
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function status(): Promise<{
  outcome: string;
  message: string;
  currentVersion?: string;
  publishedAt?: string;
  metrics?: {
    candidate: { hr10: number };
    serving: { hr10: number };
    rankerCandidate?: { auc: number; pairs: number };
    rankerServing?: { auc: number; pairs: number };
  };
}> {
  return JSON.parse(await readFile(join(root, "retrain-status.json"), "utf8"));
}

describe("recsys retrain", () => {
  it("refuses a broken candidate (--epochs 0), printing both figures; the serving bundle stays", async () => {
    const before = JSON.parse(await readFile(join(current, "manifest.json"), "utf8")).modelVersion as string;
    const code = await run([
      "--dataset",
      `store:${storeDir}`,
      "--current",
      current,
      "--epochs",
      "0",
      "--ranker-epochs",
      "1",
      "--shards",
      "2",
      "--index-kind",
      "brute-force",
    ]);
    expect(code).toBe(3);
    expect((await lstat(current)).isDirectory()).toBe(true);
    expect(JSON.parse(await readFile(join(current, "manifest.json"), "utf8")).modelVersion).toBe(before);
    const s = await status();
    expect(s.outcome).toBe("refused");
    expect(s.metrics!.candidate.hr10).toBeLessThan(s.metrics!.serving.hr10);
  }, 300_000);

  it("publishes a better candidate with every shard's prebuilt index and flips current", async () => {
    // 115 held-out users: one hit is 0.9 % of HR@10, so the default 5 % margin is under one hit and
    // the outcome would follow the numerics of the step (tfjs or native BLAS). This test is about
    // publishing; a 25 % margin keeps it on that side while --epochs 0 above is still refused.
    const code = await run([
      "--dataset",
      `store:${storeDir}`,
      "--current",
      current,
      "--margin",
      "0.25",
      "--epochs",
      "4",
      "--ranker-epochs",
      "1",
      "--shards",
      "2",
      "--index-kind",
      "brute-force",
      "--preload-seconds",
      "0",
    ]);
    expect(code).toBe(0);
    expect(await readlink(join(root, "next"))).toBe(await readlink(current));
    const s = await status();
    expect(s.outcome).toBe("published");
    expect((await lstat(current)).isSymbolicLink()).toBe(true);
    const version = await readlink(current);
    expect(s.currentVersion).toBe(version);
    expect(s.metrics!.candidate.hr10).toBeGreaterThanOrEqual(s.metrics!.serving.hr10 * 0.75);
    for (const shard of ["shard-0-of-2", "shard-1-of-2"])
      expect(existsSync(join(root, version, "indexes", shard, "index.json"))).toBe(true);
    expect(existsSync(join(root, version, "ranker", "manifest.json"))).toBe(true);
    // The ranker learnt from the served log.
    const ranker = JSON.parse(await readFile(join(root, version, "ranker", "manifest.json"), "utf8"));
    expect(ranker.candidateGenVersion).toBe(version);
    // The session model: retrained on the same window as the candidate generator, with the serving one's encoder and epochs.
    const session = JSON.parse(await readFile(join(root, version, "session", "manifest.json"), "utf8"));
    expect(session.training.datasetFingerprint).toBe(ranker.datasetFingerprint);
    expect(session.training.candidateGenVersion).toBe(version);
    expect(session.training.epochs).toBe(2);
    expect(session.encoder).toEqual({ kind: "gru4rec", dim: 16, maxLength: 20, numBlocks: 1 });
    const served = await loadServingSessionModel(join(root, version));
    expect(served?.numItems).toBe(session.itemIds.length);
    served?.dispose();
    expect(s.message).toMatch(/session model: gru4rec trained on the training window/);
  }, 300_000);

  it("refuses an untrained ranker (--ranker-epochs 0) behind a candidate generator the gate accepts, printing both rankers' figures", async () => {
    const before = await readlink(current);
    const code = await run([
      "--dataset",
      `store:${storeDir}`,
      "--current",
      current,
      "--epochs",
      "1",
      "--margin",
      "0.99",
      "--ranker-margin",
      "0.05",
      "--ranker-epochs",
      "0",
      "--index-kind",
      "brute-force",
      "--preload-seconds",
      "0",
    ]);
    expect(code).toBe(3);
    expect(await readlink(current)).toBe(before);
    const s = await status();
    expect(s.outcome).toBe("refused");
    expect(s.message).toMatch(
      /^the candidate ranker is worse than the serving one by more than the margin: AUC [\d.]+ < [\d.]+ × \(1 − 0\.05\)/,
    );
    expect(s.metrics!.rankerCandidate!.auc).toBeLessThan(s.metrics!.rankerServing!.auc * 0.95);
    expect(s.metrics!.rankerCandidate!.pairs).toBe(s.metrics!.rankerServing!.pairs);
    expect(s.metrics!.rankerCandidate!.pairs).toBeGreaterThan(0);
  }, 300_000);

  it("with --session carry, publishes the serving bundle's session model unchanged and says so", async () => {
    const serving = await readlink(current);
    const before = await readFile(join(root, serving, "session", "manifest.json"), "utf8");
    const code = await run([
      "--dataset",
      `store:${storeDir}`,
      "--current",
      current,
      "--epochs",
      "1",
      "--ranker-epochs",
      "1",
      "--margin",
      "0.99",
      "--index-kind",
      "brute-force",
      "--preload-seconds",
      "0",
      "--session",
      "carry",
      // A trained ranker passes the ranker's gate at the default margin.
      "--ranker-margin",
      "0.05",
    ]);
    expect(code).toBe(0);
    const version = await readlink(current);
    expect(version).not.toBe(serving);
    expect(await readFile(join(root, version, "session", "manifest.json"), "utf8")).toBe(before);
    const s = await status();
    expect(s.message).toMatch(/session model: the serving bundle's gru4rec model carried forward unchanged/);
    expect(s.metrics!.rankerCandidate!.auc).toBeGreaterThanOrEqual(s.metrics!.rankerServing!.auc * 0.95);
  }, 300_000);

  it("recsys start serves the published bundle of its own store instead of training a bootstrap bundle", async () => {
    const version = await readlink(current);
    const d = generateSynthetic(`synthetic:${SPEC}`, parseSyntheticSpec(SPEC));
    const settings = startModelSettings(1, 1, 1, "test");
    const messages: string[] = [];
    const model = await ensureStackModel(d, current, settings, { storeDir, log: (m) => messages.push(m) });
    expect(model.reused).toBe(true);
    expect(model.manifest.modelVersion).toBe(version);
    expect(messages.join("\n")).toMatch(/`recsys retrain` trained it on this stack's store/);
    // Another store's bundle is not taken for it.
    expect(await storeTrainedModel(current, join(root, "other-users"))).toEqual({
      reason: `the bundle in ${current} was not trained on store:${join(root, "other-users")}`,
    });
  });
});

describe("the gate's pieces", () => {
  it("holds out the latest watches made after the serving bundle's window, none when there is none", async () => {
    const { datasetFromEvents } = await import("@recsys/data");
    const { holdoutCutoff, gateRefusal } = await import("./retrain.js");
    const d = datasetFromEvents(Array.from({ length: 20 }, (_, k) => ({ user: `u${k % 3}`, item: `i${k}`, timestamp: 100 + k })));
    expect(holdoutCutoff(d, 0.2)).toBe(116); // the last 4 of 20
    expect(holdoutCutoff(d, 0.5, 109)).toBe(115); // the last 5 of the 10 after 109
    expect(holdoutCutoff(d, 0.2, 119)).toBeUndefined();
    expect(gateRefusal({ users: 10, hr10: 0.3, wdcg10: 0.2 }, { users: 10, hr10: 0.31, wdcg10: 0.2 }, 0.05)).toBeUndefined();
    expect(gateRefusal({ users: 10, hr10: 0.3, wdcg10: 0.18 }, { users: 10, hr10: 0.3, wdcg10: 0.2 }, 0.05)).toMatch(
      /watch-time DCG@10 0\.1800 < 0\.2000/,
    );
  });
});

describe("recsys retrain on a Redis store bootstrapped under the wall clock", () => {
  const url = process.env.RECSYS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
  const prefix = `test-retrain-${process.pid}-${Date.now().toString(36)}:`;
  // The orchestrator stored the bootstrap history shifted into real time by this offset.
  const OFFSET = 400 * 86_400;

  afterAll(async () => {
    const store = await openUserStore({ backend: "redis", url, keyPrefix: prefix });
    await (store as RedisUserStore).deleteAllKeys();
    await store.close();
  });

  it("reads the model time offset from the store's metadata: the held-out watches are the ones after the serving bundle's window", async () => {
    const store = await openUserStore({ backend: "redis", url, keyPrefix: prefix });
    const servingDir = join(root, "redis-serving");
    try {
      const events = apiEvents().map((e) => ({ ...e, timestamp: e.timestamp + OFFSET }));
      for (let i = 0; i < events.length; i += 5000) await store.append(events.slice(i, i + 5000), { publish: false });
      const d = generateSynthetic(`synthetic:${SPEC}`, parseSyntheticSpec(SPEC));
      const times = Float64Array.from(d.events.timestamp).sort();
      const early = datasetBefore(d, times[Math.floor(times.length * 0.7)]!);
      const trained = await trainCandidateGen(early, { holdout: "none", epochs: 1, seed: 1, model: { historyPooling: "mean" } });
      await saveBundle(servingDir, trained);
      trained.model.dispose();
      await store.setMeta(`orchestrator.model_time_offset/${early.fingerprint}`, String(OFFSET));
    } finally {
      await store.close();
    }
    const spec = `store:${url}?prefix=${prefix}`;
    const windowEnd = JSON.parse(await readFile(join(servingDir, "manifest.json"), "utf8")).features.windowEnd as number;
    expect(await storeTimeWindowEnd(servingDir, spec)).toBe(windowEnd + OFFSET);
    const dataset = await loadDataset(spec);
    const shifted = holdoutCutoff(dataset, 0.2, windowEnd + OFFSET)!;
    // Unshifted, every stored watch would count as new and the cut-off would fall elsewhere.
    expect(holdoutCutoff(dataset, 0.2, windowEnd)).not.toBe(shifted);
    const result = await retrain({
      dataset,
      current: servingDir,
      epochs: 1,
      rankerEpochs: 1,
      margin: 0.99,
      dryRun: true,
      log: () => undefined,
    });
    expect(result.cutoff).toBe(shifted);
    expect(result.outcome).toBe("dry-run");
  }, 300_000);
});
