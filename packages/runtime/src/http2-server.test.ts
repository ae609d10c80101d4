/**
 * The runtime's node:http2 gRPC server (the default GRPC_SERVER) at the protocol's edges, with a
 * raw node:http2 client (no client-side deadline timer or size check to hide the server's), and
 * with grpc-js clients (errors with metadata, the health service's server-streaming Watch).
 * service.test.ts runs the runtime's service tests on it and on grpc-js's server.
 */
import * as http2 from "node:http2";
import * as zlib from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { RankingService, RankRequestSchema } from "@recsys/gen";
import { afterEach, describe, expect, it } from "vitest";
import { connect, implement, RpcError, status } from "@recsys/transport";
import { healthService } from "./health.js";
import { startService, type RunningService } from "./service.js";
import { rejection, testConfig } from "./testing/index.js";

const RANK = "/recsys.v1.RankingService/Rank";
const running: RunningService[] = [];
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(running.splice(0).map((service) => service.stop("test done")));
});

async function startRanking(overrides: Parameters<typeof testConfig>[0] = {}, delayMs = 0) {
  let lastSignal: AbortSignal | undefined;
  const service = await startService({
    stage: "h2_test",
    config: testConfig(overrides),
    services: [
      implement(RankingService, {
        async rank(request, ctx) {
          lastSignal = ctx.signal;
          if (request.context?.userId === "failing") {
            const metadata = new grpc.Metadata();
            metadata.set("retry-after-ms", "250");
            throw new RpcError(status.RESOURCE_EXHAUSTED, "queue full — réessayez 100 % plus tard", { metadata });
          }
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
          return { items: request.candidates.map((c) => ({ itemId: c.itemId, score: 1 })) };
        },
      }),
    ],
  });
  running.push(service);
  return { service, signal: () => lastSignal };
}

function rankBytes(userId: string): Uint8Array {
  return toBinary(RankRequestSchema, create(RankRequestSchema, { context: { userId }, candidates: [{ itemId: "i1" }] }));
}

function framed(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

interface RawReply {
  readonly httpStatus: number;
  /** grpc-status and grpc-message from the trailers, or from a trailers-only response. */
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
  /** The response headers (of a trailers-only response: with the status). */
  readonly headers: http2.IncomingHttpHeaders;
}

/** One request over a raw HTTP/2 connection: headers, body frames, and what comes back. */
async function raw(address: string, headers: http2.OutgoingHttpHeaders, body: Buffer[]): Promise<RawReply> {
  const session = http2.connect(`http://${address}`);
  closers.push(() => session.destroy());
  return new Promise<RawReply>((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": RANK, "content-type": "application/grpc", te: "trailers", ...headers });
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      responseHeaders = h;
      httpStatus = Number(h[":status"]);
      grpcStatus = h["grpc-status"] as string | undefined;
      grpcMessage = h["grpc-message"] as string | undefined;
    });
    stream.on("trailers", (t) => {
      grpcStatus = t["grpc-status"] as string | undefined;
      grpcMessage = t["grpc-message"] as string | undefined;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => resolve({ httpStatus, grpcStatus, grpcMessage, body: Buffer.concat(chunks), headers: responseHeaders }));
    for (const part of body) stream.write(part);
    stream.end();
  });
}

