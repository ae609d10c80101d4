/**
 * The catalogue as the orchestrator sees it: external item ids <-> the dense item indices the
 * candidate sources work on, item metadata for filters and reasons (titles, tags, channels,
 * upload times, durations), the taken-down items, and the candidate-generation bundle's item
 * embeddings (for "Because you watched X" on DNN candidates).
 *
 * Indices 0..n-1 are the dataset's items (its index order); items first seen later (a watch of a
 * new upload, a retrieval hit upserted after training) get the next indices. Items written
 * through the catalogue API (`upsert`, from the catalogue store) carry their own metadata, which
 * replaces the dataset's; other later items have none: they pass no tag, channel, upload-time or
 * duration filter and are never nominated (`uncatalogued`): an id only seen in watch events
 * (e.g. a made-up "ghost-item-1") is counted but never recommended.
 */
import { join } from "node:path";
import { indexInSlices, readFloat32File, readJsonFile, type Dataset, type Holdout } from "@recsys/data";
import type { CatalogueItem } from "@recsys/user-store";

/** What the orchestrator reads from the bundle's manifest.json (see @recsys/candidate-gen bundle.ts). */
interface ManifestFields {
  readonly format: string;
  readonly modelVersion: string;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly holdout: Holdout;
  readonly dim: number;
  readonly itemIds: readonly string[];
  readonly files: { readonly itemEmbeddings: { readonly file: string; readonly rows: number; readonly cols: number } };
}

export const BUNDLE_FORMAT = "recsys-candidate-gen/1";

/** The parts of a candidate-generation bundle the orchestrator uses. */
export interface BundleInfo {
  readonly modelVersion: string;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly holdout: Holdout;
  readonly dim: number;
  readonly itemIds: readonly string[];
  /** itemIds.length × dim, row-major (the output item embeddings retrieval indexes). */
  readonly embeddings: Float32Array;
  /** Item id -> row of `embeddings`. */
  readonly rowOf: ReadonlyMap<string, number>;
}

/** Reads manifest.json and item_embeddings.f32 of a bundle directory; throws naming the problem. */
export async function loadBundleInfo(dir: string): Promise<BundleInfo> {
  const manifestPath = join(dir, "manifest.json");
  let manifest: ManifestFields;
  try {
    // Parsed off the event loop, the item ids rebuilt in slices: at 1M items the manifest is
    // 17.8 MB, ~0.5 s of JSON.parse that stalled every call in flight during a model rollout.
    manifest = (await readJsonFile(manifestPath, {
      strings: ["itemIds"],
      keep: ["format", "modelVersion", "datasetSpec", "datasetFingerprint", "holdout", "dim", "files", "itemIds"],
    })) as ManifestFields;
  } catch (error) {
    throw new Error(`cannot read the bundle manifest ${manifestPath}: ${(error as Error).message}`, { cause: error });
  }
  if (manifest.format !== BUNDLE_FORMAT) {
    throw new Error(`${manifestPath}: format ${JSON.stringify(manifest.format)}, expected ${JSON.stringify(BUNDLE_FORMAT)}`);
  }
  const { itemIds, dim } = manifest;
  if (!Array.isArray(itemIds) || !Number.isInteger(dim) || dim < 1) {
    throw new Error(`${manifestPath}: itemIds or dim missing or malformed`);
  }
  const file = join(dir, manifest.files.itemEmbeddings.file);
  let embeddings: Float32Array;
  try {
    embeddings = await readFloat32File(file, itemIds.length * dim);
  } catch (error) {
    throw new Error(`${(error as Error).message} (${itemIds.length} items × ${dim} floats)`, { cause: error });
  }
  const rowOf = await indexInSlices(itemIds);
  return {
    modelVersion: manifest.modelVersion,
    datasetSpec: manifest.datasetSpec,
    datasetFingerprint: manifest.datasetFingerprint,
    holdout: manifest.holdout,
    dim,
    itemIds,
    embeddings,
    rowOf,
  };
}

/**
 * Among `historyIds`, the item whose bundle embedding is most similar (cosine) to `itemId`'s:
 * the watched item that "explains" a DNN candidate. Undefined when either has no embedding.
 * Ties: the more recent history item (later in the list).
 */
