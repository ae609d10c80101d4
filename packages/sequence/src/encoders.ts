/**
 * Sequence encoders behind one interface: each maps the embedded, left-padded item sequence of a
 * batch [B, L, d] to a hidden state per position [B·L, d]; position t sees items 0..t only
 * (causal), so every position is a next-item training example and the last one is the user's
 * state at serving time.
 *
 * - "sasrec": causal self-attention (Kang & McAuley, ICDM 2018): learned positions, blocks of
 *   [LayerNorm → single-head attention (Q, K, V, output projections) → residual → LayerNorm →
 *   point-wise ReLU feed-forward → residual], a final LayerNorm; padding keys masked.
 * - "gru4rec": a GRU over the sequence (Hidasi et al., ICLR 2016), hidden size d, trained with
 *   cross-entropy over the catalogue (the GRU4Rec-CE variant) or sampled softmax.
 * - "narm": NARM, the GRU plus an attention over its states, bilinear decoder.
 * - "stamp": STAMP, attention over the items with the last item and the session mean as query.
 * NARM's and STAMP's attention is computed for every position t over s <= t, so that they train
 * on every position like the others.
 */
import type { Rng } from "@recsys/data";
import { tf, variableFrom } from "@recsys/tf";
import { bmm, bmmT, dense, layerNorm, mm } from "./ops.js";
import type { SasRecBlockWeights, SasRecWeights } from "./sasrec-inference.js";

export type EncoderKind = "sasrec" | "gru4rec" | "narm" | "stamp";
export const ENCODER_KINDS: readonly EncoderKind[] = ["sasrec", "gru4rec", "narm", "stamp"];

/** Multiplies by a fresh dropout mask (training) or is the identity (inference). */
export type Dropout = <T extends tf.Tensor>(x: T) => T;

export interface EncodeInputs {
  /** Item embeddings of the sequence, zero rows at padding: [B, L, d]. */
  readonly x: tf.Tensor3D;
  /** 1 at real items, 0 at padding: [B, L]. */
  readonly mask: tf.Tensor2D;
  /** Additive attention mask [B, L, L]: 0 where query t may attend key s (s <= t, s real), else -1e9. */
  readonly attentionMask: tf.Tensor3D | null;
}

export interface SequenceEncoder {
  readonly kind: EncoderKind;
  readonly dim: number;
  readonly maxLength: number;
  /** Whether `encode` needs `attentionMask`. */
  readonly needsAttentionMask: boolean;
  /** Trainable dense weights (the item embeddings live outside, in a sparse table). */
  readonly variables: readonly tf.Variable[];
  /** Hidden state per position [B·L, d] (row b·L + t), zero at padding. */
  encode(inputs: EncodeInputs, dropout: Dropout): tf.Tensor2D;
}

/** Glorot-uniform weights for a rows × cols matrix, stored with `shape` (default [rows, cols]). */
function glorot(rng: Rng, rows: number, cols: number, name: string, shape: number[] = [rows, cols]): tf.Variable {
  const limit = Math.sqrt(6 / (rows + cols));
  const v = new Float32Array(rows * cols);
  for (let i = 0; i < v.length; i++) v[i] = (2 * rng.next() - 1) * limit;
  return variableFrom(tf.tensor(v, shape), name);
}

function constant(n: number, value: number, name: string): tf.Variable {
  return variableFrom(tf.fill([n], value), name);
}

let instances = 0;

interface Block {
  ln1g: tf.Variable;
  ln1b: tf.Variable;
  wq: tf.Variable;
  bq: tf.Variable;
  wk: tf.Variable;
  bk: tf.Variable;
  wv: tf.Variable;
  bv: tf.Variable;
  wo: tf.Variable;
  bo: tf.Variable;
  ln2g: tf.Variable;
  ln2b: tf.Variable;
  w1: tf.Variable;
  b1: tf.Variable;
  w2: tf.Variable;
  b2: tf.Variable;
}

export class SasRecEncoder implements SequenceEncoder {
  readonly kind = "sasrec";
  readonly needsAttentionMask = true;
  readonly variables: tf.Variable[];
  private readonly positions: tf.Variable;
  private readonly blocks: Block[] = [];
  private readonly lnG: tf.Variable;
  private readonly lnB: tf.Variable;

