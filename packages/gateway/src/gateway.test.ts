import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { invalidArgument, startFakeRecommender, unavailable, type FakeRecommender } from "@recsys/client/testing";
import { RecommenderService } from "@recsys/gen";
import { loadConfig } from "@recsys/runtime";
import { configSchema } from "./config.js";
import { startGateway, type RunningGateway } from "./server.js";

const run = promisify(execFile);
let fake: FakeRecommender;
let gateway: RunningGateway;
let defaults: Pick<FakeRecommender, "recommend" | "recordEvents">;
const ORIGIN = "https://shop.example";
const RECOMMEND = "/recsys.v1.RecommenderService/Recommend";
const RECORD_EVENTS = "/recsys.v1.RecommenderService/RecordEvents";

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  fake = await startFakeRecommender();
  defaults = { recommend: fake.recommend, recordEvents: fake.recordEvents };
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

  it("serves every method of RecommenderService (forwarded by name, none left UNIMPLEMENTED)", async () => {
    const names = Object.values(RecommenderService.method).map((method) => method.name);
    expect(names.length).toBeGreaterThanOrEqual(2);
    for (const name of names) {
      const response = await post(`/recsys.v1.RecommenderService/${name}`, {});
      expect(response.status, name).toBe(200);
    }
    expect(fake.calls.map((call) => call.method).sort()).toEqual([...names].sort());
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
