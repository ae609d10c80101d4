import type { Dataset } from "@recsys/data";

/** One watch in a user's history, by external item id. */
export interface Watch {
  readonly itemId: string;
  /** Unix seconds. */
  readonly timestamp: number;
}

/** One search query in a user's history. */
export interface Search {
  readonly query: string;
  /** Unix seconds. */
  readonly timestamp: number;
}

/**
 * Everything the candidate generator knows about a user at request time, in external ids: the
 * same shape for training (built from the dataset by {@link contextFromDataset}) and serving
 * (built from a request).
 */
export interface UserContext {
  /** Watches before the request, chronological (earliest first). */
  readonly watches: readonly Watch[];
  /** Search queries, chronological; only those strictly before `requestTime` are used. */
  readonly searches: readonly Search[];
  /** Age in years. */
  readonly age?: number;
  readonly gender?: string;
  readonly occupation?: string;
  readonly geo?: string;
  /** Unix seconds of the request (for a training example: the time of the label event). */
  readonly requestTime: number;
}

function categorical(codes: Int32Array, values: readonly string[], row: number): string | undefined {
  const c = codes[row]!;
  return c >= 0 ? values[c] : undefined;
}

/**
 * The context of dataset user `user` (index) at `asOf` (Unix seconds): the watches of the
 * event-log rows `historyRows` (in the given order, which must be chronological), the user's
 * searches strictly before `asOf`, and the user's demographics and geography.
 */
export function contextFromDataset(dataset: Dataset, user: number, historyRows: ArrayLike<number>, asOf: number): UserContext {
  const { events, searches, users, items } = dataset;
  if (!Number.isInteger(user) || user < 0 || user >= users.ids.length)
    throw new Error(`contextFromDataset: user index ${user} out of range`);
  const watches: Watch[] = new Array(historyRows.length);
  for (let k = 0; k < historyRows.length; k++) {
    const r = historyRows[k]!;
    if (events.user[r] !== user) throw new Error(`contextFromDataset: event row ${r} belongs to user ${events.user[r]}, not ${user}`);
    watches[k] = { itemId: items.ids[events.item[r]!]!, timestamp: events.timestamp[r]! };
  }
  const userSearches: Search[] = [];
  if (searches.user.length > 0) {
    for (let s = searches.userOffsets[user]!; s < searches.userOffsets[user + 1]!; s++) {
      const t = searches.timestamp[s]!;
      if (t < asOf) userSearches.push({ query: searches.query[s]!, timestamp: t });
    }
  }
  const ctx: { -readonly [K in keyof UserContext]: UserContext[K] } = { watches, searches: userSearches, requestTime: asOf };
  const age = users.age[user]!;
  if (!Number.isNaN(age)) ctx.age = age;
  const gender = categorical(users.gender.codes, users.gender.values, user);
  if (gender !== undefined) ctx.gender = gender;
  const occupation = categorical(users.occupation.codes, users.occupation.values, user);
  if (occupation !== undefined) ctx.occupation = occupation;
  const geo = categorical(users.geo.codes, users.geo.values, user);
  if (geo !== undefined) ctx.geo = geo;
  return ctx;
}
