/**
 * Append-only JSON-lines files (the upsert journals and the deleted-items list): one `write`
 * and one `fdatasync` per batch, so a call that returned is on disk. A crash in the middle of a
 * write can leave a torn last line; `readJsonLines` drops it (and cuts it off the file, so the
 * next append starts on a fresh line). A malformed line anywhere else is an error.
 */
import { open, readFile, rename, truncate, writeFile } from "node:fs/promises";
import type { Logger } from "@recsys/runtime";

/** The records of `file` in order; [] when the file does not exist. */
export async function readJsonLines(file: string, logger: Logger): Promise<unknown[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const end = bytes.lastIndexOf(0x0a) + 1; // bytes after the last newline: a torn write
  if (end < bytes.length) {
    logger.warn({ file, bytes: bytes.length - end }, "dropping a torn last line (interrupted write)");
    await truncate(file, end);
  }
  const records: unknown[] = [];
  const lines = bytes.subarray(0, end).toString("utf8").split("\n");
  lines.pop(); // "" after the final newline
  lines.forEach((line, i) => {
    if (line === "") return;
    try {
      records.push(JSON.parse(line));
    } catch (error) {
      throw new Error(`${file}:${i + 1}: not a JSON record (${(error as Error).message})`, { cause: error });
    }
  });
  return records;
}

/** Appends one line per record and waits until they are on disk. */
export async function appendJsonLines(file: string, records: readonly unknown[]): Promise<void> {
  if (records.length === 0) return;
  const text = records.map((record) => `${JSON.stringify(record)}\n`).join("");
  const handle = await open(file, "a");
  try {
    await handle.write(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Replaces `file` with an empty one atomically (write a new empty file, rename it over). */
export async function emptyFile(file: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, "");
  await rename(tmp, file);
}
