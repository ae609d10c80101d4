/**
 * The embedded backend's events log: `events.log` in the store's directory, every event ever
 * appended (all users and kinds, served answers included), in append order, never compacted.
 * It is what `scanEvents` reads (training from the system's own traffic, rebuilding the
 * orchestrator's counts at start), while the `wal-*.log` / `snapshot-*.snap` files hold the
 * per-user state and are compacted.
 *
 * Records use the same framing as the other files (record-file.ts): `{ s, e, l? }` where `s` is
 * the seq of the first event of `e` (seqs are 1-based and contiguous) and `l: 1` marks events that
 * were logged only (`logEvents`: a seeding's history, already in the state through `putUsers`).
 *
 * Retention: none; the file grows with the traffic (a served answer of 20 items is ~2 KB). Move
 * or archive it only with the store closed; a store opened without it starts a new one at the
 * seq its state has reached (see `EmbeddedUserStore.recover`).
 */
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { ChunkReader, RECORD_HEADER_BYTES, encodeRecord, repairTail, scanRecordFile, syncDirectory, writeFully } from "./record-file.js";
import type { StoredEvent, UserEvent, UserStoreLogger } from "./types.js";

export const EVENTS_LOG_FILE = "events.log";
const EVENTS_MAGIC = Buffer.from("RSUSEVT1", "ascii");
/** One checkpoint (seq, byte offset) per this many records, so a scan after a seq seeks near it. */
const CHECKPOINT_EVERY = 64;
export const DEFAULT_SCAN_BATCH = 10_000;

export interface EventsLogRecord {
  readonly s: number;
  readonly e: readonly UserEvent[];
  readonly l?: 1;
}

function isEventsLogRecord(value: unknown): value is EventsLogRecord {
  return (
    typeof value === "object" &&
    value !== null &&
    Number.isSafeInteger((value as { s?: unknown }).s) &&
    Array.isArray((value as { e?: unknown }).e)
  );
}

export class EventsLog {
  /** Seq of the last event in the file (0 when empty). */
  lastSeq = 0;
  /** Committed (fdatasync'ed) size: readers never read past it. */
  private size = EVENTS_MAGIC.length;
  private readonly checkpoints: { seq: number; offset: number }[] = [];
  private records = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /** Open (creating if missing) and check the file; a torn tail is truncated with a warning. */
  static async open(directory: string, logger: UserStoreLogger): Promise<EventsLog> {
    const path = join(directory, EVENTS_LOG_FILE);
    let handle: FileHandle;
    try {
      handle = await open(path, "r+");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      handle = await open(path, "wx+");
      await writeFully(handle, EVENTS_MAGIC, 0);
      await handle.datasync();
      await syncDirectory(directory);
    }
    const log = new EventsLog(path, handle);
    try {
      let expected = 1;
      const scan = await scanRecordFile(path, EVENTS_MAGIC, (value, offset) => {
        if (!isEventsLogRecord(value)) throw new Error("not an events record");
        if (value.s !== expected) throw new Error(`seq ${value.s} where ${expected} was expected`);
        log.noteRecord(value.s, value.e.length, offset);
        expected = value.s + value.e.length;
      });
      if (scan.problem !== undefined) {
        logger.warn(
          { file: path, validBytes: scan.validEnd, droppedBytes: scan.size - scan.validEnd },
          `truncating a torn events log tail: ${scan.problem}`,
        );
      }
      log.size = await repairTail(handle, EVENTS_MAGIC, scan);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return log;
  }

  private noteRecord(seq: number, count: number, offset: number): void {
    if (this.records % CHECKPOINT_EVERY === 0) this.checkpoints.push({ seq, offset });
    this.records++;
    this.lastSeq = seq + count - 1;
  }

  /** The bytes of one record holding `events` from seq `first` (see `write`). */
  static encode(first: number, events: readonly UserEvent[], logOnly: boolean): Buffer {
    return encodeRecord(logOnly ? { s: first, e: events, l: 1 } : { s: first, e: events });
  }

  /**
   * Write encoded records (each `{ s, e }` continuing from `lastSeq`) and fdatasync. `counts`:
   * the number of events of each record, in order.
   */
  async write(bytes: Buffer, counts: readonly number[]): Promise<void> {
    if (bytes.length === 0) return;
    await writeFully(this.handle, bytes, this.size);
    await this.handle.datasync();
    let offset = this.size;
    let seq = this.lastSeq + 1;
    // Record offsets for checkpoints: lengths are read back from the frame headers.
    for (const count of counts) {
      this.noteRecord(seq, count, offset);
      offset += RECORD_HEADER_BYTES + bytes.readUInt32LE(offset - this.size);
      seq += count;
    }
    this.size += bytes.length;
  }

  /** Events with seq > afterSeq, in batches of at most batchSize, up to the committed end. */
  async *scan(afterSeq: number, batchSize: number): AsyncGenerator<StoredEvent[]> {
    let start = EVENTS_MAGIC.length;
    // Last checkpoint at or before the first wanted seq.
    let lo = 0;
    let hi = this.checkpoints.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.checkpoints[mid]!.seq <= afterSeq + 1) {
        start = this.checkpoints[mid]!.offset;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const handle = await open(this.path, "r");
    try {
      let offset = start;
      let batch: StoredEvent[] = [];
      // The committed end is re-read after each chunk, so a long scan also sees later appends.
      while (offset < this.size) {
        const end = this.size;
        const reader = new ChunkReader(handle, end, offset);
        while (offset < end) {
          const head = await reader.take(RECORD_HEADER_BYTES);
          const length = head.readUInt32LE(0);
          const record = JSON.parse((await reader.take(length)).toString("utf8")) as EventsLogRecord;
          offset += RECORD_HEADER_BYTES + length;
          for (let i = 0; i < record.e.length; i++) {
            const seq = record.s + i;
            if (seq <= afterSeq) continue;
            batch.push({ ...record.e[i]!, seq } as StoredEvent);
            if (batch.length >= batchSize) {
              yield batch;
              batch = [];
            }
          }
        }
      }
      if (batch.length > 0) yield batch;
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