  constructor(
    readonly dim: number,
    readonly maxLength: number,
    readonly numBlocks: number,
    rng: Rng,
  ) {
    const d = dim;
    const p = `sasrec${instances++}`;
    this.positions = glorot(rng, maxLength, d, `${p}/pos`);
    for (let k = 0; k < numBlocks; k++) {
      const n = `${p}/b${k}`;
      this.blocks.push({
        ln1g: constant(d, 1, `${n}/ln1g`),
        ln1b: constant(d, 0, `${n}/ln1b`),
        wq: glorot(rng, d, d, `${n}/wq`),
        bq: constant(d, 0, `${n}/bq`),
        wk: glorot(rng, d, d, `${n}/wk`),
        bk: constant(d, 0, `${n}/bk`),
        wv: glorot(rng, d, d, `${n}/wv`),
        bv: constant(d, 0, `${n}/bv`),
        wo: glorot(rng, d, d, `${n}/wo`),
        bo: constant(d, 0, `${n}/bo`),
        ln2g: constant(d, 1, `${n}/ln2g`),
        ln2b: constant(d, 0, `${n}/ln2b`),
        w1: glorot(rng, d, d, `${n}/w1`),
        b1: constant(d, 0, `${n}/b1`),
        w2: glorot(rng, d, d, `${n}/w2`),
        b2: constant(d, 0, `${n}/b2`),
      });
    }
    this.lnG = constant(d, 1, `${p}/lng`);
    this.lnB = constant(d, 0, `${p}/lnb`);
    this.variables = [this.positions, ...this.blocks.flatMap((b) => Object.values(b)), this.lnG, this.lnB];
  }

  /** A copy of the weights as they are now (for `SasRecInference`, the JS serving path). */
  weights(): SasRecWeights {
    const copy = (v: tf.Variable): Float32Array => Float32Array.from(v.dataSync() as Float32Array);
    return {
      dim: this.dim,
      maxLength: this.maxLength,
      positions: copy(this.positions),
      blocks: this.blocks.map(
        (b): SasRecBlockWeights => ({
          ln1g: copy(b.ln1g),
          ln1b: copy(b.ln1b),
          wq: copy(b.wq),
          bq: copy(b.bq),
          wk: copy(b.wk),
          bk: copy(b.bk),
          wv: copy(b.wv),
          bv: copy(b.bv),
          wo: copy(b.wo),
          bo: copy(b.bo),
          ln2g: copy(b.ln2g),
          ln2b: copy(b.ln2b),
          w1: copy(b.w1),
          b1: copy(b.b1),
          w2: copy(b.w2),
          b2: copy(b.b2),
        }),
      ),
      lnG: copy(this.lnG),
      lnB: copy(this.lnB),
    };
  }

  encode(inputs: EncodeInputs, dropout: Dropout): tf.Tensor2D {
    const [batch, length, d] = inputs.x.shape;
    if (length !== this.maxLength || d !== this.dim)
      throw new Error(`SasRecEncoder: input [${inputs.x.shape}] does not match L=${this.maxLength}, d=${this.dim}`);
    if (inputs.attentionMask === null) throw new Error("SasRecEncoder: attentionMask is required");
    const n = batch * length;
    const keep = tf.reshape(inputs.mask, [n, 1]);
    const x = tf.add(tf.mul(inputs.x, Math.sqrt(d)), this.positions) as tf.Tensor3D;
    let h = tf.mul(tf.reshape(dropout(x), [n, d]), keep) as tf.Tensor2D;
    const scale = 1 / Math.sqrt(d);
    for (const b of this.blocks) {
      const q = layerNorm(h, b.ln1g as tf.Tensor1D, b.ln1b as tf.Tensor1D);
      const Q = tf.reshape(dense(q, b.wq as tf.Tensor2D, b.bq as tf.Tensor1D), [batch, length, d]) as tf.Tensor3D;
      const K = tf.reshape(dense(h, b.wk as tf.Tensor2D, b.bk as tf.Tensor1D), [batch, length, d]) as tf.Tensor3D;
      const V = tf.reshape(dense(h, b.wv as tf.Tensor2D, b.bv as tf.Tensor1D), [batch, length, d]) as tf.Tensor3D;
      const scores = tf.add(tf.mul(bmmT(Q, K), scale), inputs.attentionMask) as tf.Tensor3D;
      const attention = dropout(tf.softmax(scores) as tf.Tensor3D);
      const o = dense(tf.reshape(bmm(attention, V), [n, d]) as tf.Tensor2D, b.wo as tf.Tensor2D, b.bo as tf.Tensor1D);
      const r = layerNorm(tf.add(q, o), b.ln2g as tf.Tensor1D, b.ln2b as tf.Tensor1D);
      const f = dense(dropout(tf.relu(dense(r, b.w1 as tf.Tensor2D, b.b1 as tf.Tensor1D))), b.w2 as tf.Tensor2D, b.b2 as tf.Tensor1D);
      h = tf.mul(tf.add(r, dropout(f)), keep) as tf.Tensor2D;
    }
    return tf.mul(layerNorm(h, this.lnG as tf.Tensor1D, this.lnB as tf.Tensor1D), keep) as tf.Tensor2D;
  }
}

