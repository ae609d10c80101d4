/**
 * A lean gRPC channel for unary calls, straight on `node:http2`: the transport of `connect`.
 *
 * Why not grpc-js's client: under the serving benchmark's load (1M items, 100 Recommend/s, four
 * stages and the load generator on 2 cores) its per-call machinery (resolving, retrying,
 * load-balancing and subchannel calls, bound async resources) cost CPU and left garbage that
 * survived its calls. With this channel in the orchestrator and the load generator, same machine,
 * runs alternated: p99 15.2-17.6 ms (4 runs) instead of 29.0-42.9 ms (3 runs); CPU per request
 * 2.6-2.7 instead of 3.2-3.4 ms in the orchestrator (three calls) and 0.72-0.77 instead of 0.98-1.05 ms
 * in the load generator (one call); sequential p50 7.5-7.9 instead of 8.2-9.4 ms. One idle hop
 * alone differs less (EmbedUser-sized echo to a runtime server, 5 ms between calls: p50 0.79-0.83
 * vs 0.86 ms). Here a call is one HTTP/2 stream and one timer.
 *
 * What it does, as grpc-js would for a unary call:
 * - targets `host:port`, `[v6]:port`, `dns:///host:port` (`dns:host:port`); a name resolves to
 *   every address (`dns.lookup`, all) and is resolved again every `resolveIntervalMs` and after
 *   a connection fails, so pods that come and go behind a headless Service are followed;
 * - `round_robin` over the addresses (each its own connection) or `pick_first`;
 * - connections made on demand, with TCP_NODELAY, a connect timeout, keepalive pings (a silent
 *   peer is dropped) and exponential backoff after a failed connect: while every address is
 *   backing off, calls fail at once with UNAVAILABLE (grpc-js's default, not wait-for-ready);
 * - `grpc-timeout` from the deadline, a local deadline timer that cancels the stream, parent
 *   deadline and cancellation propagation, an AbortSignal, metadata in and out;
 * - status from trailers (or trailers-only headers), HTTP status and RST_STREAM codes mapped as
 *   grpc-js maps them, message size limits both ways (RESOURCE_EXHAUSTED; a compressed answer is
 *   limited after decompression, without inflating more than the limit);
 * - compression (compression.ts): requests in the `compression` option's encoding (identity by
 *   default), answers in identity, deflate or gzip (`grpc-accept-encoding` says so);
 * - deadlines of any length (the timer is re-armed in steps of at most 2^31 - 1 ms);
 * - a call the server never saw (REFUSED_STREAM, GOAWAY, a connection that never came up or that
 *   ran out of stream ids) is retried once, on a new connection or another address, as grpc-js's
 *   transparent retry does.
 * Plaintext only: `connect` uses grpc-js when credentials are given.
 */
import http2 from "node:http2";
import net from "node:net";
import { lookup } from "node:dns/promises";
import * as grpc from "@grpc/grpc-js";
import { ACCEPT_ENCODING, decompress, DecompressedTooLarge, frameMessage, isSupportedEncoding, type Encoding } from "./compression.js";
import { callDeadlineMs } from "./deadline.js";
import { serviceError, type UnaryCallOptions, type UnaryTransport } from "./transport.js";

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } =
  http2.constants;

export interface Http2ChannelOptions {
  /** Largest message sent or received, bytes. */
  readonly maxMessageBytes: number;
  /** Interval between keepalive pings on an open connection, ms. */
  readonly keepaliveTimeMs: number;
  /** How long to wait for a ping's answer before dropping the connection, ms. */
  readonly keepaliveTimeoutMs: number;
  readonly loadBalancing: "round_robin" | "pick_first";
  /** Longest a connection may take to establish, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Interval between DNS resolutions of a name target, ms. Default 30 000. */
  readonly resolveIntervalMs?: number;
  /** Resolves a name to its addresses. Default: `dns.lookup` with `all` (tests replace it). */
  readonly lookup?: (host: string) => Promise<string[]>;
  /** Encoding of request messages (grpc-encoding). Default "identity". */
  readonly compression?: Encoding;
}

