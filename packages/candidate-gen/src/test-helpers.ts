import type { Dataset } from "@recsys/data";
import { Rng } from "@recsys/data";

export interface SequentialOptions {
  readonly users: number;
  readonly items: number;
  readonly eventsPerUser: number;
  /** Probability that the next watch is the successor of the previous one (else a random item). */
  readonly follow: number;
  readonly seed: number;
}

/**
 * A dataset with planted sequential structure, for tests: items form a cycle 0 → 1 → … → n-1 → 0
 * and each user, from a random start, watches the successor of the last watch with probability
 * `follow` (else a uniformly random item), one event per minute. Popularity is about uniform, so
 * most-popular is near chance while a model of the next watch given the history is not. Users
 * have random ages, two genders, three occupations and four regions.
 */
export function sequentialDataset(o: SequentialOptions): Dataset {
  const rng = new Rng(o.seed, 99);
  const n = o.users * o.eventsPerUser;
  const user = new Int32Array(n);
  const item = new Int32Array(n);
  const timestamp = new Float64Array(n);
  const userOffsets = new Int32Array(o.users + 1);
  let r = 0;
  for (let u = 0; u < o.users; u++) {
    userOffsets[u] = r;
    const seen = new Set<number>();
    let cur = rng.int(o.items);
    const start = 1_600_000_000 + rng.int(86_400 * 30);
    for (let k = 0; k < o.eventsPerUser; k++) {
      let next = k === 0 ? cur : rng.next() < o.follow ? (cur + 1) % o.items : rng.int(o.items);
      while (seen.has(next)) next = (next + 1) % o.items; // one event per (user, item)
      seen.add(next);
      user[r] = u;
      item[r] = next;
      timestamp[r] = start + 60 * k;
      r++;
      cur = next;
    }
  }
  userOffsets[o.users] = r;
  // Item ids "0".."n-1" are canonical integers: index order = numeric order.
  const itemIds = Array.from({ length: o.items }, (_, i) => String(i));
  // User ids zero-padded so that code-unit order is index order.
  const width = String(o.users).length;
  const userIds = Array.from({ length: o.users }, (_, u) => `u${String(u).padStart(width, "0")}`);
  const ages = new Float32Array(o.users);
  const gender = new Int32Array(o.users);
  const occupation = new Int32Array(o.users);
  const geo = new Int32Array(o.users);
  for (let u = 0; u < o.users; u++) {
    ages[u] = 18 + rng.int(50);
    gender[u] = rng.int(2);
    occupation[u] = rng.int(3);
    geo[u] = rng.int(4);
  }
  return {
    spec: `test:sequential:users=${o.users},items=${o.items},seed=${o.seed}`,
    fingerprint: `seq-${o.users}-${o.items}-${o.eventsPerUser}-${o.follow}-${o.seed}`,
    users: {
      ids: userIds,
      age: ages,
      gender: { codes: gender, values: ["F", "M"] },
      occupation: { codes: occupation, values: ["a", "b", "c"] },
      geo: { codes: geo, values: ["g0", "g1", "g2", "g3"] },
    },
    items: {
      ids: itemIds,
      titles: itemIds.map(() => ""),
      tagOffsets: new Int32Array(o.items + 1),
      tagCodes: new Int32Array(0),
      tagValues: [],
      channel: { codes: new Int32Array(o.items).fill(-1), values: [] },
      uploadTimestamp: new Float64Array(o.items).fill(NaN),
      durationSeconds: new Float32Array(o.items).fill(NaN),
    },
    events: { user, item, timestamp, weight: new Float32Array(n).fill(1), userOffsets },
    searches: { user: new Int32Array(0), timestamp: new Float64Array(0), query: [], userOffsets: new Int32Array(o.users + 1) },
    impressions: {
      user: new Int32Array(0),
      item: new Int32Array(0),
      timestamp: new Float64Array(0),
      clicked: new Uint8Array(0),
      watchSeconds: new Float32Array(0),
      userOffsets: new Int32Array(o.users + 1),
    },
    report: { counts: { events: n }, warnings: [] },
  };
}

/**
 * A dataset whose next watch depends on the most recent watch only: each user's events come in
 * pairs (a, π(a)), a drawn at random among the items the user has not watched yet and π a fixed
 * random permutation of the items, one event per minute. Every lastout test event (the last one)
 * is a π(a) of the watch just before it; the rest of a long history is noise for it, so the mean
 * of the window dilutes the one watch that matters (1/historyLength of the pooled vector).
 * `eventsPerUser` must be even.
 */
export function lastWatchDataset(o: {
  readonly users: number;
  readonly items: number;
  readonly eventsPerUser: number;
  readonly seed: number;
}): Dataset {
  if (o.eventsPerUser % 2 !== 0 || 2 * o.eventsPerUser > o.items)
    throw new Error("lastWatchDataset: eventsPerUser must be even and at most items / 2");
  const base = sequentialDataset({ users: o.users, items: o.items, eventsPerUser: o.eventsPerUser, follow: 0, seed: o.seed });
  const rng = new Rng(o.seed, 101);
  const perm = Array.from({ length: o.items }, (_, i) => i);
  for (let i = o.items - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const item = base.events.item;
  let r = 0;
  for (let u = 0; u < o.users; u++) {
    const seen = new Set<number>();
    for (let k = 0; k < o.eventsPerUser; k += 2) {
      let a = rng.int(o.items);
      while (seen.has(a) || seen.has(perm[a]!) || perm[a] === a) a = (a + 1) % o.items;
      seen.add(a);
      seen.add(perm[a]!);
      item[r++] = a;
      item[r++] = perm[a]!;
    }
  }
  return {
    ...base,
    spec: `test:last-watch:users=${o.users},items=${o.items},seed=${o.seed}`,
    fingerprint: `lastwatch-${o.users}-${o.items}-${o.eventsPerUser}-${o.seed}`,
  };
}