export class Gru4RecEncoder implements SequenceEncoder {
  readonly kind = "gru4rec";
  readonly needsAttentionMask = false;
  readonly variables: tf.Variable[];
  /** Input weights of the update, reset and candidate gates side by side: [d, 3d]. */
  private readonly wx: tf.Variable;
  private readonly bx: tf.Variable;
  /** Recurrent weights, one [d, d] per gate (the candidate's is applied to r ⊙ h). */
  private readonly uz: tf.Variable;
  private readonly ur: tf.Variable;
  private readonly un: tf.Variable;

  constructor(
    readonly dim: number,
    readonly maxLength: number,
    rng: Rng,
  ) {
    const d = dim;
    const p = `gru4rec${instances++}`;
    this.wx = glorot(rng, d, 3 * d, `${p}/wx`);
    this.bx = constant(3 * d, 0, `${p}/bx`);
    this.uz = glorot(rng, d, d, `${p}/uz`);
    this.ur = glorot(rng, d, d, `${p}/ur`);
    this.un = glorot(rng, d, d, `${p}/un`);
    this.variables = [this.wx, this.bx, this.uz, this.ur, this.un];
  }

  encode(inputs: EncodeInputs, dropout: Dropout): tf.Tensor2D {
    const [batch, length, d] = inputs.x.shape;
    if (length !== this.maxLength || d !== this.dim)
      throw new Error(`Gru4RecEncoder: input [${inputs.x.shape}] does not match L=${this.maxLength}, d=${this.dim}`);
    return tf.reshape(dropout(this.states(inputs, dropout)), [batch * length, d]) as tf.Tensor2D;
  }

  /** The GRU's state after each position [B, L, d] (zero at padding). */
  states(inputs: EncodeInputs, dropout: Dropout): tf.Tensor3D {
    const [batch, length, d] = inputs.x.shape;
    const n = batch * length;
    const xw = tf.reshape(dense(tf.reshape(dropout(inputs.x), [n, d]) as tf.Tensor2D, this.wx as tf.Tensor2D, this.bx as tf.Tensor1D), [
      batch,
      length,
      3 * d,
    ]);
    const steps = tf.unstack(xw, 1) as tf.Tensor2D[];
    const masks = tf.unstack(tf.reshape(inputs.mask, [batch, length, 1]), 1) as tf.Tensor2D[];
    let h: tf.Tensor2D = tf.zeros([batch, d]);
    const outputs: tf.Tensor2D[] = [];
    for (let t = 0; t < length; t++) {
      const [xz, xr, xn] = tf.split(steps[t]!, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const z = tf.sigmoid(tf.add(xz, mm(h, this.uz as tf.Tensor2D)));
      const r = tf.sigmoid(tf.add(xr, mm(h, this.ur as tf.Tensor2D)));
      const c = tf.tanh(tf.add(xn, mm(tf.mul(r, h) as tf.Tensor2D, this.un as tf.Tensor2D)));
      // h ← h + m·(1 − z)·(c − h): the GRU update where m = 1, unchanged over padding.
      h = tf.add(h, tf.mul(tf.mul(masks[t]!, tf.sub(1, z)), tf.sub(c, h))) as tf.Tensor2D;
      outputs.push(tf.mul(h, masks[t]!) as tf.Tensor2D);
    }
    return tf.stack(outputs, 1) as tf.Tensor3D;
  }
}

/** 1 where query t may attend key s (s <= t, s real), from the additive attention mask. */
function visibility(attentionMask: tf.Tensor3D | null, who: string): tf.Tensor3D {
  if (attentionMask === null) throw new Error(`${who}: attentionMask is required`);
  return tf.cast(tf.greater(attentionMask, -1), "float32") as tf.Tensor3D;
}

/**
 * Additive attention of every query position t over the visible positions s <= t:
 * α[t, s] = v · σ(q_t + k_s) (no softmax, as NARM and STAMP), zero where s is not visible;
 * returns Σ_s α[t, s]·values_s [B, L, d].
 */
function additiveAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor1D, values: tf.Tensor3D, visible: tf.Tensor3D): tf.Tensor3D {
  const [batch, length, d] = q.shape;
  const z = tf.sigmoid(tf.add(tf.reshape(q, [batch, length, 1, d]), tf.reshape(k, [batch, 1, length, d])));
  const alpha = tf.mul(
    tf.reshape(mm(tf.reshape(z, [batch * length * length, d]) as tf.Tensor2D, tf.reshape(v, [d, 1]) as tf.Tensor2D), [
      batch,
      length,
      length,
    ]),
    visible,
  ) as tf.Tensor3D;
  return bmm(alpha, values);
}

