import { CandidateSource } from "@recsys/gen";
import { provenanceSourceName } from "@recsys/ranking-service";
import type { SourceName } from "@recsys/sources";
import { describe, expect, it } from "vitest";
import { rankProvenance } from "./recommend.js";

describe("rankProvenance", () => {
  it("leaves source_name empty where the enum stands for it, and the ranker reads the same names back", () => {
    const names: SourceName[] = ["dnn", "co-watch", "popular", "trending", "trending-geo", "fresh", "search"];
    const candidate = { item: 7, provenance: names.map((source, rank) => ({ source, rank, score: rank / 10 })) };
    const entries = rankProvenance(candidate);
    expect(entries.map((p) => p.sourceName)).toEqual(["", "", "", "", "trending-geo", "", ""]);
    expect(entries.map((p) => provenanceSourceName(p as Parameters<typeof provenanceSourceName>[0]))).toEqual(names);
    expect(entries[4]).toMatchObject({ source: CandidateSource.TRENDING, rank: 5, score: 0.4 });
  });
});