describe("Http2Server", () => {
  it("answers a raw unary call: headers, one message, trailers with status 0", async () => {
    const { service } = await startRanking();
    const reply = await raw(service.address, {}, [framed(rankBytes("u"))]);
    expect(reply.httpStatus).toBe(200);
    expect(reply.grpcStatus).toBe("0");
    expect(reply.body[0]).toBe(0);
    expect(reply.body.readUInt32BE(1)).toBe(reply.body.length - 5);
  });

  it("answers DEADLINE_EXCEEDED at the grpc-timeout deadline and aborts the handler's signal", async () => {
    const { service, signal } = await startRanking({}, 1500);
    const started = Date.now();
    const reply = await raw(service.address, { "grpc-timeout": "100m" }, [framed(rankBytes("u"))]);
    expect(reply.grpcStatus).toBe(String(status.DEADLINE_EXCEEDED));
    expect(Date.now() - started).toBeLessThan(1000); // not when the handler finished
    expect(signal()?.aborted).toBe(true);
  });

  it("answers RESOURCE_EXHAUSTED to a message over GRPC_MAX_MESSAGE_BYTES, before reading all of it", async () => {
    const { service } = await startRanking({ GRPC_MAX_MESSAGE_BYTES: 1024 });
    const big = new Uint8Array(64 * 1024);
    const reply = await raw(service.address, {}, [framed(big)]);
    expect(reply.grpcStatus).toBe(String(status.RESOURCE_EXHAUSTED));
    expect(decodeURIComponent(reply.grpcMessage ?? "")).toBe("Received message larger than max (65536 vs. 1024)");
    // The server is still up.
    expect((await raw(service.address, {}, [framed(rankBytes("u"))])).grpcStatus).toBe("0");
  });

  it("refuses a compressed message without grpc-encoding, a second request message, and calls that are not gRPC", async () => {
    const { service } = await startRanking();
    const compressed = await raw(service.address, {}, [framed(zlib.gzipSync(rankBytes("u")), true)]);
    expect(compressed.grpcStatus).toBe(String(status.INTERNAL));
    expect(decodeURIComponent(compressed.grpcMessage ?? "")).toMatch(/compressed message on a call without grpc-encoding/);
    const two = await raw(service.address, {}, [framed(rankBytes("u")), framed(rankBytes("v"))]);
    expect(two.grpcStatus).toBe(String(status.UNIMPLEMENTED));
    const none = await raw(service.address, {}, []);
    expect(none.grpcStatus).toBe(String(status.UNIMPLEMENTED));
    expect((await raw(service.address, { "content-type": "application/json" }, [Buffer.from("{}")])).httpStatus).toBe(415);
    expect((await raw(service.address, { ":method": "PUT" }, [])).httpStatus).toBe(405);
    const unknown = await raw(service.address, { ":path": "/recsys.v1.Nope/Call" }, [framed(rankBytes("u"))]);
    expect(unknown.grpcStatus).toBe(String(status.UNIMPLEMENTED));
  });

  it("reads gzip and deflate requests, and answers in the request's encoding when the client accepts it", async () => {
    const { service } = await startRanking();
    for (const [encoding, pack, unpack] of [
      ["gzip", zlib.gzipSync, zlib.gunzipSync],
      ["deflate", zlib.deflateSync, zlib.inflateSync],
    ] as const) {
      const plainAnswer = await raw(service.address, { "grpc-encoding": encoding }, [framed(pack(rankBytes("u")), true)]);
      expect(plainAnswer.grpcStatus).toBe("0");
      expect(plainAnswer.body[0]).toBe(0); // the client did not say it reads the encoding
      const reply = await raw(service.address, { "grpc-encoding": encoding, "grpc-accept-encoding": `identity,${encoding}` }, [
        framed(pack(rankBytes("u")), true),
      ]);
      expect(reply.grpcStatus).toBe("0");
      expect(reply.headers["grpc-encoding"]).toBe(encoding);
      expect(reply.body[0]).toBe(1);
      const message = unpack(reply.body.subarray(5));
      expect(message.length).toBeGreaterThan(0);
      // An uncompressed message on a compressed call is fine too (flag 0).
      expect((await raw(service.address, { "grpc-encoding": encoding }, [framed(rankBytes("u"))])).grpcStatus).toBe("0");
    }
    expect((await raw(service.address, {}, [framed(rankBytes("u"))])).headers["grpc-accept-encoding"]).toBe("identity,deflate,gzip");
  });

  it("answers a compressed bomb RESOURCE_EXHAUSTED after inflating at most the limit", async () => {
    const { service } = await startRanking({ GRPC_MAX_MESSAGE_BYTES: 1 << 20 });
    const bomb = zlib.gzipSync(Buffer.alloc(64 << 20)); // 64 MiB of zeros in ~64 KB
    expect(bomb.length).toBeLessThan(1 << 20);
    const before = process.memoryUsage().arrayBuffers;
    const reply = await raw(service.address, { "grpc-encoding": "gzip" }, [framed(bomb, true)]);
    expect(reply.grpcStatus).toBe(String(status.RESOURCE_EXHAUSTED));
    expect(decodeURIComponent(reply.grpcMessage ?? "")).toMatch(/after decompression/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 << 20);
    const garbage = await raw(service.address, { "grpc-encoding": "deflate" }, [framed(Buffer.from("not deflate"), true)]);
    expect(garbage.grpcStatus).toBe(String(status.INTERNAL));
  });

  it("answers an encoding it does not read UNIMPLEMENTED, listing the ones it reads", async () => {
    const { service } = await startRanking();
    const reply = await raw(service.address, { "grpc-encoding": "br" }, [framed(Buffer.from([1, 2, 3]), true)]);
    expect(reply.grpcStatus).toBe(String(status.UNIMPLEMENTED));
    expect(reply.headers["grpc-accept-encoding"]).toBe("identity,deflate,gzip");
    expect(decodeURIComponent(reply.grpcMessage ?? "")).toMatch(/"br" is not supported/);
  });

  it("keeps a call whose grpc-timeout is 2^31 ms or longer (up to 99999999H)", async () => {
    const { service } = await startRanking({}, 100);
    for (const timeout of ["2147484S", "600H", "99999999H"]) {
      const reply = await raw(service.address, { "grpc-timeout": timeout }, [framed(rankBytes("u"))]);
      expect(reply.grpcStatus, timeout).toBe("0");
    }
  });

  it("sends an error's message percent-encoded and its metadata to a grpc-js client", async () => {
    const { service } = await startRanking();
    const client = connect(RankingService, service.address, { transport: "grpc-js" });
    closers.push(() => client.$close());
    const error = await rejection(client.rank({ context: { userId: "failing" }, candidates: [{ itemId: "i1" }] }));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe("queue full — réessayez 100 % plus tard");
    expect(error.metadata.get("retry-after-ms")).toEqual(["250"]);
    const ok = await client.rank({ context: { userId: "u" }, candidates: [{ itemId: "i1" }] });
    expect(ok.items.map((item) => item.itemId)).toEqual(["i1"]);
  });

  it("streams health Watch updates (server streaming) until the client cancels", async () => {
    const { service } = await startRanking();
    const client = new grpc.Client(service.address, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const watch = healthService["Watch"]!;
    const call = client.makeServerStreamRequest(watch.path, watch.requestSerialize, watch.responseDeserialize, { service: "" });
    const seen: string[] = [];
    const twoUpdates = new Promise<void>((resolve) => {
      call.on("data", (message: { status: string }) => {
        seen.push(message.status);
        if (seen.length === 1) service.setServing("NOT_SERVING");
        if (seen.length === 2) resolve();
      });
    });
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => undefined);
    await twoUpdates;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    call.cancel();
    expect((await ended).code).toBe(status.CANCELLED);
  });
});
