/**
 * `@recsys/client/testing`: a fake orchestrator for the tests of a service that calls recsys. It
 * serves the real RecommenderService contract over gRPC on 127.0.0.1 (a free port), answers with
 * deterministic items, records every call (request, deadline, metadata), and its handlers can be
 * replaced to fail or stall:
 *
 *   const fake = await startFakeRecommender();
 *   fake.recommend = () => { throw unavailable("down for a test"); };
 *   const recsys = createRecsysClient({ address: fake.address });
 *   ...
 *   await fake.stop();
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  RecommenderService,
  type RecommendRequest,
  type RecommendResponseSchema,
  type RecordEventsRequest,
  type RecordEventsResponseSchema,
  type UserEvent,
} from "@recsys/gen";
import { implement, startService, type CallContext, type ServiceImplementation } from "@recsys/runtime";
import { testConfig } from "@recsys/runtime/testing";

export { RpcError, status, unavailable, invalidArgument, deadlineExceeded } from "@recsys/runtime";

export interface FakeCall {
  /** The method's proto name, e.g. "Recommend". */
  readonly method: string;
  readonly request: RecommendRequest | RecordEventsRequest | object;
  /** The caller's deadline, epoch ms (Infinity when it sent none). */
  readonly deadline: number;
  /** Request metadata as a plain object (first value of each key). */
  readonly metadata: Readonly<Record<string, string>>;
}

type Handler<I, O> = (request: I, context: CallContext) => Promise<O> | O;

export interface FakeRecommender {
  /** "127.0.0.1:<port>". */
  readonly address: string;
  /** Every call received, in order. */
  readonly calls: FakeCall[];
  /** Every event accepted by RecordEvents, in order. */
  readonly events: UserEvent[];
  /** The Recommend handler (replace it to change the answers). */
  recommend: Handler<RecommendRequest, MessageInitShape<typeof RecommendResponseSchema>>;
  /** The RecordEvents handler. */
  recordEvents: Handler<RecordEventsRequest, MessageInitShape<typeof RecordEventsResponseSchema>>;
  stop(): Promise<void>;
}

/** Items "item-1" … "item-<count>", scored count … 1, with a request id "fake-<n>". */
export function fakeRecommendations(request: RecommendRequest, n: number): MessageInitShape<typeof RecommendResponseSchema> {
  return {
    requestId: `fake-${n}`,
    items: Array.from({ length: request.count }, (_, i) => ({
      itemId: `item-${i + 1}`,
      score: request.count - i,
      expectedWatchSeconds: 60,
      reasons: [`Recommended to ${request.userId}`],
    })),
  };
}

export async function startFakeRecommender(): Promise<FakeRecommender> {
  const calls: FakeCall[] = [];
  const events: UserEvent[] = [];
  let recommends = 0;
  const note = (method: string, request: FakeCall["request"], context: CallContext): void => {
    const metadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(context.metadata.getMap())) metadata[key] = String(value);
    calls.push({ method, request, deadline: context.deadline, metadata });
  };
  const fake: Omit<FakeRecommender, "address" | "stop"> = {
    calls,
    events,
    recommend: (request) => fakeRecommendations(request, ++recommends),
    recordEvents: (request) => {
      events.push(...request.events);
      return { accepted: request.events.length };
    },
  };
  // Every method of the service: Recommend and RecordEvents through the replaceable handlers
  // above, any other (a method added to the contract later) with an empty answer.
  const handlers: Record<string, (request: never, context: CallContext) => unknown> = {};
  for (const [name, method] of Object.entries(RecommenderService.method)) {
    handlers[name] = (request: FakeCall["request"], context: CallContext) => {
      note(method.name, request, context);
      if (name === "recommend") return fake.recommend(request as RecommendRequest, context);
      if (name === "recordEvents") return fake.recordEvents(request as RecordEventsRequest, context);
      return {};
    };
  }
  const service = await startService({
    stage: "fake_orchestrator",
    config: testConfig({ DRAIN_TIMEOUT: 200, SHUTDOWN_TIMEOUT: 200 }),
    services: [implement(RecommenderService, handlers as unknown as ServiceImplementation<typeof RecommenderService.method>)],
  });
  return Object.assign(fake, {
    address: service.address,
    async stop() {
      await service.stop();
    },
  });
}
