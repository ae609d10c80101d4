/**
 * The grpc-js client as a `UnaryTransport`: what `connect` uses when TLS credentials are given or
 * `transport: "grpc-js"` is asked for (the serving benchmark's baseline).
 */
import * as grpc from "@grpc/grpc-js";
import { serviceError, type UnaryCallOptions, type UnaryTransport } from "./transport.js";

const passBytes = (bytes: Buffer): Buffer => bytes;

export class GrpcJsTransport implements UnaryTransport {
  constructor(readonly client: grpc.Client) {}

  /**
   * One unary call. grpc-js gets and returns bytes, and its callback reaches this call's promise
   * only through `pending`, which the first completion empties: grpc-js per-call objects can stay
   * reachable after the call (until a minor GC or longer, and until the next major GC once one of
   * them is in the old generation), and whatever they point to stays alive with them (measured on
   * the orchestrator: each Recommend's candidate lists survived the scavenges through the
   * callback's closure).
   */
  unary(path: string, request: Uint8Array, options: UnaryCallOptions): Promise<Buffer> {
    if (options.signal?.aborted) return Promise.reject(serviceError(grpc.status.CANCELLED, `${path} aborted before start`));
    const grpcOptions: grpc.CallOptions = { deadline: options.deadline };
    if (options.parent !== undefined) {
      grpcOptions.parent = options.parent;
      grpcOptions.propagate_flags = options.propagate ?? grpc.propagate.DEFAULTS;
    }
    const bytes = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      let started: grpc.ClientUnaryCall | undefined;
      const onAbort = (): void => started?.cancel();
      const pending: PendingCall = {
        settle: (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) reject(error);
          else if (response === undefined) reject(serviceError(grpc.status.INTERNAL, `${path}: empty response`));
          else resolve(response);
        },
      };
      started = this.client.makeUnaryRequest<Buffer, Buffer>(
        path,
        passBytes,
        passBytes,
        bytes,
        options.metadata ?? new grpc.Metadata(),
        grpcOptions,
        detachedCallback(pending),
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  waitForReady(deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(deadline, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    this.client.close();
  }
}

interface PendingCall {
  settle: ((error: grpc.ServiceError | null, bytes?: Buffer) => void) | undefined;
}

/** The grpc-js callback: its closure holds only `pending` (see unary). */
function detachedCallback(pending: PendingCall): grpc.requestCallback<Buffer> {
  return (error, bytes) => {
    const settle = pending.settle;
    pending.settle = undefined;
    settle?.(error, bytes);
  };
}
