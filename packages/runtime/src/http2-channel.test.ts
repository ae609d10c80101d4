/**
 * Http2Channel against real servers on loopback: the runtime's grpc-js server (what every stage
 * runs) and, for protocol corners, raw node:http2 and TCP servers.
 */
import http2 from "node:http2";
import net from "node:net";
import zlib from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { RankingService, type RankRequest } from "@recsys/gen";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Client,
  createClient,
  Http2Channel,
  type Http2ChannelOptions,
  implement,
  isServiceError,
  RpcError,
  status,
} from "@recsys/transport";
import { startService, type RunningService } from "./service.js";
import { rejection, testConfig } from "./testing/index.js";

const running: RunningService[] = [];
const closers: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await Promise.all(running.splice(0).map((service) => service.stop("test done")));
});

const OPTIONS: Http2ChannelOptions = {
  maxMessageBytes: 1 << 20,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  loadBalancing: "round_robin",
};

interface Seen {
  calls: number;
  metadata: string[];
  aborted: number;
}

/** A ranking server answering each candidate with its id; `slow` waits 5 s or until cancelled. */
async function startRanking(host = "127.0.0.1", port = 0): Promise<{ service: RunningService; seen: Seen }> {
  const seen: Seen = { calls: 0, metadata: [], aborted: 0 };
  const service = await startService({
    stage: "channel_test",
    config: testConfig({ GRPC_HOST: host, GRPC_PORT: port }),
    services: [
      implement(RankingService, {
        async rank(request: RankRequest, ctx) {
          seen.calls += 1;
          const tag = ctx.metadata.get("x-tag")[0];
          if (tag !== undefined) seen.metadata.push(String(tag));
          const userId = request.context?.userId;
          if (userId === "slow") {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 5000);
              ctx.signal.addEventListener("abort", () => {
                seen.aborted += 1;
                clearTimeout(timer);
                resolve();
              });
            });
          }
          if (userId === "refuse") {
            const metadata = new grpc.Metadata();
            metadata.set("x-reason", "quota");
            throw new RpcError(status.RESOURCE_EXHAUSTED, "over quota: 100% used", { metadata });
          }
          if (userId === "big") return { items: Array.from({ length: 50_000 }, (_, i) => ({ itemId: `item-${i}-${"x".repeat(20)}` })) };
          return { items: request.candidates.map((c) => ({ itemId: c.itemId, score: 1 })), version: { component: host } };
        },
      }),
    ],
  });
  running.push(service);
  return { service, seen };
}

function client(
  target: string,
  options: Partial<Http2ChannelOptions> = {},
): { channel: Http2Channel; ranking: Client<typeof RankingService.method> } {
  const channel = new Http2Channel(target, { ...OPTIONS, ...options });
  closers.push(() => channel.close());
  return { channel, ranking: createClient(RankingService, channel) };
}

