import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ErrorCode,
  IDEMPOTENT,
  timestampFromDate,
  RecsysError,
  createRecsysClient,
  isRecsysError,
  type RecsysClient,
  type RetryEvent,
} from "./index.js";
import { invalidArgument, startFakeRecommender, unavailable, type FakeRecommender } from "./testing/index.js";

let fake: FakeRecommender;
const clients: RecsysClient[] = [];
let defaults: Pick<FakeRecommender, "recommend" | "recordEvents" | "upsertItems" | "deleteItems" | "getItems">;

function client(options: Partial<Parameters<typeof createRecsysClient>[0]> = {}): RecsysClient {
  const c = createRecsysClient({ address: fake.address, ...options });
  clients.push(c);
  return c;
}

async function failure(call: Promise<unknown>): Promise<RecsysError> {
  try {
    await call;
  } catch (error) {
    if (isRecsysError(error)) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

/** A handler that fails with UNAVAILABLE `times` times, then answers as `then` does. */
function failing<F extends (...args: never[]) => unknown>(times: number, then: F): F {
  let left = times;
  return ((...args: Parameters<F>) => {
    if (left-- > 0) throw unavailable("fake orchestrator: try again");
    return then(...args);
  }) as F;
}

async function closedAddress(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

beforeAll(async () => {
  fake = await startFakeRecommender();
  const { recommend, recordEvents, upsertItems, deleteItems, getItems } = fake;
  defaults = { recommend, recordEvents, upsertItems, deleteItems, getItems };
});

afterEach(() => {
  Object.assign(fake, defaults);
  fake.calls.length = 0;
  fake.events.length = 0;
  fake.items.clear();
  fake.deleted.clear();
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await fake.stop();
});

describe("RecsysClient", () => {
  it("calls Recommend with the deadline and metadata of the call", async () => {
    const recsys = client({ timeoutMs: 800, metadata: { "x-tenant": "shop", "x-source": "client" } });
    const before = Date.now();
    const answer = await recsys.recommend({ userId: "17", count: 3 }, { metadata: { "x-source": "call" } });
    expect(answer.items.map((item) => item.itemId)).toEqual(["item-1", "item-2", "item-3"]);
    expect(answer.items[0]!.reasons).toEqual(["Recommended to 17"]);
    const [call] = fake.calls;
    expect(call!.method).toBe("Recommend");
    expect(call!.request).toMatchObject({ userId: "17", count: 3 });
    // The server sees the client's deadline (grpc-timeout rounds up to the next millisecond).
    expect(call!.deadline).toBeGreaterThanOrEqual(before + 790);
    expect(call!.deadline).toBeLessThanOrEqual(Date.now() + 810);
    expect(call!.metadata).toMatchObject({ "x-tenant": "shop", "x-source": "call" });
  });

  it("retries Recommend on UNAVAILABLE with backoff, and reports each retry", async () => {
    fake.recommend = failing(2, defaults.recommend);
    const retries: RetryEvent[] = [];
    const recsys = client({ retry: { initialBackoffMs: 20 }, onRetry: (event) => retries.push(event), random: () => 1 });
    const answer = await recsys.recommend({ userId: "3", count: 2 });
    expect(answer.items).toHaveLength(2);
    expect(fake.calls).toHaveLength(3);
    expect(retries.map((r) => [r.attempt, r.backoffMs, r.error.code])).toEqual([
      [1, 20, ErrorCode.Unavailable],
      [2, 40, ErrorCode.Unavailable],
    ]);
  });

  it("gives up after maxAttempts with the last error and the number of attempts", async () => {
    fake.recommend = failing(10, defaults.recommend);
    const error = await failure(client({ retry: { maxAttempts: 3, initialBackoffMs: 1 } }).recommend({ userId: "3", count: 2 }));
    expect(error).toBeInstanceOf(RecsysError);
    expect(error.code).toBe(ErrorCode.Unavailable);
    expect(error.grpcStatus).toBe(14);
    expect(error.attempts).toBe(3);
    expect(error.method).toBe("Recommend");
    expect(error.details).toBe("fake orchestrator: try again");
    expect(fake.calls).toHaveLength(3);
  });

  it("does not retry a caller's mistake, and names it so a caller can switch on it", async () => {
    fake.recommend = () => {
      throw invalidArgument("count must be in 1..500, got 0");
    };
    const error = await failure(client().recommend({ userId: "3", count: 0 }));
    expect(error.code).toBe(ErrorCode.InvalidArgument);
    expect(error.message).toBe("Recommend: INVALID_ARGUMENT: count must be in 1..500, got 0");
    expect(fake.calls).toHaveLength(1);
  });

  it("never retries past the deadline: a backoff that would end after it returns the error at once", async () => {
    fake.recommend = failing(10, defaults.recommend);
    const recsys = client({ timeoutMs: 300, retry: { initialBackoffMs: 5000, maxBackoffMs: 5000 }, random: () => 1 });
    const started = Date.now();
    const error = await failure(recsys.recommend({ userId: "3", count: 2 }));
    expect(error.code).toBe(ErrorCode.Unavailable);
    expect(error.attempts).toBe(1);
    expect(Date.now() - started).toBeLessThan(300);
  });

  it("fails with DEADLINE_EXCEEDED when the server is slower than the deadline", async () => {
    fake.recommend = (request, context) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ items: [] }), 5000);
        context.signal.addEventListener("abort", () => clearTimeout(timer));
        void request;
      });
    const started = Date.now();
    const error = await failure(client().recommend({ userId: "3", count: 2 }, { timeoutMs: 200 }));
    expect(error.code).toBe(ErrorCode.DeadlineExceeded);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("does not retry RecordEvents unless the call asks for it (it is not idempotent)", async () => {
    fake.recordEvents = failing(1, defaults.recordEvents);
    const recsys = client({ retry: { initialBackoffMs: 1 } });
    const events = [{ userId: "5", kind: { case: "watch" as const, value: { itemId: "42" } } }];
    const error = await failure(recsys.recordEvents({ events }));
    expect(error.code).toBe(ErrorCode.Unavailable);
    expect(error.attempts).toBe(1);
    expect(fake.calls).toHaveLength(1);

    fake.recordEvents = failing(1, defaults.recordEvents);
    const answer = await recsys.recordEvents({ events }, { retry: true });
    expect(answer.accepted).toBe(1);
    expect(fake.calls).toHaveLength(3);
    expect(fake.events).toHaveLength(1);
  });

  it("a call's retry: false turns retries off for an idempotent method", async () => {
    fake.recommend = failing(1, defaults.recommend);
    const error = await failure(client({ retry: { initialBackoffMs: 1 } }).recommend({ userId: "3", count: 1 }, { retry: false }));
    expect(error.attempts).toBe(1);
  });

  it("records the impressions of an answer: one per shown item, with position and request id", async () => {
    const recsys = client();
    const answer = await recsys.recommend({ userId: "9", count: 4 });
    const shownAt = new Date("2026-01-02T03:04:05Z");
    expect(await recsys.recordImpressions("9", answer, { shownAt, shown: 3 })).toBe(3);
    expect(fake.events.map((event) => [event.userId, event.kind.case, event.kind.value])).toEqual(
      [1, 2, 3].map((position) => [
        "9",
        "impression",
        expect.objectContaining({
          itemId: `item-${position}`,
          position,
          requestId: answer.requestId,
          shownAt: expect.objectContaining({ seconds: BigInt(shownAt.getTime() / 1000) }),
        }),
      ]),
    );
  });

  it("a cancelled call rejects with CANCELLED, also while it waits to retry", async () => {
    fake.recommend = failing(10, defaults.recommend);
    const controller = new AbortController();
    const recsys = client({ retry: { initialBackoffMs: 2000, maxBackoffMs: 2000 }, random: () => 1, timeoutMs: 10_000 });
    const call = recsys.recommend({ userId: "3", count: 1 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const error = await failure(call);
    expect(error.code).toBe(ErrorCode.Cancelled);
    expect(error.details).toContain("cancelled while waiting to retry");
  });

  it("fails with UNAVAILABLE, after its retries, when nothing listens", async () => {
    const recsys = createRecsysClient({ address: await closedAddress(), retry: { initialBackoffMs: 5 }, timeoutMs: 2000 });
    clients.push(recsys);
    const error = await failure(recsys.recommend({ userId: "3", count: 1 }));
    expect(error.code).toBe(ErrorCode.Unavailable);
    expect(error.attempts).toBe(3);
  });

  it("refuses a bad configuration with a clear message", () => {
    expect(() => createRecsysClient({ address: fake.address, retry: { maxAttempts: 0 } })).toThrow(
      "retry.maxAttempts must be an integer >= 1, got 0",
    );
    expect(() => createRecsysClient({ address: fake.address, timeoutMs: -1 })).toThrow("timeoutMs must be a positive number, got -1");
    expect(() => createRecsysClient({ address: "no-port" })).toThrow('bad gRPC target "no-port"');
  });
});

describe("RecsysClient: the catalogue (CatalogueService)", () => {
  it("uploads an item, reads it back, takes it down: over the same connection as Recommend", async () => {
    const recsys = client({ metadata: { authorization: "Bearer t" } });
    const uploadedAt = timestampFromDate(new Date("2026-12-01T10:00:00Z"));
    const upserted = await recsys.upsertItems(
      { items: [{ itemId: "v-1", title: "Cats at play", tags: ["cats", "pets"], channel: "ch-a", uploadedAt, durationSeconds: 95 }] },
      { timeoutMs: 5000 },
    );
    expect(upserted).toMatchObject({ upserted: 1, embedded: 1, notEmbedded: 0 });
    const [upsertCall] = fake.calls;
    expect(upsertCall!.method).toBe("UpsertItems");
    expect(upsertCall!.metadata).toMatchObject({ authorization: "Bearer t" });
    expect(upsertCall!.deadline).toBeGreaterThan(Date.now() + 4000);

    const read = await recsys.getItems({ itemIds: ["v-1", "unknown"] });
    expect(read.items.map((item) => [item.itemId, item.title, item.tags, item.channel, item.durationSeconds])).toEqual([
      ["v-1", "Cats at play", ["cats", "pets"], "ch-a", 95],
    ]);
    expect(read.items[0]!.uploadedAt).toEqual(uploadedAt);
    expect(read.items[0]!.updatedAt).toBeDefined();
    expect(read.deletedItemIds).toEqual([]);

    expect(await recsys.deleteItems({ itemIds: ["v-1", "v-1"] })).toMatchObject({ deleted: 1 });
    const after = await recsys.getItems({ itemIds: ["v-1"] });
    expect(after.items).toEqual([]);
    expect(after.deletedItemIds).toEqual(["v-1"]);
    // The recommender's calls still work beside them.
    expect((await recsys.recommend({ userId: "1", count: 1 })).items).toHaveLength(1);
    expect(fake.calls.map((call) => call.method)).toEqual(["UpsertItems", "GetItems", "DeleteItems", "GetItems", "Recommend"]);
  });

  it("records the catalogue methods as retried by default (idempotent by contract, or a read)", () => {
    expect(IDEMPOTENT).toEqual({ recommend: true, recordEvents: false, upsertItems: true, deleteItems: true, getItems: true });
  });

  it.each(["upsertItems", "deleteItems", "getItems"] as const)("retries %s on UNAVAILABLE", async (method) => {
    const requests = {
      upsertItems: { items: [{ itemId: "v-2", channel: "ch-b" }] },
      deleteItems: { itemIds: ["v-2"] },
      getItems: { itemIds: ["v-2"] },
    };
    (fake as unknown as Record<string, unknown>)[method] = failing(2, defaults[method] as (...args: never[]) => unknown);
    const retries: RetryEvent[] = [];
    const recsys = client({ retry: { initialBackoffMs: 1 }, onRetry: (event) => retries.push(event) });
    await recsys.invoke(method, requests[method] as never);
    expect(fake.calls).toHaveLength(3);
    expect(retries.map((r) => [r.method, r.attempt, r.error.code])).toEqual([
      [fake.calls[0]!.method, 1, ErrorCode.Unavailable],
      [fake.calls[0]!.method, 2, ErrorCode.Unavailable],
    ]);
  });

  it("does not retry a refused catalogue write, and names the field", async () => {
    const error = await failure(client().upsertItems({ items: [] }));
    expect(error.code).toBe(ErrorCode.InvalidArgument);
    expect(error.message).toBe("UpsertItems: INVALID_ARGUMENT: items is empty");
    expect(error.attempts).toBe(1);
    const blank = await failure(client().deleteItems({ itemIds: ["a", ""] }));
    expect(blank.details).toBe("item_ids[1] is empty");
    expect(fake.calls).toHaveLength(2);
  });
});
