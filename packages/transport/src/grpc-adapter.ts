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
import { deadlineMs } from "./deadline.js";
import { serviceError, type CallOptions, type UnaryTransport } from "./transport.js";

export type { CallOptions };

const { status } = grpc;

/** The gRPC path of a method: `/recsys.v1.RankingService/Rank`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function unaryMethods(service: DescService): DescMethod[] {
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      throw new Error(`${service.typeName}.${method.name} is ${method.methodKind}: only unary methods are supported`);
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
  [K in keyof S]: S[K]["methodKind"] extends "unary" ? UnaryHandler<S[K]["input"], S[K]["output"]> : never;
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

/** A typed client: one promise-returning function per method. */
export type Client<S extends GenServiceMethods> = {
  readonly [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? (request: MessageInitShape<S[K]["input"]>, options?: CallOptions) => Promise<MessageShape<S[K]["output"]>>
    : never;
} & {
  /** What the calls go through (waitForReady, close). */
  readonly $transport: UnaryTransport;
  /** Closes the transport; calls in flight finish. */
  $close(): void;
};

export interface ClientOptions {
  /** Deadline of calls made without one, in milliseconds from the call. Default 5000. */
  readonly defaultTimeoutMs?: number;
}

export const DEFAULT_CLIENT_TIMEOUT_MS = 5000;

/**
 * A typed client for `service` over a transport (`Http2Channel`, or `GrpcJsTransport` over a
 * grpc-js client). Methods take the request message or its init object, resolve with the
 * response message and reject with a ServiceError (code, details, metadata), as grpc-js does.
 * Requests are encoded and responses decoded here; a response that does not decode is INTERNAL,
 * naming the method.
 */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  transport: UnaryTransport,
  options: ClientOptions = {},
): Client<S> {
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  const out: Record<string, unknown> = {
    $transport: transport,
    $close: () => transport.close(),
  };
  for (const method of unaryMethods(service as unknown as DescService)) {
    const path = methodPath(method);
    const decode = (bytes: Buffer): MessageShape<DescMessage> => {
      try {
        return fromBinary(method.output, bytes);
      } catch (error) {
        throw serviceError(
          status.INTERNAL,
          `${path}: the response is not a valid message: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    };
    out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions: CallOptions = {}): Promise<MessageShape<DescMessage>> => {
      let bytes: Uint8Array;
      try {
        bytes = toBinary(method.input, create(method.input, request));
      } catch (error) {
        return Promise.reject(error);
      }
      const deadline = callOptions.deadline === undefined ? Date.now() + defaultTimeoutMs : deadlineMs(callOptions.deadline);
      return transport
        .unary(path, bytes, {
          deadline,
          metadata: callOptions.metadata,
          signal: callOptions.signal,
          parent: callOptions.parent,
          propagate: callOptions.propagate,
        })
        .then(decode);
    };
  }
  return out as Client<S>;
}
