/**
 * `Http2Server`: the runtime's gRPC server on node:http2, the counterpart of `Http2Channel`.
 *
 * grpc-js's server runs every call through its interceptor and stream machinery; on the serving
 * path (four processes on two cores, every Recommend crossing four hops) that was a tenth of a
 * stage's CPU. This server reads a unary request, hands it to the handler and writes the answer
 * with one `respond` and its trailers, and keeps what the stages rely on:
 * - the grpc-js surface the runtime and its libraries use: `addService(definition,
 *   implementation)` with grpc-js handlers (grpc-health-check and @grpc/reflection register on it
 *   as on a grpc.Server), `bindAsync`, `tryShutdown`, `forceShutdown`;
 * - unary, server-streaming (health Watch) and bidi-streaming (reflection) methods;
 *   client-streaming ones answer UNIMPLEMENTED (no recsys.v1 method is one);
 * - call objects with `request`, `metadata`, `getDeadline()`, `cancelled` and the "cancelled"
 *   event, so that deadline and cancellation propagation (`childCallOptions`) work as with grpc-js;
 * - `grpc-timeout` deadlines: a call still running at its deadline is answered DEADLINE_EXCEEDED
 *   and marked cancelled, as grpc-js does;
 * - message size limits both ways (RESOURCE_EXHAUSTED; a compressed request is limited after
 *   decompression, without inflating more than the limit), UNIMPLEMENTED for unknown methods;
 * - compression (compression.ts): requests in `identity`, `deflate` or `gzip` (`grpc-encoding`);
 *   another encoding is answered UNIMPLEMENTED with the `grpc-accept-encoding` we read. Answers
 *   are compressed with the request's encoding when the client lists it in its
 *   `grpc-accept-encoding`, else sent as they are;
 * - deadlines of any length `grpc-timeout` carries (up to 99999999 hours: the timer is re-armed
 *   in steps, as setTimeout takes at most 2^31 - 1 ms);
 * - connection recycling (`maxConnectionAgeMs`: GOAWAY, then the calls in flight get
 *   `maxConnectionAgeGraceMs` before the connection is closed), graceful and forced shutdown.
 * Status messages are percent-encoded in `grpc-message` as the gRPC HTTP/2 protocol asks.
 */
import { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import {
  ACCEPT_ENCODING,
  acceptedEncodings,
  decompress,
  DecompressedTooLarge,
  frameMessage,
  isSupportedEncoding,
  type Encoding,
} from "./compression.js";

export interface Http2ServerOptions {
  /** Largest request message accepted, bytes. */
  readonly maxReceiveMessageBytes: number;
  /** Largest response message sent, bytes. */
  readonly maxSendMessageBytes: number;
  /** A connection gets a GOAWAY after this long (±10 %); 0 = never. */
  readonly maxConnectionAgeMs: number;
  /** After that GOAWAY, how long its calls in flight may run before the connection is closed. */
  readonly maxConnectionAgeGraceMs: number;
}

/** The server surface `startService` uses (grpc.Server has it too). */
export interface GrpcServer {
  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void;
  bindAsync(port: string, credentials: grpc.ServerCredentials, callback: (error: Error | null, port: number) => void): void;
  tryShutdown(callback: (error?: Error) => void): void;
  forceShutdown(): void;
}

type Kind = "unary" | "serverStream" | "bidi";

interface Route {
  readonly kind: Kind;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
  readonly handler: (...args: never[]) => void;
}

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH } = http2.constants;

/** grpc-timeout ("100m", "5S", ...) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  const amount = Number(match[1]);
  const factor: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return amount * factor[match[2]!]!;
}

function percentEncode(message: string): string {
  // Printable ASCII except '%' goes as is (the protocol's percent-encoding of grpc-message).
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => {
    try {
      return encodeURIComponent(c);
    } catch {
      return "%EF%BF%BD"; // a lone surrogate: U+FFFD
    }
  });
}

/** Metadata headers a server may send: the ones grpc-js would (no pseudo or reserved headers). */
function metadataHeaders(metadata: grpc.Metadata | undefined): http2.OutgoingHttpHeaders {
  if (metadata === undefined) return {};
  const headers = metadata.toHttp2Headers();
  for (const name of ["content-type", "grpc-status", "grpc-message", "te"]) delete headers[name];
  return headers;
}

/**
 * One incoming call, shaped like grpc-js's server call objects (ServerUnaryCall,
 * ServerWritableStream, ServerDuplexStream) in what handlers use.
 */