export function nearestHistoryItem(bundle: BundleInfo, itemId: string, historyIds: readonly string[]): string | undefined {
  const row = bundle.rowOf.get(itemId);
  if (row === undefined) return undefined;
  const d = bundle.dim;
  const e = bundle.embeddings;
  const a = row * d;
  let normA = 0;
  for (let j = 0; j < d; j++) normA += e[a + j]! * e[a + j]!;
  if (normA === 0) return undefined;
  let best: string | undefined;
  let bestScore = -Infinity;
  for (let k = historyIds.length - 1; k >= 0; k--) {
    const h = historyIds[k]!;
    const hr = bundle.rowOf.get(h);
    if (hr === undefined || h === itemId) continue;
    const b = hr * d;
    let dot = 0;
    let normB = 0;
    for (let j = 0; j < d; j++) {
      dot += e[a + j]! * e[b + j]!;
      normB += e[b + j]! * e[b + j]!;
    }
    if (normB === 0) continue;
    const score = dot / Math.sqrt(normA * normB);
    if (score > bestScore) {
      bestScore = score;
      best = h;
    }
  }
  return best;
}

export class Catalogue {
  readonly dataset: Dataset;
  private readonly ids: string[];
  private readonly index = new Map<string, number>();
  private readonly geoCodes = new Map<string, number>();
  private deletedIds: ReadonlySet<string> = new Set();
  private readonly deletedIndex = new Set<number>();
  /** Taken down through the catalogue API (the file list is `deletedIds`). */
  private readonly apiDeletedIds = new Set<string>();
  /** Metadata written through the catalogue API, by index. */
  private readonly live = new Map<number, CatalogueItem>();
  /** Indices of items with no metadata at all (not dataset items, not upserted). */
  readonly uncatalogued: ReadonlySet<number> = new UncataloguedSet(this);

  constructor(dataset: Dataset) {
    this.dataset = dataset;
    this.ids = [...dataset.items.ids];
    this.ids.forEach((id, i) => this.index.set(id, i));
    dataset.users.geo.values.forEach((value, code) => this.geoCodes.set(value, code));
  }

  /** Number of known items (dataset + later ones). */
  get size(): number {
    return this.ids.length;
  }

  /** Number of dataset items (indices below it have metadata). */
  get datasetSize(): number {
    return this.dataset.items.ids.length;
  }

  indexOf(id: string): number | undefined {
    return this.index.get(id);
  }

