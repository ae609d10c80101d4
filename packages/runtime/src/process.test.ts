/**
 * The runtime as a real process: src/testing/fixture-service.ts compiled to dist (run
 * `npx tsc --build` first) and started with node, configured through its environment.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RankingService } from "@recsys/gen";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@recsys/transport";
import { checkHealth } from "./health.js";
import { metricValue, scrapeMetrics } from "./testing/index.js";

const fixture = fileURLToPath(new URL("../dist/testing/fixture-service.js", import.meta.url));

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  readonly metricsPort: number;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
});

beforeAll(() => {
  if (!existsSync(fixture)) throw new Error(`${fixture} is missing: run \`npx tsc --build\` first`);
});

function spawnFixture(environment: Record<string, string>): Omit<Started, "port" | "metricsPort"> {
  const child = spawn(process.execPath, [fixture], {
    env: { PATH: process.env["PATH"] ?? "", ...environment },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

async function startFixture(environment: Record<string, string>): Promise<Started> {
  const started = spawnFixture({
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    FIXTURE_MODEL_VERSION: "fixture-1",
    ...environment,
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = started
      .stdout()
      .split("\n")
      .map((line) => (line.startsWith('{"ready"') ? (JSON.parse(line) as { port: number; metricsPort: number }) : null))
      .find((line) => line !== null);
    if (ready) return { ...started, port: ready.port, metricsPort: ready.metricsPort };
    if (started.child.exitCode !== null) {
      throw new Error(`fixture exited with ${started.child.exitCode}: ${started.stderr()}`);
    }
    if (Date.now() > deadline) throw new Error(`fixture not ready after 20 s: ${started.stdout()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitFor<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > end) throw new Error(`condition not met in ${timeoutMs} ms (last: ${String(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("service process", () => {
  it("on SIGTERM reports NOT_SERVING, finishes the in-flight call and exits 0", async () => {
    const service = await startFixture({ FIXTURE_RANK_DELAY: "1500ms", DRAIN_TIMEOUT: "10s" });
    const address = `127.0.0.1:${service.port}`;
    expect(await checkHealth(address)).toBe("SERVING");

    const client = connect(RankingService, address);
    try {
      const slowCall = client.rank(
        { context: { userId: "u1" }, candidates: [{ itemId: "a" }, { itemId: "b" }] },
        { deadline: Date.now() + 15_000 },
      );
      await waitFor(
        () => scrapeMetrics(service.metricsPort),
        (text) => metricValue(text, "recsys_fixture_grpc_requests_in_flight") === 1,
      );
      const signalled = Date.now();
      service.child.kill("SIGTERM");

      // During the drain the server still answers health checks, with NOT_SERVING.
      const during = await waitFor(
        () => checkHealth(address).catch((error: unknown) => `failed: ${String(error)}`),
        (status) => status !== "SERVING",
      );
      expect(during).toBe("NOT_SERVING");
      expect(service.child.exitCode).toBe(null);

      const response = await slowCall;
      expect(response.items.map((item) => item.itemId)).toEqual(["a", "b"]);
      expect(response.version?.modelVersion).toBe("fixture-1");

      const exit = await service.exit;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(8000);
      const logs = service
        .stdout()
        .split("\n")
        .filter((line) => line.startsWith('{"level"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(logs.every((line) => line["service"] === "fixture")).toBe(true);
      expect(logs.map((line) => line["msg"])).toEqual(
        expect.arrayContaining(["serving", "shutting down: health NOT_SERVING", "ranked", "stopped"]),
      );
      expect(logs.find((line) => line["msg"] === "stopped")).toMatchObject({ drained: true, forced: false });
    } finally {
      client.$close();
    }
  });

  it("exits 0 at once on SIGINT when idle", async () => {
    const service = await startFixture({});
    service.child.kill("SIGINT");
    expect(await service.exit).toEqual({ code: 0, signal: null });
  });

  it.each([
    [{ GRPC_PORT: "70000" }, /GRPC_PORT is invalid: expected an integer in 0\.\.65535, got 70000/],
    [{ DRAIN_TIMEOUT: "soon" }, /DRAIN_TIMEOUT is invalid: expected a duration/],
    [{ FIXTURE_MODEL_VERSION: "" }, /FIXTURE_MODEL_VERSION is required but not set/],
  ])("refuses to start with a bad environment (%o) and names the variable", async (bad, message) => {
    const started = spawnFixture({
      GRPC_PORT: "0",
      METRICS_PORT: "0",
      FIXTURE_MODEL_VERSION: "fixture-1",
      ...bad,
    });
    const exit = await started.exit;
    expect(exit.code).toBe(1);
    expect(started.stderr()).toMatch(message);
    expect(started.stderr()).toMatch(/^fixture: configuration error: /);
    expect(started.stdout()).not.toMatch(/"ready"/);
  });

  it("exits 1 when the port is taken", async () => {
    const first = await startFixture({});
    const second = spawnFixture({
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: String(first.port),
      METRICS_PORT: "0",
      FIXTURE_MODEL_VERSION: "fixture-1",
    });
    expect((await second.exit).code).toBe(1);
    expect(second.stdout()).toMatch(/"msg":"startup failed"/);
    first.child.kill("SIGTERM");
    expect((await first.exit).code).toBe(0);
  });
});
