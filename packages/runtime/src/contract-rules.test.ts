/**
 * The contracts' rules (@recsys/gen rules.ts) at the boundary of a real service: requests that
 * break them get INVALID_ARGUMENT naming the field before the handler runs, for every method.
 */
import { RecommenderService, RankingService } from "@recsys/gen";
import { afterEach, describe, expect, it } from "vitest";
import { connect, implement, status } from "@recsys/transport";
import { startService, type RunningService } from "./service.js";
import { rejection, testConfig } from "./testing/index.js";

const running: RunningService[] = [];
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(running.splice(0).map((s) => s.stop("test done")));
});

async function start(server: "http2" | "grpc-js") {
  let handled = 0;
  const service = await startService({
    stage: "rules_test",
    config: testConfig({ GRPC_SERVER: server }),
    services: [
      implement(RecommenderService, {
        recommend: async () => {
          handled += 1;
          return {};
        },
        recordEvents: async (request) => {
          handled += 1;
          return { accepted: request.events.length };
        },
      }),
      implement(RankingService, {
        rank: async () => {
          handled += 1;
          return {};
        },
      }),
    ],
  });
  running.push(service);
  const recommender = connect(RecommenderService, service.address);
  const ranking = connect(RankingService, service.address);
  closers.push(
    () => recommender.$close(),
    () => ranking.$close(),
  );
  return { recommender, ranking, handled: () => handled };
}

const BAD_RECOMMEND: Array<[string, Parameters<ReturnType<typeof connect<typeof RecommenderService.method>>["recommend"]>[0], RegExp]> = [
  [
    "+Inf watch_seconds in the context",
    { userId: "u", count: 5, context: { userId: "u", watchHistory: [{ itemId: "i", watchSeconds: Infinity }] } },
    /^context\.watch_history\[0\]\.watch_seconds must be a finite number >= 0, got Infinity$/,
  ],
  [
    "NaN watch_seconds",
    { userId: "u", count: 5, context: { userId: "u", watchHistory: [{ itemId: "i", watchSeconds: NaN }] } },
    /watch_seconds must be a finite number >= 0, got NaN/,
  ],
  [
    "negative watch_seconds",
    { userId: "u", count: 5, context: { userId: "u", watchHistory: [{ itemId: "i", watchSeconds: -1 }] } },
    /watch_seconds must be a finite number >= 0, got -1/,
  ],
  [
    "request_time seconds -2^62",
    { userId: "u", count: 5, context: { userId: "u", requestTime: { seconds: -(2n ** 62n) } } },
    /^context\.request_time is out of the Timestamp range/,
  ],
  [
    "uploaded_after seconds 2^62",
    { userId: "u", count: 5, filters: { uploadedAfter: { seconds: 2n ** 62n } } },
    /^filters\.uploaded_after is out of the Timestamp range/,
  ],
  [
    "timestamp nanos out of range",
    { userId: "u", count: 5, filters: { uploadedAfter: { seconds: 1n, nanos: 1_000_000_000 } } },
    /^filters\.uploaded_after\.nanos must be in 0\.\.999999999/,
  ],
  [
    "+Inf max_duration_seconds",
    { userId: "u", count: 5, filters: { maxDurationSeconds: Infinity } },
    /^filters\.max_duration_seconds must be a finite number, got Infinity$/,
  ],
  [
    "zero max_duration_seconds",
    { userId: "u", count: 5, filters: { maxDurationSeconds: 0 } },
    /^filters\.max_duration_seconds must be > 0, got 0$/,
  ],
  ["a user id of spaces", { userId: "   ", count: 5 }, /^user_id must not be blank/],
  ["a blank excluded item id", { userId: "u", count: 5, excludedItemIds: ["ok", "\t"] }, /^excluded_item_ids\[1\] must not be blank/],
  ["an id too long", { userId: "x".repeat(300), count: 5 }, /^user_id is too long: 300 characters, at most 256$/],
];

describe.each(["http2", "grpc-js"] as const)("contract rules at the boundary (GRPC_SERVER=%s)", (server) => {
  it.each(BAD_RECOMMEND)("Recommend refuses %s with INVALID_ARGUMENT naming the field", async (_what, request, message) => {
    const { recommender, handled } = await start(server);
    const error = await rejection(recommender.recommend(request));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(message);
    expect(handled()).toBe(0);
  });

  it("applies the same rules to RecordEvents and to an internal stage's request", async () => {
    const { recommender, ranking, handled } = await start(server);
    const events = await rejection(
      recommender.recordEvents({ events: [{ userId: "  ", kind: { case: "watch", value: { itemId: "i" } } }] }),
    );
    expect(events.code).toBe(status.INVALID_ARGUMENT);
    expect(events.details).toMatch(/^events\[0\]\.user_id must not be blank/);
    const oneof = await rejection(
      recommender.recordEvents({ events: [{ userId: "u", kind: { case: "watch", value: { itemId: "i", watchSeconds: -Infinity } } }] }),
    );
    expect(oneof.details).toMatch(/^events\[0\]\.watch\.watch_seconds must be a finite number >= 0, got -Infinity$/);
    const rank = await rejection(ranking.rank({ context: { userId: "u" }, candidates: [{ itemId: "c", provenance: [{ score: NaN }] }] }));
    expect(rank.code).toBe(status.INVALID_ARGUMENT);
    expect(rank.details).toMatch(/^candidates\[0\]\.provenance\[0\]\.score must be a finite number, got NaN$/);
    expect(handled()).toBe(0);
    // Good requests pass.
    await recommender.recommend({
      userId: " u ",
      count: 5,
      context: { userId: "u", watchHistory: [{ itemId: "i", watchSeconds: 3 }], requestTime: { seconds: 1_700_000_000n } },
    });
    expect(handled()).toBe(1);
  });
});
