import { describe, expect, it } from "vitest";
import { loadDataset } from "./load.js";
import { lastoutSplit } from "./split.js";
import { generateSynthetic, parseSyntheticSpec, SYNTHETIC_DEFAULTS } from "./synthetic.js";
import type { Dataset } from "./types.js";

const SMALL = "synthetic:users=400,items=300,events=25,topics=8,seed=7";

function mainTopic(d: Dataset, item: number): number {
  return d.items.tagCodes[d.items.tagOffsets[item]!]!;
}

describe("synthetic spec", () => {
  it("parses keys and defaults", () => {
    expect(parseSyntheticSpec("")).toEqual(SYNTHETIC_DEFAULTS);
    expect(parseSyntheticSpec("users=10, items=20,search=0.5")).toMatchObject({ users: 10, items: 20, search: 0.5, events: 40 });
  });

  it.each([
    ["colour=red", /unknown key "colour"; keys: users \(number of users\)/],
    ["users=1.5", /users=1\.5 must be an integer/],
    ["users=abc", /users="abc" is not a number/],
    ["users=0", /users=0 is out of range/],
    ["search=2", /search=2 is out of range \[0, 1\]/],
    ["users=5,users=6", /key "users" given twice/],
    ["users", /"users" is not KEY=VALUE/],
  ])("rejects %s", (text, message) => {
    expect(() => parseSyntheticSpec(text)).toThrow(message);
  });
});

