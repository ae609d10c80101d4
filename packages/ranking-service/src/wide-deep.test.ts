/**
 * The ranking service serves a Wide & Deep ranker bundle (`recsys train-ranker --model-kind
 * wide-deep`) with no change of its own: it loads the ranker through @recsys/ranking, whose
 * manifest names the kind, and answers exactly as the in-process ranker (wide part included).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastoutSplit, trainingRows, type Dataset } from "@recsys/data";
import {
  encodeCandidates,
  loadRanker,
  rankingCandidates,
  rankingContextFromDataset,
  sourceItemStats,
  type Ranker,
  type RankerManifest,
} from "@recsys/ranking";
import { connect, loadConfig, startService, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger } from "@recsys/runtime/testing";
import { RankingService } from "@recsys/gen";
import { createStandardSources, datasetRequest, observeRows } from "@recsys/sources";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { createRankingService, type RankingStage } from "./service.js";
import { TINY_PIPELINE, tinyDataset, toRankRequest, writeTinyRankerBundle } from "./test-helpers.js";

let root: string;
let dataset: Dataset;
let manifest: RankerManifest;
let ranker: Ranker;
let stage: RankingStage;
let service: RunningService;
let client: Client<typeof RankingService.method>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "ranking-service-wd-"));
  dataset = tinyDataset();
  manifest = await writeTinyRankerBundle(join(root, "m"), 1, dataset, "wide-deep");
  ranker = await loadRanker(join(root, "m", "ranker"));
  const config = loadConfig(configSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
    MODEL_PATH: join(root, "m"),
    MODEL_POLL_INTERVAL: "0",
  });
  const registry = new Registry();
  stage = await createRankingService({ config, logger: memoryLogger(STAGE).logger, registry });
  service = await startService({ stage: STAGE, config, services: stage.services, logger: memoryLogger(STAGE).logger, registry });
  client = connect(RankingService, service.address);
});

afterAll(async () => {
  client?.$close();
  await service?.stop();
  await stage?.close();
  ranker?.dispose();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("a wide-deep ranker bundle", () => {
  it("names its kind in the manifest and is served with the in-process scores, wide part included", async () => {
    const onDisk = JSON.parse(await readFile(join(root, "m", "ranker", "manifest.json"), "utf8"));
    expect(onDisk.model.kind).toBe("wide-deep");
    expect(onDisk.files.wide.file).toBe("wide.f32");
    expect(ranker.model.wide).not.toBeNull();

    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "test");
    const sources = createStandardSources(dataset, { mergedSize: TINY_PIPELINE.mergedSize });
    observeRows(sources, dataset, rows);
    const stats = sourceItemStats(sources);
    const ev = dataset.events;
    let compared = 0;
    let wideNonZero = 0;
    // Users in order of their held-out watch (the sources are time-gated: requests in time order).
    const users = Array.from({ length: dataset.users.ids.length }, (_, u) => u)
      .filter((u) => split.testRow[u]! >= 0)
      .sort((a, b) => ev.timestamp[split.testRow[a]!]! - ev.timestamp[split.testRow[b]!]!);
    for (let k = 0; k < users.length && compared < 200; k += 5) {
      const u = users[k]!;
      const time = ev.timestamp[split.testRow[u]!]!;
      const history = Array.from(rows).filter((r) => ev.user[r] === u && ev.timestamp[r]! < time);
      const run = sources.run(
        datasetRequest(
          dataset,
          u,
          Int32Array.from(history, (r) => ev.item[r]!),
          time,
          TINY_PIPELINE.budget,
        ),
      );
      const candidates = rankingCandidates(dataset, run.merged, stats, time);
      if (candidates.length < 5) continue;
      const context = rankingContextFromDataset(dataset, u, history, time);
      // What crosses the wire: provenance scores as float32.
      const wire = candidates.map((c) => ({ ...c, provenance: c.provenance.map((p) => ({ ...p, score: Math.fround(p.score) })) }));
      const logits = ranker.score(context, wire, time);
      const expected = new Map(wire.map((c, k) => [c.itemId, logits[k]!]));
      const wide = new Float32Array(wire.length);
      ranker.model.addWide(encodeCandidates(ranker.space, context, wire, time), wide);
      wideNonZero += wide.filter((v) => v !== 0).length;
      const response = await client.rank(toRankRequest(context, candidates, dataset.users.ids[u]!));
      expect(response.version).toMatchObject({ component: "ranking", modelVersion: manifest.modelVersion });
      expect(response.items).toHaveLength(candidates.length);
      for (const item of response.items) {
        expect(item.score, item.itemId).toBe(expected.get(item.itemId));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(100);
    // Not vacuous: the wide part adds to the served scores.
    expect(wideNonZero).toBeGreaterThan(compared / 2);
  });
});