const dnsLookup = async (host: string): Promise<string[]> =>
  (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

/** `host`, `port` and the `:authority` of a target; throws on a malformed one. */
export function parseTarget(target: string): { host: string; port: number; authority: string } {
  let rest = target;
  if (rest.startsWith("dns:///")) rest = rest.slice("dns:///".length);
  else if (rest.startsWith("dns:") && !rest.startsWith("dns://")) rest = rest.slice("dns:".length);
  const match = /^(?:\[([^\]]+)\]|([^:\[\]/]+)):(\d{1,5})$/.exec(rest);
  if (match === null) throw new Error(`bad gRPC target "${target}": expected host:port, [ipv6]:port or dns:///host:port`);
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw new Error(`bad gRPC target "${target}": port ${port} out of range`);
  return { host, port, authority: match[1] === undefined ? `${host}:${port}` : `[${host}]:${port}` };
}

/** grpc-timeout: at most 8 digits and a unit, rounded up (as grpc-js writes it). */
function timeoutHeader(ms: number): string {
  const units: Array<[string, number]> = [
    ["m", 1],
    ["S", 1000],
    ["M", 60_000],
    ["H", 3_600_000],
  ];
  for (const [unit, factor] of units) {
    const amount = Math.ceil(ms / factor);
    if (amount < 1e8) return `${Math.max(1, amount)}${unit}`;
  }
  return "99999999H";
}

/** The gRPC status of a non-200 HTTP response (gRPC's http-grpc-status-mapping). */
function httpStatusCode(httpStatus: number): grpc.status {
  switch (httpStatus) {
    case 400:
      return grpc.status.INTERNAL;
    case 401:
      return grpc.status.UNAUTHENTICATED;
    case 403:
      return grpc.status.PERMISSION_DENIED;
    case 404:
      return grpc.status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpc.status.UNAVAILABLE;
    default:
      return grpc.status.UNKNOWN;
  }
}

