/**
 * `events:DIR` — the generic interaction log of ../shared/PROTOCOL.md.
 *
 * - events.csv (required): `user_id,item_id,timestamp[,watch_seconds]`, columns in any order,
 *   unknown columns ignored. weight = watch_seconds, NaN when the column is absent or empty.
 * - users.csv (optional): `user_id` plus any of `age`, `gender`, `occupation`, `geo`.
 * - items.csv (optional): `item_id` plus any of `title`, `tags` (`|`-separated), `channel`,
 *   `upload_timestamp`, `duration_seconds`.
 * - searches.csv (optional): `user_id,timestamp,query`.
 *
 * Users and items listed only in users.csv / items.csv are part of the catalogue. A malformed row
 * (wrong field count, empty id, a number that is not one, a negative duration or watch time, a
 * duplicate id in users.csv/items.csv) throws an error naming the file and line. Searches by users
 * found nowhere else and searches with an empty query are dropped, counted and warned about.
 * Empty optional fields mean "missing".
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Growable, IdInterner } from "./columns.js";
import { buildDataset, type RawItems, type RawUsers } from "./build.js";
import { readCsvFile } from "./csv.js";
import type { Dataset } from "./types.js";

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a decimal number; `null` when the text is not one. */
export function parseNumber(text: string): number | null {
  const s = text.trim();
  if (!NUMBER.test(s)) return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : null;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

interface Columns {
  readonly index: Record<string, number>;
  readonly width: number;
}

/**
 * Reads a CSV with a header: `onRow(get, where)` for every data row, where `get(name)` returns the
 * field of a known column ("" when the column is absent).
 */
async function readTable(
  dir: string,
  file: string,
  required: readonly string[],
  optional: readonly string[],
  onRow: (get: (name: string) => string, where: string, has: (name: string) => boolean) => void,
): Promise<void> {
  let columns: Columns | undefined;
  await readCsvFile(join(dir, file), file, (fields, line) => {
    const where = `${file}:${line}`;
    if (columns === undefined) {
      const index: Record<string, number> = {};
      fields.forEach((raw, k) => {
        const name = raw.trim();
        if (name in index) throw new Error(`${where}: column "${name}" appears twice in the header`);
        if (required.includes(name) || optional.includes(name)) index[name] = k;
      });
      const missing = required.filter((c) => !(c in index));
      if (missing.length > 0) {
        throw new Error(
          `${where}: missing required column(s) ${missing.join(", ")} (header is "${fields.join(",")}"; expected ${required.join(",")})`,
        );
      }
      columns = { index, width: fields.length };
      return;
    }
    const cols = columns;
    if (fields.length !== cols.width) throw new Error(`${where}: expected ${cols.width} fields like the header, got ${fields.length}`);
    onRow(
      (name) => {
        const k = cols.index[name];
        return k === undefined ? "" : fields[k]!;
      },
      where,
      (name) => name in cols.index,
    );
  });
  if (columns === undefined) throw new Error(`${file}:1: the file is empty (a header line is required)`);
}

function id(get: (name: string) => string, name: string, where: string): string {
  const v = get(name);
  if (v === "") throw new Error(`${where}: empty ${name}`);
  return v;
}

function number(
  get: (name: string) => string,
  name: string,
  where: string,
  opts: { optional: boolean; nonNegative: boolean },
): number | undefined {
  const raw = get(name);
  if (raw.trim() === "") {
    if (opts.optional) return undefined;
    throw new Error(`${where}: empty ${name}`);
  }
  const v = parseNumber(raw);
  if (v === null) throw new Error(`${where}: ${name} "${raw}" is not a number`);
  if (opts.nonNegative && v < 0) throw new Error(`${where}: ${name} ${raw} is negative`);
  return v;
}

function optionalText(get: (name: string) => string, name: string): string | undefined {
  const v = get(name).trim();
  return v === "" ? undefined : v;
}

export async function loadEventsDir(spec: string, dir: string): Promise<Dataset> {
  const eventsPath = join(dir, "events.csv");
  if (!(await exists(eventsPath))) {
    throw new Error(
      `events: ${eventsPath} not found (an events:DIR dataset needs events.csv with header user_id,item_id,timestamp[,watch_seconds])`,
    );
  }
  const counts: Record<string, number> = {};
  const warnings: string[] = [];
  const users: RawUsers = { ids: new IdInterner(), age: [], gender: [], occupation: [], geo: [] };
  const items: RawItems = { ids: new IdInterner(), title: [], tags: [], channel: [], uploadTimestamp: [], durationSeconds: [] };

  const hasUsersCsv = await exists(join(dir, "users.csv"));
  if (hasUsersCsv) {
    const firstLine = new Map<string, string>();
    await readTable(dir, "users.csv", ["user_id"], ["age", "gender", "occupation", "geo"], (get, where) => {
      const u = id(get, "user_id", where);
      if (firstLine.has(u)) throw new Error(`${where}: duplicate user_id "${u}" (first at ${firstLine.get(u)})`);
      firstLine.set(u, where);
      const p = users.ids.intern(u);
      users.age[p] = number(get, "age", where, { optional: true, nonNegative: true });
      users.gender[p] = optionalText(get, "gender");
      users.occupation[p] = optionalText(get, "occupation");
      users.geo[p] = optionalText(get, "geo");
    });
  }
  const usersInCsv = users.ids.size;

  const hasItemsCsv = await exists(join(dir, "items.csv"));
  if (hasItemsCsv) {
    const firstLine = new Map<string, string>();
    await readTable(dir, "items.csv", ["item_id"], ["title", "tags", "channel", "upload_timestamp", "duration_seconds"], (get, where) => {
      const i = id(get, "item_id", where);
      if (firstLine.has(i)) throw new Error(`${where}: duplicate item_id "${i}" (first at ${firstLine.get(i)})`);
      firstLine.set(i, where);
      const p = items.ids.intern(i);
      items.title[p] = get("title");
      const tags = get("tags")
        .split("|")
        .map((t) => t.trim())
        .filter((t) => t !== "");
      items.tags[p] = [...new Set(tags)];
      items.channel[p] = optionalText(get, "channel");
      items.uploadTimestamp[p] = number(get, "upload_timestamp", where, { optional: true, nonNegative: false });
      items.durationSeconds[p] = number(get, "duration_seconds", where, { optional: true, nonNegative: true });
    });
  }
  const itemsInCsv = items.ids.size;

  const evUser = new Growable(Int32Array);
  const evItem = new Growable(Int32Array);
  const evTime = new Growable(Float64Array);
  const evWeight = new Growable(Float32Array);
  let missingWatch = 0;
  await readTable(dir, "events.csv", ["user_id", "item_id", "timestamp"], ["watch_seconds"], (get, where, has) => {
    evUser.push(users.ids.intern(id(get, "user_id", where)));
    evItem.push(items.ids.intern(id(get, "item_id", where)));
    evTime.push(number(get, "timestamp", where, { optional: false, nonNegative: false })!);
    const w = has("watch_seconds") ? number(get, "watch_seconds", where, { optional: true, nonNegative: true }) : undefined;
    if (w === undefined) missingWatch++;
    evWeight.push(w ?? NaN);
  });
  counts["events_without_watch_seconds"] = missingWatch;
  if (hasUsersCsv) {
    const extra = users.ids.size - usersInCsv;
    counts["event_users_missing_from_users_csv"] = extra;
    if (extra > 0) warnings.push(`users.csv: ${extra} users of events.csv are not listed (their features are missing)`);
  }
  if (hasItemsCsv) {
    const extra = items.ids.size - itemsInCsv;
    counts["event_items_missing_from_items_csv"] = extra;
    if (extra > 0) warnings.push(`items.csv: ${extra} items of events.csv are not listed (their features are missing)`);
  }

  let searches: { user: Int32Array; timestamp: Float64Array; query: string[] } | undefined;
  if (await exists(join(dir, "searches.csv"))) {
    const su = new Growable(Int32Array);
    const st = new Growable(Float64Array);
    const sq: string[] = [];
    let unknownUsers = 0;
    let emptyQueries = 0;
    await readTable(dir, "searches.csv", ["user_id", "timestamp", "query"], [], (get, where) => {
      const u = users.ids.get(id(get, "user_id", where));
      const t = number(get, "timestamp", where, { optional: false, nonNegative: false })!;
      const q = get("query").trim();
      if (u === undefined) unknownUsers++;
      else if (q === "") emptyQueries++;
      else {
        su.push(u);
        st.push(t);
        sq.push(q);
      }
    });
    counts["searches_unknown_user_dropped"] = unknownUsers;
    counts["searches_empty_query_dropped"] = emptyQueries;
    if (unknownUsers > 0) warnings.push(`searches.csv: ${unknownUsers} searches by users not in events.csv or users.csv were dropped`);
    if (emptyQueries > 0) warnings.push(`searches.csv: ${emptyQueries} searches with an empty query were dropped`);
    searches = { user: su.toArray(), timestamp: st.toArray(), query: sq };
  }

  const dataset = buildDataset(
    spec,
    users,
    items,
    { user: evUser.toArray(), item: evItem.toArray(), timestamp: evTime.toArray(), weight: evWeight.toArray() },
    searches,
    counts,
    warnings,
  );
  if (dataset.report.counts["duplicate_events"]! > 0) {
    warnings.push(
      `events.csv: ${dataset.report.counts["duplicate_events"]} repeated (user, item) events (protocol lastout keeps the first of each)`,
    );
  }
  return dataset;
}