/**
 * NARM (Li et al., CIKM 2017): a GRU (global encoder: its last state h_t) and an attention over
 * its states (local encoder: Σ_s v·σ(A₁h_t + A₂h_s)·h_s), concatenated and mapped to the item
 * space by the bilinear decoder B (score = e_item · B[h_t; c_local]).
 */
export class NarmEncoder implements SequenceEncoder {
  readonly kind = "narm";
  readonly needsAttentionMask = true;
  readonly variables: tf.Variable[];
  private readonly gru: Gru4RecEncoder;
  private readonly a1: tf.Variable;
  private readonly a2: tf.Variable;
  private readonly v: tf.Variable;
  private readonly b: tf.Variable;

  constructor(
    readonly dim: number,
    readonly maxLength: number,
    rng: Rng,
  ) {
    const d = dim;
    const p = `narm${instances++}`;
    this.gru = new Gru4RecEncoder(d, maxLength, rng);
    this.a1 = glorot(rng, d, d, `${p}/a1`);
    this.a2 = glorot(rng, d, d, `${p}/a2`);
    this.v = glorot(rng, d, 1, `${p}/v`, [d]);
    this.b = glorot(rng, 2 * d, d, `${p}/b`);
    this.variables = [...this.gru.variables, this.a1, this.a2, this.v, this.b];
  }

  encode(inputs: EncodeInputs, dropout: Dropout): tf.Tensor2D {
    const [batch, length, d] = inputs.x.shape;
    if (length !== this.maxLength || d !== this.dim)
      throw new Error(`NarmEncoder: input [${inputs.x.shape}] does not match L=${this.maxLength}, d=${this.dim}`);
    const n = batch * length;
    const visible = visibility(inputs.attentionMask, "NarmEncoder");
    const h = this.gru.states(inputs, dropout);
    const h2 = tf.reshape(h, [n, d]) as tf.Tensor2D;
    const q = tf.reshape(mm(h2, this.a1 as tf.Tensor2D), [batch, length, d]) as tf.Tensor3D;
    const k = tf.reshape(mm(h2, this.a2 as tf.Tensor2D), [batch, length, d]) as tf.Tensor3D;
    const local = tf.reshape(additiveAttention(q, k, this.v as tf.Tensor1D, h, visible), [n, d]) as tf.Tensor2D;
    const c = dropout(tf.concat([h2, local], 1) as tf.Tensor2D);
    return tf.mul(mm(c, this.b as tf.Tensor2D), tf.reshape(inputs.mask, [n, 1])) as tf.Tensor2D;
  }
}

