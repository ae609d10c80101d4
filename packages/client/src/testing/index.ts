/**
 * `@recsys/client/testing`: a fake orchestrator for the tests of a service that calls recsys. It
 * serves the real RecommenderService and CatalogueService contracts over gRPC on 127.0.0.1 (a free
 * port), answers Recommend with deterministic items, keeps an in-memory catalogue (`items`,
 * `deleted`) for the catalogue calls, records every call (request, deadline, metadata), and its
 * handlers can be replaced to fail or stall:
 *
 *   const fake = await startFakeRecommender();
 *   fake.recommend = () => { throw unavailable("down for a test"); };
 *   const recsys = createRecsysClient({ address: fake.address });
 *   ...
 *   await fake.stop();
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  CatalogueItemSchema,
  CatalogueService,
  MAX_CATALOGUE_ITEMS,
  RecommenderService,
  type CatalogueItem,
  type CatalogueServiceDeleteItemsRequest,
  type CatalogueServiceDeleteItemsResponseSchema,
  type CatalogueServiceGetItemsRequest,
  type CatalogueServiceGetItemsResponseSchema,
  type CatalogueServiceUpsertItemsRequest,
  type CatalogueServiceUpsertItemsResponseSchema,
  type RecommendRequest,
  type RecommendResponseSchema,
  type RecordEventsRequest,
  type RecordEventsResponseSchema,
  type UserEvent,
} from "@recsys/gen";
import { implement, invalidArgument, startService, type CallContext, type ServiceImplementation } from "@recsys/runtime";
import { testConfig } from "@recsys/runtime/testing";

export { RpcError, status, unavailable, invalidArgument, deadlineExceeded } from "@recsys/runtime";

export interface FakeCall {
  /** The method's proto name, e.g. "Recommend". */
  readonly method: string;
  readonly request:
    | RecommendRequest
    | RecordEventsRequest
    | CatalogueServiceUpsertItemsRequest
    | CatalogueServiceDeleteItemsRequest
    | CatalogueServiceGetItemsRequest
    | object;
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
  /** The catalogue held by the default catalogue handlers, by item id (`updatedAt` stamped on upsert). */
  readonly items: Map<string, CatalogueItem>;
  /** Ids taken down by DeleteItems (an upsert brings one back, as in the orchestrator). */
  readonly deleted: Set<string>;
  /** The UpsertItems handler (default: into `items`; every item counted as embedded). */
  upsertItems: Handler<CatalogueServiceUpsertItemsRequest, MessageInitShape<typeof CatalogueServiceUpsertItemsResponseSchema>>;
  /** The DeleteItems handler (default: out of `items`, into `deleted`). */
  deleteItems: Handler<CatalogueServiceDeleteItemsRequest, MessageInitShape<typeof CatalogueServiceDeleteItemsResponseSchema>>;
  /** The GetItems handler (default: from `items` in request order, and the taken-down ids). */
  getItems: Handler<CatalogueServiceGetItemsRequest, MessageInitShape<typeof CatalogueServiceGetItemsResponseSchema>>;
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

/** The orchestrator's checks of a list of ids or items (1..MAX_CATALOGUE_ITEMS, no empty id). */
function checkIds(ids: readonly string[], field: string): void {
  if (ids.length === 0) throw invalidArgument(`${field} is empty`);
  if (ids.length > MAX_CATALOGUE_ITEMS) throw invalidArgument(`${field} has ${ids.length} entries, at most ${MAX_CATALOGUE_ITEMS} allowed`);
  ids.forEach((id, i) => {
    if (id === "") throw invalidArgument(`${field}[${i}] is empty`);
  });
}

export async function startFakeRecommender(): Promise<FakeRecommender> {
  const calls: FakeCall[] = [];
  const events: UserEvent[] = [];
  const items = new Map<string, CatalogueItem>();
  const deleted = new Set<string>();
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
    items,
    deleted,
    upsertItems: (request) => {
      checkIds(
        request.items.map((item) => item.itemId),
        "items",
      );
      const updatedAt = timestampNow();
      for (const item of request.items) {
        items.set(item.itemId, create(CatalogueItemSchema, { ...item, uploadedAt: item.uploadedAt ?? updatedAt, updatedAt }));
        deleted.delete(item.itemId);
      }
      return { upserted: request.items.length, embedded: request.items.length, notEmbedded: 0 };
    },
    deleteItems: (request) => {
      checkIds(request.itemIds, "item_ids");
      const ids = new Set(request.itemIds);
      for (const id of ids) {
        items.delete(id);
        deleted.add(id);
      }
      return { deleted: ids.size };
    },
    getItems: (request) => {
      if (request.itemIds.length > 0) checkIds(request.itemIds, "item_ids");
      return {
        items: request.itemIds.flatMap((id) => items.get(id) ?? []),
        deletedItemIds: request.itemIds.filter((id) => deleted.has(id)),
      };
    },
  };
  // Every method of both services: the known ones through the replaceable handlers above, any
  // other (a method added to the contract later) with an empty answer.
  const replaceable: Record<string, Handler<never, unknown>> = {
    recommend: (request, context) => fake.recommend(request, context),
    recordEvents: (request, context) => fake.recordEvents(request, context),
    upsertItems: (request, context) => fake.upsertItems(request, context),
    deleteItems: (request, context) => fake.deleteItems(request, context),
    getItems: (request, context) => fake.getItems(request, context),
  };
  const handlersOf = (methods: Record<string, { readonly name: string }>) => {
    const handlers: Record<string, (request: never, context: CallContext) => unknown> = {};
    for (const [name, method] of Object.entries(methods)) {
      handlers[name] = (request: never, context: CallContext) => {
        note(method.name, request as FakeCall["request"], context);
        return replaceable[name]?.(request, context) ?? {};
      };
    }
    return handlers;
  };
  const service = await startService({
    stage: "fake_orchestrator",
    config: testConfig({ DRAIN_TIMEOUT: 200, SHUTDOWN_TIMEOUT: 200 }),
    services: [
      implement(
        RecommenderService,
        handlersOf(RecommenderService.method) as unknown as ServiceImplementation<typeof RecommenderService.method>,
      ),
      implement(CatalogueService, handlersOf(CatalogueService.method) as unknown as ServiceImplementation<typeof CatalogueService.method>),
    ],
  });
  return Object.assign(fake, {
    address: service.address,
    async stop() {
      await service.stop();
    },
  });
}
