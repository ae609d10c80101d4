/**
 * Raw little-endian float32 files (model bundles' embedding tables), read straight into a
 * Float32Array. Reading the file into a Buffer and copying it held a 1M-item table (256 MB)
 * twice until the next GC: the candidate-generation stage peaked at 1.19 GB at 1M items, over its
 * 1 GiB Kubernetes limit.
 */
import { open, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";

/** Largest read per call (reads of 2 GiB and more fail). */
const CHUNK_BYTES = 1 << 26;

/** A float32 file of another length than expected. */
export class Float32FileSizeError extends Error {
  override readonly name = "Float32FileSizeError";
  constructor(
    readonly path: string,
    readonly bytes: number,
    readonly expectedBytes: number,
  ) {
    super(`${path} has ${bytes} bytes, expected ${expectedBytes}`);
  }
}

/**
 * The `floats` little-endian float32 values of the file at `path`, written into `into` (default: a
 * new array). Rejects with Float32FileSizeError when the file is not exactly `floats × 4` bytes
 * long, with the file system's error when it cannot be read.
 */
export async function readFloat32File(path: string, floats: number, into?: Float32Array): Promise<Float32Array> {
  const out = into ?? new Float32Array(floats);
  if (out.length !== floats) throw new Error(`readFloat32File: a destination of ${out.length} floats for ${floats}`);
  const expected = floats * 4;
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    const size = (await handle.stat()).size;
    if (size !== expected) throw new Float32FileSizeError(path, size, expected);
    const target = new Uint8Array(out.buffer, out.byteOffset, expected);
    for (let offset = 0; offset < expected; ) {
      const { bytesRead } = await handle.read(target, offset, Math.min(expected - offset, CHUNK_BYTES), offset);
      if (bytesRead === 0) throw new Error(`${path} ended after ${offset} of ${expected} bytes`);
      offset += bytesRead;
    }
  } finally {
    await handle?.close();
  }
  if (endianness() === "BE") {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, expected);
    for (let i = 0; i < expected; i += 4) {
      [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]] = [bytes[i + 3]!, bytes[i + 2]!, bytes[i + 1]!, bytes[i]!];
    }
  }
  return out;
}
