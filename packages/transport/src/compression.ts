/**
 * Message compression as the gRPC compression spec describes it
 * (https://github.com/grpc/grpc/blob/master/doc/compression.md): a message's compressed flag says
 * whether its bytes are encoded with the call's `grpc-encoding`; `grpc-accept-encoding` lists what
 * a peer can read. The runtime's server and client read `identity`, `deflate` (zlib format, RFC
 * 1950, as grpc-js and grpcio write it) and `gzip` (RFC 1952).
 *
 * Decompression is bounded: zlib stops producing output at the message size limit
 * (`maxOutputLength`), so a small compressed bomb costs at most one limit's worth of inflating and
 * is answered RESOURCE_EXHAUSTED instead of filling memory.
 */
import * as zlib from "node:zlib";

export type Encoding = "identity" | "deflate" | "gzip";

/** The encodings the runtime reads, in the form of a grpc-accept-encoding value. */
export const ACCEPT_ENCODING = "identity,deflate,gzip";

export function isSupportedEncoding(name: string): name is Encoding {
  return name === "identity" || name === "deflate" || name === "gzip";
}

/** The names in a grpc-accept-encoding header (lower case, trimmed). */
export function acceptedEncodings(header: string | string[] | undefined): Set<string> {
  const values = Array.isArray(header) ? header.join(",") : (header ?? "");
  return new Set(
    values
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ""),
  );
}

/** Thrown by `decompress` when the message inflates past the limit. */
export class DecompressedTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`Received message larger than max after decompression (more than ${maxBytes} bytes)`);
  }
}

export function compress(encoding: Encoding, bytes: Uint8Array): Buffer {
  switch (encoding) {
    case "gzip":
      return zlib.gzipSync(bytes);
    case "deflate":
      return zlib.deflateSync(bytes);
    case "identity":
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

/**
 * The message inflated, at most `maxBytes` long. Throws `DecompressedTooLarge` past the limit, and
 * an Error for bytes that are not valid in the encoding.
 */
export function decompress(encoding: Encoding, bytes: Buffer, maxBytes: number): Buffer {
  if (encoding === "identity") return bytes;
  // One byte over the limit tells "exactly the limit" from "more than the limit".
  const options: zlib.ZlibOptions = { maxOutputLength: Math.max(1, maxBytes + 1) };
  let out: Buffer;
  try {
    out = encoding === "gzip" ? zlib.gunzipSync(bytes, options) : zlib.inflateSync(bytes, options);
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new DecompressedTooLarge(maxBytes);
    throw new Error(`cannot decompress a ${encoding} message: ${(error as Error).message}`);
  }
  if (out.length > maxBytes) throw new DecompressedTooLarge(maxBytes);
  return out;
}

/** The length-prefixed message: flag 1 and the compressed bytes, or flag 0 for identity. */
export function frameMessage(message: Uint8Array, encoding: Encoding = "identity"): Buffer {
  const body = encoding === "identity" ? message : compress(encoding, message);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = encoding === "identity" ? 0 : 1;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}
