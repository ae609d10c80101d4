import { Rng } from "@recsys/data";
import { initBackend, tf } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { ENCODER_KINDS, type EncoderKind } from "./encoders.js";
import { buildWindows, DEFAULT_SEQUENCE_CONFIG, trainSequenceModel, type SequenceTrainConfig } from "./trainer.js";

/**
 * The planted rule: sequences alternate a random item x and its successor f(x) = (7x + 3) mod N.
 * After a random item the next one is certain — but only to a model that knows which item came
 * last: a bag of the same items (order ignored) holds ~10 random items whose successors are all
 * equally likely, so no order-blind model can exceed about 1/10 top-1 accuracy.
 */
const N = 40;
const successor = (x: number): number => (7 * x + 3) % N;

function plantedSequences(count: number, length: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const s = new Int32Array(length);
    for (let k = 0; k < length; k += 2) {
      s[k] = rng.int(N);
      if (k + 1 < length) s[k + 1] = successor(s[k]!);
    }
    return s;
  });
}

/** Top-1 accuracy of the next item after a random item (odd-length prefixes). */
function accuracy(predict: (prefixes: Int32Array[]) => Int32Array, sequences: readonly Int32Array[]): number {
  const prefixes = sequences.map((s, i) => s.slice(0, 2 * (1 + (i % 9)) + 1));
  const predicted = predict(prefixes);
  let hits = 0;
  prefixes.forEach((p, i) => {
    if (predicted[i] === successor(p[p.length - 1]!)) hits++;
  });
  return hits / prefixes.length;
}

beforeAll(async () => {
  await initBackend({ backend: "wasm", log: null });
});

describe("buildWindows", () => {
  it("left-pads inputs and shifts targets by one; 'all' cuts older windows from the end", () => {
    const seq = Int32Array.from([0, 1, 2, 3, 4, 5, 6]);
    const last = buildWindows([seq], 3, "last");
    expect(last.count).toBe(1);
    expect(Array.from(last.inputs)).toEqual([4, 5, 6]); // items 3,4,5 (+1)
    expect(Array.from(last.targets)).toEqual([5, 6, 7]);
    const all = buildWindows([seq], 3, "all");
    expect(all.count).toBe(2); // items 3..6, then 0..3; item 0 alone would have no target
    expect(Array.from(all.inputs.subarray(3, 6))).toEqual([1, 2, 3]);
    expect(Array.from(all.targets.subarray(3, 6))).toEqual([2, 3, 4]);
    const short = buildWindows([Int32Array.from([8, 9])], 3, "all");
    expect(Array.from(short.inputs)).toEqual([0, 0, 9]);
    expect(Array.from(short.targets)).toEqual([0, 0, 10]);
  });
});

describe("sequence encoders learn a planted next-item rule", () => {
  const train = plantedSequences(256, 20, 1);
  const test = plantedSequences(200, 20, 2);
  for (const kind of ENCODER_KINDS) {
    for (const softmax of ["full", "sampled"] as const) {
      it(`${kind} (${softmax} softmax) predicts the successor of the last item`, () => {
        const config: SequenceTrainConfig = {
          ...DEFAULT_SEQUENCE_CONFIG,
          encoder: { kind: kind as EncoderKind, dim: 32, maxLength: 20, numBlocks: 2 },
          softmax,
          negatives: 16,
          batchSize: 64,
          learningRate: 5e-3,
          dropout: 0,
          maxEpochs: kind === "gru4rec" || kind === "narm" ? 40 : 30,
          seed: 3,
        };
        const { model, epochLosses } = trainSequenceModel(train, N, config);
        const acc = accuracy((prefixes) => {
          const states = model.encodeLast(prefixes);
          const scores = new Float32Array(N);
          return Int32Array.from(prefixes, (_p, i) => {
            model.scoreAll(states, i * model.dim, scores);
            let best = 0;
            for (let j = 1; j < N; j++) if (scores[j]! > scores[best]!) best = j;
            return best;
          });
        }, test);
        model.dispose();
        expect(epochLosses[epochLosses.length - 1]!).toBeLessThan(epochLosses[0]!);
        expect(acc).toBeGreaterThan(0.8);
      });
    }
  }

  it("an order-blind predictor stays near chance on the same rule (the rule needs the order)", () => {
    // The best bag-of-items guess: the successor of a uniformly chosen history item.
    const rng = new Rng(5);
    const acc = accuracy((prefixes) => Int32Array.from(prefixes, (p) => successor(p[rng.int(p.length)]!)), test);
    expect(acc).toBeLessThan(0.35);
  });
});

