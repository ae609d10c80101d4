import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { invalidArgument, startFakeRecommender, unavailable, type FakeRecommender } from "@recsys/client/testing";
import { CatalogueService, RecommenderService } from "@recsys/gen";
import { loadConfig } from "@recsys/runtime";
import { configSchema } from "./config.js";
import { startGateway, type RunningGateway } from "./server.js";

const run = promisify(execFile);
let fake: FakeRecommender;
let gateway: RunningGateway;
let defaults: Pick<FakeRecommender, "recommend" | "recordEvents" | "upsertItems" | "deleteItems" | "getItems">;
const ORIGIN = "https://shop.example";
const RECOMMEND = "/recsys.v1.RecommenderService/Recommend";
const RECORD_EVENTS = "/recsys.v1.RecommenderService/RecordEvents";
const UPSERT_ITEMS = "/recsys.v1.CatalogueService/UpsertItems";
const DELETE_ITEMS = "/recsys.v1.CatalogueService/DeleteItems";
const GET_ITEMS = "/recsys.v1.CatalogueService/GetItems";

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  fake = await startFakeRecommender();
  const { recommend, recordEvents, upsertItems, deleteItems, getItems } = fake;
  defaults = { recommend, recordEvents, upsertItems, deleteItems, getItems };
  gateway = await startGateway(
    loadConfig(configSchema, {
      ORCHESTRATOR_ADDRESS: fake.address,
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_PORT: "0",
      METRICS_PORT: "0",
      LOG_LEVEL: "silent",
      GATEWAY_CORS_ORIGINS: ORIGIN,
      DRAIN_TIMEOUT: "1s",
    }),
  );
});

afterEach(() => {
  Object.assign(fake, defaults);
  fake.calls.length = 0;
  fake.events.length = 0;
  fake.items.clear();
  fake.deleted.clear();
});

afterAll(async () => {
  await gateway?.stop();
  await fake?.stop();
});

