/**
 * The retrieval service on real gRPC servers (port 0) over a tiny trained bundle: exact top-k
 * against an independent brute force, exclusions, validation, version checks, upserts and
 * deletes (durable across restarts and model versions), sharding, hot reload, index persistence,
 * and the process itself (SIGKILL + restart).
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { mergeShardHits, shardOf } from "@recsys/ann";
import { MAX_SEARCH_K, RetrievalService } from "@recsys/gen";
import { connect, isServiceError, loadConfig, startService, status, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger, metricValue, scrapeMetrics } from "@recsys/runtime/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { indexPath, journalPath } from "./paths.js";
import { createRetrievalService, type RetrievalStage } from "./service.js";
import { bruteForceTopK, publishBundle, randomVector, readCatalogue, writeTinyBundle, type Catalogue } from "./test-helpers.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");

let root: string;
let link: string;
let catA: Catalogue;
let catB: Catalogue;

interface Server {
  readonly stage: RetrievalStage;
  readonly service: RunningService;
  readonly client: Client<typeof RetrievalService.method>;
  readonly logs: ReturnType<typeof memoryLogger>;
  stop(): Promise<void>;
}

const servers: Server[] = [];

async function start(env: Record<string, string>): Promise<Server> {
  const config = loadConfig(configSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
    MODEL_PATH: link,
    MODEL_POLL_INTERVAL: "0",
    ...env,
  });
  const registry = new Registry();
  const logs = memoryLogger(STAGE);
  const stage = await createRetrievalService({ config, logger: logs.logger, registry });
  const service = await startService({ stage: STAGE, config, services: stage.services, logger: logs.logger, registry });
  const client = connect(RetrievalService, service.address);
  let stopped: Promise<void> | undefined;
  const server: Server = {
    stage,
    service,
    client,
    logs,
    stop() {
      stopped ??= (async () => {
        client.$close();
        await service.stop();
        await stage.close();
      })();
      return stopped;
    },
  };
  servers.push(server);
  return server;
}

function logged(server: Server, msg: string): boolean {
  return server.logs.lines.some((line) => line.msg === msg);
}

async function expectCode(promise: Promise<unknown>, code: status, details: RegExp | string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isServiceError(error)) throw new Error(`expected a gRPC error ${status[code]}, got ${String(error)}`);
  expect(`${status[error.code]}: ${error.details}`).toMatch(
    typeof details === "string" ? `${status[code]}: ${details}` : new RegExp(`^${status[code]}: ${details.source}`),
  );
}

function ids(items: ReadonlyArray<{ itemId: string }>): string[] {
  return items.map((item) => item.itemId);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "retrieval-service-"));
  await writeTinyBundle(join(root, "a"), 1);
  await writeTinyBundle(join(root, "b"), 2);
  catA = await readCatalogue(join(root, "a"));
  catB = await readCatalogue(join(root, "b"));
  expect(catA.modelVersion).not.toBe(catB.modelVersion);
  expect(catA.ids.length).toBeGreaterThan(50);
  link = join(root, "current");
  await publishBundle(link, join(root, "a"));
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  await rm(root, { recursive: true, force: true });
});

describe("one shard, HNSW: search, writes, restart, reload", () => {
  let server: Server;
  let indexDir: string;
  const query = randomVector(8, 7);
  let deletedId: string;

  beforeAll(async () => {
    await publishBundle(link, join(root, "a"));
    indexDir = join(root, "index-main");
    server = await start({ INDEX_DIR: indexDir });
  });

  it("builds the index from the bundle's item embeddings on the first start and describes it", async () => {
    expect(logged(server, "index built from the bundle and saved")).toBe(true);
    expect(logged(server, "index loaded from file")).toBe(false);
    const text = await scrapeMetrics(server.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_index_loaded_from_file")).toBe(0);
    expect(metricValue(text, "recsys_retrieval_model_info", { model_version: catA.modelVersion })).toBe(1);
    const described = await server.client.describeIndex({});
    expect(described.dimension).toBe(8);
    expect(described.shard).toMatchObject({ shardIndex: 0, shardCount: 1, itemCount: catA.ids.length });
    expect(described.version).toMatchObject({ component: "retrieval/shard-0", modelVersion: catA.modelVersion });
    expect(described.version!.indexVersion).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await stat(join(indexPath(indexDir, catA.modelVersion, 0, 1), "index.json"))).isFile()).toBe(true);
  });

  it("returns the exact top-k of the brute force, by score descending", async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const q = randomVector(8, seed);
      const response = await server.client.search({ userVector: q, k: 10 });
      const expected = bruteForceTopK(catA, q, 10);
      expect(ids(response.items)).toEqual(expected.map((h) => h.id));
      response.items.forEach((item, i) => expect(item.score).toBeCloseTo(expected[i]!.score, 4));
      expect(response.shard).toMatchObject({ shardIndex: 0, shardCount: 1, itemCount: catA.ids.length });
      expect(response.version).toMatchObject({ component: "retrieval/shard-0", modelVersion: catA.modelVersion });
    }
    const all = await server.client.search({ userVector: query, k: MAX_SEARCH_K });
    expect(new Set(ids(all.items))).toEqual(new Set(catA.ids));
  });

  it("never returns excluded ids", async () => {
    const top = bruteForceTopK(catA, query, 3).map((h) => h.id);
    const response = await server.client.search({ userVector: query, k: 10, excludedItemIds: [...top, "not-an-item"] });
    expect(ids(response.items)).toEqual(bruteForceTopK(catA, query, 10, new Set(top)).map((h) => h.id));
    expect(ids(response.items).some((id) => top.includes(id))).toBe(false);
  });

  it("refuses a user vector of another model version with FAILED_PRECONDITION", async () => {
    await expectCode(
      server.client.search({ userVector: query, k: 5, modelVersion: "cg-other" }),
      status.FAILED_PRECONDITION,
      `user vector from model cg-other, index from model ${catA.modelVersion}`,
    );
    const ok = await server.client.search({ userVector: query, k: 5, modelVersion: catA.modelVersion });
    expect(ok.items).toHaveLength(5);
  });

  it("rejects bad input with INVALID_ARGUMENT and a clear message, and keeps serving", async () => {
    const c = server.client;
    await expectCode(
      c.search({ userVector: [1, 2, 3], k: 5 }),
      status.INVALID_ARGUMENT,
      `user_vector has dimension 3, expected 8 (the index of model ${catA.modelVersion})`,
    );
    await expectCode(c.search({ userVector: [], k: 5 }), status.INVALID_ARGUMENT, /user_vector has dimension 0, expected 8/);
    await expectCode(c.search({ userVector: query, k: 0 }), status.INVALID_ARGUMENT, "k must be in 1..1000, got 0");
    await expectCode(c.search({ userVector: query, k: 5000 }), status.INVALID_ARGUMENT, "k must be in 1..1000, got 5000");
    const nan = [...query];
    nan[2] = NaN;
    await expectCode(c.search({ userVector: nan, k: 5 }), status.INVALID_ARGUMENT, "user_vector[2] must be a finite number, got NaN");
    const inf = [...query];
    inf[7] = Infinity;
    await expectCode(c.search({ userVector: inf, k: 5 }), status.INVALID_ARGUMENT, "user_vector[7] must be a finite number, got Infinity");
    await expectCode(
      c.search({ userVector: query, k: 5, excludedItemIds: ["1", ""] }),
      status.INVALID_ARGUMENT,
      "excluded_item_ids[1] is required",
    );
    await expectCode(
      c.upsertItems({ items: [{ itemId: "x", vector: [1] }] }),
      status.INVALID_ARGUMENT,
      /items\[0\]\.vector has dimension 1, expected 8/,
    );
    await expectCode(
      c.upsertItems({
        items: [
          { itemId: "x", vector: query },
          { itemId: "x", vector: query },
        ],
      }),
      status.INVALID_ARGUMENT,
      'items.item_id contains "x" more than once',
    );
    await expectCode(c.deleteItems({ itemIds: [""] }), status.INVALID_ARGUMENT, "item_ids[0] is required");
    const ok = await c.search({ userVector: query, k: 3 });
    expect(ok.items).toHaveLength(3);
    const text = await scrapeMetrics(server.service.metricsPort);
    expect(
      metricValue(text, "recsys_retrieval_grpc_requests_total", { method: "recsys.v1.RetrievalService/Search", code: "INVALID_ARGUMENT" }),
    ).toBe(7);
  });

  it("makes an upserted item findable at once", async () => {
    const vector = query.map((v) => v * 10);
    const response = await server.client.upsertItems({ items: [{ itemId: "fresh-1", vector }], modelVersion: catA.modelVersion });
    expect(response).toMatchObject({ upserted: 1, skippedOtherShard: 0 });
    expect(response.shard!.itemCount).toBe(catA.ids.length + 1);
    const found = await server.client.search({ userVector: query, k: 3 });
    expect(found.items[0]!.itemId).toBe("fresh-1");
    expect(found.items[0]!.score).toBeCloseTo(
      query.reduce((s, v) => s + v * v * 10, 0),
      4,
    );
    await expectCode(
      server.client.upsertItems({ items: [{ itemId: "fresh-2", vector }], modelVersion: "cg-other" }),
      status.FAILED_PRECONDITION,
      `item vectors from model cg-other, index from model ${catA.modelVersion}`,
    );
  });

  it("deletes immediately: a deleted id is never returned again", async () => {
    deletedId = bruteForceTopK(catA, query, 1)[0]!.id;
    const response = await server.client.deleteItems({ itemIds: [deletedId, "no-such-item"] });
    expect(response).toMatchObject({ deleted: 1, notFound: 1 });
    expect(response.shard!.itemCount).toBe(catA.ids.length); // +1 upserted, -1 deleted
    const all = await server.client.search({ userVector: query, k: MAX_SEARCH_K });
    expect(ids(all.items)).not.toContain(deletedId);
    expect(ids(all.items)).toContain("fresh-1");
    const again = await server.client.deleteItems({ itemIds: [deletedId] });
    expect(again).toMatchObject({ deleted: 0, notFound: 1 });
  });

  it("after a restart: loads the saved index (no rebuild), deletes and upserts survive", async () => {
    await server.stop();
    server = await start({ INDEX_DIR: indexDir });
    expect(logged(server, "index loaded from file")).toBe(true);
    expect(logged(server, "index built from the bundle and saved")).toBe(false);
    expect(metricValue(await scrapeMetrics(server.service.metricsPort), "recsys_retrieval_index_loaded_from_file")).toBe(1);
    const all = await server.client.search({ userVector: query, k: MAX_SEARCH_K });
    expect(ids(all.items)).not.toContain(deletedId);
    expect(ids(all.items)[0]).toBe("fresh-1");
    expect(all.items).toHaveLength(catA.ids.length);
  });

  it("hot-swaps to a new bundle: the new index serves, deleted ids stay deleted, old upserts do not leak", async () => {
    await publishBundle(link, join(root, "b"));
    // Searches keep running during the background build and the swap; none may fail.
    let stop = false;
    const versions = new Set<string>();
    const workers = Array.from({ length: 3 }, async () => {
      while (!stop) versions.add((await server.client.search({ userVector: query, k: 5 })).version!.modelVersion);
    });
    const swapping = server.stage.model.checkNow();
    // A delete while the new index is being built must apply to it too.
    const lateVictim = catB.ids.find((id) => id !== deletedId && catA.ids.includes(id))!;
    expect(await server.client.deleteItems({ itemIds: [lateVictim] })).toMatchObject({ deleted: 1 });
    expect(await swapping).toBe("swapped");
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop = true;
    await Promise.all(workers);
    expect(versions).toEqual(new Set([catA.modelVersion, catB.modelVersion]));

    const gone = new Set([deletedId, lateVictim]);
    const described = await server.client.describeIndex({});
    expect(described.version!.modelVersion).toBe(catB.modelVersion);
    expect(catB.ids).toContain(deletedId);
    expect(described.shard!.itemCount).toBe(catB.ids.length - 2);
    for (let seed = 1; seed <= 4; seed++) {
      const q = randomVector(8, seed);
      const response = await server.client.search({ userVector: q, k: 10, modelVersion: catB.modelVersion });
      expect(ids(response.items)).toEqual(bruteForceTopK(catB, q, 10, gone).map((h) => h.id));
    }
    const all = await server.client.search({ userVector: query, k: MAX_SEARCH_K });
    expect(ids(all.items)).not.toContain(deletedId);
    expect(ids(all.items)).not.toContain(lateVictim);
    expect(ids(all.items)).not.toContain("fresh-1"); // upserted in model A's embedding space
    // The previous version is still answered for a grace period (version-window.ts), another is refused.
    expect((await server.client.search({ userVector: query, k: 5, modelVersion: catA.modelVersion })).version!.modelVersion).toBe(
      catA.modelVersion,
    );
    await expectCode(
      server.client.search({ userVector: query, k: 5, modelVersion: "cg-other" }),
      status.FAILED_PRECONDITION,
      `user vector from model cg-other, index from model ${catB.modelVersion}`,
    );
    const text = await scrapeMetrics(server.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_model_info", { model_version: catB.modelVersion })).toBe(1);
    expect(metricValue(text, "recsys_retrieval_index_loaded_from_file")).toBe(0);
  });

  it("lifts a delete with an explicit upsert, durably", async () => {
    const vector = query.map((v) => v * 20);
    const response = await server.client.upsertItems({ items: [{ itemId: deletedId, vector }] });
    expect(response.upserted).toBe(1);
    expect((await server.client.search({ userVector: query, k: 1 })).items[0]!.itemId).toBe(deletedId);
    await server.stop();
    server = await start({ INDEX_DIR: indexDir });
    expect(server.stage.model.version()).toBe(catB.modelVersion);
    expect((await server.client.search({ userVector: query, k: 1 })).items[0]!.itemId).toBe(deletedId);
    await server.stop();
    await publishBundle(link, join(root, "a"));
  });
});

describe("index files", () => {
  it("re-saves the index and empties the journal after INDEX_COMPACT_AFTER upserts", async () => {
    const indexDir = join(root, "index-compact");
    let server = await start({ INDEX_DIR: indexDir, INDEX_COMPACT_AFTER: "3" });
    const journal = journalPath(indexDir, catA.modelVersion, 0, 1);
    await server.client.upsertItems({
      items: [
        { itemId: "n1", vector: randomVector(8, 11) },
        { itemId: "n2", vector: randomVector(8, 12) },
      ],
    });
    expect((await stat(journal)).size).toBeGreaterThan(0);
    expect(logged(server, "index re-saved, upsert journal emptied")).toBe(false);
    await server.client.upsertItems({ items: [{ itemId: "n3", vector: randomVector(8, 13) }] });
    expect(logged(server, "index re-saved, upsert journal emptied")).toBe(true);
    expect((await stat(journal)).size).toBe(0);
    await server.stop();
    server = await start({ INDEX_DIR: indexDir, INDEX_COMPACT_AFTER: "3" });
    expect(logged(server, "index loaded from file")).toBe(true);
    expect((await server.client.describeIndex({})).shard!.itemCount).toBe(catA.ids.length + 3);
    const q = randomVector(8, 12);
    expect((await server.client.search({ userVector: q.map((v) => v * 50), k: 1 })).items[0]!.itemId).toBe("n2");
    await server.stop();
  });

  it("rebuilds a saved index that is corrupted, or of another kind", async () => {
    const indexDir = join(root, "index-corrupt");
    let server = await start({ INDEX_DIR: indexDir });
    await server.stop();
    await writeFile(join(indexPath(indexDir, catA.modelVersion, 0, 1), "index.json"), "{ not json");
    server = await start({ INDEX_DIR: indexDir });
    expect(logged(server, "saved index unusable: rebuilding it from the bundle")).toBe(true);
    expect(logged(server, "index built from the bundle and saved")).toBe(true);
    await server.stop();
    server = await start({ INDEX_DIR: indexDir, INDEX_KIND: "brute-force" });
    expect(logged(server, "saved index is of another INDEX_KIND: rebuilding it")).toBe(true);
    await server.stop();
  });

  it("rebuilds an HNSW index saved in the previous format (formatVersion 1, no exact head) once", async () => {
    const indexDir = join(root, "index-v1");
    let server = await start({ INDEX_DIR: indexDir });
    await server.stop();
    const metaPath = join(indexPath(indexDir, catA.modelVersion, 0, 1), "index.json");
    const meta = JSON.parse(await readFile(metaPath, "utf8")) as { formatVersion: number; head?: unknown; labels: (string | null)[] };
    expect(meta.formatVersion).toBe(2);
    // What a version-1 save looked like: every item in the graph's labels, no head.
    const { head: _head, ...v1 } = meta;
    await writeFile(metaPath, JSON.stringify({ ...v1, formatVersion: 1, size: meta.labels.filter((l) => l !== null).length }));
    server = await start({ INDEX_DIR: indexDir });
    expect(logged(server, "saved index unusable: rebuilding it from the bundle")).toBe(true);
    expect(logged(server, "index built from the bundle and saved")).toBe(true);
    expect((JSON.parse(await readFile(metaPath, "utf8")) as { formatVersion: number }).formatVersion).toBe(2);
    expect((await server.client.describeIndex({})).shard!.itemCount).toBe(catA.ids.length);
    expect((await server.client.search({ userVector: randomVector(8, 3), k: 5 })).items).toHaveLength(5);
    await server.stop();
    server = await start({ INDEX_DIR: indexDir });
    expect(logged(server, "index loaded from file")).toBe(true);
    expect(logged(server, "saved index unusable: rebuilding it from the bundle")).toBe(false);
    await server.stop();
  });

  it("serves the exact top-k with INDEX_KIND=brute-force", async () => {
    const server = await start({ INDEX_DIR: join(root, "index-bf"), INDEX_KIND: "brute-force" });
    for (let seed = 1; seed <= 4; seed++) {
      const q = randomVector(8, seed);
      const response = await server.client.search({ userVector: q, k: 7 });
      const expected = bruteForceTopK(catA, q, 7);
      expect(response.items.map((item) => [item.itemId, item.score])).toEqual(expected.map((h) => [h.id, Math.fround(h.score)]));
    }
    await server.stop();
  });
});

describe("two shards", () => {
  it("each shard holds only its items, and their merged results equal the unsharded result", async () => {
    const indexDir = join(root, "index-sharded");
    const shards = [
      await start({ INDEX_DIR: indexDir, SHARD_INDEX: "0", SHARD_COUNT: "2" }),
      await start({ INDEX_DIR: indexDir, SHARD_INDEX: "1", SHARD_COUNT: "2" }),
    ];
    const owned = [0, 1].map((i) => catA.ids.filter((id) => shardOf(id, 2) === i));
    expect(owned[0]!.length).toBeGreaterThan(0);
    expect(owned[1]!.length).toBeGreaterThan(0);
    for (const i of [0, 1]) {
      const described = await shards[i]!.client.describeIndex({});
      expect(described.shard).toMatchObject({ shardIndex: i, shardCount: 2, itemCount: owned[i]!.length });
      expect(described.version!.component).toBe(`retrieval/shard-${i}`);
      const all = await shards[i]!.client.search({ userVector: randomVector(8, 3), k: MAX_SEARCH_K });
      expect(new Set(ids(all.items))).toEqual(new Set(owned[i]));
    }
    for (let seed = 1; seed <= 5; seed++) {
      const q = randomVector(8, seed);
      const perShard = await Promise.all(shards.map((s) => s.client.search({ userVector: q, k: 10 })));
      const merged = mergeShardHits(
        perShard.map((r) => r.items.map((item) => ({ id: item.itemId, score: item.score }))),
        10,
      );
      expect(merged.map((h) => h.id)).toEqual(bruteForceTopK(catA, q, 10).map((h) => h.id));
    }

    const fresh = Array.from({ length: 12 }, (_, i) => ({ itemId: `fresh-${i}`, vector: randomVector(8, 100 + i) }));
    const mine = fresh.filter((item) => shardOf(item.itemId, 2) === 0).length;
    expect(mine).toBeGreaterThan(0);
    expect(mine).toBeLessThan(12);
    const upserted = await shards[0]!.client.upsertItems({ items: fresh });
    expect(upserted).toMatchObject({ upserted: mine, skippedOtherShard: 12 - mine });
    const foreign = owned[1]![0]!;
    expect(await shards[0]!.client.deleteItems({ itemIds: [foreign] })).toMatchObject({ deleted: 0, notFound: 1 });
    await Promise.all(shards.map((s) => s.stop()));
  });
});

describe("the process", () => {
  type Child = ChildProcessByStdio<null, Readable, Readable>;

  /** Starts `node dist/main.js`; resolves with its ports once it logs "serving". */
  function launch(
    env: Record<string, string>,
  ): Promise<{ child: Child; port: number; metricsPort: number; output: () => string; exited: Promise<number | null> }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env["PATH"] ?? "",
          GRPC_HOST: "127.0.0.1",
          GRPC_PORT: "0",
          METRICS_PORT: "0",
          MODEL_POLL_INTERVAL: "0",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        const line = stdout.split("\n").find((l) => l.includes('"msg":"serving"'));
        if (line !== undefined) {
          const { port, metricsPort } = JSON.parse(line) as { port: number; metricsPort: number };
          resolve({ child, port, metricsPort, output: () => stdout + stderr, exited });
        }
      });
      child.on("error", reject);
      void exited.then((code) => reject(new Error(`exited with ${code} before serving:\n${stdout}\n${stderr}`)));
    });
  }

  it("keeps deletes and upserts across SIGKILL and a restart, loading the saved index", async () => {
    const indexDir = join(root, "index-process");
    const env = { MODEL_PATH: link, INDEX_DIR: indexDir };
    const query = randomVector(8, 21);
    const victim = bruteForceTopK(catA, query, 1)[0]!.id;

    const first = await launch(env);
    let client = connect(RetrievalService, `127.0.0.1:${first.port}`);
    try {
      expect(first.output()).toContain('"msg":"index built from the bundle and saved"');
      expect((await client.search({ userVector: query, k: 1 })).items[0]!.itemId).toBe(victim);
      expect(await client.deleteItems({ itemIds: [victim] })).toMatchObject({ deleted: 1 });
      await client.upsertItems({ items: [{ itemId: "late-item", vector: query.map((v) => -v) }] });
    } finally {
      client.$close();
    }
    first.child.kill("SIGKILL"); // no graceful shutdown: what was acknowledged must be on disk
    await first.exited;

    const second = await launch(env);
    client = connect(RetrievalService, `127.0.0.1:${second.port}`);
    try {
      expect(second.output()).toContain('"msg":"index loaded from file"');
      expect(second.output()).not.toContain("index built from the bundle");
      const text = await scrapeMetrics(second.metricsPort);
      expect(metricValue(text, "recsys_retrieval_index_loaded_from_file")).toBe(1);
      const all = await client.search({ userVector: query, k: MAX_SEARCH_K });
      expect(ids(all.items)).not.toContain(victim);
      expect(ids(all.items).at(-1)).toBe("late-item"); // the exact opposite of the query: last
    } finally {
      client.$close();
    }
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    // The journal and the deleted-items list are plain JSON lines.
    expect(await readFile(join(indexDir, "deleted-items.shard-0-of-1.jsonl"), "utf8")).toBe(`{"op":"delete","id":"${victim}"}\n`);
  });

  it("exits 1 with a clear message on inconsistent shard settings", async () => {
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env["PATH"] ?? "",
        MODEL_PATH: link,
        INDEX_DIR: join(root, "x"),
        SHARD_INDEX: "2",
        SHARD_COUNT: "2",
        GRPC_PORT: "0",
        METRICS_PORT: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.on("exit", done));
    expect(code).toBe(1);
    expect(stderr).toContain("retrieval: configuration error: SHARD_INDEX=2 must be less than SHARD_COUNT=2");
  });
});
