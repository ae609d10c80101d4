import type { Dataset } from "@recsys/data";

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

/**
 * The item metadata the ranker reads (upload time, channel, tags), by external item id: a snapshot
 * of the dataset's item table stored with the ranker, so that the ranking service needs no other
 * catalogue. Items it does not know have unknown upload time, channel and tags.
 */
export class Catalog {
  private readonly index = new Map<string, number>();

  constructor(
    readonly ids: readonly string[],
    readonly upload: Float64Array,
    readonly channel: Int32Array,
    readonly channels: readonly string[],
    readonly tagOffsets: Int32Array,
    readonly tagCodes: Int32Array,
    readonly tags: readonly string[],
  ) {
    const n = ids.length;
    if (upload.length !== n || channel.length !== n || tagOffsets.length !== n + 1) throw new Error("Catalog: column lengths do not match the ids");
    ids.forEach((id, i) => {
      if (this.index.has(id)) throw new Error(`Catalog: duplicate item id "${id}"`);
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
    if (json === null || typeof json !== "object" || !Array.isArray(json.ids)) throw new Error("Catalog.fromJSON: expected { ids, upload, channel, ... }");
    return new Catalog(
      json.ids,
      Float64Array.from(json.upload, (v) => (v === null ? NaN : v)),
      Int32Array.from(json.channel),
      json.channels,
      Int32Array.from(json.tagOffsets),
      Int32Array.from(json.tagCodes),
      json.tags,
    );
  }
}
