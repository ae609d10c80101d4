/**
 * Embeddings for items the candidate-generation model has not seen (uploads after training), from
 * their content, so that the DNN path (retrieval) can return them before the next training.
 *
 * Content tokens of an item: each tag (`t:<tag>`), its channel (`c:<channel>`) and each title word
 * (`w:<word>`: lower-cased runs of letters and digits, 2+ characters). For every token, the
 * centroid of the trained output embeddings of the bundle's items carrying it (their metadata from
 * the catalogue). A new item's vector is the IDF-weighted mean of its tokens' centroids
 * (weight log(1 + N / df), N = trained items with any token, df = those carrying the token: a rare
 * tag says more than a common title word), rescaled to the mean norm of the trained embeddings
 * (retrieval scores by inner product: a plain mean of many vectors would be shorter than any of
 * them and never reach a top). An item with no token shared with a trained item gets none.
 *
 * The token table is built from the bundle and the catalogue once per model version (at 1M items,
 * one pass over the embeddings; built lazily at the first upsert after a swap).
 */
import { yieldToEventLoop } from "@recsys/data";
import type { BundleInfo, Catalogue } from "./catalogue.js";

/** Rows between two yields to the event loop while the table is built (serving goes on). */
const ROWS_PER_SLICE = 20_000;

export interface ItemContent {
  readonly tags?: readonly string[];
  readonly channel?: string;
  readonly title?: string;
}

export function contentTokens(content: ItemContent): string[] {
  const tokens = new Set<string>();
  for (const tag of content.tags ?? []) if (tag.trim() !== "") tokens.add(`t:${tag.trim().toLowerCase()}`);
  if (content.channel !== undefined && content.channel !== "") tokens.add(`c:${content.channel}`);
  for (const word of (content.title ?? "").toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (word.length >= 2) tokens.add(`w:${word}`);
  }
  return [...tokens];
}

interface TokenStats {
  readonly sum: Float64Array;
  count: number;
}

export class ColdEmbedder {
  readonly modelVersion: string;
  readonly dim: number;
  private readonly tokens = new Map<string, TokenStats>();
  /** Trained items with at least one token. */
  private itemsWithTokens = 0;
  private targetNorm = 1;

  private constructor(bundle: BundleInfo) {
    this.modelVersion = bundle.modelVersion;
    this.dim = bundle.dim;
  }

  /** Synchronous build (tests, small catalogues). */
  static build(bundle: BundleInfo, catalogue: Catalogue): ColdEmbedder {
    const embedder = new ColdEmbedder(bundle);
    embedder.addRows(bundle, catalogue, 0, bundle.itemIds.length);
    embedder.finish(bundle);
    return embedder;
  }

  /** The same, yielding to the event loop every ROWS_PER_SLICE rows (1M items: seconds of CPU). */
  static async buildAsync(bundle: BundleInfo, catalogue: Catalogue): Promise<ColdEmbedder> {
    const embedder = new ColdEmbedder(bundle);
    for (let from = 0; from < bundle.itemIds.length; from += ROWS_PER_SLICE) {
      embedder.addRows(bundle, catalogue, from, Math.min(bundle.itemIds.length, from + ROWS_PER_SLICE));
      await yieldToEventLoop();
    }
    embedder.finish(bundle);
    return embedder;
  }

  private normSum = 0;

  private finish(bundle: BundleInfo): void {
    this.targetNorm = bundle.itemIds.length === 0 ? 1 : this.normSum / bundle.itemIds.length;
  }

  private addRows(bundle: BundleInfo, catalogue: Catalogue, from: number, to: number): void {
    const d = this.dim;
    const e = bundle.embeddings;
    let withTokens = 0;
    let normSum = 0;
    for (let row = from; row < to; row++) {
      let norm = 0;
      for (let j = 0; j < d; j++) norm += e[row * d + j]! * e[row * d + j]!;
      normSum += Math.sqrt(norm);
      const index = catalogue.indexOf(bundle.itemIds[row]!);
      if (index === undefined) continue;
      const live = catalogue.liveItem(index);
      const title = live !== undefined ? live.title : index < catalogue.datasetSize ? catalogue.dataset.items.titles[index] : undefined;
      const channel = catalogue.channel(index);
      const tokens = contentTokens({
        tags: catalogue.tags(index),
        ...(channel === undefined ? {} : { channel }),
        ...(title === undefined ? {} : { title }),
      });
      if (tokens.length === 0) continue;
      withTokens++;
      for (const token of tokens) {
        let stats = this.tokens.get(token);
        if (stats === undefined) {
          stats = { sum: new Float64Array(d), count: 0 };
          this.tokens.set(token, stats);
        }
        stats.count++;
        for (let j = 0; j < d; j++) stats.sum[j]! += e[row * d + j]!;
      }
    }
    this.itemsWithTokens += withTokens;
    this.normSum += normSum;
  }

  /** Number of distinct tokens of the trained items. */
  get tokenCount(): number {
    return this.tokens.size;
  }

  /** The content vector of an item, or undefined when no token is shared with a trained item. */
  embed(content: ItemContent): number[] | undefined {
    const d = this.dim;
    const out = new Float64Array(d);
    let weights = 0;
    for (const token of contentTokens(content)) {
      const stats = this.tokens.get(token);
      if (stats === undefined) continue;
      const w = Math.log(1 + this.itemsWithTokens / stats.count);
      for (let j = 0; j < d; j++) out[j]! += (w * stats.sum[j]!) / stats.count;
      weights += w;
    }
    if (weights === 0) return undefined;
    let norm = 0;
    for (let j = 0; j < d; j++) norm += out[j]! * out[j]!;
    norm = Math.sqrt(norm);
    if (!(norm > 0)) return undefined;
    const scale = this.targetNorm / norm;
    return Array.from(out, (v) => v * scale);
  }
}
