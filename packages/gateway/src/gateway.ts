/**
 * The public API (`recsys.v1.RecommenderService` and `recsys.v1.CatalogueService`) for callers
 * that cannot speak gRPC: browsers and curl. An HTTP/1.1 server (h2c also works) serves, from the same protobuf-es service definition,
 *
 * - Connect's protocol: `POST /recsys.v1.RecommenderService/Recommend` with a JSON body
 *   (`content-type: application/json`; fields in lowerCamelCase or as in the .proto) or binary
 *   protobuf (`application/proto`), errors as JSON `{"code": "invalid_argument", "message": …}`
 *   with a matching HTTP status;
 * - gRPC-Web (binary and text), for grpc-web and connect-web clients,
 *
 * with @connectrpc/connect-node, and forwards each call to the orchestrator over gRPC with
 * @recsys/client: the caller's deadline (`connect-timeout-ms`, `grpc-timeout`) is kept, capped at
 * GATEWAY_MAX_TIMEOUT (GATEWAY_TIMEOUT when none is sent); Recommend and the catalogue calls
 * (UpsertItems, DeleteItems: idempotent; GetItems: a read) are retried on UNAVAILABLE, RecordEvents
 * is not (see @recsys/client's IDEMPOTENT); the orchestrator's status code and message come back
 * unchanged; a caller that goes away cancels the call downstream.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError, cors as connectCors, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { isRecsysError, type MethodName, type RecsysClient } from "@recsys/client";
import { CatalogueService, RecommenderService } from "@recsys/gen";
import type { Logger, RpcMetrics } from "@recsys/runtime";

export interface GatewayOptions {
  readonly recsys: RecsysClient;
  /** Deadline of a call whose caller sent none, ms. */
  readonly defaultTimeoutMs: number;
  /** Longest deadline a caller may ask for, ms. */
  readonly maxTimeoutMs: number;
  /** Origins allowed to call from a browser ("*" for any); empty: no CORS headers. */
  readonly corsOrigins: readonly string[];
  readonly maxBodyBytes: number;
  /** Serve CatalogueService too (writes to the catalogue). Default true. */
  readonly catalogue?: boolean;
  readonly logger: Logger;
  readonly metrics?: RpcMetrics;
  /** False once the gateway is draining: /healthz then answers 503. */
  readonly serving?: () => boolean;
}

type NodeHandler = (request: IncomingMessage, response: ServerResponse) => void;

function timeoutOf(context: HandlerContext, options: GatewayOptions): number {
  const asked = context.timeoutMs();
  return asked === undefined ? options.defaultTimeoutMs : Math.min(asked, options.maxTimeoutMs);
}

/** Runs `call`, turning a RecsysError into the ConnectError of the same code and recording metrics. */
async function forward<T>(method: string, options: GatewayOptions, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  let code = "OK";
  options.metrics?.inFlight.inc();
  try {
    return await call();
  } catch (error) {
    // Connect aborts the handler's signal at the caller's deadline (reason: DEADLINE_EXCEEDED) or
    // when the caller goes away (CANCELED); the client call then ends CANCELLED: answer the reason.
    if (signal.aborted) {
      const reason = ConnectError.from(signal.reason);
      code = reason.code === Code.DeadlineExceeded ? "DEADLINE_EXCEEDED" : reason.code === Code.Canceled ? "CANCELLED" : "UNKNOWN";
      throw reason;
    }
    if (isRecsysError(error)) {
      code = error.code;
      throw new ConnectError(error.details, error.grpcStatus as Code);
    }
    code = "INTERNAL";
    options.logger.error({ err: error, method }, "gateway call failed");
    throw new ConnectError("internal error", Code.Internal);
  } finally {
    options.metrics?.inFlight.dec();
    options.metrics?.observe(method, code, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/** The request handler of the gateway's HTTP server. */
export function createGatewayHandler(options: GatewayOptions): NodeHandler {
  const api = connectNodeAdapter({
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: options.maxBodyBytes,
    routes(router) {
      // Every method of both services, forwarded by its name: a method added to the contract (and
      // to @recsys/client's IDEMPOTENT table) is served here without a line of its own.
      const implementationOf = (methods: Record<string, { readonly name: string }>) => {
        const implementation: Record<string, (request: never, context: HandlerContext) => Promise<unknown>> = {};
        for (const [name, method] of Object.entries(methods)) {
          implementation[name] = (request, context) =>
            forward(method.name, options, context.signal, () =>
              options.recsys.invoke(name as MethodName, request, { timeoutMs: timeoutOf(context, options), signal: context.signal }),
            );
        }
        return implementation;
      };
      router.service(RecommenderService, implementationOf(RecommenderService.method) as ServiceImpl<typeof RecommenderService>);
      if (options.catalogue ?? true) {
        router.service(CatalogueService, implementationOf(CatalogueService.method) as ServiceImpl<typeof CatalogueService>);
      }
    },
  });
  const anyOrigin = options.corsOrigins.includes("*");
  const allowed = new Set(options.corsOrigins);
  return (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path === "/healthz" && (request.method === "GET" || request.method === "HEAD")) {
      const up = options.serving?.() ?? true;
      response.writeHead(up ? 200 : 503, { "content-type": "text/plain" }).end(up ? "ok\n" : "draining\n");
      return;
    }
    const origin = request.headers.origin;
    if (origin !== undefined && (anyOrigin || allowed.has(origin))) {
      response.setHeader("access-control-allow-origin", anyOrigin ? "*" : origin);
      if (!anyOrigin) response.setHeader("vary", "origin");
      response.setHeader("access-control-expose-headers", connectCors.exposedHeaders.join(", "));
      if (request.method === "OPTIONS") {
        response.writeHead(204, {
          "access-control-allow-methods": connectCors.allowedMethods.join(", "),
          "access-control-allow-headers": connectCors.allowedHeaders.join(", "),
          "access-control-max-age": "7200",
        });
        response.end();
        return;
      }
    }
    api(request, response);
  };
}