describe("sessionEncoder", () => {
  it("encodes a session (unknown items dropped) the way the model scores it, and exposes item vectors", async () => {
    const { sessionEncoder } = await import("./session.js");
    const { model } = trainSequenceModel(plantedSequences(32, 10, 7), N, {
      ...DEFAULT_SEQUENCE_CONFIG,
      encoder: { kind: "gru4rec", dim: 8, maxLength: 10, numBlocks: 1 },
      batchSize: 16,
      maxEpochs: 1,
      dropout: 0,
    });
    const encoder = sessionEncoder(model);
    expect(encoder.maxLength).toBe(10);
    expect(encoder.encode([N + 3, -1])).toBeNull();
    const state = encoder.encode([4, N + 3, successor(4), 9])!;
    expect(Array.from(state)).toEqual(Array.from(model.encodeLast([[4, successor(4), 9]])));
    expect(Array.from(encoder.itemVector(2)!)).toEqual(Array.from(model.items.data.subarray(3 * 8, 4 * 8)));
    expect(encoder.itemVector(N)).toBeNull();
    model.dispose();
  });
});

describe("saveSequenceModel / loadSequenceModel", () => {
  it("round-trips a model: same states for the same sessions; refuses another format", async () => {
    const { mkdtemp, rm, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { loadSequenceModel, saveSequenceModel } = await import("./model-io.js");
    const dir = await mkdtemp(join(tmpdir(), "seq-model-"));
    try {
      const { model } = trainSequenceModel(plantedSequences(32, 10, 8), N, {
        ...DEFAULT_SEQUENCE_CONFIG,
        encoder: { kind: "sasrec", dim: 8, maxLength: 10, numBlocks: 1 },
        batchSize: 16,
        maxEpochs: 1,
      });
      const ids = Array.from({ length: N }, (_, i) => `m${i}`);
      await saveSequenceModel(dir, model, ids, { epochs: 1 });
      const { model: loaded, manifest } = await loadSequenceModel(dir);
      expect(manifest.itemIds).toEqual(ids);
      const sessions = [[1, 2, 3], [7]];
      expect(Array.from(loaded.encodeLast(sessions))).toEqual(Array.from(model.encodeLast(sessions)));
      model.dispose();
      loaded.dispose();
      // Loading leaves nothing behind once the model is disposed (a hot reload loads one per version).
      const before = tf.memory().numTensors;
      (await loadSequenceModel(dir)).model.dispose();
      expect(tf.memory().numTensors).toBe(before);
      await writeFile(join(dir, "manifest.json"), JSON.stringify({ ...manifest, format: "other/1" }));
      await expect(loadSequenceModel(dir)).rejects.toThrow(/expected "recsys-sequence\/1"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("trainSequenceModel memory", () => {
  it.each(["full", "sampled"] as const)("leaves no tensor behind once the model is disposed (%s softmax)", (softmax) => {
    const config: SequenceTrainConfig = {
      ...DEFAULT_SEQUENCE_CONFIG,
      encoder: { kind: "sasrec", dim: 8, maxLength: 10, numBlocks: 1 },
      softmax,
      negatives: 8,
      batchSize: 8,
      maxEpochs: 3,
    };
    const before = tf.memory().numTensors;
    const { model } = trainSequenceModel(plantedSequences(40, 10, 9), N, config);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
