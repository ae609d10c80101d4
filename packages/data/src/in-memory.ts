/**
 * Builds a Dataset from plain records, for tests and small programmatic inputs. Same canonical
 * ordering, report and fingerprint as the file loaders.
 */
import { Growable, IdInterner } from "./columns.js";
import { buildDataset, type RawItems, type RawUsers } from "./build.js";
import type { Dataset } from "./types.js";

export interface EventRecord {
  readonly user: string;
  readonly item: string;
  readonly timestamp: number;
  /** Watch seconds (event weight); NaN when omitted. */
  readonly weight?: number;
}

export interface InMemoryOptions {
  /** Extra catalogue items (with no events necessarily) and their optional features. */
  readonly items?: readonly {
    readonly id: string;
    readonly title?: string;
    readonly tags?: readonly string[];
    readonly channel?: string;
    readonly uploadTimestamp?: number;
    readonly durationSeconds?: number;
  }[];
  /** Extra users and their optional features. */
  readonly users?: readonly {
    readonly id: string;
    readonly age?: number;
    readonly gender?: string;
    readonly occupation?: string;
    readonly geo?: string;
  }[];
  readonly searches?: readonly { readonly user: string; readonly timestamp: number; readonly query: string }[];
  readonly spec?: string;
}

export function datasetFromEvents(events: readonly EventRecord[], options: InMemoryOptions = {}): Dataset {
  const users: RawUsers = { ids: new IdInterner(), age: [], gender: [], occupation: [], geo: [] };
  const items: RawItems = { ids: new IdInterner(), title: [], tags: [], channel: [], uploadTimestamp: [], durationSeconds: [] };
  for (const u of options.users ?? []) {
    const p = users.ids.intern(u.id);
    users.age[p] = u.age;
    users.gender[p] = u.gender;
    users.occupation[p] = u.occupation;
    users.geo[p] = u.geo;
  }
  for (const i of options.items ?? []) {
    const p = items.ids.intern(i.id);
    items.title[p] = i.title;
    items.tags[p] = i.tags;
    items.channel[p] = i.channel;
    items.uploadTimestamp[p] = i.uploadTimestamp;
    items.durationSeconds[p] = i.durationSeconds;
  }
  const user = new Growable(Int32Array);
  const item = new Growable(Int32Array);
  const timestamp = new Growable(Float64Array);
  const weight = new Growable(Float32Array);
  for (const e of events) {
    if (!Number.isFinite(e.timestamp)) throw new Error(`datasetFromEvents: timestamp ${e.timestamp} is not finite`);
    user.push(users.ids.intern(e.user));
    item.push(items.ids.intern(e.item));
    timestamp.push(e.timestamp);
    weight.push(e.weight ?? NaN);
  }
  let searches;
  if (options.searches !== undefined) {
    const su = new Int32Array(options.searches.length);
    options.searches.forEach((s, k) => {
      const u = users.ids.get(s.user);
      if (u === undefined) throw new Error(`datasetFromEvents: search by unknown user "${s.user}"`);
      su[k] = u;
    });
    searches = {
      user: su,
      timestamp: Float64Array.from(options.searches, (s) => s.timestamp),
      query: options.searches.map((s) => s.query),
    };
  }
  return buildDataset(
    options.spec ?? "memory:",
    users,
    items,
    { user: user.toArray(), item: item.toArray(), timestamp: timestamp.toArray(), weight: weight.toArray() },
    searches,
    {},
    [],
  );
}
