import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ITEM_COUNTS_FILE, trainingTargetCounts } from "./item-counts.js";
import { SequenceModel } from "./model.js";
import { loadSequenceModel, saveSequenceModel, type SequenceManifest } from "./model-io.js";
import { buildWindows, DEFAULT_SEQUENCE_CONFIG } from "./trainer.js";

beforeAll(async () => {
  await initBackend({ backend: "wasm", log: null });
});

describe("trainingTargetCounts", () => {
  it("counts the targets of the trainer's windows (every window item but the first)", () => {
    const seq = Int32Array.from([0, 1, 2, 3, 4, 5, 6]);
    const last = trainingTargetCounts([seq, Int32Array.from([6]), Int32Array.from([2, 6])], 8, {
      encoder: { ...DEFAULT_SEQUENCE_CONFIG.encoder, maxLength: 3 },
      windows: "last",
    });
    // seq: window 3..6 (targets 4, 5, 6); [6] has no target; [2, 6]: target 6.
    expect(Array.from(last)).toEqual([0, 0, 0, 0, 1, 1, 2, 0]);
    const all = trainingTargetCounts([seq], 8, { encoder: { ...DEFAULT_SEQUENCE_CONFIG.encoder, maxLength: 3 }, windows: "all" });
    expect(Array.from(all)).toEqual([0, 1, 1, 1, 1, 1, 1, 0]);
  });

  it.each(["last", "all"] as const)("matches buildWindows' targets on random sequences (%s)", (windows) => {
    const rng = new Rng(5);
    const numItems = 30;
    const sequences = Array.from({ length: 40 }, () => Int32Array.from({ length: rng.int(25) }, () => rng.int(numItems)));
    const { targets } = buildWindows(sequences, 4, windows);
    const expected = new Uint32Array(numItems);
    for (const t of targets) if (t !== 0) expected[t - 1]!++;
    const counts = trainingTargetCounts(sequences, numItems, { encoder: { ...DEFAULT_SEQUENCE_CONFIG.encoder, maxLength: 4 }, windows });
    expect(Array.from(counts)).toEqual(Array.from(expected));
  });

  it("refuses an item outside the model's items", () => {
    expect(() => trainingTargetCounts([Int32Array.from([0, 9])], 5, DEFAULT_SEQUENCE_CONFIG)).toThrow(RangeError);
  });
});

describe("item counts on disk", () => {
  const N = 12;
  const ids = Array.from({ length: N }, (_, i) => `m${i}`);
  const encoder = { kind: "gru4rec" as const, dim: 4, maxLength: 5, numBlocks: 1 };
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("round-trip beside the weights, named in the manifest", async () => {
    dir = await mkdtemp(join(tmpdir(), "seq-counts-"));
    const model = new SequenceModel(N, encoder, 1);
    const counts = Uint32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 0 : i * 1_000_003));
    await saveSequenceModel(dir, model, ids, { epochs: 1 }, counts);
    model.dispose();
    const loaded = await loadSequenceModel(dir);
    loaded.model.dispose();
    expect(loaded.manifest.itemCounts).toEqual({ file: ITEM_COUNTS_FILE, of: "targets" });
    expect(Array.from(loaded.itemCounts!)).toEqual(Array.from(counts));
    expect((await readFile(join(dir, ITEM_COUNTS_FILE))).byteLength).toBe(4 * N);
  });

  it("a model saved without counts (the format before them) loads with none", async () => {
    dir = await mkdtemp(join(tmpdir(), "seq-counts-"));
    const model = new SequenceModel(N, encoder, 1);
    await saveSequenceModel(dir, model, ids);
    model.dispose();
    await expect(access(join(dir, ITEM_COUNTS_FILE))).rejects.toThrow();
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as SequenceManifest;
    expect("itemCounts" in manifest).toBe(false);
    const loaded = await loadSequenceModel(dir);
    loaded.model.dispose();
    expect(loaded.itemCounts).toBeUndefined();
  });

  it("refuses counts of the wrong length (saving and loading)", async () => {
    dir = await mkdtemp(join(tmpdir(), "seq-counts-"));
    const model = new SequenceModel(N, encoder, 1);
    await expect(saveSequenceModel(dir, model, ids, undefined, new Uint32Array(N - 1))).rejects.toThrow(/11 item counts for 12 items/);
    await saveSequenceModel(dir, model, ids, undefined, new Uint32Array(N));
    model.dispose();
    await writeFile(join(dir, ITEM_COUNTS_FILE), new Uint8Array(4 * (N + 1)));
    await expect(loadSequenceModel(dir)).rejects.toThrow(/52 bytes, expected 48/);
  });
});
