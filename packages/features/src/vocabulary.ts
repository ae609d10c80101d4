import { compareIds, indexInSlices } from "@recsys/data";

const duplicateToken = (token: string): Error => new Error(`Vocabulary: duplicate token "${token}"`);

/** JSON form of a {@link Vocabulary}. */
export interface VocabularyJson {
  readonly minCount: number;
  /** Tokens in id order; token `tokens[i]` has id `i + 1` (id 0 is the out-of-vocabulary bucket). */
  readonly tokens: readonly string[];
}

/**
 * A string → dense id mapping with an out-of-vocabulary (OOV) bucket.
 *
 * Id 0 is the OOV bucket: every token not in the vocabulary (unseen, or seen fewer than
 * `minCount` times when it was built) maps to it. Known tokens have ids 1..size-1 in ascending
 * `compareIds` order of the token (so an item vocabulary follows the dataset's item order).
 */
export class Vocabulary {
  static readonly OOV = 0;

  readonly minCount: number;
  readonly tokens: readonly string[];
  private readonly index: Map<string, number>;

  /** `index` (token → id, built by the caller from `tokens`) is taken as it is when given. */
  constructor(tokens: readonly string[], minCount: number, index?: Map<string, number>) {
    this.minCount = minCount;
    this.tokens = tokens;
    if (index !== undefined) {
      this.index = index;
      return;
    }
    this.index = new Map();
    tokens.forEach((t, i) => {
      if (this.index.has(t)) throw duplicateToken(t);
      this.index.set(t, i + 1);
    });
  }

  /** Builds from token counts, keeping tokens counted at least `minCount` times. */
  static fromCounts(counts: ReadonlyMap<string, number>, minCount: number): Vocabulary {
    if (!Number.isInteger(minCount) || minCount < 1) throw new Error(`Vocabulary: minCount must be a positive integer, got ${minCount}`);
    const kept: string[] = [];
    for (const [t, c] of counts) if (c >= minCount) kept.push(t);
    kept.sort(compareIds);
    return new Vocabulary(kept, minCount);
  }

  /** Number of ids including the OOV bucket. */
  get size(): number {
    return this.tokens.length + 1;
  }

  /** The id of a token, {@link Vocabulary.OOV} when unknown (or undefined). */
  id(token: string | undefined): number {
    if (token === undefined) return Vocabulary.OOV;
    return this.index.get(token) ?? Vocabulary.OOV;
  }

  /** The token of an id, undefined for the OOV bucket or an id out of range. */
  token(id: number): string | undefined {
    return id >= 1 ? this.tokens[id - 1] : undefined;
  }

  toJSON(): VocabularyJson {
    return { minCount: this.minCount, tokens: [...this.tokens] };
  }

  static fromJSON(json: VocabularyJson): Vocabulary {
    Vocabulary.checkJSON(json);
    return new Vocabulary(json.tokens, json.minCount);
  }

  /**
   * {@link fromJSON}, indexed in slices with yields to the event loop between them
   * (`indexInSlices`): a serving stage loads a new model while it serves.
   */
  static async fromJSONInSlices(json: VocabularyJson): Promise<Vocabulary> {
    Vocabulary.checkJSON(json);
    const index = await indexInSlices(json.tokens, { base: 1, duplicate: duplicateToken });
    return new Vocabulary(json.tokens, json.minCount, index);
  }

  private static checkJSON(json: VocabularyJson): void {
    if (json === null || typeof json !== "object" || !Array.isArray(json.tokens))
      throw new Error("Vocabulary.fromJSON: expected { minCount, tokens: string[] }");
  }
}

/** Counts occurrences of each token. */
export function countTokens(tokens: Iterable<string>, into: Map<string, number> = new Map()): Map<string, number> {
  for (const t of tokens) into.set(t, (into.get(t) ?? 0) + 1);
  return into;
}
