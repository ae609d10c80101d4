import { Rng } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SasRecEncoder } from "./encoders.js";
import type { SequenceModel } from "./model.js";
import { setSequenceKernels } from "./ops.js";
import { SasRecInference } from "./sasrec-inference.js";
import { sessionEncoder } from "./session.js";
import { DEFAULT_SEQUENCE_CONFIG, trainSequenceModel } from "./trainer.js";

const N = 300;

/** Random walks with a planted successor, so that training moves every weight away from its init. */
function sequences(count: number, length: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const s = new Int32Array(length);
    s[0] = rng.int(N);
    for (let k = 1; k < length; k++) s[k] = rng.next() < 0.7 ? (s[k - 1]! * 7 + 3) % N : rng.int(N);
    return s;
  });
}

/** The largest |a − b| over the elements. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

let model: SequenceModel;

beforeAll(async () => {
  await initBackend({ backend: "wasm", log: null });
  // The serving configuration (d = 64, 50 positions, 2 blocks), trained a little with dropout.
  ({ model } = trainSequenceModel(sequences(200, 60, 1), N, {
    ...DEFAULT_SEQUENCE_CONFIG,
    softmax: "sampled",
    negatives: 32,
    batchSize: 64,
    learningRate: 5e-3,
    windows: "all",
    maxEpochs: 3,
  }));
});

afterAll(() => {
  model.dispose();
  setSequenceKernels("auto");
});

describe("SasRecInference", () => {
  const rng = new Rng(5);
  const sessions = [1, 2, 3, 5, 17, 49, 50, 64].map((n) => Array.from({ length: n }, () => rng.int(N)));
  sessions.push([7, 7, 7]); // repeated items

  it.each(["auto", "tfjs"] as const)(
    "gives the encoder's state after the last item (%s kernels), for 1 to more than maxLength items",
    (kernels) => {
      setSequenceKernels(kernels);
      const js = sessionEncoder(model, { inference: "js" });
      const tensors = sessionEncoder(model, { inference: "tensors" });
      for (const session of sessions) {
        const fast = js.encode(session)!;
        const reference = tensors.encode(session)!;
        expect(reference).toEqual(model.encodeLast([session]));
        expect(maxDiff(fast, reference), `session of ${session.length}`).toBeLessThan(1e-5);
        // Not a trivial state: the LayerNorm output has unit-scale entries.
        expect(Math.max(...Array.from(reference, Math.abs))).toBeGreaterThan(0.1);
      }
    },
  );

  it("depends on the order and positions of the items (not only the last one)", () => {
    const js = sessionEncoder(model);
    const a = js.encode([1, 2, 3])!;
    expect(maxDiff(a, js.encode([2, 1, 3])!)).toBeGreaterThan(1e-3);
    expect(maxDiff(a, js.encode([3])!)).toBeGreaterThan(1e-3);
    expect(maxDiff(a, js.encode([2, 3])!)).toBeGreaterThan(1e-3);
  });

  it("reuses its scratch memory without carrying state between calls; refuses ids outside the table", () => {
    const encoder = model.encoder;
    if (!(encoder instanceof SasRecEncoder)) throw new Error("expected a sasrec model");
    const inference = new SasRecInference(encoder.weights());
    const ids = Int32Array.from([4, 9, 11]);
    const first = inference.lastState(ids, model.items.data);
    inference.lastState(
      Int32Array.from({ length: 50 }, (_, k) => 1 + ((k * 13) % N)),
      model.items.data,
    );
    expect(inference.lastState(ids, model.items.data)).toEqual(first);
    expect(Array.from(inference.lastState([], model.items.data))).toEqual(new Array(64).fill(0));
    expect(() => inference.lastState([0], model.items.data)).toThrow(RangeError);
    expect(() => inference.lastState([N + 1], model.items.data)).toThrow(RangeError);
  });
});
