import { Rng } from "@recsys/data";
import { SparseTable } from "@recsys/candidate-gen";
import { tf } from "@recsys/tf";
import { createEncoder, type EncoderConfig, type SequenceEncoder } from "./encoders.js";

/** How a sequence is turned into the encoder's input: its last `maxLength` items, left-padded. */
export const PAD = 0;

/**
 * A sequence model: item embeddings (row i + 1 for item index i, row 0 the padding, shared by the
 * input and the output softmax as in SASRec) in a sparse table, and an encoder.
 */
export class SequenceModel {
  readonly items: SparseTable;
  readonly encoder: SequenceEncoder;

  constructor(
    readonly numItems: number,
    readonly config: EncoderConfig,
    seed: number,
  ) {
    const rng = new Rng(seed, 11);
    this.items = new SparseTable("items", numItems + 1, config.dim);
    // Glorot-uniform like the reference's nn.Embedding init in SASRec.pytorch (xavier_normal_).
    const std = Math.sqrt(2 / (numItems + 1 + config.dim));
    this.items.initNormal(rng, std);
    this.items.data.fill(0, 0, config.dim);
    this.encoder = createEncoder(config, rng);
  }

  get dim(): number {
    return this.config.dim;
  }

  get maxLength(): number {
    return this.config.maxLength;
  }

  /**
   * Fills ids [rows, L] (item index + 1, 0 = padding) with the last L items of each sequence,
   * left-padded, for rows 0..sequences.length-1 (the remaining rows are all padding).
   */
  fillIds(sequences: readonly ArrayLike<number>[], ids: Int32Array): void {
    const L = this.maxLength;
    ids.fill(PAD);
    sequences.forEach((s, b) => {
      const n = Math.min(L, s.length);
      for (let k = 0; k < n; k++) ids[b * L + L - n + k] = s[s.length - n + k]! + 1;
    });
  }

  /** Embeddings [rows, L, d] of ids (zero at padding) and the mask [rows, L]. */
  gather(ids: Int32Array, x: Float32Array, mask: Float32Array): void {
    const d = this.dim;
    const table = this.items.data;
    for (let p = 0; p < ids.length; p++) {
      const id = ids[p]!;
      mask[p] = id === PAD ? 0 : 1;
      if (id === PAD) x.fill(0, p * d, (p + 1) * d);
      else x.set(table.subarray(id * d, (id + 1) * d), p * d);
    }
  }

  /** The additive attention mask [rows, L, L]: key s visible from query t when s <= t and s is real. */
  attentionMask(ids: Int32Array, rows: number, out: Float32Array): void {
    const L = this.maxLength;
    for (let b = 0; b < rows; b++) {
      for (let t = 0; t < L; t++) {
        const o = (b * L + t) * L;
        for (let s = 0; s < L; s++) out[o + s] = s <= t && ids[b * L + s] !== PAD ? 0 : -1e9;
      }
    }
  }

  /**
   * The state of each sequence after its last item (the encoder's output at the last position),
   * row-major [sequences.length, d]; an empty sequence gets a zero vector. Inference: no dropout.
   */
  encodeLast(sequences: readonly ArrayLike<number>[], batchSize = 256): Float32Array {
    const d = this.dim;
    const L = this.maxLength;
    const out = new Float32Array(sequences.length * d);
    batchSize = Math.max(1, Math.min(batchSize, sequences.length));
    const ids = new Int32Array(batchSize * L);
    const x = new Float32Array(batchSize * L * d);
    const mask = new Float32Array(batchSize * L);
    const attention = this.encoder.needsAttentionMask ? new Float32Array(batchSize * L * L) : null;
    for (let start = 0; start < sequences.length; start += batchSize) {
      const part = sequences.slice(start, start + batchSize);
      const rows = part.length;
      this.fillIds(part, ids);
      this.gather(ids.subarray(0, rows * L), x, mask);
      if (attention !== null) this.attentionMask(ids, rows, attention);
      const h = tf.tidy(() => {
        const all = this.encoder.encode(
          {
            x: tf.tensor3d(x.subarray(0, rows * L * d), [rows, L, d]),
            mask: tf.tensor2d(mask.subarray(0, rows * L), [rows, L]),
            attentionMask: attention === null ? null : tf.tensor3d(attention.subarray(0, rows * L * L), [rows, L, L]),
          },
          (t) => t,
        );
        return tf.reshape(all, [rows, L, d]).slice([0, L - 1, 0], [rows, 1, d]);
      });
      out.set(h.dataSync() as Float32Array, start * d);
      h.dispose();
    }
    return out;
  }

  /** score[i] = state · embedding of item i, for every item index. */
  scoreAll(state: Float32Array, stateOffset: number, out: Float32Array): void {
    const d = this.dim;
    const table = this.items.data;
    for (let i = 0; i < this.numItems; i++) {
      const o = (i + 1) * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += state[stateOffset + k]! * table[o + k]!;
      out[i] = s;
    }
  }

  /** The item embeddings without the padding row: [numItems, d] (a view). */
  itemVectors(): Float32Array {
    return this.items.data.subarray(this.dim);
  }

  dispose(): void {
    for (const v of this.encoder.variables) v.dispose();
  }
}
