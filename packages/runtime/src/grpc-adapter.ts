/**
 * The bridge between protobuf-es v2 service descriptors (`GenService`, generated into
 * @recsys/gen) and @grpc/grpc-js: service definitions for the server, typed handler signatures,
 * and typed promise-based clients. Messages travel as protobuf binary (toBinary / fromBinary);
 * the method path is `/<package>.<Service>/<Method>`, e.g. `/recsys.v1.RankingService/Rank`.
 * Only unary methods are supported (every recsys.v1 method is unary).
 */
import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Logger } from "pino";

/** The gRPC path of a method: `/recsys.v1.RankingService/Rank`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function unaryMethods(service: DescService): DescMethod[] {
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      throw new Error(
        `${service.typeName}.${method.name} is ${method.methodKind}: only unary methods are supported`,
      );
    }
  }
  return service.methods;
}

function serializer(schema: DescMessage): (value: MessageShape<DescMessage>) => Buffer {
  return (value) => {
    const bytes = toBinary(schema, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage): (bytes: Buffer) => MessageShape<DescMessage> {
  return (bytes) => fromBinary(schema, bytes);
}

/** A grpc-js ServiceDefinition for a protobuf-es service, keyed by the methods' local names. */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of unaryMethods(service)) {
    const request = method.input;
    const response = method.output;
    definition[method.localName] = {
      path: methodPath(method),
      requestStream: false,
      responseStream: false,
      requestSerialize: serializer(request) as (value: unknown) => Buffer,
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response) as (value: unknown) => Buffer,
      responseDeserialize: deserializer(response),
      originalName: method.name,
    };
  }
  return definition;
}

/** What a handler gets besides the request. */
export interface CallContext {
  /** The grpc-js call: pass it as `parent` to downstream calls (see deadline helpers). */
  readonly call: grpc.ServerUnaryCall<unknown, unknown>;
  /** The method path, e.g. "/recsys.v1.RankingService/Rank". */
  readonly method: string;
  /** The service logger with `method` bound. */
  readonly logger: Logger;
  /** The caller's deadline as epoch milliseconds; Infinity when it set none. */
  readonly deadline: number;
  /** Aborted when the caller cancels or its deadline passes. */
  readonly signal: AbortSignal;
  /** The request metadata (headers). */
  readonly metadata: grpc.Metadata;
}

/** A unary handler: returns the response message or its init object. */
export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/** Handlers for every method of a service, type-checked against its input and output messages. */
export type ServiceImplementation<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? UnaryHandler<S[K]["input"], S[K]["output"]>
    : never;
};

/** A service descriptor with its implementation, ready for the server. */
export interface ServiceRegistration {
  readonly service: DescService;
  readonly implementation: Readonly<Record<string, UnaryHandler<DescMessage, DescMessage>>>;
}

/**
 * Pairs a service with its handlers. Checks at compile time that every method has a handler of
 * the right type, and at run time that nothing is missing (e.g. from a cast object).
 */
export function implement<S extends GenServiceMethods>(
  service: GenService<S>,
  implementation: ServiceImplementation<S>,
): ServiceRegistration {
  const handlers = implementation as unknown as Record<string, unknown>;
  for (const method of unaryMethods(service as unknown as DescService)) {
    if (typeof handlers[method.localName] !== "function") {
      throw new Error(`${service.typeName}: no handler for method ${method.localName}`);
    }
  }
  return {
    service: service as unknown as DescService,
    implementation: handlers as ServiceRegistration["implementation"],
  };
}

/**
 * Turns a registration into grpc-js handlers, each produced by `wrap` (which adds metrics, error
 * mapping, ...) from the method descriptor and the typed handler.
 */
export function grpcImplementation(
  registration: ServiceRegistration,
  wrap: (method: DescMethod, handler: UnaryHandler<DescMessage, DescMessage>) => grpc.UntypedHandleCall,
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const method of unaryMethods(registration.service)) {
    const handler = registration.implementation[method.localName];
    if (handler === undefined) {
      throw new Error(`${registration.service.typeName}: no handler for method ${method.localName}`);
    }
    out[method.localName] = wrap(method, handler);
  }
  return out;
}

/** Options of one client call. */
export interface CallOptions {
  /** Absolute deadline (Date or epoch ms). Default: now + the client's default timeout. */
  readonly deadline?: Date | number;
  /**
   * The incoming server call this call is made for. With the default `propagate` flags the
   * effective deadline is the earlier of `deadline` and the parent's, and cancelling the parent
   * cancels this call.
   */
  readonly parent?: grpc.ServerUnaryCall<unknown, unknown>;
  /** grpc.propagate flags; default grpc.propagate.DEFAULTS when a parent is given. */
  readonly propagate?: number;
  readonly metadata?: grpc.Metadata;
  /** Cancels the call when aborted (the promise rejects with CANCELLED). */
  readonly signal?: AbortSignal;
}

