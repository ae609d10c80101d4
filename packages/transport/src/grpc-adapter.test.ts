/**
 * The descriptor -> grpc-js adapter: paths, binary (de)serialization, and (checked by `tsc --build`,
 * which compiles this file) handler and client types.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { CandidateSource, RankingService, RankRequestSchema, RecommenderService, RetrievalService, RankResponseSchema } from "@recsys/gen";
import { describe, expect, it } from "vitest";
import { implement, methodPath, serviceDefinition, type Client } from "./grpc-adapter.js";

describe("serviceDefinition", () => {
  it("maps every method to its gRPC path under its local name", () => {
    const definition = serviceDefinition(RetrievalService);
    expect(Object.keys(definition)).toEqual(["search", "upsertItems", "deleteItems", "describeIndex"]);
    expect(definition["search"]?.path).toBe("/recsys.v1.RetrievalService/Search");
    expect(definition["upsertItems"]?.path).toBe("/recsys.v1.RetrievalService/UpsertItems");
    expect(definition["search"]?.originalName).toBe("Search");
    expect(methodPath(RecommenderService.method.recordEvents)).toBe("/recsys.v1.RecommenderService/RecordEvents");
  });

  it("serializes with toBinary and deserializes with fromBinary", () => {
    const definition = serviceDefinition(RankingService);
    const rank = definition["rank"]!;
    const request = create(RankRequestSchema, {
      context: { userId: "u1", watchHistory: [{ itemId: "i1", watchSeconds: 12.5 }] },
      candidates: [{ itemId: "i2", provenance: [{ source: CandidateSource.TRENDING, rank: 3, score: 0.5 }] }],
      debug: true,
    });
    const bytes = rank.requestSerialize(request);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(new Uint8Array(bytes)).toEqual(toBinary(RankRequestSchema, request));
    expect(rank.requestDeserialize(bytes)).toEqual(request);
    const response = rank.responseDeserialize(rank.responseSerialize(create(RankResponseSchema, { items: [{ itemId: "x", score: 2 }] })));
    expect(response).toEqual(create(RankResponseSchema, { items: [{ itemId: "x", score: 2 }] }));
  });
});

describe("implement", () => {
  it("refuses an implementation with a missing handler", () => {
    expect(() => implement(RankingService, {} as never)).toThrow("recsys.v1.RankingService: no handler for method rank");
  });

  it("type-checks handlers against the method's messages", () => {
    const registration = implement(RankingService, {
      rank: (request) => ({
        items: request.candidates.map((candidate) => ({ itemId: candidate.itemId, score: 1 })),
      }),
    });
    expect(registration.service.typeName).toBe("recsys.v1.RankingService");

    // Each of these must fail to compile (tsc --build fails on an unused @ts-expect-error).
    // @ts-expect-error the response has no field "item"
    implement(RankingService, { rank: () => ({ item: [] }) });
    // @ts-expect-error score is a number
    implement(RankingService, { rank: () => ({ items: [{ itemId: "a", score: "high" }] }) });
    // @ts-expect-error the request has no field "userId" (it is in request.context)
    implement(RankingService, { rank: (request) => ({ items: [{ itemId: request.userId }] }) });
    // @ts-expect-error a handler for a method the service does not have
    implement(RankingService, { rank: () => ({}), search: () => ({}) });
  });

  it("gives clients typed methods", () => {
    // Compile-time only: a function that is never called.
    const typed = async (client: Client<typeof RetrievalService.method>) => {
      const response = await client.search({ userVector: [0.1], k: 10 }, { deadline: Date.now() + 100 });
      const ids: string[] = response.items.map((item) => item.itemId);
      // @ts-expect-error k is a number
      await client.search({ k: "10" });
      // @ts-expect-error no such method
      await client.rank({});
      return ids;
    };
    expect(typeof typed).toBe("function");
  });
});