function decodeGrpcMessage(raw: unknown): string {
  if (typeof raw !== "string") return "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The status in trailers (or trailers-only headers), or undefined when there is none. */
function statusOf(headers: http2.IncomingHttpHeaders): grpc.ServiceError | { code: grpc.status.OK } | undefined {
  const raw = headers["grpc-status"];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (!Number.isInteger(code) || code < 0 || code > 16) {
    return serviceError(grpc.status.UNKNOWN, `unparsable grpc-status "${String(raw)}"`);
  }
  if (code === grpc.status.OK) return { code: grpc.status.OK };
  const metadata = grpc.Metadata.fromHttp2Headers(headers);
  metadata.remove("grpc-status");
  metadata.remove("grpc-message");
  metadata.remove("content-type");
  return serviceError(code, decodeGrpcMessage(headers["grpc-message"]), metadata);
}

const INITIAL_BACKOFF_MS = 1000;
/** Delay before looking a name up again after a failed lookup. */
const RESOLVE_RETRY_MS = 1000;
const MAX_BACKOFF_MS = 20_000;

/** One address: at most one open connection, made on demand. */
class Subchannel {
  session: http2.ClientHttp2Session | undefined;
  connected = false;
  /** No new connection before this time (backoff after a failed connect). */
  retryAt = 0;
  lastError = "";
  private readonly connectedSessions = new WeakSet<http2.ClientHttp2Session>();
  private backoffMs = INITIAL_BACKOFF_MS;
  private readyWaiters: Array<(error?: Error) => void> = [];

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly authority: string,
    private readonly options: Http2ChannelOptions,
    private readonly onFailure: () => void,
  ) {}

  /** Whether a call may be sent here now: a connection exists or may be attempted. */
  usable(now: number): boolean {
    return this.session !== undefined || now >= this.retryAt;
  }

  /** The open (or opening) connection, made now if there is none. */
  getSession(): http2.ClientHttp2Session {
    if (this.session !== undefined) return this.session;
    const session = http2.connect(`http://${this.authority}`, {
      createConnection: () => net.connect({ host: this.address, port: this.port, noDelay: true }),
      // A 1 MiB stream window: responses up to that size need no WINDOW_UPDATE round trip.
      settings: { enablePush: false, initialWindowSize: 1 << 20 },
      // nghttp2's default (10 MB) would refuse new streams while one 16 MB message is in flight.
      maxSessionMemory: Math.max(10, Math.ceil((4 * this.options.maxMessageBytes) / 1e6)),
    });
    session.unref(); // an idle channel never keeps the process alive; a call's timer does
    this.session = session;
    this.connected = false;
    const connectTimer = setTimeout(() => {
      session.destroy(new Error(`connect to ${this.address}:${this.port} timed out after ${this.options.connectTimeoutMs ?? 5000} ms`));
    }, this.options.connectTimeoutMs ?? 5000);
    connectTimer.unref();
    let keepalive: NodeJS.Timeout | undefined;
    session.once("connect", () => {
      clearTimeout(connectTimer);
      this.connected = true;
      this.connectedSessions.add(session);
      this.backoffMs = INITIAL_BACKOFF_MS;
      this.lastError = "";
      keepalive = this.startKeepalive(session);
      this.wakeWaiters();
    });
    session.on("error", (error: Error) => {
      this.lastError = error.message;
    });
    // No new calls on it (node closes it once the calls in flight are done, or at once for an
    // error code).
    session.once("goaway", () => this.detach(session));
    session.once("close", () => {
      clearTimeout(connectTimer);
      if (keepalive !== undefined) clearInterval(keepalive);
      const neverConnected = this.session === session && !this.connected;
      this.detach(session);
      if (neverConnected) {
        // Back off: until retryAt, calls go elsewhere or fail at once.
        const jitter = 0.8 + 0.4 * Math.random();
        this.retryAt = Date.now() + this.backoffMs * jitter;
        this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 1.6);
        if (this.lastError === "") this.lastError = "connection closed before it was established";
        this.wakeWaiters(new Error(this.lastError));
        this.onFailure();
      }
    });
    return session;
  }

  private startKeepalive(session: http2.ClientHttp2Session): NodeJS.Timeout {
    const timer = setInterval(() => {
      if (session.destroyed || session.closed) return;
      const timeout = setTimeout(() => session.destroy(new Error("keepalive ping not answered")), this.options.keepaliveTimeoutMs);
      timeout.unref();
      const sent = session.ping((error) => {
        clearTimeout(timeout);
        if (error !== null && !session.destroyed) session.destroy(error);
      });
      if (!sent) clearTimeout(timeout);
    }, this.options.keepaliveTimeMs);
    timer.unref();
    return timer;
  }

  /** Whether `session` ever connected (a call on one that did not never reached the server). */
  wasConnected(session: http2.ClientHttp2Session): boolean {
    return this.connectedSessions.has(session);
  }

  /** The session takes no new calls (GOAWAY or closed); calls on it finish or fail on their own. */
  detach(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    this.connected = false;
  }

  /** Resolves once connected; rejects with the connect error. */
  whenConnected(): Promise<void> {
    this.getSession();
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.readyWaiters.push((error) => (error === undefined ? resolve() : reject(error)));
    });
  }

  private wakeWaiters(error?: Error): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const wake of waiters) wake(error);
  }

  close(): void {
    const session = this.session;
    this.session = undefined;
    this.connected = false;
    this.wakeWaiters(new Error("channel closed"));
    // Graceful: calls in flight finish, then the connection closes.
    session?.close();
  }
}

export class Http2Channel implements UnaryTransport {
  private readonly host: string;
  private readonly port: number;
  private readonly authority: string;
  private readonly isName: boolean;
  private subchannels: Subchannel[] = [];
  private resolved: Promise<void> | undefined;
  private resolveTimer: NodeJS.Timeout | undefined;
  private resolveError = "";
  private next = 0;
  private closed = false;

  constructor(
    readonly target: string,
    private readonly options: Http2ChannelOptions,
  ) {
    const parsed = parseTarget(target);
    this.host = parsed.host;
    this.port = parsed.port;
    this.authority = parsed.authority;
    this.isName = net.isIP(parsed.host) === 0;
    if (!this.isName) {
      this.subchannels = [this.subchannel(parsed.host)];
      this.resolved = Promise.resolve();
    }
  }

  private subchannel(address: string): Subchannel {
    return new Subchannel(address, this.port, this.authority, this.options, () => this.resolveSoon());
  }

