import { datasetFromEvents } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { Catalogue, type BundleInfo } from "./catalogue.js";
import { ColdEmbedder, contentTokens } from "./cold-embedding.js";

function fixture(): { bundle: BundleInfo; catalogue: Catalogue } {
  const items = [
    { id: "a", title: "Cats playing", tags: ["pets"], channel: "ch1" },
    { id: "b", title: "Cats sleeping", tags: ["pets"], channel: "ch1" },
    { id: "c", title: "Guitar lesson", tags: ["music"], channel: "ch2" },
    { id: "d", title: "Drum lesson", tags: ["music"], channel: "ch2" },
  ];
  const dataset = datasetFromEvents([], { items });
  const catalogue = new Catalogue(dataset);
  const ids = dataset.items.ids;
  // pets items point along x, music items along y (norm 2).
  const vec = (id: string): number[] => (items.find((i) => i.id === id)!.tags[0] === "pets" ? [2, 0] : [0, 2]);
  const embeddings = Float32Array.from(ids.flatMap(vec));
  return {
    catalogue,
    bundle: {
      modelVersion: "v1",
      datasetSpec: "",
      datasetFingerprint: "",
      holdout: "none",
      dim: 2,
      itemIds: ids,
      embeddings,
      rowOf: new Map(ids.map((id, r) => [id, r])),
    },
  };
}

describe("content embeddings of new items", () => {
  it("tokenizes tags, channel and title words", () => {
    expect(contentTokens({ tags: ["Pets", " "], channel: "ch1", title: "Cats, playing! a" })).toEqual([
      "t:pets",
      "c:ch1",
      "w:cats",
      "w:playing",
    ]);
  });

  it("points a new item to the trained items sharing its content, at their norm; none without a shared token", async () => {
    const { bundle, catalogue } = fixture();
    const embedder = ColdEmbedder.build(bundle, catalogue);
    const pets = embedder.embed({ tags: ["pets"], title: "Cats on a sofa" })!;
    expect(pets[0]).toBeCloseTo(2);
    expect(pets[1]).toBeCloseTo(0);
    const music = embedder.embed({ channel: "ch2" })!;
    expect(music[1]).toBeCloseTo(2);
    // Mixed content lands between, at the trained norm.
    const mixed = embedder.embed({ tags: ["pets"], channel: "ch2" })!;
    expect(Math.hypot(...mixed)).toBeCloseTo(2);
    expect(mixed[0]).toBeGreaterThan(0);
    expect(mixed[1]).toBeGreaterThan(0);
    expect(embedder.embed({ tags: ["cooking"], title: "x" })).toBeUndefined();
    // The sliced build gives the same table.
    const sliced = await ColdEmbedder.buildAsync(bundle, catalogue);
    expect(sliced.embed({ tags: ["pets"], channel: "ch2" })).toEqual(mixed);
  });
});
