/**
 * Writes a dataset as an `events:DIR` directory (../shared/PROTOCOL.md: events.csv, users.csv,
 * items.csv with ids only, searches.csv), so that the training benchmark and its PyTorch
 * reference read the same file.
 * Items' metadata is not written: the candidate generator's training does not read it.
 */
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Dataset } from "@recsys/data";

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function writeLines(path: string, header: string, count: number, line: (i: number) => string): Promise<void> {
  const out = createWriteStream(path);
  out.write(`${header}\n`);
  let chunk: string[] = [];
  for (let i = 0; i < count; i++) {
    chunk.push(line(i));
    if (chunk.length === 4096) {
      if (!out.write(`${chunk.join("\n")}\n`)) await once(out, "drain");
      chunk = [];
    }
  }
  if (chunk.length > 0) out.write(`${chunk.join("\n")}\n`);
  out.end();
  await once(out, "finish");
}

function category(col: { codes: Int32Array; values: readonly string[] }, row: number): string {
  const c = col.codes[row]!;
  return c < 0 ? "" : csvField(col.values[c]!);
}

/** Writes `dataset` to `dir` (created if missing) as events.csv, users.csv, items.csv and searches.csv. */
export async function exportEventsDir(dataset: Dataset, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { users, items, events, searches } = dataset;
  await writeLines(join(dir, "events.csv"), "user_id,item_id,timestamp,watch_seconds", events.user.length, (r) => {
    const w = events.weight[r]!;
    return `${csvField(users.ids[events.user[r]!]!)},${csvField(items.ids[events.item[r]!]!)},${events.timestamp[r]!},${Number.isNaN(w) ? "" : w}`;
  });
  await writeLines(join(dir, "users.csv"), "user_id,age,gender,occupation,geo", users.ids.length, (u) => {
    const age = users.age[u]!;
    return `${csvField(users.ids[u]!)},${Number.isNaN(age) ? "" : age},${category(users.gender, u)},${category(users.occupation, u)},${category(users.geo, u)}`;
  });
  // Every catalogue item, also those nobody watched (the catalogue size stays the dataset's).
  await writeLines(join(dir, "items.csv"), "item_id", items.ids.length, (i) => csvField(items.ids[i]!));
  await writeLines(join(dir, "searches.csv"), "user_id,timestamp,query", searches.user.length, (k) => {
    return `${csvField(users.ids[searches.user[k]!]!)},${searches.timestamp[k]!},${csvField(searches.query[k]!)}`;
  });
}
