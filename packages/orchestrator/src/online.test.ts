import { datasetFromEvents } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { Catalogue } from "./catalogue.js";
import { OnlineSources, type OnlineSourcesOptions } from "./online.js";

const dataset = datasetFromEvents([{ user: "u0", item: "a", timestamp: 1 }], {
  items: [{ id: "a" }, { id: "b" }, { id: "c" }],
});

function sources(caps: Pick<OnlineSourcesOptions, "perUserItemCap" | "perClientItemCap">): OnlineSources {
  return new OnlineSources(new Catalogue(dataset), {
    budgets: { popular: 3 },
    trendingHalfLifeSeconds: 86_400,
    freshWindowSeconds: 86_400,
    ...caps,
  });
}

/** Popular's all-time count of an item, after every watch observed so far. */
const count = (online: OnlineSources, itemId: string): number => online.itemStats(dataset.items.ids.indexOf(itemId), 1_000).watchCount;

describe("OnlineSources caps", () => {
  it("counts one user's repeated watches of an item once (per-user cap 1)", () => {
    const online = sources({});
    for (let k = 0; k < 50; k++) online.observeWatch({ userId: "attacker", itemId: "b", timestamp: 10 + k });
    expect(count(online, "b")).toBe(1);
    expect(online.capped).toBe(49);
  });

  it("counts one client's watches of an item at most perClientItemCap times, whatever the user ids", () => {
    const online = sources({ perClientItemCap: 3 });
    for (let k = 0; k < 100; k++) online.observeWatch({ userId: `puppet-${k}`, itemId: "b", timestamp: 10 + k, clientId: "farm" });
    // Other items of the same client and other clients are counted on their own.
    online.observeWatch({ userId: "puppet-0", itemId: "c", timestamp: 200, clientId: "farm" });
    online.observeWatch({ userId: "v1", itemId: "b", timestamp: 201, clientId: "phone-1" });
    // Watches without a client id are capped per user only.
    online.observeWatch({ userId: "v2", itemId: "b", timestamp: 202 });
    online.observeWatch({ userId: "v3", itemId: "b", timestamp: 203 });
    expect(count(online, "b")).toBe(3 + 1 + 2);
    expect(count(online, "c")).toBe(1);
    expect(online.clientCapped).toBe(97);
  });

  it("a watch refused by the per-user cap does not use up the client's allowance", () => {
    const online = sources({ perClientItemCap: 2 });
    for (let k = 0; k < 10; k++) online.observeWatch({ userId: "same-user", itemId: "b", timestamp: 10 + k, clientId: "tv" });
    online.observeWatch({ userId: "other-user", itemId: "b", timestamp: 30, clientId: "tv" });
    expect(count(online, "b")).toBe(2);
    expect(online.capped).toBe(9);
    expect(online.clientCapped).toBe(0);
  });

  it("turns each cap off with 0", () => {
    const online = sources({ perUserItemCap: 0, perClientItemCap: 0 });
    for (let k = 0; k < 20; k++) online.observeWatch({ userId: `p${k % 2}`, itemId: "b", timestamp: 10 + k, clientId: "farm" });
    expect(count(online, "b")).toBe(20);
    expect(() => sources({ perClientItemCap: -1 })).toThrow("perClientItemCap must be an integer >= 0, got -1");
  });
});
