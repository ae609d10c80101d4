import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Float32FileSizeError, readFloat32File } from "./float32-file.js";

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("readFloat32File", () => {
  it("reads the values into a new array or into a given view, and refuses a file of another size", async () => {
    dir = await mkdtemp(join(tmpdir(), "f32-"));
    const values = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5 - 3);
    const path = join(dir, "t.f32");
    await writeFile(path, new Uint8Array(values.buffer));
    expect(Array.from(await readFloat32File(path, 1000))).toEqual(Array.from(values));
    // Into rows 1.. of a larger table (how a bundle's output table gets its item rows).
    const table = new Float32Array(1010).fill(7);
    await readFloat32File(path, 1000, table.subarray(10));
    expect(Array.from(table.subarray(0, 10))).toEqual(Array(10).fill(7));
    expect(Array.from(table.subarray(10))).toEqual(Array.from(values));
    await expect(readFloat32File(path, 999)).rejects.toThrow(/t\.f32 has 4000 bytes, expected 3996/);
    await expect(readFloat32File(path, 999)).rejects.toMatchObject({
      name: "Float32FileSizeError",
      path,
      bytes: 4000,
      expectedBytes: 3996,
    });
    await expect(readFloat32File(path, 999)).rejects.toBeInstanceOf(Float32FileSizeError);
    await expect(readFloat32File(join(dir, "missing.f32"), 1)).rejects.toThrow(/ENOENT/);
  });
});
