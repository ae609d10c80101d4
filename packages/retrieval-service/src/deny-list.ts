/**
 * The deleted-items list of a shard: ids taken down with DeleteItems, kept across restarts and
 * model versions (a taken-down item stays down when a new bundle contains it again). Lifted only
 * by an explicit UpsertItems of the id.
 *
 * File: `<INDEX_DIR>/deleted-items.shard-<i>-of-<n>.jsonl`, one record per line,
 * `{"op":"delete","id":"..."}` or `{"op":"restore","id":"..."}`, replayed in order. Each server
 * appends only to its own file. At start it also reads the files of other shard layouts (left by
 * an earlier SHARD_COUNT) before its own and keeps the ids it owns now, so a re-shard does not
 * resurrect deleted items.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { shardOf } from "@recsys/ann";
import type { Logger } from "@recsys/runtime";
import { appendJsonLines, readJsonLines } from "./journal.js";
import { shardTag } from "./paths.js";

const FILE_PATTERN = /^deleted-items\.shard-\d+-of-\d+\.jsonl$/;

interface DenyRecord {
  readonly op: "delete" | "restore";
  readonly id: string;
}

function isDenyRecord(value: unknown): value is DenyRecord {
  const record = value as Partial<DenyRecord> | null;
  return (
    typeof record === "object" &&
    record !== null &&
    (record.op === "delete" || record.op === "restore") &&
    typeof record.id === "string" &&
    record.id !== ""
  );
}

export class DenyList {
  private readonly ids = new Set<string>();

  private constructor(readonly file: string) {}

  /** Reads the lists in `indexDir` (creating nothing until the first write). */
  static async open(indexDir: string, shard: number, shardCount: number, logger: Logger): Promise<DenyList> {
    const own = `deleted-items.${shardTag(shard, shardCount)}.jsonl`;
    const list = new DenyList(join(indexDir, own));
    const others = (await readdir(indexDir)).filter((name) => FILE_PATTERN.test(name) && name !== own).sort();
    for (const name of [...others, own]) {
      const file = join(indexDir, name);
      const records = await readJsonLines(file, logger);
      records.forEach((record, i) => {
        if (!isDenyRecord(record)) throw new Error(`${file}: record ${i + 1} is not {"op":"delete"|"restore","id":...}`);
        if (shardOf(record.id, shardCount) !== shard) return;
        if (record.op === "delete") list.ids.add(record.id);
        else list.ids.delete(record.id);
      });
      if (records.length > 0) logger.info({ file, records: records.length }, "deleted-items list read");
    }
    return list;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  get size(): number {
    return this.ids.size;
  }

  values(): IterableIterator<string> {
    return this.ids.values();
  }

  /** Writes the changes to disk (call before `apply`, under the service's write lock). */
  async persist(deleted: readonly string[], restored: readonly string[]): Promise<void> {
    await appendJsonLines(this.file, [
      ...deleted.map((id): DenyRecord => ({ op: "delete", id })),
      ...restored.map((id): DenyRecord => ({ op: "restore", id })),
    ]);
  }

  /** Updates the in-memory set (synchronous, so it changes together with the index). */
  apply(deleted: readonly string[], restored: readonly string[]): void {
    for (const id of deleted) this.ids.add(id);
    for (const id of restored) this.ids.delete(id);
  }
}
