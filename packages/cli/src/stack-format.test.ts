import { create } from "@bufbuild/protobuf";
import { RecommendResponseSchema } from "@recsys/gen";
import { describe, expect, it } from "vitest";
import { formatColumns, formatRecommendations, recommendationsJson } from "./stack-format.js";

const response = create(RecommendResponseSchema, {
  requestId: "r-1",
  items: [
    {
      itemId: "50",
      score: 2.5,
      expectedWatchSeconds: 12.18,
      provenance: [
        { sourceName: "dnn", rank: 3, score: 0.9 },
        { sourceName: "co-watch", rank: 1, score: 0.4 },
      ],
      reasons: ["Because you watched Star Wars (1977)", "Popular right now"],
    },
    {
      itemId: "181",
      score: 1.25,
      expectedWatchSeconds: 3.5,
      provenance: [{ sourceName: "popular", rank: 2, score: 507 }],
      reasons: ["Popular right now"],
    },
  ],
  versions: [
    { component: "candidate_generation", modelVersion: "cg-1" },
    { component: "retrieval/shard-0", modelVersion: "cg-1", indexVersion: "2026-01-01" },
  ],
  degraded: true,
  failedStages: [
    { stage: "ranking", code: "DEADLINE_EXCEEDED", message: "Deadline exceeded after 0.151s,name resolution: 0.002s,LB pick: 0.001s" },
  ],
});

describe("recommendation output", () => {
  it("prints a table with titles, sources, reasons, versions and the degraded stages", () => {
    const text = formatRecommendations("42", response, {
      titles: new Map([["50", "Star Wars: The Empire Strikes Back (1980), a long title"]]),
      elapsedMs: 12.4,
      titleWidth: 20,
    });
    const lines = text.split("\n");
    expect(lines[0]).toBe("recommendations for user 42 (2 items, 12 ms, request r-1)");
    expect(lines[1]).toMatch(/^rank +item +title +score +watch s +sources +reasons$/);
    expect(lines[2]).toMatch(
      /^ +1 +50 +Star Wars: The Empi… +2\.500 +12\.2 +dnn#3 co-watch#1 +Because you watched Star Wars \(1977\); Popular right now$/,
    );
    expect(lines[3]).toMatch(/^ +2 +181 +1\.250 +3\.5 +popular#2 +Popular right now$/);
    expect(text).toContain("versions: candidate_generation cg-1; retrieval/shard-0 cg-1 (index 2026-01-01)");
    // grpc-js's connection diagnostics are cut from deadline messages.
    expect(text).toContain("degraded: YES — ranking: DEADLINE_EXCEEDED Deadline exceeded after 0.151s\n");
  });

  it("gives the same answer as JSON", () => {
    const json = recommendationsJson("42", response) as {
      items: { rank: number; item_id: string; provenance: unknown[] }[];
      degraded: boolean;
      failed_stages: unknown[];
    };
    expect(json.items.map((i) => [i.rank, i.item_id])).toEqual([
      [1, "50"],
      [2, "181"],
    ]);
    expect(json.items[0]!.provenance).toEqual([
      { source: "dnn", rank: 3, score: expect.closeTo(0.9, 5) },
      { source: "co-watch", rank: 1, score: expect.closeTo(0.4, 5) },
    ]);
    expect(json.degraded).toBe(true);
    expect(json.failed_stages).toHaveLength(1);
  });

  it("aligns columns", () => {
    expect(
      formatColumns(
        ["a", "bb"],
        [
          ["100", "x"],
          ["2", "yyy"],
        ],
        new Set([0]),
      ),
    ).toBe("  a  bb\n100  x\n  2  yyy\n");
  });
});