export class Http2ServerCall extends EventEmitter {
  request: unknown = undefined;
  cancelled = false;
  /** The call has been answered (status sent) or cancelled: nothing more is written. */
  private ended = false;
  private headersSent = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** The encoding of the answer's messages (the request's, when the client reads it). */
  responseEncoding: Encoding = "identity";

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    readonly metadata: grpc.Metadata,
    private readonly deadline: number,
    private readonly path: string,
    private readonly route: Route,
    private readonly maxSendMessageBytes: number,
  ) {
    super();
    if (Number.isFinite(deadline)) this.armDeadline();
    stream.once("close", () => this.onStreamClosed());
  }

  /** setTimeout takes at most 2^31 - 1 ms (longer fires at once): longer deadlines re-arm. */
  private armDeadline(): void {
    const wait = Math.max(0, this.deadline - Date.now());
    this.deadlineTimer = setTimeout(() => (wait > MAX_TIMER_MS ? this.armDeadline() : this.expire()), Math.min(wait, MAX_TIMER_MS));
  }

  getDeadline(): grpc.Deadline {
    return Number.isFinite(this.deadline) ? new Date(this.deadline) : Infinity;
  }

  getPath(): string {
    return this.path;
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    return socket?.remoteAddress === undefined ? "unknown" : `${socket.remoteAddress}:${socket.remotePort ?? 0}`;
  }

  /** Response headers are sent with the first message or the status: nothing to do ahead. */
  sendMetadata(): void {}

  /** Unary answer: the message, or the error as status. */
  answer(error: Partial<grpc.StatusObject> | null, value?: unknown): void {
    if (error !== null) {
      this.finish(error.code ?? grpc.status.UNKNOWN, error.details ?? "", error.metadata);
      return;
    }
    const bytes = this.encode(value);
    if (bytes === undefined) return;
    if (this.ended) return;
    this.ended = true;
    this.clearDeadline();
    this.sendHeaders();
    this.stream.once("wantTrailers", () => this.stream.sendTrailers({ "grpc-status": "0", "grpc-message": "" }));
    this.stream.end(this.frame(bytes));
  }

  /** Streaming: one message. Returns false once the call is over. */
  write(value: unknown): boolean {
    if (this.ended) return false;
    const bytes = this.encode(value);
    if (bytes === undefined) return false;
    this.sendHeaders();
    this.stream.write(this.frame(bytes));
    return true;
  }

  /** Streaming: the end, with status OK. */
  end(metadata?: grpc.Metadata): void {
    if (this.ended) return;
    this.ended = true;
    this.clearDeadline();
    this.sendHeaders();
    this.stream.once("wantTrailers", () =>
      this.stream.sendTrailers({ "grpc-status": "0", "grpc-message": "", ...metadataHeaders(metadata) }),
    );
    this.stream.end();
  }

  /** Streaming: the end with an error status (grpc-js's `call.emit("error", status)` / destroy). */
  endWithError(error: Partial<grpc.StatusObject>): void {
    this.finish(error.code ?? grpc.status.UNKNOWN, error.details ?? "", error.metadata);
  }

  /** Ends the call with a status: trailers after any messages, else a trailers-only response. */
  finish(code: grpc.status, details: string, metadata?: grpc.Metadata): void {
    if (this.ended) return;
    this.ended = true;
    this.clearDeadline();
    if (this.stream.destroyed || this.stream.closed) return;
    const status = { "grpc-status": String(code), "grpc-message": percentEncode(details), ...metadataHeaders(metadata) };
    if (this.headersSent) {
      this.stream.once("wantTrailers", () => this.stream.sendTrailers(status));
      this.stream.end();
      return;
    }
    this.stream.respond(
      { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc", "grpc-accept-encoding": ACCEPT_ENCODING, ...status },
      { endStream: true },
    );
  }

  private frame(bytes: Uint8Array): Buffer {
    return frameMessage(bytes, this.responseEncoding);
  }

  private encode(value: unknown): Buffer | undefined {
    let bytes: Buffer;
    try {
      bytes = this.route.serialize(value);
    } catch (error) {
      this.finish(grpc.status.INTERNAL, `Error serializing response: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
    if (bytes.length > this.maxSendMessageBytes) {
      this.finish(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${bytes.length} vs. ${this.maxSendMessageBytes})`);
      return undefined;
    }
    return bytes;
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(
      {
        [HTTP2_HEADER_STATUS]: 200,
        [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        "grpc-accept-encoding": ACCEPT_ENCODING,
        ...(this.responseEncoding === "identity" ? {} : { "grpc-encoding": this.responseEncoding }),
      },
      { waitForTrailers: true },
    );
  }

  private expire(): void {
    this.deadlineTimer = undefined;
    if (this.ended) return;
    this.finish(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded");
    this.markCancelled();
  }

  private onStreamClosed(): void {
    this.clearDeadline();
    // Closed before we answered: the client cancelled, or the connection went away.
    if (!this.ended) {
      this.ended = true;
      this.markCancelled();
    }
  }

  private markCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit("cancelled", "cancelled");
  }

  private clearDeadline(): void {
    if (this.deadlineTimer !== undefined) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }
}

/** Longest setTimeout delay node takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Splits a DATA byte stream into gRPC messages and decompresses them. Returns an error for an
 * oversized message (before or after decompression), a compressed one on a call without an
 * encoding, or bytes that do not decompress (the call is then answered with it).
 */
class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly encoding: Encoding,
  ) {}

  /** Adds a chunk; returns the complete messages it finished, or an error. */
  push(chunk: Buffer): { messages: Buffer[] } | { code: grpc.status; details: string } {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: Buffer[] = [];
    while (this.buffered >= 5) {
      const head = this.peek(5);
      const length = head.readUInt32BE(1);
      const compressed = head[0] !== 0;
      if (compressed && this.encoding === "identity") {
        return { code: grpc.status.INTERNAL, details: "compressed message on a call without grpc-encoding (or with identity)" };
      }
      if (length > this.maxBytes)
        return { code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${length} vs. ${this.maxBytes})` };
      if (this.buffered < 5 + length) break;
      const body = this.take(5 + length).subarray(5);
      if (!compressed) {
        messages.push(body);
        continue;
      }
      try {
        messages.push(decompress(this.encoding, body, this.maxBytes));
      } catch (error) {
        if (error instanceof DecompressedTooLarge) return { code: grpc.status.RESOURCE_EXHAUSTED, details: error.message };
        return { code: grpc.status.INTERNAL, details: (error as Error).message };
      }
    }
    return { messages };
  }

  /** Bytes of an unfinished message left at the end of the stream. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.chunks);
      out = joined.subarray(0, n);
      this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

export class Http2Server implements GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly server: http2.Http2Server;
  private bound = false;

  constructor(private readonly options: Http2ServerOptions) {
    this.server = http2.createServer({
      // Memory of a session's buffered frames: the message size limit governs instead (grpc-js
      // does the same).
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    this.server.on("session", (session) => this.onSession(session));
    this.server.on("stream", (stream, headers) => this.onStream(stream, headers));
  }

  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    for (const [name, method] of Object.entries(service)) {
      const handler = implementation[name] ?? (method.originalName === undefined ? undefined : implementation[method.originalName]);
      if (handler === undefined) throw new Error(`no handler for ${method.path}`);
      if (this.routes.has(method.path)) throw new Error(`method ${method.path} added twice`);
      const kind: Kind | undefined = method.requestStream
        ? method.responseStream
          ? "bidi"
          : undefined
        : method.responseStream
          ? "serverStream"
          : "unary";
      if (kind === undefined) continue; // client-streaming: answered UNIMPLEMENTED
      this.routes.set(method.path, {
        kind,
        deserialize: method.requestDeserialize as (bytes: Buffer) => unknown,
        serialize: method.responseSerialize as (value: unknown) => Buffer,
        handler: handler as (...args: never[]) => void,
      });
    }
  }

  bindAsync(address: string, _credentials: grpc.ServerCredentials, callback: (error: Error | null, port: number) => void): void {
    const split = /^\[?(.*?)\]?:(\d+)$/.exec(address);
    if (split === null) {
      callback(new Error(`cannot bind "${address}": expected host:port`), 0);
      return;
    }
    const onError = (error: Error): void => callback(error, 0);
    this.server.once("error", onError);
    this.server.listen(Number(split[2]), split[1], () => {
      this.server.off("error", onError);
      this.bound = true;
      callback(null, (this.server.address() as AddressInfo).port);
    });
  }

  /** Stops accepting connections, sends every connection a GOAWAY and calls back once they closed. */
  tryShutdown(callback: (error?: Error) => void): void {
    if (!this.bound) {
      callback();
      return;
    }
    this.server.close(() => callback());
    for (const session of this.sessions) session.close();
  }

  /** Closes every connection at once (calls in flight are cancelled). */
  forceShutdown(): void {
    for (const session of this.sessions) session.destroy();
    if (this.bound) this.server.close();
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    let ageTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const { maxConnectionAgeMs, maxConnectionAgeGraceMs } = this.options;
    if (maxConnectionAgeMs > 0) {
      // Jittered ±10 % so that connections opened together are not recycled together.
      const age = maxConnectionAgeMs * (0.9 + 0.2 * Math.random());
      ageTimer = setTimeout(() => {
        ageTimer = undefined;
        if (session.closed || session.destroyed) return;
        session.close();
        graceTimer = setTimeout(() => session.destroy(), maxConnectionAgeGraceMs);
        graceTimer.unref();
      }, age);
      ageTimer.unref();
    }
    session.on("error", () => undefined); // a reset connection: its streams see "close"
    session.once("close", () => {
      this.sessions.delete(session);
      if (ageTimer !== undefined) clearTimeout(ageTimer);
      if (graceTimer !== undefined) clearTimeout(graceTimer);
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => undefined); // RST_STREAM from the client: "close" follows
    const path = String(headers[HTTP2_HEADER_PATH] ?? "");
    const contentType = String(headers[HTTP2_HEADER_CONTENT_TYPE] ?? "");
    if (headers[HTTP2_HEADER_METHOD] !== "POST" || !contentType.startsWith("application/grpc")) {
      stream.respond({ [HTTP2_HEADER_STATUS]: headers[HTTP2_HEADER_METHOD] !== "POST" ? 405 : 415 }, { endStream: true });
      return;
    }
    const metadata = grpc.Metadata.fromHttp2Headers(headers);
    for (const name of ["content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"]) metadata.remove(name);
    const timeout = parseGrpcTimeout(headers["grpc-timeout"]);
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    const route = this.routes.get(path);
    const call = new Http2ServerCall(stream, metadata, deadline, path, route ?? UNKNOWN_ROUTE, this.options.maxSendMessageBytes);
    if (route === undefined) {
      call.finish(grpc.status.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      stream.resume();
      return;
    }
    const requestEncoding = String(headers["grpc-encoding"] ?? "identity")
      .trim()
      .toLowerCase();
    if (!isSupportedEncoding(requestEncoding)) {
      // The compression spec: UNIMPLEMENTED, with the encodings we read in grpc-accept-encoding.
      call.finish(grpc.status.UNIMPLEMENTED, `Encoding "${requestEncoding}" is not supported (grpc-accept-encoding: ${ACCEPT_ENCODING})`);
      stream.resume();
      return;
    }
    if (requestEncoding !== "identity" && acceptedEncodings(headers["grpc-accept-encoding"]).has(requestEncoding)) {
      call.responseEncoding = requestEncoding;
    }
    const reader = new MessageReader(this.options.maxReceiveMessageBytes, requestEncoding);
    const fail = (code: grpc.status, details: string): void => {
      call.finish(code, details);
      stream.resume(); // the rest of the request is read and dropped
    };
    const decode = (bytes: Buffer): { ok: true; value: unknown } | { ok: false } => {
      try {
        return { ok: true, value: route.deserialize(bytes) };
      } catch (error) {
        fail(grpc.status.INTERNAL, `Error deserializing request: ${error instanceof Error ? error.message : String(error)}`);
        return { ok: false };
      }
    };

    if (route.kind === "bidi") {
      stream.on("data", (chunk: Buffer) => {
        if (call.cancelled) return;
        const read = reader.push(chunk);
        if (!("messages" in read)) return fail(read.code, read.details);
        for (const bytes of read.messages) {
          const message = decode(bytes);
          if (!message.ok) return;
          call.emit("data", message.value);
        }
      });
      stream.once("end", () => call.emit("end"));
      (route.handler as (call: Http2ServerCall) => void)(call);
      return;
    }

    // Unary and server-streaming: exactly one request message, then the handler.
    let request: Buffer | undefined;
    let failed = false;
    stream.on("data", (chunk: Buffer) => {
      if (failed) return;
      const read = reader.push(chunk);
      if (!("messages" in read)) {
        failed = true;
        return fail(read.code, read.details);
      }
      for (const bytes of read.messages) {
        if (request !== undefined) {
          failed = true;
          return fail(grpc.status.UNIMPLEMENTED, `${path} takes one request message, got more`);
        }
        request = bytes;
      }
    });
    stream.once("end", () => {
      if (failed || call.cancelled) return;
      if (request === undefined || reader.pending > 0) {
        fail(grpc.status.UNIMPLEMENTED, `${path} takes one request message, got ${request === undefined ? "none" : "an incomplete one"}`);
        return;
      }
      const message = decode(request);
      if (!message.ok) return;
      call.request = message.value;
      if (route.kind === "unary") {
        (route.handler as (call: Http2ServerCall, callback: (error: Partial<grpc.StatusObject> | null, value?: unknown) => void) => void)(
          call,
          (error, value) => call.answer(error, value),
        );
      } else {
        (route.handler as (call: Http2ServerCall) => void)(call);
      }
    });
  }
}

const UNKNOWN_ROUTE: Route = {
  kind: "unary",
  deserialize: (bytes) => bytes,
  serialize: (value) => value as Buffer,
  handler: () => undefined,
};
