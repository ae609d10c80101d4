/**
 * Recall of the retrieval stage as served: the HNSW indexes the shards saved in INDEX_DIR (the
 * very files the stack loaded), queried with real user vectors (EmbedUser answers), merged over
 * the shards as the orchestrator merges them, against exact maximum-inner-product search over
 * the bundle's item embeddings (brute force, same shards). Per ef: mean recall@k and sequential
 * queries per second (all shards searched one after the other, as one Search fan-out would cost
 * on one core).
 */
import { BruteForceIndex, loadHnswIndex, mergeShardHits, shardItems, type HnswIndex, type SearchHit } from "@recsys/ann";
import { indexPath } from "@recsys/retrieval-service";

export interface ServedAnnOptions {
  readonly indexDir: string;
  readonly modelVersion: string;
  readonly shards: number;
  /** The bundle's items: ids in row order and row-major embeddings. */
  readonly itemIds: readonly string[];
  readonly embeddings: Float32Array;
  readonly dim: number;
  readonly queries: readonly Float32Array[];
  readonly efs: readonly number[];
  readonly k?: number;
  readonly log?: (message: string) => void;
}

export interface ServedAnnResult {
  readonly ef: number;
  readonly recall_at_100: number;
  readonly qps: number;
}

export async function servedAnnRecall(
  options: ServedAnnOptions,
): Promise<{ results: ServedAnnResult[]; bruteForceQps: number; items: number }> {
  const k = options.k ?? 100;
  const log = options.log ?? (() => undefined);
  const all = { ids: options.itemIds, vectors: options.embeddings, dim: options.dim };
  const hnsw: HnswIndex[] = [];
  const exact: BruteForceIndex[] = [];
  for (let shard = 0; shard < options.shards; shard++) {
    hnsw.push(
      await loadHnswIndex(indexPath(options.indexDir, options.modelVersion, shard, options.shards), {
        expectedModelVersion: options.modelVersion,
        expectedDim: options.dim,
      }),
    );
    exact.push(BruteForceIndex.build(shardItems(all, shard, options.shards), { modelVersion: options.modelVersion }));
  }
  const items = hnsw.reduce((s, index) => s + index.size(), 0);
  log(`ANN: ${options.queries.length} user vectors over ${items} items in ${options.shards} shards (loaded from ${options.indexDir})`);

  let started = performance.now();
  const truth: Set<string>[] = options.queries.map(
    (q) =>
      new Set(
        mergeShardHits(
          exact.map((index) => index.search(q, k)),
          k,
        ).map((h) => h.id),
      ),
  );
  const bruteForceQps = options.queries.length / ((performance.now() - started) / 1000);

  const results: ServedAnnResult[] = [];
  for (const ef of options.efs) {
    for (const index of hnsw) index.ef = ef;
    let found = 0;
    let expected = 0;
    started = performance.now();
    const answers: SearchHit[][] = options.queries.map((q) =>
      mergeShardHits(
        hnsw.map((index) => index.search(q, k)),
        k,
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    answers.forEach((hits, i) => {
      const want = truth[i]!;
      expected += want.size;
      for (const hit of hits) if (want.has(hit.id)) found += 1;
    });
    const recall = expected === 0 ? NaN : found / expected;
    results.push({ ef, recall_at_100: Number(recall.toFixed(4)), qps: Math.round(options.queries.length / seconds) });
    log(`ANN ef ${ef}: recall@${k} ${recall.toFixed(4)}, ${Math.round(options.queries.length / seconds)} q/s`);
  }
  return { results, bruteForceQps, items };
}
