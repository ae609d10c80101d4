import { create } from "@bufbuild/protobuf";
import { MAX_ID_LENGTH, UserEventSchema } from "@recsys/gen";
import { describe, expect, it } from "vitest";
import { OwnEvents, toStoreEvent } from "./record-events.js";

describe("OwnEvents", () => {
  const watch = (itemId: string, timestamp = 10) => ({ kind: "watch" as const, userId: "u", itemId, timestamp });

  it("skips each own watch exactly once (a multiset), not other replicas' identical ones", () => {
    const own = new OwnEvents();
    own.add([watch("a"), watch("a"), watch("b"), { kind: "search", userId: "u", query: "q", timestamp: 10 }]);
    expect(own.size).toBe(2);
    expect(own.consume(watch("a"))).toBe(true);
    expect(own.consume(watch("a"))).toBe(true);
    expect(own.consume(watch("a"))).toBe(false); // a third one came from elsewhere
    expect(own.consume(watch("b", 11))).toBe(false); // another time: another event
    own.remove([watch("b")]);
    expect(own.consume(watch("b"))).toBe(false);
    expect(own.size).toBe(0);
  });

  it("forgets entries whose echo never came", () => {
    let now = 0;
    const own = new OwnEvents(1000, () => now);
    own.add([watch("a")]);
    now = 120_000;
    own.add([watch("b")]);
    expect(own.consume(watch("a"))).toBe(false);
    expect(own.consume(watch("b"))).toBe(true);
  });
});

describe("toStoreEvent", () => {
  const now = 1_000_000;
  it("fills missing times with the serving clock and keeps optional fields", () => {
    expect(
      toStoreEvent(create(UserEventSchema, { userId: "u", kind: { case: "watch", value: { itemId: "i", watchSeconds: 30 } } }), 0, now, 60),
    ).toEqual({
      kind: "watch",
      userId: "u",
      itemId: "i",
      timestamp: now,
      watchSeconds: 30,
    });
    expect(
      toStoreEvent(
        create(UserEventSchema, {
          userId: "u",
          kind: {
            case: "impression",
            value: { itemId: "i", position: 3, requestId: "r", shownAt: { seconds: 999_000n, nanos: 500_000_000 } },
          },
        }),
        0,
        now,
        60,
      ),
    ).toEqual({ kind: "impression", userId: "u", itemId: "i", timestamp: 999_000.5, position: 3, requestId: "r" });
  });

  it("keeps the client id with a watch and rejects one that is too long", () => {
    const event = (clientId: string) => create(UserEventSchema, { userId: "u", clientId, kind: { case: "watch", value: { itemId: "i" } } });
    expect(toStoreEvent(event("app-install-7"), 0, now, 60)).toEqual({
      kind: "watch",
      userId: "u",
      itemId: "i",
      timestamp: now,
      clientId: "app-install-7",
    });
    expect(toStoreEvent(event(""), 0, now, 60)).not.toHaveProperty("clientId");
    expect(() => toStoreEvent(event("x".repeat(MAX_ID_LENGTH + 1)), 1, now, 60)).toThrow(
      `events[1].client_id is too long: ${MAX_ID_LENGTH + 1} characters, at most ${MAX_ID_LENGTH}`,
    );
  });

  it("rejects blank queries, negative watch time and times too far ahead, naming the field", () => {
    expect(() =>
      toStoreEvent(create(UserEventSchema, { userId: "u", kind: { case: "search", value: { query: "  " } } }), 2, now, 60),
    ).toThrow("events[2].search.query is blank");
    expect(() =>
      toStoreEvent(create(UserEventSchema, { userId: "u", kind: { case: "watch", value: { itemId: "i", watchSeconds: -1 } } }), 0, now, 60),
    ).toThrow("events[0].watch.watch_seconds must be a finite number >= 0, got -1");
    expect(() =>
      toStoreEvent(
        create(UserEventSchema, { userId: "u", kind: { case: "watch", value: { itemId: "i", watchedAt: { seconds: BigInt(now + 61) } } } }),
        0,
        now,
        60,
      ),
    ).toThrow("events[0].watch.watched_at is 61 s after the server clock");
  });
});
