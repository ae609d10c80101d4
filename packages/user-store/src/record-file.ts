/**
 * The embedded backend's file format: a magic header, then records framed as
 *
 *   [u32 LE payload length][u32 LE CRC-32 of the payload][payload: UTF-8 JSON]
 *
 * A reader stops at the first record that is cut short, fails its CRC, has an impossible length
 * or does not decode, and reports where the valid prefix ends, so a torn tail after a crash can
 * be truncated away.
 */
import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";

export const RECORD_HEADER_BYTES = 8;
/** Larger lengths are corruption (the largest record, one append of 10k events, is ~2 MB). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;
const READ_CHUNK_BYTES = 1 << 20;

export function encodeRecord(value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value), "utf8");
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, RECORD_HEADER_BYTES);
  return out;
}

export interface ScanResult {
  /** File size when scanned. */
  readonly size: number;
  /** End of the valid prefix (header and whole, intact records). */
  readonly validEnd: number;
  /** Records read. */
  readonly records: number;
  /** Why reading stopped before `size`, if it did. */
  readonly problem?: string;
  /** The header is missing or cut short (a file whose creation was interrupted). */
  readonly incompleteHeader: boolean;
}

/**
 * Read `path` record by record, calling `onRecord` with each decoded payload. Throws if the file
 * does not start with `magic` (it is not ours); a record `onRecord` rejects (by throwing) ends
 * the valid prefix like a bad CRC does.
 */
export async function scanRecordFile(path: string, magic: Buffer, onRecord: (value: unknown, offset: number) => void): Promise<ScanResult> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    const reader = new ChunkReader(handle, size);
    const header = await reader.take(Math.min(magic.length, size));
    if (size < magic.length) {
      if (!magic.subarray(0, size).equals(header) && !header.every((b) => b === 0)) {
        throw new Error(`${path} is not a user-store file (bad header)`);
      }
      return { size, validEnd: 0, records: 0, incompleteHeader: true, problem: `header cut short at ${size} bytes` };
    }
    if (!header.equals(magic)) {
      if (header.every((b) => b === 0)) {
        return { size, validEnd: 0, records: 0, incompleteHeader: true, problem: "header never written (zeros)" };
      }
      throw new Error(`${path} is not a user-store file (bad header)`);
    }
    let offset = magic.length;
    let records = 0;
    const stop = (problem: string): ScanResult => ({ size, validEnd: offset, records, problem, incompleteHeader: false });
    while (offset < size) {
      if (size - offset < RECORD_HEADER_BYTES) {
        return stop(`record header cut short at offset ${offset} (${size - offset} bytes left)`);
      }
      const head = await reader.take(RECORD_HEADER_BYTES);
      const length = head.readUInt32LE(0);
      const expectedCrc = head.readUInt32LE(4);
      // An empty payload is never written ("{}" is the shortest JSON object); zeros are a torn tail.
      if (length < 2 || length > MAX_RECORD_BYTES) {
        return stop(`impossible record length ${length} at offset ${offset}`);
      }
      if (size - offset - RECORD_HEADER_BYTES < length) {
        return stop(`record at offset ${offset} cut short: ${size - offset - RECORD_HEADER_BYTES} of ${length} bytes`);
      }
      const payload = await reader.take(length);
      if (crc32(payload) !== expectedCrc) return stop(`CRC mismatch in record at offset ${offset}`);
      let value: unknown;
      try {
        value = JSON.parse(payload.toString("utf8"));
        onRecord(value, offset);
      } catch (error) {
        return stop(`undecodable record at offset ${offset}: ${(error as Error).message}`);
      }
      offset += RECORD_HEADER_BYTES + length;
      records++;
    }
    return { size, validEnd: offset, records, incompleteHeader: false };
  } finally {
    await handle.close();
  }
}

/** Sequential reads in large chunks; `take(n)` returns the next n bytes (caller checks size). */
export class ChunkReader {
  private buffer = Buffer.alloc(0);
  private position = 0;
  private fileOffset: number;

  /** Reads `handle` from byte `start` up to byte `size`. */
  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
    start = 0,
  ) {
    this.fileOffset = start;
  }

  async take(n: number): Promise<Buffer> {
    while (this.buffer.length - this.position < n) {
      const remaining = this.size - this.fileOffset;
      if (remaining <= 0) throw new Error("read past the end of file");
      const chunk = Buffer.allocUnsafe(Math.min(Math.max(READ_CHUNK_BYTES, n), remaining));
      const { bytesRead } = await this.handle.read(chunk, 0, chunk.length, this.fileOffset);
      if (bytesRead === 0) throw new Error("file shrank while reading");
      this.fileOffset += bytesRead;
      this.buffer = Buffer.concat([this.buffer.subarray(this.position), chunk.subarray(0, bytesRead)]);
      this.position = 0;
    }
    const out = this.buffer.subarray(this.position, this.position + n);
    this.position += n;
    return out;
  }
}

/** Write all of `data` at `position` (a regular file may take a write in several pieces). */
export async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error("write made no progress");
    done += bytesWritten;
  }
}

/**
 * Cut a record file back to what `scanRecordFile` found valid: a file whose header was never
 * written whole gets a fresh header, a torn tail is truncated; either is made durable. Returns the
 * file's size afterwards (where the next record goes).
 */
export async function repairTail(handle: FileHandle, magic: Buffer, scan: ScanResult): Promise<number> {
  if (scan.incompleteHeader) {
    await handle.truncate(0);
    await writeFully(handle, magic, 0);
    await handle.datasync();
    return magic.length;
  }
  if (scan.validEnd < scan.size) {
    await handle.truncate(scan.validEnd);
    await handle.datasync();
  }
  return scan.validEnd;
}

/** fsync a directory so that files created, renamed or removed in it survive a crash. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