  /** Resolves the name (once at first, then on failures and every resolveIntervalMs). */
  private resolve(): Promise<void> {
    this.resolved ??= this.lookup().finally(() => {
      if (this.closed) return;
      // After a failed lookup (NXDOMAIN while a headless Service has no ready pod, say), again soon.
      const interval = this.resolveError === "" ? (this.options.resolveIntervalMs ?? 30_000) : RESOLVE_RETRY_MS;
      this.resolveTimer = setTimeout(() => {
        this.resolved = undefined;
        void this.resolve();
      }, interval);
      this.resolveTimer.unref();
    });
    return this.resolved;
  }

  /** A connection failed: look the name up again now (at most once per backoff step). */
  private resolveSoon(): void {
    if (!this.isName || this.closed || this.resolveTimer === undefined) return;
    clearTimeout(this.resolveTimer);
    this.resolveTimer = undefined;
    this.resolved = undefined;
    void this.resolve();
  }

  private async lookup(): Promise<void> {
    let addresses: string[];
    try {
      addresses = await (this.options.lookup ?? dnsLookup)(this.host);
    } catch (error) {
      this.resolveError = `name resolution of ${this.host} failed: ${error instanceof Error ? error.message : String(error)}`;
      return; // keep the addresses we had, if any
    }
    if (this.closed) return;
    this.resolveError = "";
    const kept = new Map(this.subchannels.map((s) => [s.address, s]));
    const fresh: Subchannel[] = [];
    for (const address of new Set(addresses)) {
      fresh.push(kept.get(address) ?? this.subchannel(address));
      kept.delete(address);
    }
    for (const gone of kept.values()) gone.close();
    this.subchannels = fresh;
  }