describe("synthetic generator", () => {
  it("is deterministic: same spec, same dataset and fingerprint; another seed differs", async () => {
    const [a, b, c] = await Promise.all([loadDataset(SMALL), loadDataset(SMALL), loadDataset(SMALL.replace("seed=7", "seed=8"))]);
    expect(b!.fingerprint).toBe(a!.fingerprint);
    expect(Array.from(b!.events.item)).toEqual(Array.from(a!.events.item));
    expect(b!.searches.query).toEqual(a!.searches.query);
    expect(c!.fingerprint).not.toBe(a!.fingerprint);
    expect(a!.spec).toBe(SMALL);
  });

  it("produces a consistent, sorted log with realistic structure", async () => {
    const d = await loadDataset(SMALL);
    const { events, items, users, searches, impressions } = d;
    const U = users.ids.length;
    const N = items.ids.length;
    expect([U, N]).toEqual([400, 300]);
    expect(users.ids[0]).toBe("1");
    expect(items.ids[N - 1]).toBe("300");
    // Events: sorted by (user, time), strictly increasing per user, available at watch time,
    // no repeated (user, item), weight = watch seconds within the duration.
    expect(d.report.counts["duplicate_events"]).toBe(0);
    let n = 0;
    const problems: string[] = [];
    for (let u = 0; u < U; u++) {
      for (let r = events.userOffsets[u]!; r < events.userOffsets[u + 1]!; r++, n++) {
        const i = events.item[r]!;
        if (events.user[r] !== u) problems.push(`row ${r}: user ${events.user[r]} in the range of user ${u}`);
        if (r > events.userOffsets[u]! && !(events.timestamp[r]! > events.timestamp[r - 1]!))
          problems.push(`row ${r}: time not increasing`);
        if (items.uploadTimestamp[i]! > events.timestamp[r]!) problems.push(`row ${r}: item ${i} watched before its upload`);
        if (!(events.weight[r]! >= 1 && events.weight[r]! <= items.durationSeconds[i]!))
          problems.push(`row ${r}: watch ${events.weight[r]} s`);
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(n).toBe(events.user.length);
    const mean = n / U;
    expect(mean).toBeGreaterThan(18);
    expect(mean).toBeLessThan(30);
    expect(lastoutSplit(events, U).evaluatedUsers).toBeGreaterThan(U * 0.8);

    // Items: topic name first among tags, a channel, a duration, an upload time.
    for (let i = 0; i < N; i++) {
      if (items.tagOffsets[i + 1]! - items.tagOffsets[i]! < 3 || mainTopic(d, i) >= 8) problems.push(`item ${i}: tags`);
      if (items.channel.codes[i]! < 0 || !Number.isFinite(items.durationSeconds[i]!) || !Number.isFinite(items.uploadTimestamp[i]!))
        problems.push(`item ${i}: features`);
    }
    // Users: demographics all present.
    for (let u = 0; u < U; u++) {
      if (!(users.age[u]! >= 13) || users.gender.codes[u]! < 0 || users.occupation.codes[u]! < 0 || users.geo.codes[u]! < 0)
        problems.push(`user ${u}: demographics`);
    }
    expect(problems.slice(0, 5)).toEqual([]);
    // Searches: sorted per user, words from the tag vocabulary.
    const vocabulary = new Set(items.tagValues);
    expect(searches.user.length).toBeGreaterThan(0);
    for (let k = 0; k < searches.user.length; k++) {
      if (k > 0 && searches.user[k] === searches.user[k - 1])
        expect(searches.timestamp[k]!).toBeGreaterThanOrEqual(searches.timestamp[k - 1]!);
      for (const w of searches.query[k]!.split(" ")) expect(vocabulary.has(w)).toBe(true);
    }
    // Impressions: capped per user, clicked ones are watch events with the same watch time.
    const watchKey = new Map<string, number>();
    for (let r = 0; r < n; r++) watchKey.set(`${events.user[r]}:${events.item[r]}:${events.timestamp[r]}`, events.weight[r]!);
    for (let u = 0; u < U; u++)
      expect(impressions.userOffsets[u + 1]! - impressions.userOffsets[u]!).toBeLessThanOrEqual(SYNTHETIC_DEFAULTS.impressions);
    let clicks = 0;
    for (let k = 0; k < impressions.user.length; k++) {
      if (impressions.clicked[k] === 1) {
        clicks++;
        expect(watchKey.get(`${impressions.user[k]}:${impressions.item[k]}:${impressions.timestamp[k]}`)).toBe(impressions.watchSeconds[k]);
      }
    }
    expect(clicks).toBeGreaterThan(0);
    expect(clicks).toBeLessThan(impressions.user.length);
  });

  it("has sequential structure and demographic signal", () => {
    const d = generateSynthetic("synthetic:", parseSyntheticSpec("users=1500,items=600,events=20,topics=10,seed=3"));
    const { events, users } = d;
    // Consecutive watches share a topic far more often than two random watches of the same user.
    let same = 0;
    let pairs = 0;
    let sameShuffled = 0;
    let state = 1;
    for (let u = 0; u < users.ids.length; u++) {
      const lo = events.userOffsets[u]!;
      const len = events.userOffsets[u + 1]! - lo;
      for (let r = lo + 1; r < lo + len; r++) {
        pairs++;
        if (mainTopic(d, events.item[r]!) === mainTopic(d, events.item[r - 1]!)) same++;
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        const q = lo + (state % len);
        if (mainTopic(d, events.item[r]!) === mainTopic(d, events.item[q]!)) sameShuffled++;
      }
    }
    expect(same / pairs).toBeGreaterThan(sameShuffled / pairs + 0.1);
    // Age informs interests: the mean age of a topic's watchers varies across topics.
    const ageSum = new Float64Array(10);
    const count = new Float64Array(10);
    for (let r = 0; r < events.user.length; r++) {
      const k = mainTopic(d, events.item[r]!);
      ageSum[k]! += users.age[events.user[r]!]!;
      count[k]!++;
    }
    const means = Array.from(ageSum, (s, k) => s / count[k]!).filter((x) => Number.isFinite(x));
    expect(Math.max(...means) - Math.min(...means)).toBeGreaterThan(5);
  });

  it("keeps no impressions with impressions=0", () => {
    const d = generateSynthetic("s", parseSyntheticSpec("users=50,items=40,impressions=0"));
    expect(d.impressions.user.length).toBe(0);
    expect(d.impressions.userOffsets.length).toBe(51);
    expect(d.events.user.length).toBeGreaterThan(0);
  });
});