/** Calls until one answers (5 s at most): whether one did. */
async function untilAnswered(ranking: Client<typeof RankingService.method>): Promise<boolean> {
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    if (
      await ranking.rank(request("u")).then(
        () => true,
        () => false,
      )
    )
      return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const request = (userId: string) => ({ context: { userId }, candidates: [{ itemId: "a" }, { itemId: "b" }] });

/** A free TCP port on 127.0.0.1 (bound and released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("Http2Channel", () => {
  it("makes unary calls, sends metadata and receives error status with its trailing metadata", async () => {
    const { service, seen } = await startRanking();
    const { ranking } = client(service.address);
    const metadata = new grpc.Metadata();
    metadata.set("x-tag", "hello");
    const response = await ranking.rank(request("u1"), { metadata });
    expect(response.items.map((item) => item.itemId)).toEqual(["a", "b"]);
    expect(seen.metadata).toEqual(["hello"]);

    const error = await rejection(ranking.rank(request("refuse")));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe("over quota: 100% used"); // percent-encoded on the wire
    expect(error.metadata.get("x-reason")).toEqual(["quota"]);
    expect(error.message).toBe("8 RESOURCE_EXHAUSTED: over quota: 100% used");

    // Concurrent calls share the connection.
    const many = await Promise.all(
      Array.from({ length: 50 }, (_, i) => ranking.rank({ context: { userId: `u${i}` }, candidates: [{ itemId: `i${i}` }] })),
    );
    expect(many.map((r) => r.items[0]!.itemId)).toEqual(Array.from({ length: 50 }, (_, i) => `i${i}`));
  });

  it("fails at once with UNAVAILABLE when nothing listens, then reconnects after the backoff", async () => {
    const port = await freePort();
    const { ranking } = client(`127.0.0.1:${port}`);
    const started = Date.now();
    const first = await rejection(ranking.rank(request("u"), { deadline: Date.now() + 5000 }));
    expect(first.code).toBe(status.UNAVAILABLE);
    expect(first.details).toMatch(/ECONNREFUSED/);
    // While backing off, calls fail without trying.
    const second = await rejection(ranking.rank(request("u"), { deadline: Date.now() + 5000 }));
    expect(second.code).toBe(status.UNAVAILABLE);
    expect(second.details).toMatch(/no connection to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1000);

    await startRanking("127.0.0.1", port);
    expect(await untilAnswered(ranking)).toBe(true);
  });

  it("follows a server that stops and comes back on the same port", async () => {
    const { service } = await startRanking();
    const { ranking } = client(service.address);
    await ranking.rank(request("u"));
    await service.stop("restart");
    running.splice(running.indexOf(service), 1);
    expect((await rejection(ranking.rank(request("u")))).code).toBe(status.UNAVAILABLE);
    await startRanking("127.0.0.1", service.port);
    expect(await untilAnswered(ranking)).toBe(true);
  });

  it("ends a call at its deadline and cancels it on the server", async () => {
    const { service, seen } = await startRanking();
    const { ranking } = client(service.address);
    const started = Date.now();
    const error = await rejection(ranking.rank(request("slow"), { deadline: Date.now() + 200 }));
    expect(error.code).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(1500);
    const until = Date.now() + 2000;
    while (seen.aborted === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(seen.aborted).toBe(1);
    // An expired deadline fails before sending.
    const calls = seen.calls;
    expect((await rejection(ranking.rank(request("u"), { deadline: Date.now() - 1 }))).code).toBe(status.DEADLINE_EXCEEDED);
    expect(seen.calls).toBe(calls);
  });

  it("cancels on an AbortSignal, and the server sees it", async () => {
    const { service, seen } = await startRanking();
    const { ranking } = client(service.address);
    const abort = new AbortController();
    const pending = rejection(ranking.rank(request("slow"), { signal: abort.signal }));
    while (seen.calls === 0) await new Promise((r) => setTimeout(r, 5));
    abort.abort();
    expect((await pending).code).toBe(status.CANCELLED);
    const until = Date.now() + 2000;
    while (seen.aborted === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(seen.aborted).toBe(1);
    expect((await rejection(ranking.rank(request("u"), { signal: abort.signal }))).code).toBe(status.CANCELLED);
  });

  it("enforces the message size limit both ways with RESOURCE_EXHAUSTED", async () => {
    const { service, seen } = await startRanking();
    const { ranking } = client(service.address, { maxMessageBytes: 100_000 });
    const big = await rejection(ranking.rank(request("big")));
    expect(big.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(big.details).toMatch(/^Received message larger than max \(\d+ vs\. 100000\)$/);
    const calls = seen.calls;
    const tooLarge = { context: { userId: "u" }, candidates: Array.from({ length: 20_000 }, (_, i) => ({ itemId: `candidate-${i}` })) };
    const sent = await rejection(ranking.rank(tooLarge));
    expect(sent.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(sent.details).toMatch(/^Sent message larger than max \(\d+ vs\. 100000\)$/);
    expect(seen.calls).toBe(calls);
    // The channel is still good.
    expect((await ranking.rank(request("u"))).items).toHaveLength(2);
  });

  it("sends gzip and deflate requests, to the runtime's server and to grpc-js's, and reads compressed answers", async () => {
    for (const server of ["http2", "grpc-js"] as const) {
      const service = await startService({
        stage: "channel_test",
        config: testConfig({ GRPC_SERVER: server }),
        services: [
          implement(RankingService, { rank: async (r) => ({ items: r.candidates.map((c) => ({ itemId: c.itemId, score: 1 })) }) }),
        ],
      });
      running.push(service);
      for (const compression of ["gzip", "deflate", "identity"] as const) {
        const { ranking } = client(service.address, { compression });
        const many = { context: { userId: "u" }, candidates: Array.from({ length: 2000 }, (_, i) => ({ itemId: `c-${i}` })) };
        expect((await ranking.rank(many)).items, `${server} ${compression}`).toHaveLength(2000);
      }
    }
  });

  it("refuses a compressed answer that inflates past the limit, and one in an encoding it does not read", async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 << 20));
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const encoding = headers[":path"] === "/recsys.v1.RankingService/Rank" ? "gzip" : "br";
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-encoding": encoding }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const head = Buffer.alloc(5);
      head[0] = 1;
      head.writeUInt32BE(bomb.length, 1);
      stream.end(Buffer.concat([head, bomb]));
      stream.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { ranking, channel } = client(address);
    const error = await rejection(ranking.rank(request("u")));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/after decompression/);
    const other = await rejection(channel.unary("/other/Method", new Uint8Array(0), { deadline: Date.now() + 1000 }));
    expect(other.code).toBe(status.INTERNAL);
    expect(other.details).toMatch(/"br"/);
  });

  it("keeps a call whose deadline is 2^31 ms or more away", async () => {
    const { service } = await startRanking();
    const { ranking } = client(service.address);
    const answer = await ranking.rank(request("u"), { deadline: Date.now() + 2 ** 32 });
    expect(answer.items).toHaveLength(2);
  });

  it("spreads calls over every address a name resolves to, and follows the resolution", async () => {
    // Two servers on the same port at 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to lo).
    const first = await startRanking("127.0.0.1");
    const second = await startRanking("127.0.0.2", first.service.port);
    let addresses = ["127.0.0.1", "127.0.0.2"];
    const { ranking } = client(`dns:///ranking.test:${first.service.port}`, { lookup: async () => addresses, resolveIntervalMs: 100 });
    // One call at a time (as a stage with little traffic makes them): they alternate.
    const answered: Array<string | undefined> = [];
    for (let i = 0; i < 20; i++) answered.push((await ranking.rank(request("u"))).version?.component);
    for (const host of ["127.0.0.1", "127.0.0.2"]) expect(answered.slice(10).filter((h) => h === host).length, answered.join(" ")).toBe(5);
    // And in bursts.
    const burst = await Promise.all(Array.from({ length: 20 }, async () => (await ranking.rank(request("u"))).version?.component));
    for (const host of ["127.0.0.1", "127.0.0.2"]) expect(burst.filter((h) => h === host).length).toBeGreaterThanOrEqual(5);

    // The name now resolves to one address: once resolved again, only that one is called.
    addresses = ["127.0.0.2"];
    await new Promise((r) => setTimeout(r, 300));
    const before = first.seen.calls;
    for (let i = 0; i < 10; i++) expect((await ranking.rank(request("u"))).version?.component).toBe("127.0.0.2");
    expect(first.seen.calls).toBe(before);

    // An address that stops listening: calls go to the other one without failing.
    addresses = ["127.0.0.1", "127.0.0.2"];
    await new Promise((r) => setTimeout(r, 300));
    await second.service.stop("gone");
    running.splice(running.indexOf(second.service), 1);
    const after = await Promise.all(
      Array.from({ length: 10 }, () =>
        ranking.rank(request("u")).then(
          (r) => r.version?.component,
          (e: unknown) => (isServiceError(e) ? status[e.code] : String(e)),
        ),
      ),
    );
    expect(after.filter((h) => h === "127.0.0.1").length).toBeGreaterThanOrEqual(9);
  });

  it("reports an unresolvable name as UNAVAILABLE, and looks it up again soon", async () => {
    const { service } = await startRanking();
    let resolvable = false;
    const { ranking } = client(`dns:///ranking.test:${service.port}`, {
      lookup: async () => {
        if (resolvable) return ["127.0.0.1"];
        throw Object.assign(new Error("getaddrinfo ENOTFOUND ranking.test"), { code: "ENOTFOUND" });
      },
    });
    const error = await rejection(ranking.rank(request("u")));
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(error.details).toMatch(/name resolution of ranking\.test failed: getaddrinfo ENOTFOUND/);
    resolvable = true; // e.g. the first pod of a headless Service became ready
    expect(await untilAnswered(ranking)).toBe(true);
  });

  it("drops a connection whose peer stops answering keepalive pings", async () => {
    // Accepts TCP and never speaks HTTP/2: the call hangs until the pings go unanswered.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    closers.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const { ranking } = client(`127.0.0.1:${(silent.address() as net.AddressInfo).port}`, {
      keepaliveTimeMs: 100,
      keepaliveTimeoutMs: 100,
    });
    const started = Date.now();
    const error = await rejection(ranking.rank(request("u"), { deadline: Date.now() + 10_000 }));
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("maps an HTTP error status and a missing gRPC status", async () => {
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      if (headers[":path"] === "/recsys.v1.RankingService/Rank") {
        stream.respond({ ":status": 503 });
        stream.end("overloaded");
      } else {
        stream.respond({ ":status": 200, "content-type": "application/grpc" });
        stream.end(); // no trailers
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { ranking, channel } = client(address);
    const error = await rejection(ranking.rank(request("u")));
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(error.details).toBe("Received HTTP status code 503");
    const noStatus = await rejection(channel.unary("/other/Method", new Uint8Array(0), { deadline: Date.now() + 1000 }));
    expect(noStatus.code).toBe(status.INTERNAL);
    expect(noStatus.details).toMatch(/without gRPC status/);
  });

  it("follows the server's connection recycling (GRPC_MAX_CONNECTION_AGE) without a failed call", async () => {
    const service = await startService({
      stage: "aging",
      config: testConfig({ GRPC_MAX_CONNECTION_AGE: 200 }),
      services: [implement(RankingService, { rank: () => ({ items: [{ itemId: "x" }] }) })],
    });
    running.push(service);
    // A TCP proxy in front of it counts the connections the channel makes.
    let connections = 0;
    const proxy = net.createServer((inbound) => {
      connections += 1;
      const outbound = net.connect(service.port, "127.0.0.1");
      inbound.pipe(outbound).pipe(inbound);
      for (const [a, b] of [
        [inbound, outbound],
        [outbound, inbound],
      ] as const) {
        a.on("error", () => b.destroy());
        a.on("close", () => b.destroy());
      }
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const { ranking } = client(`127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
    const failures: string[] = [];
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      // A few calls at once, so that some are in flight when a GOAWAY arrives.
      await Promise.all(
        Array.from({ length: 4 }, () =>
          ranking.rank(request("u")).catch((e: unknown) => failures.push(isServiceError(e) ? `${status[e.code]} ${e.details}` : String(e))),
        ),
      );
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(failures).toEqual([]);
    expect(connections).toBeGreaterThanOrEqual(3);
  });

  it("waits for readiness, and gives up at the deadline", async () => {
    const { service } = await startRanking();
    const { channel } = client(service.address);
    await channel.waitForReady(Date.now() + 2000);
    const { channel: nowhere } = client(`127.0.0.1:${await freePort()}`);
    const started = Date.now();
    await expect(nowhere.waitForReady(Date.now() + 300)).rejects.toThrow(/not ready before the deadline/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("refuses calls after close", async () => {
    const { service } = await startRanking();
    const { ranking, channel } = client(service.address);
    await ranking.rank(request("u"));
    channel.close();
    const error = await rejection(ranking.rank(request("u")));
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(error.details).toMatch(/channel closed/);
  });
});