/** A typed client: one promise-returning function per method. */
export type Client<S extends GenServiceMethods> = {
  readonly [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? (
        request: MessageInitShape<S[K]["input"]>,
        options?: CallOptions,
      ) => Promise<MessageShape<S[K]["output"]>>
    : never;
} & {
  /** The underlying grpc-js client (channel state, waitForReady). */
  readonly $grpc: grpc.Client;
  /** Closes the channel. */
  $close(): void;
};

export interface ClientOptions {
  /** Deadline of calls made without one, in milliseconds from the call. Default 5000. */
  readonly defaultTimeoutMs?: number;
}

export const DEFAULT_CLIENT_TIMEOUT_MS = 5000;

/**
 * A typed client for `service` over an existing grpc-js client (which owns the channel).
 * Methods take the request message or its init object, resolve with the response message and
 * reject with the grpc-js ServiceError (code, details, metadata).
 */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  grpcClient: grpc.Client,
  options: ClientOptions = {},
): Client<S> {
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  const out: Record<string, unknown> = {
    $grpc: grpcClient,
    $close: () => grpcClient.close(),
  };
  for (const method of unaryMethods(service as unknown as DescService)) {
    const path = methodPath(method);
    const serialize = serializer(method.input);
    const deserialize = deserializer(method.output);
    out[method.localName] = (
      request: MessageInitShape<DescMessage>,
      callOptions: CallOptions = {},
    ): Promise<MessageShape<DescMessage>> => {
      if (callOptions.signal?.aborted) return Promise.reject(abortError(path));
      const grpcOptions: grpc.CallOptions = {
        deadline: callOptions.deadline ?? Date.now() + defaultTimeoutMs,
      };
      if (callOptions.parent !== undefined) {
        grpcOptions.parent = callOptions.parent;
        grpcOptions.propagate_flags = callOptions.propagate ?? grpc.propagate.DEFAULTS;
      }
      return unaryCall(grpcClient, path, serialize(create(method.input, request)), {
        metadata: callOptions.metadata ?? new grpc.Metadata(),
        options: grpcOptions,
        signal: callOptions.signal,
        deserialize,
      });
    };
  }
  return out as Client<S>;
}

const passBytes = (bytes: Buffer): Buffer => bytes;

/**
 * One unary call with the request already encoded; the response is decoded here.
 *
 * grpc-js gets and returns bytes, and its callback reaches this call's promise only through
 * `pending`, which the first completion empties. grpc-js per-call objects can stay reachable
 * after the call (until a minor GC or longer, and until the next major GC once one of them is in
 * the old generation); whatever they point to stays alive with them. Before this, the callback's
 * closure held the request message and, through the promise, the caller's whole async frame
 * (measured on the orchestrator: each Recommend's candidate lists survived the scavenges).
 */
function unaryCall(
  client: grpc.Client,
  path: string,
  request: Buffer,
  call: {
    readonly metadata: grpc.Metadata;
    readonly options: grpc.CallOptions;
    readonly signal: AbortSignal | undefined;
    readonly deserialize: (bytes: Buffer) => MessageShape<DescMessage>;
  },
): Promise<MessageShape<DescMessage>> {
  return new Promise((resolve, reject) => {
    const { signal, deserialize } = call;
    let started: grpc.ClientUnaryCall | undefined;
    const onAbort = (): void => started?.cancel();
    const pending: PendingCall = {
      settle: (error, bytes) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) {
          reject(error);
          return;
        }
        if (bytes === undefined) {
          reject(new Error(`${path}: empty response`));
          return;
        }
        let response: MessageShape<DescMessage>;
        try {
          response = deserialize(bytes);
        } catch (decodeError) {
          reject(unparsableResponse(path, decodeError));
          return;
        }
        resolve(response);
      },
    };
    started = client.makeUnaryRequest<Buffer, Buffer>(path, passBytes, passBytes, request, call.metadata, call.options, detachedCallback(pending));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface PendingCall {
  settle: ((error: grpc.ServiceError | null, bytes?: Buffer) => void) | undefined;
}

/** The grpc-js callback: its closure holds only `pending` (see unaryCall). */
function detachedCallback(pending: PendingCall): grpc.requestCallback<Buffer> {
  return (error, bytes) => {
    const settle = pending.settle;
    pending.settle = undefined;
    settle?.(error, bytes);
  };
}

/** What grpc-js reports for a response its deserializer rejects: INTERNAL. */
function unparsableResponse(path: string, cause: unknown): grpc.ServiceError {
  const details = `${path}: the response is not a valid message: ${cause instanceof Error ? cause.message : String(cause)}`;
  return Object.assign(new Error(`${grpc.status.INTERNAL} INTERNAL: ${details}`), {
    code: grpc.status.INTERNAL,
    details,
    metadata: new grpc.Metadata(),
  });
}

function abortError(path: string): grpc.ServiceError {
  return Object.assign(new Error(`${grpc.status.CANCELLED} CANCELLED: ${path} aborted before start`), {
    code: grpc.status.CANCELLED,
    details: "aborted before start",
    metadata: new grpc.Metadata(),
  });
}
