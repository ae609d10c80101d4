/**
 * A real ranking server (fake handler) on port 0, called through the typed client: replies,
 * health, /metrics, error mapping, validation, reflection.
 */
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { CandidateSource, MAX_RANK_CANDIDATES, RankingService, RankRequestSchema, RetrievalService, type RankRequest } from "@recsys/gen";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type Client,
  connect,
  createClient,
  implement,
  INTERNAL_ERROR_MESSAGE,
  resourceExhausted,
  RpcError,
  type ServiceImplementation,
  status,
  waitForReady,
} from "@recsys/transport";
import { checkHealth } from "./health.js";
import type { RuntimeConfig } from "./config.js";
import { startService, type RunningService } from "./service.js";
import { memoryLogger, metricValue, rejection, scrapeMetrics, testConfig } from "./testing/index.js";
import { requireMaxItems, validateUserContext } from "./validate.js";

/** The server every test of the parametrised blocks below starts (GRPC_SERVER). */
let server: RuntimeConfig["GRPC_SERVER"] = "http2";
const serverConfig = (overrides: Partial<RuntimeConfig> = {}): RuntimeConfig => testConfig({ GRPC_SERVER: server, ...overrides });

const RANK = "recsys.v1.RankingService/Rank";

const running: RunningService[] = [];
const clients: Array<{ $close(): void }> = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.$close();
  await Promise.all(running.splice(0).map((service) => service.stop("test done")));
});

/** The fake ranker: validates like a real one, scores candidates by their best source rank. */
const fakeRanking: ServiceImplementation<typeof RankingService.method> = {
  async rank(request: RankRequest) {
    const context = validateUserContext(request.context);
    requireMaxItems(request.candidates, MAX_RANK_CANDIDATES, "candidates");
    if (context.userId === "boom") throw new Error("secret database password in this message");
    if (context.userId === "busy") throw resourceExhausted("ranking queue full");
    return {
      items: request.candidates.map((candidate) => ({
        itemId: candidate.itemId,
        score: 1 / Math.min(...candidate.provenance.map((p) => p.rank)),
        expectedWatchSeconds: 42.5,
      })),
      version: { component: "ranking", modelVersion: "test-model-1" },
    };
  },
};

async function startRanking(stage = "ranking_test") {
  const logs = memoryLogger(stage);
  const service = await startService({
    stage,
    config: serverConfig(),
    services: [implement(RankingService, fakeRanking)],
    logger: logs.logger,
  });
  running.push(service);
  const client = connect(RankingService, service.address);
  clients.push(client);
  return { service, client, logs };
}

const context = { userId: "u1", watchHistory: [{ itemId: "i9" }] };
const candidates = [
  {
    itemId: "i1",
    provenance: [
      { source: CandidateSource.DNN, rank: 2, score: 0.9 },
      { source: CandidateSource.POPULAR, rank: 1, score: 1000 },
    ],
  },
  { itemId: "i2", provenance: [{ source: CandidateSource.CO_WATCH, rank: 4, score: 0.3 }] },
];

