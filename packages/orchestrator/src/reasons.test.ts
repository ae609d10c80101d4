import { datasetFromEvents } from "@recsys/data";
import type { Provenance } from "@recsys/sources";
import { describe, expect, it } from "vitest";
import { Catalogue } from "./catalogue.js";
import { REASON_NEW_UPLOAD, REASON_POPULAR, REASON_RECOMMENDED, REASON_TRENDING_AREA, reasonsFor } from "./reasons.js";

const dataset = datasetFromEvents([{ user: "u", item: "1", timestamp: 1 }], {
  items: [
    { id: "1", title: "Toy Story (1995)", channel: "pixar" },
    { id: "2", title: "Heat (1995)" },
    { id: "3", title: "" },
  ],
});
const catalogue = new Catalogue(dataset);
const at = (id: string): number => catalogue.indexOf(id)!;
const p = (source: string, because?: number): Provenance => ({ source, rank: 0, score: 1, ...(because === undefined ? {} : { because }) });

describe("reasonsFor", () => {
  it("words each source", () => {
    expect(reasonsFor([p("co-watch", at("1"))], catalogue, at("2"))).toEqual(["Because you watched Toy Story (1995)"]);
    expect(reasonsFor([p("dnn")], catalogue, at("2"))).toEqual([REASON_RECOMMENDED]);
    expect(reasonsFor([p("dnn")], catalogue, at("3"), at("2"))).toEqual(["Because you watched Heat (1995)"]);
    expect(reasonsFor([p("popular")], catalogue, at("2"))).toEqual([REASON_POPULAR]);
    expect(reasonsFor([p("trending")], catalogue, at("2"))).toEqual([REASON_POPULAR]);
    expect(reasonsFor([p("trending-geo")], catalogue, at("2"))).toEqual([REASON_TRENDING_AREA]);
    expect(reasonsFor([p("fresh")], catalogue, at("1"))).toEqual(["New from pixar"]);
    expect(reasonsFor([p("fresh")], catalogue, at("2"))).toEqual([REASON_NEW_UPLOAD]);
  });

  it("combines several sources: one 'Because you watched' (co-watch's first), personal reasons first", () => {
    expect(
      reasonsFor([p("dnn"), p("co-watch", at("1")), p("popular"), p("trending-geo"), p("fresh")], catalogue, at("2"), at("3")),
    ).toEqual(["Because you watched Toy Story (1995)", REASON_NEW_UPLOAD, REASON_TRENDING_AREA]);
    expect(reasonsFor([p("dnn"), p("popular"), p("trending")], catalogue, at("1"))).toEqual([REASON_RECOMMENDED, REASON_POPULAR]);
  });

  it("words the session source: the recent watch that explains it, first among personal reasons", () => {
    expect(reasonsFor([p("session", at("1"))], catalogue, at("2"))).toEqual(["Because you just watched Toy Story (1995)"]);
    expect(reasonsFor([p("session")], catalogue, at("2"))).toEqual(["Picked for this session"]);
    expect(reasonsFor([p("session", at("2")), p("co-watch", at("1")), p("popular")], catalogue, at("3"))).toEqual([
      "Because you just watched Heat (1995)",
      "Because you watched Toy Story (1995)",
      REASON_POPULAR,
    ]);
  });

  it("names an item without a title by its id", () => {
    expect(reasonsFor([p("co-watch", at("3"))], catalogue, at("1"))).toEqual(['Because you watched "3"']);
  });
});