  /** The subchannel for the next call, or undefined when none may take one now. */
  private pick(exclude?: Subchannel): Subchannel | undefined {
    const now = Date.now();
    const list = this.subchannels;
    if (this.options.loadBalancing === "pick_first") {
      return list.find((s) => s !== exclude && s.usable(now));
    }
    // round_robin: every address gets a connection (started here, as grpc-js connects to all of
    // them), calls rotate over the connected ones, then over any that may connect.
    for (const s of list) if (s.session === undefined && s !== exclude && s.usable(now)) s.getSession();
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < list.length; i++) {
        const s = list[(this.next + i) % list.length]!;
        if (s === exclude) continue;
        if (pass === 0 ? s.connected : s.usable(now)) {
          this.next = (this.next + i + 1) % list.length;
          return s;
        }
      }
    }
    return undefined;
  }

  private unavailableReason(): string {
    if (this.subchannels.length === 0) return this.resolveError || `no addresses for ${this.host}`;
    const errors = [...new Set(this.subchannels.map((s) => s.lastError).filter((e) => e !== ""))];
    return `no connection to ${this.target}${errors.length > 0 ? `: ${errors.join("; ")}` : ""}`;
  }

  unary(path: string, request: Uint8Array, options: UnaryCallOptions): Promise<Buffer> {
    if (this.closed) return Promise.reject(serviceError(grpc.status.UNAVAILABLE, `${this.target}: channel closed`));
    if (request.length > this.options.maxMessageBytes) {
      return Promise.reject(
        serviceError(
          grpc.status.RESOURCE_EXHAUSTED,
          `Sent message larger than max (${request.length} vs. ${this.options.maxMessageBytes})`,
        ),
      );
    }
    let deadline = options.deadline;
    const propagate = options.propagate ?? grpc.propagate.DEFAULTS;
    if (options.parent !== undefined && (propagate & grpc.propagate.DEADLINE) !== 0) {
      deadline = Math.min(deadline, callDeadlineMs(options.parent));
    }
    const cancelWithParent = options.parent !== undefined && (propagate & grpc.propagate.CANCELLATION) !== 0 ? options.parent : undefined;
    const call = new PendingUnary(this, path, frameMessage(request, this.compression), deadline, options, cancelWithParent);
    if (call.start()) {
      if (this.subchannels.length > 0) this.send(call);
      else void this.resolve().then(() => this.send(call));
    }
    return call.promise;
  }

  /** @internal Whether a subchannel other than `exclude` may take a call now. */
  canSend(exclude?: Subchannel): boolean {
    const now = Date.now();
    return this.subchannels.some((s) => s !== exclude && s.usable(now));
  }

  /** @internal Sends `call` on a picked subchannel, or fails it with UNAVAILABLE when none may take it. */
  send(call: PendingUnary, exclude?: Subchannel, again = false): void {
    if (call.settled) return;
    const subchannel = this.pick(exclude);
    if (subchannel === undefined) {
      call.fail(serviceError(grpc.status.UNAVAILABLE, this.unavailableReason()));
      return;
    }
    let session: http2.ClientHttp2Session;
    let stream: http2.ClientHttp2Stream;
    try {
      session = subchannel.getSession();
      stream = session.request(call.headers(), { endStream: false });
    } catch (error) {
      // The session was closing (GOAWAY, or closed between pick and request): drop it and try once
      // more, on a new connection.
      if (subchannel.session !== undefined) subchannel.detach(subchannel.session);
      if (!again) {
        this.send(call, exclude, true);
        return;
      }
      call.fail(serviceError(grpc.status.UNAVAILABLE, `${this.target}: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    call.attach(stream, subchannel, session);
  }

  get maxMessageBytes(): number {
    return this.options.maxMessageBytes;
  }

  get compression(): Encoding {
    return this.options.compression ?? "identity";
  }

  async waitForReady(deadline: number): Promise<void> {
    for (;;) {
      if (this.closed) throw new Error(`${this.target}: channel closed`);
      await this.resolve();
      const subchannel = this.pick();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.target}: not ready before the deadline (${this.unavailableReason()})`);
      if (subchannel === undefined) {
        await new Promise((r) => setTimeout(r, Math.min(left, 100)));
        continue;
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          subchannel.whenConnected(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${this.target}: not ready before the deadline`)), left);
          }),
        ]);
        return;
      } catch (error) {
        if (Date.now() >= deadline) throw error;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.resolveTimer !== undefined) clearTimeout(this.resolveTimer);
    for (const s of this.subchannels) s.close();
  }
}

/** Longest setTimeout delay node takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const USER_AGENT = `recsys-runtime/http2 node/${process.versions.node}`;

/** One unary call in flight. Settles once; listeners hold this object, which drops its callbacks. */
class PendingUnary {
  readonly promise: Promise<Buffer>;
  private resolveFn: ((bytes: Buffer) => void) | undefined;
  private rejectFn: ((error: grpc.ServiceError) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stream: http2.ClientHttp2Stream | undefined;
  private subchannel: Subchannel | undefined;
  private session: http2.ClientHttp2Session | undefined;
  private chunks: Buffer[] = [];
  private received = 0;
  private httpStatus: number | undefined;
  private responseEncoding = "identity";
  private status: grpc.ServiceError | { code: grpc.status.OK } | undefined;
  private transportError: (Error & { code?: string }) | undefined;
  private retried = false;
  private readonly started = Date.now();

  constructor(
    private readonly channel: Http2Channel,
    private readonly path: string,
    private readonly body: Buffer,
    private readonly deadline: number,
    private readonly options: UnaryCallOptions,
    private readonly parent: grpc.ServerUnaryCall<unknown, unknown> | undefined,
  ) {
    this.promise = new Promise<Buffer>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
  }

  get settled(): boolean {
    return this.rejectFn === undefined;
  }

  /** Arms the deadline timer and the cancellation listeners; false when the call already failed. */
  start(): boolean {
    if (this.options.signal?.aborted || this.parent?.cancelled) {
      this.fail(serviceError(grpc.status.CANCELLED, `${this.path}: cancelled before start`));
      return false;
    }
    const left = this.deadline - Date.now();
    if (left <= 0) {
      this.fail(serviceError(grpc.status.DEADLINE_EXCEEDED, `Deadline exceeded before ${this.path} was sent`));
      return false;
    }
    if (Number.isFinite(left)) this.armDeadline();
    this.options.signal?.addEventListener("abort", this.onAbort, { once: true });
    this.parent?.on("cancelled", this.onAbort);
    return true;
  }

  /** setTimeout takes at most 2^31 - 1 ms: a longer deadline re-arms until it is near. */
  private armDeadline(): void {
    const left = Math.max(0, this.deadline - Date.now());
    this.timer = setTimeout(() => (left > MAX_TIMER_MS ? this.armDeadline() : this.onDeadline()), Math.min(left, MAX_TIMER_MS));
  }

  headers(): http2.OutgoingHttpHeaders {
    const headers: http2.OutgoingHttpHeaders = {
      ...this.options.metadata?.toHttp2Headers(),
      [http2.constants.HTTP2_HEADER_METHOD]: "POST",
      [http2.constants.HTTP2_HEADER_PATH]: this.path,
      "content-type": "application/grpc",
      te: "trailers",
      "user-agent": USER_AGENT,
      "grpc-accept-encoding": ACCEPT_ENCODING,
    };
    if (this.channel.compression !== "identity") headers["grpc-encoding"] = this.channel.compression;
    const left = this.deadline - Date.now();
    if (Number.isFinite(left)) headers["grpc-timeout"] = timeoutHeader(left);
    return headers;
  }

  attach(stream: http2.ClientHttp2Stream, subchannel: Subchannel, session: http2.ClientHttp2Session): void {
    this.stream = stream;
    this.subchannel = subchannel;
    this.session = session;
    this.chunks = [];
    this.received = 0;
    this.httpStatus = undefined;
    this.responseEncoding = "identity";
    this.status = undefined;
    this.transportError = undefined;
    stream.on("response", this.onResponse);
    stream.on("data", this.onData);
    stream.on("trailers", this.onTrailers);
    stream.on("error", this.onError);
    stream.on("close", this.onClose);
    stream.end(this.body);
  }

  private readonly onResponse = (headers: http2.IncomingHttpHeaders): void => {
    this.httpStatus = Number(headers[":status"]);
    this.responseEncoding = String(headers["grpc-encoding"] ?? "identity")
      .trim()
      .toLowerCase();
    this.status ??= statusOf(headers); // trailers-only
  };

  private readonly onData = (chunk: Buffer): void => {
    this.received += chunk.length;
    if (this.received > this.channel.maxMessageBytes + 5) {
      this.finishWith(
        serviceError(
          grpc.status.RESOURCE_EXHAUSTED,
          `Received message larger than max (${this.received - 5} vs. ${this.channel.maxMessageBytes})`,
        ),
      );
      return;
    }
    this.chunks.push(chunk);
  };

  private readonly onTrailers = (trailers: http2.IncomingHttpHeaders): void => {
    this.status ??= statusOf(trailers);
  };

  private readonly onError = (error: Error & { code?: string }): void => {
    // ERR_HTTP2_STREAM_ERROR is the RST_STREAM, reported by its code on close.
    if (error.code !== "ERR_HTTP2_STREAM_ERROR") this.transportError = error;
  };

  private readonly onClose = (): void => {
    const stream = this.stream!;
    if (this.rejectFn === undefined) return;
    const status = this.status;
    if (status !== undefined) {
      if (status.code !== grpc.status.OK) this.finishWith(status as grpc.ServiceError);
      else this.finishWith(this.message());
      return;
    }
    // Calls the server never saw go once more: refused (GOAWAY, REFUSED_STREAM) or sent on a
    // connection that never came up (then to another address, if one may take it).
    const neverConnected = this.session !== undefined && this.subchannel?.wasConnected(this.session) === false;
    // A connection that has used up its stream ids (2^31 - 1, odd ones: ~1e9 calls) fails every
    // new stream with ERR_HTTP2_OUT_OF_STREAMS and is not closed by node: close it here.
    const outOfStreams = this.transportError?.code === "ERR_HTTP2_OUT_OF_STREAMS";
    if (outOfStreams) this.session?.close();
    const refused =
      stream.rstCode === NGHTTP2_REFUSED_STREAM ||
      this.transportError?.code === "ERR_HTTP2_GOAWAY_SESSION" ||
      outOfStreams ||
      neverConnected;
    const exclude = neverConnected ? this.subchannel : undefined;
    if (refused && !this.retried && this.httpStatus === undefined && this.deadline > Date.now() && this.channel.canSend(exclude)) {
      this.retried = true;
      if (this.session !== undefined) this.subchannel?.detach(this.session);
      this.channel.send(this, exclude);
      return;
    }
    this.finishWith(this.closeError(stream.rstCode));
  };

  /** Why a stream ended without a gRPC status (as grpc-js words it where it can). */
  private closeError(rstCode: number): grpc.ServiceError {
    const cause = this.transportError;
    const sessionGone = this.session?.destroyed === true;
    // Node cancels the streams of a session that fails or drops with ERR_HTTP2_STREAM_CANCEL
    // ("The pending stream has been canceled (caused by: connect ECONNREFUSED ...)").
    if (cause !== undefined && (sessionGone || this.httpStatus === undefined)) {
      return serviceError(grpc.status.UNAVAILABLE, `${this.channel.target}: ${cause.message}`);
    }
    if (this.httpStatus !== undefined && this.httpStatus !== 200) {
      return serviceError(httpStatusCode(this.httpStatus), `Received HTTP status code ${this.httpStatus}`);
    }
    switch (rstCode) {
      case NGHTTP2_NO_ERROR:
        return serviceError(grpc.status.INTERNAL, `Received RST_STREAM with code ${rstCode} (Call ended without gRPC status)`);
      case NGHTTP2_REFUSED_STREAM:
        return serviceError(grpc.status.UNAVAILABLE, "Stream refused by server");
      case NGHTTP2_CANCEL:
        return sessionGone
          ? serviceError(grpc.status.UNAVAILABLE, "Connection dropped")
          : serviceError(grpc.status.CANCELLED, "Call cancelled");
      case NGHTTP2_ENHANCE_YOUR_CALM:
        return serviceError(grpc.status.RESOURCE_EXHAUSTED, "Bandwidth exhausted or memory limit exceeded");
      case NGHTTP2_INADEQUATE_SECURITY:
        return serviceError(grpc.status.PERMISSION_DENIED, "Protocol not secure enough");
      default:
        return serviceError(grpc.status.INTERNAL, `Received RST_STREAM with code ${rstCode}`);
    }
  }

  /** The one response message of an OK call. */
  private message(): Buffer | grpc.ServiceError {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    if (body.length < 5) return serviceError(grpc.status.INTERNAL, `${this.path}: status OK without a response message`);
    const length = body.readUInt32BE(1);
    if (body.length !== 5 + length) {
      return serviceError(grpc.status.INTERNAL, `${this.path}: ${body.length - 5} response bytes framed as one ${length}-byte message`);
    }
    if (body[0] === 0) return body.subarray(5);
    const encoding = this.responseEncoding;
    if (encoding === "identity" || !isSupportedEncoding(encoding)) {
      return serviceError(
        grpc.status.INTERNAL,
        `${this.path}: compressed response in encoding "${encoding}", which this client does not read`,
      );
    }
    try {
      return decompress(encoding, body.subarray(5), this.channel.maxMessageBytes);
    } catch (error) {
      if (error instanceof DecompressedTooLarge) return serviceError(grpc.status.RESOURCE_EXHAUSTED, error.message);
      return serviceError(grpc.status.INTERNAL, `${this.path}: ${(error as Error).message}`);
    }
  }

  private readonly onDeadline = (): void => {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(3);
    this.finishWith(serviceError(grpc.status.DEADLINE_EXCEEDED, `Deadline exceeded after ${seconds}s`));
  };

  private readonly onAbort = (): void => {
    this.finishWith(serviceError(grpc.status.CANCELLED, "Cancelled on client"));
  };

  /** Fails a call that has no stream (yet). */
  fail(error: grpc.ServiceError): void {
    this.finishWith(error);
  }

  private finishWith(outcome: Buffer | grpc.ServiceError): void {
    const resolve = this.resolveFn;
    const reject = this.rejectFn;
    if (reject === undefined || resolve === undefined) return;
    this.resolveFn = undefined;
    this.rejectFn = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.options.signal?.removeEventListener("abort", this.onAbort);
    this.parent?.off("cancelled", this.onAbort);
    const stream = this.stream;
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.chunks = [];
    if (Buffer.isBuffer(outcome)) resolve(outcome);
    else reject(outcome);
  }
}