describe.each(["http2", "grpc-js"] as const)("on the %s server", (kind) => {
  beforeEach(() => {
    server = kind;
  });

  describe("startService", () => {
    it("answers through the typed client, reports health and counts the call in /metrics", async () => {
      const { service, client } = await startRanking();
      expect(service.port).toBeGreaterThan(0);
      expect(service.metricsPort).toBeGreaterThan(0);

      await waitForReady(client, 5000);
      const response = await client.rank({ context, candidates });
      expect(response.$typeName).toBe("recsys.v1.RankResponse");
      expect(response.items.map((item) => [item.itemId, item.score, item.expectedWatchSeconds])).toEqual([
        ["i1", 1, 42.5],
        ["i2", 0.25, 42.5],
      ]);
      expect(response.version?.modelVersion).toBe("test-model-1");
      // A ready-made message is accepted as well as an init object.
      const again = await client.rank(create(RankRequestSchema, { context, candidates: [] }));
      expect(again.items).toEqual([]);

      expect(await checkHealth(service.address)).toBe("SERVING");
      expect(await checkHealth(service.address, { service: "recsys.v1.RankingService" })).toBe("SERVING");
      const unknown = await rejection(checkHealth(service.address, { service: "recsys.v1.Nope" }));
      expect(unknown.code).toBe(status.NOT_FOUND);

      const metrics = await scrapeMetrics(service.metricsPort);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_requests_total", { method: RANK, code: "OK" })).toBe(2);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_request_duration_seconds_count", { method: RANK })).toBe(2);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_request_duration_seconds_bucket", { method: RANK, le: "+Inf" })).toBe(2);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_requests_in_flight")).toBe(0);
      // Default process metrics are there too.
      expect(metrics).toMatch(/^process_cpu_user_seconds_total /m);
      const notFound = await fetch(`http://127.0.0.1:${service.metricsPort}/other`);
      expect(notFound.status).toBe(404);
    });

    it("returns INTERNAL with a generic message for an unexpected throw, the cause only in the log", async () => {
      const { service, client, logs } = await startRanking();
      const error = await rejection(client.rank({ context: { userId: "boom" }, candidates }));
      expect(error.code).toBe(status.INTERNAL);
      expect(error.details).toBe(INTERNAL_ERROR_MESSAGE);
      expect(error.message).not.toMatch(/secret|at .*\.ts/);
      const logged = logs.lines.find((line) => line["msg"] === "handler failed");
      expect(logged).toMatchObject({ level: 50, service: "ranking_test", method: RANK });
      const err = logged?.["err"] as { message: string; stack: string };
      expect(err.message).toBe("secret database password in this message");
      expect(err.stack).toMatch(/service\.test\.ts/);

      const metrics = await scrapeMetrics(service.metricsPort);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_requests_total", { method: RANK, code: "INTERNAL" })).toBe(1);
    });

    it("returns INTERNAL with a generic message for a response that cannot be encoded", async () => {
      const logs = memoryLogger("badresponse");
      const service = await startService({
        stage: "badresponse",
        config: serverConfig(),
        logger: logs.logger,
        services: [
          implement(RankingService, {
            rank: () => ({ items: [{ itemId: "a", score: "high" as unknown as number }] }),
          }),
        ],
      });
      running.push(service);
      const client = connect(RankingService, service.address);
      clients.push(client);
      const error = await rejection(client.rank({ context }));
      expect(error.code).toBe(status.INTERNAL);
      expect(error.details).toBe(INTERNAL_ERROR_MESSAGE);
      expect(logs.text()).toMatch(/"msg":"handler failed"/);
      expect(logs.text()).toMatch(/score/);
    });

    it("returns a thrown RpcError's code and message", async () => {
      const { client } = await startRanking();
      const error = await rejection(client.rank({ context: { userId: "busy" }, candidates }));
      expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(error.details).toBe("ranking queue full");
    });

    it("returns INVALID_ARGUMENT naming the field", async () => {
      const { service, client } = await startRanking();
      const missing = await rejection(client.rank({ candidates }));
      expect(missing.code).toBe(status.INVALID_ARGUMENT);
      expect(missing.details).toBe("context is required");

      const noUser = await rejection(client.rank({ context: { userId: "" }, candidates }));
      expect(noUser.details).toBe("context.user_id is required");

      const badHistory = await rejection(
        client.rank({ context: { userId: "u", watchHistory: [{ itemId: "a" }, { itemId: "" }] }, candidates }),
      );
      expect(badHistory.details).toBe("context.watch_history[1].item_id is required");

      const tooMany = Array.from({ length: MAX_RANK_CANDIDATES + 1 }, (_, i) => ({ itemId: `i${i}` }));
      const overLimit = await rejection(client.rank({ context, candidates: tooMany }));
      expect(overLimit.code).toBe(status.INVALID_ARGUMENT);
      expect(overLimit.details).toBe(`candidates has ${MAX_RANK_CANDIDATES + 1} entries, at most 2000 allowed`);

      const metrics = await scrapeMetrics(service.metricsPort);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_requests_total", { method: RANK, code: "INVALID_ARGUMENT" })).toBe(4);
    });

    it("answers INVALID_ARGUMENT to request bytes that are not a valid message, and stays up", async () => {
      const { service, client } = await startRanking();
      const raw = new grpc.Client(service.address, grpc.credentials.createInsecure());
      clients.push({ $close: () => raw.close() });
      const passBytes = (bytes: Buffer): Buffer => bytes;
      // Field 1 (context) as a length-delimited field claiming 100 bytes, followed by 2.
      const truncated = Buffer.from([0x0a, 100, 1, 2]);
      const error = await rejection(
        new Promise((resolve, reject) => {
          raw.makeUnaryRequest(`/${RANK}`, passBytes, passBytes, truncated, (e, r) => (e ? reject(e) : resolve(r)));
        }),
      );
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(/^the request is not a valid recsys\.v1\.RankRequest: /);
      expect((await client.rank({ context, candidates })).items).toHaveLength(2);
      const metrics = await scrapeMetrics(service.metricsPort);
      expect(metricValue(metrics, "recsys_ranking_test_grpc_requests_total", { method: RANK, code: "INVALID_ARGUMENT" })).toBe(1);
    });

    it("rejects a response the client cannot decode with INTERNAL", async () => {
      // A raw grpc-js server answering bytes that are not a RankResponse.
      const server = new grpc.Server();
      const passBytes = (bytes: Buffer): Buffer => bytes;
      server.addService(
        {
          rank: {
            path: `/${RANK}`,
            requestStream: false,
            responseStream: false,
            requestSerialize: passBytes,
            requestDeserialize: passBytes,
            responseSerialize: passBytes,
            responseDeserialize: passBytes,
          },
        },
        {
          rank: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
            callback(null, Buffer.from([0x0a, 100, 1])),
        },
      );
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
      );
      try {
        const client = connect(RankingService, `127.0.0.1:${port}`);
        clients.push(client);
        const error = await rejection(client.rank({ context, candidates }));
        expect(error.code).toBe(status.INTERNAL);
        expect(error.details).toMatch(/^\/recsys\.v1\.RankingService\/Rank: the response is not a valid message: /);
      } finally {
        server.forceShutdown();
      }
    });

    it("answers UNIMPLEMENTED for a service it does not serve", async () => {
      const { service } = await startRanking();
      const retrieval = connect(RetrievalService, service.address);
      clients.push(retrieval);
      const error = await rejection(retrieval.search({ k: 10 }));
      expect(error.code).toBe(status.UNIMPLEMENTED);
    });

    it("keeps services in one process apart (own registries, own ports)", async () => {
      const a = await startRanking("stage_a");
      const b = await startRanking("stage_b");
      await a.client.rank({ context, candidates });
      const metricsA = await scrapeMetrics(a.service.metricsPort);
      const metricsB = await scrapeMetrics(b.service.metricsPort);
      expect(metricValue(metricsA, "recsys_stage_a_grpc_requests_total", { method: RANK, code: "OK" })).toBe(1);
      expect(metricsA).not.toMatch(/recsys_stage_b_/);
      expect(metricValue(metricsB, "recsys_stage_b_grpc_requests_total", { method: RANK, code: "OK" })).toBe(undefined);
    });

    it("cancels a call when the client's AbortSignal fires", async () => {
      let release: () => void = () => undefined;
      const service = await startService({
        stage: "slow",
        config: serverConfig(),
        services: [
          implement(RankingService, {
            rank: (_request, ctx) =>
              new Promise((resolve) => {
                release = () => resolve({});
                ctx.signal.addEventListener("abort", release);
              }),
          }),
        ],
      });
      running.push(service);
      expect((await callAndCancel(service)).code).toBe(status.CANCELLED);
      await until(() => service.inFlight() === 0);
      const metrics = await scrapeMetrics(service.metricsPort);
      expect(metricValue(metrics, "recsys_slow_grpc_requests_total", { method: RANK, code: "CANCELLED" })).toBe(1);
    });

    it("gives an aborted ctx.signal to a handler that reads it only after the caller cancelled", async () => {
      let seenAborted: boolean | undefined;
      let cancelled = false;
      const service = await startService({
        stage: "late_reader",
        config: serverConfig(),
        services: [
          implement(RankingService, {
            async rank(_request, ctx) {
              while (!cancelled) await new Promise((r) => setTimeout(r, 5));
              await new Promise((r) => setTimeout(r, 50)); // the cancellation reaches the server
              seenAborted = ctx.signal.aborted;
              return {};
            },
          }),
        ],
      });
      running.push(service);
      expect((await callAndCancel(service)).code).toBe(status.CANCELLED);
      cancelled = true;
      await until(() => seenAborted !== undefined);
      expect(seenAborted).toBe(true);
    });

    it("answers DEADLINE_EXCEEDED for a downstream deadline the handler let through, INTERNAL for other downstream errors", async () => {
      const service = await startService({
        stage: "passthrough",
        config: serverConfig(),
        services: [
          implement(RankingService, {
            rank(request) {
              const code = request.context?.userId === "late" ? status.DEADLINE_EXCEEDED : status.UNAVAILABLE;
              throw Object.assign(new Error(`${code} downstream`), {
                code,
                details: "Deadline exceeded after 0.095s",
                metadata: new grpc.Metadata(),
              });
            },
          }),
        ],
      });
      running.push(service);
      const client = connect(RankingService, service.address);
      clients.push(client);
      const late = await rejection(client.rank({ context: { userId: "late" } }));
      expect(late.code).toBe(status.DEADLINE_EXCEEDED);
      expect(late.details).toBe("a downstream call exceeded its deadline: Deadline exceeded after 0.095s");
      const down = await rejection(client.rank({ context: { userId: "down" } }));
      expect(down.code).toBe(status.INTERNAL);
      expect(down.details).toBe(INTERNAL_ERROR_MESSAGE);
    });

    it("stop() reports NOT_SERVING, drains in-flight calls, then closes", async () => {
      let release: () => void = () => undefined;
      const service = await startService({
        stage: "drain",
        config: serverConfig({ DRAIN_TIMEOUT: 5000 }),
        services: [
          implement(RankingService, {
            rank: () =>
              new Promise((resolve) => {
                release = () => resolve({ items: [{ itemId: "late", score: 1 }] });
              }),
          }),
        ],
      });
      const client = connect(RankingService, service.address);
      clients.push(client);
      const call = client.rank({ context });
      await until(() => service.inFlight() === 1);
      const stopped = service.stop();
      expect(await checkHealth(service.address)).toBe("NOT_SERVING");
      expect(await checkHealth(service.address, { service: "recsys.v1.RankingService" })).toBe("NOT_SERVING");
      release();
      expect((await call).items[0]?.itemId).toBe("late");
      expect(await stopped).toEqual({ drained: true, forced: false });
      expect(service.stop()).toBe(stopped);
      await expect(checkHealth(service.address, { timeoutMs: 500 })).rejects.toMatchObject({
        code: expect.any(Number),
      });
    });

    it("gives up draining after DRAIN_TIMEOUT and forces the close after SHUTDOWN_TIMEOUT", async () => {
      const service = await startService({
        stage: "stuck",
        config: serverConfig({ DRAIN_TIMEOUT: 200, SHUTDOWN_TIMEOUT: 200 }),
        services: [implement(RankingService, { rank: () => new Promise(() => undefined) })],
      });
      const client = connect(RankingService, service.address);
      clients.push(client);
      const call = client.rank({ context }, { deadline: Date.now() + 10_000 });
      await until(() => service.inFlight() === 1);
      const started = Date.now();
      expect(await service.stop()).toEqual({ drained: false, forced: true });
      expect(Date.now() - started).toBeLessThan(3000);
      // grpc-js ends force-closed calls with CANCELLED (UNAVAILABLE if the connection drops first).
      const error = await rejection(call);
      expect([status.CANCELLED, status.UNAVAILABLE]).toContain(error.code);
    });
  });

  describe("server reflection", () => {
    it("describes the served services from the protobuf-es descriptors", async () => {
      const { service } = await startRanking();
      const reflection = new ReflectionClient(service.address);
      try {
        const names = await reflection.listServices();
        expect(names.sort()).toEqual(["grpc.health.v1.Health", "recsys.v1.RankingService"]);

        const files = await reflection.fileContainingSymbol("recsys.v1.RankingService");
        const fileNames = files.map((bytes) => fromDescriptor(bytes).name);
        expect(fileNames).toContain("recsys/v1/ranking.proto");
        expect(fileNames).toContain("recsys/v1/common.proto");
        expect(fileNames).toContain("google/protobuf/timestamp.proto");

        // Like grpcurl: build descriptors from the reflected files only, and call the server.
        // (The reply lists the asked-for file first, then its imports, so resolve by name.)
        const byName = new Map(files.map((bytes) => fromDescriptor(bytes)).map((file) => [file.name, file]));
        const registry = createFileRegistry(byName.get("recsys/v1/ranking.proto")!, (name) => byName.get(name));
        const rankingService = registry.getService("recsys.v1.RankingService");
        expect(rankingService?.methods.map((method) => method.name)).toEqual(["Rank"]);
        const dynamic = createClient(
          rankingService as DescService as typeof RankingService,
          connect(RankingService, service.address).$transport,
        ) as Client<typeof RankingService.method>;
        clients.push(dynamic);
        const response = await dynamic.rank({ context, candidates });
        expect(response.items.map((item) => item.itemId)).toEqual(["i1", "i2"]);

        await expect(reflection.fileContainingSymbol("recsys.v1.Missing")).rejects.toThrow(/not found/i);
      } finally {
        reflection.close();
      }
    });

    it("is off when GRPC_REFLECTION=false", async () => {
      const service = await startService({
        stage: "noreflection",
        config: serverConfig({ GRPC_REFLECTION: false }),
        services: [implement(RankingService, fakeRanking)],
      });
      running.push(service);
      const reflection = new ReflectionClient(service.address);
      try {
        await expect(reflection.listServices()).rejects.toMatchObject({ code: status.UNIMPLEMENTED });
      } finally {
        reflection.close();
      }
    });
  });

  /** Calls Rank, cancels it once the server has it in flight, and returns the caller's error. */
  async function callAndCancel(service: RunningService): Promise<grpc.ServiceError> {
    const client = connect(RankingService, service.address);
    clients.push(client);
    const controller = new AbortController();
    const call = client.rank({ context }, { signal: controller.signal });
    await until(() => service.inFlight() === 1);
    controller.abort();
    return rejection(call);
  }

  async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > end) throw new Error("condition not met in time");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  function fromDescriptor(bytes: Uint8Array) {
    return fromBinary(FileDescriptorProtoSchema, bytes);
  }

  /**
   * A minimal grpc.reflection.v1 client, encoding the few fields it needs by hand (the messages are
   * not part of our generated code): list_services = 7, file_containing_symbol = 4; responses
   * file_descriptor_response = 4 { repeated bytes file_descriptor_proto = 1 },
   * list_services_response = 6 { repeated ServiceResponse service = 1 { string name = 1 } },
   * error_response = 7 { int32 error_code = 1; string error_message = 2 }.
   */
  class ReflectionClient {
    private readonly client: grpc.Client;
    constructor(address: string) {
      this.client = new grpc.Client(address, grpc.credentials.createInsecure());
    }

    close(): void {
      this.client.close();
    }

    async listServices(): Promise<string[]> {
      const response = await this.ask(7, "*");
      return response.services;
    }

    async fileContainingSymbol(symbol: string): Promise<Uint8Array[]> {
      const response = await this.ask(4, symbol);
      return response.files;
    }

    private ask(field: number, value: string): Promise<{ services: string[]; files: Uint8Array[] }> {
      const request = new BinaryWriter().tag(field, WireType.LengthDelimited).string(value).finish();
      return new Promise((resolve, reject) => {
        const stream = this.client.makeBidiStreamRequest(
          "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
          (bytes: Uint8Array) => Buffer.from(bytes),
          (bytes: Buffer) => new Uint8Array(bytes),
          new grpc.Metadata(),
          { deadline: Date.now() + 5000 },
        );
        stream.on("data", (bytes: Uint8Array) => {
          try {
            resolve(decodeReflectionResponse(bytes));
          } catch (error) {
            reject(error);
          }
          stream.end();
        });
        stream.on("error", reject);
        stream.write(request);
      });
    }
  }

  function decodeReflectionResponse(bytes: Uint8Array): { services: string[]; files: Uint8Array[] } {
    const out = { services: [] as string[], files: [] as Uint8Array[] };
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 4 || field === 6 || field === 7) {
        const inner = new BinaryReader(reader.bytes());
        while (inner.pos < inner.len) {
          const [innerField, innerType] = inner.tag();
          if (field === 4 && innerField === 1) out.files.push(inner.bytes());
          else if (field === 6 && innerField === 1) {
            const serviceReader = new BinaryReader(inner.bytes());
            while (serviceReader.pos < serviceReader.len) {
              const [f, t] = serviceReader.tag();
              if (f === 1) out.services.push(serviceReader.string());
              else serviceReader.skip(t);
            }
          } else if (field === 7 && innerField === 2) throw new RpcError(status.NOT_FOUND, inner.string());
          else inner.skip(innerType);
        }
      } else {
        reader.skip(wireType);
      }
    }
    return out;
  }
});
