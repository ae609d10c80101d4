import { indexInSlices, type Dataset } from "@recsys/data";

const duplicateId = (id: string): Error => new Error(`Catalog: duplicate item id "${id}"`);

/** JSON form of a {@link Catalog}. */
export interface CatalogJson {
  readonly ids: readonly string[];
  /** Upload time per item, null when unknown. */
  readonly upload: readonly (number | null)[];
  /** Channel code per item (index into `channels`), -1 when unknown. */
  readonly channel: readonly number[];
  readonly channels: readonly string[];
  /** Tags as CSR: tags of item i are tagCodes[tagOffsets[i] .. tagOffsets[i+1]) (indices into `tags`). */
  readonly tagOffsets: readonly number[];
  readonly tagCodes: readonly number[];
  readonly tags: readonly string[];
}

/** The numeric columns of a CatalogJson as a reader may hold them: arrays or typed arrays. */
interface CatalogColumns {
  readonly upload: readonly (number | null)[] | Float64Array;
  readonly channel: readonly number[] | Int32Array;
  readonly tagOffsets: readonly number[] | Int32Array;
  readonly tagCodes: readonly number[] | Int32Array;
}

/**
 * The item metadata the ranker reads (upload time, channel, tags), by external item id: a snapshot
 * of the dataset's item table stored with the ranker, so that the ranking service needs no other
 * catalogue. Items it does not know have unknown upload time, channel and tags.
 */
export class Catalog {
  private readonly index: Map<string, number>;

  constructor(
    readonly ids: readonly string[],
    readonly upload: Float64Array,
    readonly channel: Int32Array,
    readonly channels: readonly string[],
    readonly tagOffsets: Int32Array,
    readonly tagCodes: Int32Array,
    readonly tags: readonly string[],
    /** id → position of `ids`, built by the caller (`fromJSONInSlices`); built here when absent. */
    index?: Map<string, number>,
  ) {
    const n = ids.length;
    if (upload.length !== n || channel.length !== n || tagOffsets.length !== n + 1)
      throw new Error("Catalog: column lengths do not match the ids");
    if (index !== undefined) {
      this.index = index;
      return;
    }
    this.index = new Map();
    ids.forEach((id, i) => {
      if (this.index.has(id)) throw duplicateId(id);
      this.index.set(id, i);
    });
  }

  static fromDataset(dataset: Dataset): Catalog {
    const it = dataset.items;
    return new Catalog(
      it.ids,
      Float64Array.from(it.uploadTimestamp),
      Int32Array.from(it.channel.codes),
      it.channel.values,
      Int32Array.from(it.tagOffsets),
      Int32Array.from(it.tagCodes),
      it.tagValues,
    );
  }

  /** Catalogue index of an external id, -1 when unknown. */
  indexOf(id: string): number {
    return this.index.get(id) ?? -1;
  }

  toJSON(): CatalogJson {
    return {
      ids: [...this.ids],
      upload: Array.from(this.upload, (v) => (Number.isFinite(v) ? v : null)),
      channel: Array.from(this.channel),
      channels: [...this.channels],
      tagOffsets: Array.from(this.tagOffsets),
      tagCodes: Array.from(this.tagCodes),
      tags: [...this.tags],
    };
  }

  static fromJSON(json: CatalogJson): Catalog {
    Catalog.checkJSON(json);
    return Catalog.fromColumns(json);
  }

  /**
   * {@link fromJSON}, the ids indexed in slices with yields to the event loop between them
   * (`indexInSlices`): the ranking stage loads a new ranker while it serves.
   */
  static async fromJSONInSlices(json: CatalogJson): Promise<Catalog> {
    Catalog.checkJSON(json);
    return Catalog.fromColumns(json, await indexInSlices(json.ids, { duplicate: duplicateId }));
  }

  private static checkJSON(json: CatalogJson): void {
    if (json === null || typeof json !== "object" || !Array.isArray(json.ids))
      throw new Error("Catalog.fromJSON: expected { ids, upload, channel, ... }");
  }

  private static fromColumns(json: CatalogJson, index?: Map<string, number>): Catalog {
    // A column may arrive as a typed array already (readJsonFile's `numbers`): taken as it is.
    const { upload, channel, tagOffsets, tagCodes } = json as CatalogColumns;
    return new Catalog(
      json.ids,
      upload instanceof Float64Array ? upload : Float64Array.from(upload, (v) => (v === null ? NaN : v)),
      channel instanceof Int32Array ? channel : Int32Array.from(channel),
      json.channels,
      tagOffsets instanceof Int32Array ? tagOffsets : Int32Array.from(tagOffsets),
      tagCodes instanceof Int32Array ? tagCodes : Int32Array.from(tagCodes),
      json.tags,
      index,
    );
  }
}
