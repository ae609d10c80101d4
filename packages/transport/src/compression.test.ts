/**
 * Message compression and framing (the gRPC compression spec): round trips, the size bound on
 * inflation, and the 5-byte length prefix.
 */
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { acceptedEncodings, compress, DecompressedTooLarge, decompress, frameMessage, isSupportedEncoding } from "./compression.js";

const message = Buffer.from("recsys ".repeat(200));

describe("compression", () => {
  it("round-trips gzip, deflate and identity, in the formats zlib reads", () => {
    for (const encoding of ["gzip", "deflate", "identity"] as const) {
      expect(decompress(encoding, compress(encoding, message), message.length)).toEqual(message);
    }
    expect(zlib.gunzipSync(compress("gzip", message))).toEqual(message);
    expect(zlib.inflateSync(compress("deflate", message))).toEqual(message);
    expect(compress("gzip", message).length).toBeLessThan(message.length);
  });

  it("stops inflating at the limit: exactly the limit passes, one byte more is DecompressedTooLarge", () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100_000);
    expect(() => decompress("gzip", bomb, 1 << 20)).toThrow(DecompressedTooLarge);
    expect(decompress("deflate", compress("deflate", message), message.length).length).toBe(message.length);
    expect(() => decompress("deflate", compress("deflate", message), message.length - 1)).toThrow(DecompressedTooLarge);
  });

  it("reports bytes that are not in the encoding", () => {
    expect(() => decompress("gzip", Buffer.from("not gzip"), 1000)).toThrow(/cannot decompress a gzip message/);
  });

  it("frames a message: compressed flag, big-endian length, body", () => {
    const plain = frameMessage(Buffer.from([1, 2, 3]));
    expect([...plain]).toEqual([0, 0, 0, 0, 3, 1, 2, 3]);
    const framed = frameMessage(message, "gzip");
    expect(framed[0]).toBe(1);
    expect(framed.readUInt32BE(1)).toBe(framed.length - 5);
    expect(zlib.gunzipSync(framed.subarray(5))).toEqual(message);
  });

  it("reads grpc-accept-encoding and knows its encodings", () => {
    expect([...acceptedEncodings(" Gzip , identity,,")]).toEqual(["gzip", "identity"]);
    expect([...acceptedEncodings(["deflate", "gzip"])]).toEqual(["deflate", "gzip"]);
    expect(acceptedEncodings(undefined).size).toBe(0);
    expect(isSupportedEncoding("gzip")).toBe(true);
    expect(isSupportedEncoding("snappy")).toBe(false);
  });
});