/**
 * STAMP (Liu et al., KDD 2018): attention over the session's items with the last item x_t and the
 * session mean m_t as the query (α[t, s] = w₀·σ(W₁x_s + W₂x_t + W₃m_t + b)), m_a = Σ α·x_s; the
 * output is tanh(W_a m_a + b_a) ⊙ tanh(W_b x_t + b_b) (the trilinear score against e_item).
 */
export class StampEncoder implements SequenceEncoder {
  readonly kind = "stamp";
  readonly needsAttentionMask = true;
  readonly variables: tf.Variable[];
  private readonly w1: tf.Variable;
  private readonly w2: tf.Variable;
  private readonly w3: tf.Variable;
  private readonly ba: tf.Variable;
  private readonly w0: tf.Variable;
  private readonly wa: tf.Variable;
  private readonly bMa: tf.Variable;
  private readonly wb: tf.Variable;
  private readonly bXt: tf.Variable;

  constructor(
    readonly dim: number,
    readonly maxLength: number,
    rng: Rng,
  ) {
    const d = dim;
    const p = `stamp${instances++}`;
    this.w1 = glorot(rng, d, d, `${p}/w1`);
    this.w2 = glorot(rng, d, d, `${p}/w2`);
    this.w3 = glorot(rng, d, d, `${p}/w3`);
    this.ba = constant(d, 0, `${p}/ba`);
    this.w0 = glorot(rng, d, 1, `${p}/w0`, [d]);
    this.wa = glorot(rng, d, d, `${p}/wa`);
    this.bMa = constant(d, 0, `${p}/bma`);
    this.wb = glorot(rng, d, d, `${p}/wb`);
    this.bXt = constant(d, 0, `${p}/bxt`);
    this.variables = [this.w1, this.w2, this.w3, this.ba, this.w0, this.wa, this.bMa, this.wb, this.bXt];
  }

  encode(inputs: EncodeInputs, dropout: Dropout): tf.Tensor2D {
    const [batch, length, d] = inputs.x.shape;
    if (length !== this.maxLength || d !== this.dim)
      throw new Error(`StampEncoder: input [${inputs.x.shape}] does not match L=${this.maxLength}, d=${this.dim}`);
    const n = batch * length;
    const visible = visibility(inputs.attentionMask, "StampEncoder");
    const x = dropout(inputs.x);
    const x2 = tf.reshape(x, [n, d]) as tf.Tensor2D;
    // m_t: the mean of the visible items (a prefix average), from the visibility matrix.
    const counts = tf.maximum(tf.sum(visible, -1, true), 1);
    const mean = tf.reshape(bmm(tf.div(visible, counts) as tf.Tensor3D, x), [n, d]) as tf.Tensor2D;
    const q = tf.reshape(tf.add(tf.add(mm(x2, this.w2 as tf.Tensor2D), mm(mean, this.w3 as tf.Tensor2D)), this.ba), [
      batch,
      length,
      d,
    ]) as tf.Tensor3D;
    const k = tf.reshape(mm(x2, this.w1 as tf.Tensor2D), [batch, length, d]) as tf.Tensor3D;
    const ma = tf.reshape(additiveAttention(q, k, this.w0 as tf.Tensor1D, x, visible), [n, d]) as tf.Tensor2D;
    const hs = tf.tanh(dense(ma, this.wa as tf.Tensor2D, this.bMa as tf.Tensor1D));
    const ht = tf.tanh(dense(x2, this.wb as tf.Tensor2D, this.bXt as tf.Tensor1D));
    return tf.mul(tf.mul(hs, ht), tf.reshape(inputs.mask, [n, 1])) as tf.Tensor2D;
  }
}

export interface EncoderConfig {
  readonly kind: EncoderKind;
  readonly dim: number;
  readonly maxLength: number;
  /** sasrec only. */
  readonly numBlocks: number;
}

export function createEncoder(config: EncoderConfig, rng: Rng): SequenceEncoder {
  switch (config.kind) {
    case "sasrec":
      return new SasRecEncoder(config.dim, config.maxLength, config.numBlocks, rng);
    case "gru4rec":
      return new Gru4RecEncoder(config.dim, config.maxLength, rng);
    case "narm":
      return new NarmEncoder(config.dim, config.maxLength, rng);
    case "stamp":
      return new StampEncoder(config.dim, config.maxLength, rng);
  }
}
