/**
 * The bundle's session model (MODEL_PATH/session/, written by `recsys train-session`) served as
 * the in-process "session" source: the @recsys/sequence model's state after the most recent
 * watches (a logged-in user's history, or an anonymous visitor's session), searched against its
 * own item vectors. It is loaded with the bundle and swapped with it (hot reload), and reads
 * nothing but the request: it follows every new watch without retraining.
 *
 * The model knows the items of the dataset it was trained on (its own index space); the
 * orchestrator's catalogue indices are mapped to it and back by item id, so items added through
 * the catalogue API since are simply unknown to it. Every item it knows is read in a session, but
 * only the items it was trained on as a target at least SESSION_MIN_ITEM_COUNT times (its saved
 * item counts) are nominated: the others have random output embeddings, and leaving them out of
 * the index also bounds the scan per request (docs/sequence-models.md). A model saved without
 * counts nominates every item.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import { loadSequenceModel, sessionEncoder, type SequenceModel } from "@recsys/sequence";
import type { Logger } from "@recsys/runtime";
import { BruteForceIndex, BruteForceSubsetIndex, SessionSource, type SourceResult } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { type BundleInfo, loadBundleInfo } from "./catalogue.js";
import { Exclusion } from "./exclusion.js";

/** The bundle's subdirectory holding its session model. */
export const SESSION_MODEL_DIR = "session";

export interface SessionQuery {
  /** Recent item ids, oldest first. */
  readonly historyIds: readonly string[];
  readonly asOf: number;
  readonly budget: number;
  /** Items (catalogue indices) never nominated (watched, excluded, taken down, filtered). */
  readonly skip: (catalogueIndex: number) => boolean;
}

/**
 * Catalogue index lookups the session model needs (the orchestrator's Catalogue). An id's index
 * never changes once it has one (the session model remembers the indices of its rows).
 */
export interface CatalogueIds {
  indexOf(id: string): number | undefined;
  intern(id: string): number;
}

export interface SessionCandidateOptions {
  /** Training target count of each model row (the model's item-counts.u32); undefined = unknown. */
  readonly itemCounts?: Uint32Array;
  /** Rows counted fewer times are never nominated (default 1; 0 = every row). Ignored without counts. */
  readonly minItemCount?: number;
}

/** The model rows nominated as candidates: count >= minItemCount, or every row without counts. */
export function sessionCandidateRows(numItems: number, options: SessionCandidateOptions = {}): Int32Array {
  const { itemCounts } = options;
  const min = options.minItemCount ?? 1;
  if (!(Number.isInteger(min) && min >= 0)) throw new RangeError(`minItemCount must be a non-negative integer, got ${min}`);
  if (itemCounts === undefined) return Int32Array.from({ length: numItems }, (_, i) => i);
  if (itemCounts.length !== numItems) throw new Error(`${itemCounts.length} item counts for ${numItems} items`);
  let n = 0;
  for (let i = 0; i < numItems; i++) if (itemCounts[i]! >= min) n++;
  const rows = new Int32Array(n);
  for (let i = 0, k = 0; i < numItems; i++) if (itemCounts[i]! >= min) rows[k++] = i;
  return rows;
}

export class ServingSessionModel {
  readonly kind: string;
  /** Model rows the session source nominates (ascending): the rows its index scans per request. */
  readonly candidateRows: Int32Array;
  private readonly source: SessionSource;
  private readonly rowOf = new Map<string, number>();
  /** The catalogue index of each row in the catalogue last asked (-1: not looked up yet, or not in it). */
  private mapped: { readonly catalogue: CatalogueIds; readonly index: Int32Array } | undefined;

  constructor(
    private readonly model: SequenceModel,
    private readonly itemIds: readonly string[],
    options: SessionCandidateOptions = {},
  ) {
    this.kind = model.config.kind;
    itemIds.forEach((id, i) => this.rowOf.set(id, i));
    this.candidateRows = sessionCandidateRows(itemIds.length, options);
    // Every row kept: the model's own table, no copy.
    const index =
      this.candidateRows.length === itemIds.length
        ? new BruteForceIndex(model.itemVectors(), model.dim)
        : new BruteForceSubsetIndex(model.itemVectors(), model.dim, this.candidateRows);
    this.source = new SessionSource({ index, encoder: sessionEncoder(model) });
  }

  /** Items the model knows (read in a session). */
  get numItems(): number {
    return this.itemIds.length;
  }