  /** The item's index, allocating the next one for an id never seen. */
  intern(id: string): number {
    let i = this.index.get(id);
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(id);
      this.index.set(id, i);
      if (this.deletedIds.has(id)) this.deletedIndex.add(i);
    }
    return i;
  }

  id(index: number): string {
    const id = this.ids[index];
    if (id === undefined) throw new RangeError(`no catalogue item with index ${index}`);
    return id;
  }

  /** True for dataset items and items written through the catalogue API. */
  isCatalogued(index: number): boolean {
    return index < this.datasetSize || this.live.has(index);
  }

  /** The catalogue API's item at `index`, if it was upserted. */
  liveItem(index: number): CatalogueItem | undefined {
    return this.live.get(index);
  }

  /** Number of items upserted through the catalogue API (and not taken down). */
  get liveCount(): number {
    return this.live.size;
  }

  /** Metadata from the catalogue API (replaces the dataset's); returns the items' indices. */
  upsert(items: readonly CatalogueItem[]): number[] {
    return items.map((item) => {
      const i = this.intern(item.itemId);
      this.live.set(i, item);
      if (this.apiDeletedIds.delete(item.itemId) && !this.deletedIds.has(item.itemId)) this.deletedIndex.delete(i);
      return i;
    });
  }

  /** Takedowns from the catalogue API (kept apart from the file's list, which `setDeleted` replaces). */
  deleteIds(ids: readonly string[]): void {
    for (const id of ids) {
      this.apiDeletedIds.add(id);
      const i = this.intern(id);
      this.live.delete(i);
      this.deletedIndex.add(i);
    }
  }

  /** The item's title, or its id in quotes when the catalogue has no title. */
  displayTitle(index: number): string {
    const live = this.live.get(index);
    const title = live !== undefined ? (live.title ?? "") : index < this.datasetSize ? this.dataset.items.titles[index]! : "";
    return title !== "" ? title : `"${this.id(index)}"`;
  }

  channel(index: number): string | undefined {
    const live = this.live.get(index);
    if (live !== undefined) return live.channel;
    if (index >= this.datasetSize) return undefined;
    const code = this.dataset.items.channel.codes[index]!;
    return code < 0 ? undefined : this.dataset.items.channel.values[code];
  }

  tags(index: number): string[] {
    const live = this.live.get(index);
    if (live !== undefined) return [...(live.tags ?? [])];
    if (index >= this.datasetSize) return [];
    const { tagOffsets, tagCodes, tagValues } = this.dataset.items;
    const out: string[] = [];
    for (let k = tagOffsets[index]!; k < tagOffsets[index + 1]!; k++) out.push(tagValues[tagCodes[k]!]!);
    return out;
  }

  /** Unix seconds; NaN when unknown. */
  uploadTimestamp(index: number): number {
    const live = this.live.get(index);
    if (live !== undefined) return live.uploadTimestamp ?? Number.NaN;
    return index < this.datasetSize ? this.dataset.items.uploadTimestamp[index]! : Number.NaN;
  }

  /** Seconds; NaN when unknown. */
  durationSeconds(index: number): number {
    const live = this.live.get(index);
    if (live !== undefined) return live.durationSeconds ?? Number.NaN;
    return index < this.datasetSize ? this.dataset.items.durationSeconds[index]! : Number.NaN;
  }

  /** The dataset's geo code of a geography value ("94" for ml-100k zip prefixes), if known. */
  geoCode(value: string): number | undefined {
    if (value === "") return undefined;
    let code = this.geoCodes.get(value);
    // A value the dataset does not know (or no dataset: a start from the stores) gets the next
    // code, so "trending in your area" works for geographies learnt from profiles.
    if (code === undefined) {
      code = this.dataset.users.geo.values.length + this.geoCodes.size;
      this.geoCodes.set(value, code);
    }
    return code;
  }

  /** Replaces the taken-down items of the file (DELETED_ITEMS_FILE); API takedowns stay. */
  setDeleted(ids: ReadonlySet<string>): void {
    this.deletedIds = ids;
    this.deletedIndex.clear();
    for (const id of [...ids, ...this.apiDeletedIds]) {
      const i = this.index.get(id);
      if (i !== undefined) this.deletedIndex.add(i);
    }
  }

  isDeletedId(id: string): boolean {
    return this.deletedIds.has(id) || this.apiDeletedIds.has(id);
  }

  /** Indices of taken-down items. */
  get deleted(): ReadonlySet<number> {
    return this.deletedIndex;
  }

  get deletedCount(): number {
    let n = this.deletedIds.size;
    for (const id of this.apiDeletedIds) if (!this.deletedIds.has(id)) n++;
    return n;
  }
}

/** The uncatalogued indices as a set view (only `has` is used by exclusions). */
class UncataloguedSet implements ReadonlySet<number> {
  constructor(private readonly catalogue: Catalogue) {}
  has(item: number): boolean {
    return !this.catalogue.isCatalogued(item);
  }
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.catalogue.size; i++) if (this.has(i)) n++;
    return n;
  }
  *values(): SetIterator<number> {
    for (let i = 0; i < this.catalogue.size; i++) if (this.has(i)) yield i;
  }
  keys(): SetIterator<number> {
    return this.values();
  }
  *entries(): SetIterator<[number, number]> {
    for (const i of this.values()) yield [i, i];
  }
  [Symbol.iterator](): SetIterator<number> {
    return this.values();
  }
  forEach(callback: (value: number, key: number, set: ReadonlySet<number>) => void, thisArg?: unknown): void {
    for (const i of this.values()) callback.call(thisArg, i, i, this);
  }
}

/** Parses a taken-down items file: one id per line, blank lines and `#` comments ignored. */
export function parseDeletedItems(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line !== "") out.add(line);
  }
  return out;
}