describe("gateway: Connect JSON in front of the orchestrator", () => {
  it("answers Recommend as JSON (lowerCamelCase or proto field names in, lowerCamelCase out)", async () => {
    const response = await post(RECOMMEND, { userId: "17", count: 2 });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const body = (await response.json()) as { items: Array<{ itemId: string; score: number; reasons: string[] }>; requestId: string };
    expect(body.items.map((item) => item.itemId)).toEqual(["item-1", "item-2"]);
    expect(body.items[0]!.reasons).toEqual(["Recommended to 17"]);
    expect(body.requestId).toMatch(/^fake-/);

    const snake = await post(RECOMMEND, { user_id: "18", count: 1, excluded_item_ids: ["x"] });
    expect(snake.status).toBe(200);
    expect(fake.calls.at(-1)!.request).toMatchObject({ userId: "18", count: 1, excludedItemIds: ["x"] });
  });

  it("records events given as JSON (oneof by field name, timestamps as RFC 3339)", async () => {
    const response = await post(RECORD_EVENTS, {
      events: [
        { userId: "17", watch: { itemId: "42", watchedAt: "2026-01-02T03:04:05Z", watchSeconds: 30 } },
        { userId: "17", impression: { itemId: "43", position: 2, requestId: "r-1" } },
      ],
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ accepted: 2 });
    expect(fake.events.map((event) => [event.kind.case, (event.kind.value as { itemId: string }).itemId])).toEqual([
      ["watch", "42"],
      ["impression", "43"],
    ]);
    const watch = fake.events[0]!.kind.value as { watchedAt: { seconds: bigint }; watchSeconds: number };
    expect(watch.watchedAt.seconds).toBe(BigInt(Date.parse("2026-01-02T03:04:05Z") / 1000));
    expect(watch.watchSeconds).toBe(30);
  });

  it("passes the orchestrator's status and message through, as Connect errors with HTTP statuses", async () => {
    fake.recommend = () => {
      throw invalidArgument("count must be in 1..500, got 0");
    };
    const bad = await post(RECOMMEND, { userId: "17", count: 0 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: "invalid_argument", message: "count must be in 1..500, got 0" });

    fake.recordEvents = () => {
      throw unavailable("user store unavailable");
    };
    const down = await post(RECORD_EVENTS, { events: [{ userId: "17", watch: { itemId: "42" } }] });
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ code: "unavailable", message: "user store unavailable" });
    // RecordEvents is not idempotent: the gateway does not retry it.
    expect(fake.calls.filter((call) => call.method === "RecordEvents")).toHaveLength(1);

    const malformed = await post(RECOMMEND, { userId: 17, count: "many" });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe("invalid_argument");
    expect(fake.calls.filter((call) => call.method === "Recommend")).toHaveLength(1);
  });

  it("keeps the caller's deadline (connect-timeout-ms), and uses GATEWAY_TIMEOUT when none is sent", async () => {
    let before = Date.now();
    await post(RECOMMEND, { userId: "1", count: 1 }, { "connect-timeout-ms": "250" });
    expect(fake.calls.at(-1)!.deadline - before).toBeGreaterThanOrEqual(240);
    expect(fake.calls.at(-1)!.deadline - Date.now()).toBeLessThanOrEqual(260);
    before = Date.now();
    await post(RECOMMEND, { userId: "1", count: 1 });
    expect(fake.calls.at(-1)!.deadline - before).toBeGreaterThanOrEqual(990);
    expect(fake.calls.at(-1)!.deadline - Date.now()).toBeLessThanOrEqual(1010);

    fake.recommend = (_request, context) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ items: [] }), 5000);
        context.signal.addEventListener("abort", () => clearTimeout(timer));
      });
    const slow = await post(RECOMMEND, { userId: "1", count: 1 }, { "connect-timeout-ms": "200" });
    expect(slow.status).toBe(504);
    expect(((await slow.json()) as { code: string }).code).toBe("deadline_exceeded");
  });

  it("answers CORS preflights of allowed origins only", async () => {
    const preflight = await fetch(`${gateway.url}${RECOMMEND}`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("content-type");

    const allowed = await post(RECOMMEND, { userId: "1", count: 1 }, { origin: ORIGIN });
    expect(allowed.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const other = await post(RECOMMEND, { userId: "1", count: 1 }, { origin: "https://elsewhere.example" });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("serves /healthz, and /metrics counts calls by method and code", async () => {
    const health = await fetch(`${gateway.url}/healthz`);
    expect(health.status).toBe(200);
    await post(RECOMMEND, { userId: "1", count: 1 });
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/recsys_gateway_grpc_requests_total\{method="Recommend",code="OK"\} [1-9]/);
    expect(metrics).toMatch(/recsys_gateway_grpc_requests_total\{method="Recommend",code="INVALID_ARGUMENT"\} [1-9]/);
  });

  it("serves every method of RecommenderService and CatalogueService (forwarded by name, none left UNIMPLEMENTED)", async () => {
    const paths = [RecommenderService, CatalogueService].flatMap((service) =>
      Object.values(service.method).map((method) => ({ service: service.typeName, name: method.name })),
    );
    expect(paths.length).toBeGreaterThanOrEqual(5);
    // Bodies the fake accepts (its catalogue refuses an empty list, as the orchestrator does).
    const bodies: Record<string, unknown> = { UpsertItems: { items: [{ itemId: "x" }] }, DeleteItems: { itemIds: ["x"] } };
    for (const { service, name } of paths) {
      const response = await post(`/${service}/${name}`, bodies[name] ?? {});
      expect(response.status, name).toBe(200);
    }
    expect(fake.calls.map((call) => call.method).sort()).toEqual(paths.map((path) => path.name).sort());
  });

  it("uploads, reads back and takes down an item as JSON (CatalogueService)", async () => {
    const upserted = await post(UPSERT_ITEMS, {
      items: [
        { itemId: "v-1", title: "Cats at play", tags: ["cats"], channel: "ch-a", uploadedAt: "2026-12-01T10:00:00Z", durationSeconds: 95 },
      ],
    });
    expect(upserted.status).toBe(200);
    expect(await upserted.json()).toEqual({ upserted: 1, embedded: 1 });
    const read = await post(GET_ITEMS, { item_ids: ["v-1", "nope"] });
    const body = (await read.json()) as { items: Array<Record<string, unknown>>; deletedItemIds?: string[] };
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({
      itemId: "v-1",
      title: "Cats at play",
      tags: ["cats"],
      channel: "ch-a",
      uploadedAt: "2026-12-01T10:00:00Z",
      durationSeconds: 95,
    });
    expect(body.items[0]!.updatedAt).toMatch(/^20\d\d-/);
    expect(body.deletedItemIds).toBeUndefined();

    const deleted = await post(DELETE_ITEMS, { itemIds: ["v-1"] });
    expect(await deleted.json()).toEqual({ deleted: 1 });
    expect(await (await post(GET_ITEMS, { itemIds: ["v-1"] })).json()).toEqual({ deletedItemIds: ["v-1"] });

    const empty = await post(UPSERT_ITEMS, { items: [] });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toEqual({ code: "invalid_argument", message: "items is empty" });
  });

  it("does not serve CatalogueService with GATEWAY_CATALOGUE=false (a public gateway)", async () => {
    const readOnly = await startGateway(
      loadConfig(configSchema, {
        ORCHESTRATOR_ADDRESS: fake.address,
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: "0",
        METRICS_PORT: "0",
        LOG_LEVEL: "silent",
        GATEWAY_CATALOGUE: "false",
      }),
    );
    try {
      const json = { method: "POST", headers: { "content-type": "application/json" } };
      const upload = await fetch(`${readOnly.url}${UPSERT_ITEMS}`, { ...json, body: '{"items": [{"itemId": "x"}]}' });
      expect(upload.status).toBe(404);
      const recommend = await fetch(`${readOnly.url}${RECOMMEND}`, { ...json, body: '{"userId": "1", "count": 1}' });
      expect(recommend.status).toBe(200);
      expect(fake.calls.map((call) => call.method)).toEqual(["Recommend"]);
    } finally {
      await readOnly.stop();
    }
  });

  it("retries the idempotent catalogue writes on UNAVAILABLE (RecordEvents is not)", async () => {
    let left = 1;
    fake.deleteItems = (request, context) => {
      if (left-- > 0) throw unavailable("retrieval shard-1 down (retry: DeleteItems is idempotent)");
      return defaults.deleteItems(request, context);
    };
    const response = await post(DELETE_ITEMS, { itemIds: ["v-9"] });
    expect(response.status).toBe(200);
    expect(fake.calls.filter((call) => call.method === "DeleteItems")).toHaveLength(2);
    expect(fake.deleted.has("v-9")).toBe(true);
  });

  it("answers the README's curl line", async () => {
    const { stdout } = await run("curl", [
      "-sS",
      "--fail-with-body",
      "-H",
      "content-type: application/json",
      "-d",
      '{"userId": "17", "count": 3}',
      `${gateway.url}${RECOMMEND}`,
    ]);
    expect((JSON.parse(stdout) as { items: unknown[] }).items).toHaveLength(3);
  });

  it("answers the README's catalogue curl lines (upload an item, take it down)", async () => {
    const curl = async (path: string, body: string): Promise<unknown> => {
      const { stdout } = await run("curl", [
        "-sS",
        "--fail-with-body",
        "-H",
        "content-type: application/json",
        "-H",
        "connect-timeout-ms: 10000",
        "-d",
        body,
        `${gateway.url}${path}`,
      ]);
      return JSON.parse(stdout);
    };
    expect(
      await curl(
        UPSERT_ITEMS,
        '{"items": [{"itemId": "v-42", "title": "Cats at play", "tags": ["cats"], "channel": "ch-a", "durationSeconds": 95}]}',
      ),
    ).toEqual({ upserted: 1, embedded: 1 });
    expect(await curl(GET_ITEMS, '{"itemIds": ["v-42"]}')).toMatchObject({ items: [{ itemId: "v-42", channel: "ch-a" }] });
    expect(await curl(DELETE_ITEMS, '{"itemIds": ["v-42"]}')).toEqual({ deleted: 1 });
    expect(fake.calls.at(-1)!.deadline - Date.now()).toBeGreaterThan(8000);
  });
});

describe("recsys-gateway process", () => {
  const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child?.exitCode === null) child.kill("SIGKILL");
  });

  it("starts from its environment, serves, and exits 0 on SIGTERM", async () => {
    child = spawn(process.execPath, [main], {
      env: {
        PATH: process.env.PATH ?? "",
        ORCHESTRATOR_ADDRESS: fake.address,
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: "0",
        METRICS_PORT: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = createInterface({ input: child.stdout! });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the gateway did not log 'gateway serving' within 20 s")), 20_000);
      lines.on("line", (line) => {
        const entry = JSON.parse(line) as { msg: string; url?: string };
        if (entry.msg === "gateway serving") {
          clearTimeout(timer);
          resolve(entry.url!);
        }
      });
    });
    const response = await fetch(`${url}${RECOMMEND}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"userId":"5","count":1}',
    });
    expect(response.status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("refuses to start without ORCHESTRATOR_ADDRESS, naming it", async () => {
    const result = await run(process.execPath, [main], { env: { PATH: process.env.PATH ?? "" } }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ORCHESTRATOR_ADDRESS");
  });
});