  /**
   * Next-item candidates in catalogue indices (`because`: the session item, a catalogue index,
   * that explains each). History ids the model does not know are dropped.
   */
  candidates(catalogue: CatalogueIds, query: SessionQuery): SourceResult {
    const history: number[] = [];
    for (const id of query.historyIds) {
      const row = this.rowOf.get(id);
      if (row !== undefined) history.push(row);
    }
    const toCatalogue = (row: number): number => this.catalogueIndex(catalogue, row) ?? catalogue.intern(this.itemIds[row]!);
    const exclude = new Exclusion(
      [],
      (row) => {
        const i = this.catalogueIndex(catalogue, row);
        return i === undefined || query.skip(i);
      },
      this.itemIds.length,
    );
    const result = this.source.candidates({ history, watched: new Set(history), asOf: query.asOf, budget: query.budget, exclude });
    return {
      source: result.source,
      candidates: result.candidates.map((c) => ({
        item: toCatalogue(c.item),
        score: c.score,
        ...(c.because === undefined ? {} : { because: toCatalogue(c.because) }),
      })),
    };
  }

  /** The catalogue index of a model row (remembered per catalogue), or undefined when the catalogue has no such id. */
  private catalogueIndex(catalogue: CatalogueIds, row: number): number | undefined {
    let mapped = this.mapped;
    if (mapped === undefined || mapped.catalogue !== catalogue) {
      mapped = { catalogue, index: new Int32Array(this.itemIds.length).fill(-1) };
      this.mapped = mapped;
    }
    const known = mapped.index[row]!;
    if (known >= 0) return known;
    const i = catalogue.indexOf(this.itemIds[row]!);
    if (i !== undefined) mapped.index[row] = i;
    return i;
  }

  dispose(): void {
    this.model.dispose();
  }
}

export interface SessionLoadOptions {
  /** SESSION_MIN_ITEM_COUNT (default 1). */
  readonly minItemCount?: number;
  /** Told how many items are candidates. */
  readonly logger?: Pick<Logger, "info">;
}

/** The bundle's session model, or undefined when the bundle has none (no session/manifest.json). */
export async function loadServingSessionModel(
  bundleDir: string,
  options: SessionLoadOptions = {},
): Promise<ServingSessionModel | undefined> {
  const dir = join(bundleDir, SESSION_MODEL_DIR);
  try {
    await access(join(dir, "manifest.json"));
  } catch {
    return undefined;
  }
  await initBackend({ log: null });
  const { model, manifest, itemCounts } = await loadSequenceModel(dir);
  const minItemCount = options.minItemCount ?? 1;
  let served: ServingSessionModel;
  try {
    served = new ServingSessionModel(model, manifest.itemIds, { ...(itemCounts === undefined ? {} : { itemCounts }), minItemCount });
  } catch (error) {
    model.dispose();
    throw error;
  }
  const candidates = served.candidateRows.length;
  const items = manifest.itemIds.length;
  options.logger?.info(
    { dir, encoder: served.kind, candidates, items, minItemCount: itemCounts === undefined ? null : minItemCount },
    itemCounts === undefined
      ? `session model: ${candidates} of ${items} items are candidates (the model has no item counts: every item)`
      : `session model: ${candidates} of ${items} items are candidates (trained as a target at least ${minItemCount} times)`,
  );
  return served;
}

/** A bundle as the orchestrator serves it: its catalogue facts and, when it has one, its session model. */
export interface ServingBundle extends BundleInfo {
  readonly session?: ServingSessionModel;
}

/** Loads a bundle directory with its session model (when present). */
export async function loadServingBundle(dir: string, options: SessionLoadOptions = {}): Promise<ServingBundle> {
  const info = await loadBundleInfo(dir);
  const session = await loadServingSessionModel(dir, options);
  return session === undefined ? info : { ...info, session };
}

/**
 * Runs the session source for one request: its timing goes to `timings` and the candidates
 * metric; an error is reported in `failures` (stage sources/session) and the answer is built
 * without it.
 */
export function runSessionSource(
  model: ServingSessionModel,
  deps: {
    readonly catalogue: CatalogueIds;
    readonly metrics: { readonly candidates: { observe(labels: { source: string }, value: number): void } };
  },
  query: SessionQuery,
  timings: { stage: string; elapsedMs: number; itemCount: number }[],
  failures: { stage: string; code: string; message: string }[],
): SourceResult | undefined {
  const t0 = performance.now();
  try {
    const result = model.candidates(deps.catalogue, query);
    timings.push({ stage: "sources/session", elapsedMs: performance.now() - t0, itemCount: result.candidates.length });
    deps.metrics.candidates.observe({ source: "session" }, result.candidates.length);
    return result;
  } catch (error) {
    failures.push({ stage: "sources/session", code: "INTERNAL", message: error instanceof Error ? error.message : String(error) });
    return undefined;
  }
}
