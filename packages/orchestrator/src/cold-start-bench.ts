/**
 * How often a new upload reaches its intended audience's top 50 through the DNN path with the
 * content embedding of cold-embedding.ts, on the synthetic generator (which knows each item's
 * topic: the first tag).
 *
 *   node packages/orchestrator/dist/cold-start-bench.js [--spec users=..,items=..] [--new 150] [--audience 40] [--epochs 3]
 *
 * 1. Generate the dataset; pick `--new` items with events at random (seeded) as "new uploads":
 *    their events are removed, and the model is trained on the rest (so it has never seen them).
 * 2. Each new item gets a vector from its content (tags, channel, title words) against the
 *    trained bundle, exactly as UpsertItems computes it.
 * 3. Its audience: up to `--audience` users whose training watches are mostly of its topic.
 *    For each, the user vector of the trained model (their watches) scores every trained item and
 *    the new item; a hit when the new item ranks in the top 50 among the items the user has not
 *    watched.
 * Printed beside it: the same rate for a random vector of the same norm (no content), for the
 *    topic's own trained items (a reference: established items of that topic, same audience) and
 *    chance (50 / trained items).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBundle, saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { datasetFromEvents, generateSynthetic, parseSyntheticSpec, type Dataset } from "@recsys/data";
import { dnnFromBundle } from "@recsys/ranking";
import { initBackend } from "@recsys/tf";
import { Catalogue, loadBundleInfo } from "./catalogue.js";
import { ColdEmbedder } from "./cold-embedding.js";

function arg(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tagsOf(d: Dataset, i: number): string[] {
  const out: string[] = [];
  for (let k = d.items.tagOffsets[i]!; k < d.items.tagOffsets[i + 1]!; k++) out.push(d.items.tagValues[d.items.tagCodes[k]!]!);
  return out;
}

async function main(argv: string[]): Promise<void> {
  const spec = arg(argv, "spec", "users=3000,items=1500,events=30,topics=20,seed=11");
  const newCount = Number(arg(argv, "new", "150"));
  const audienceSize = Number(arg(argv, "audience", "40"));
  const epochs = Number(arg(argv, "epochs", "3"));
  const K = 50;
  const started = performance.now();
  await initBackend({ log: null });
  const full = generateSynthetic(`synthetic:${spec}`, parseSyntheticSpec(spec));
  const { items, users, events } = full;
  const random = rng(1234);
  const watchedItems = new Set<number>();
  for (let r = 0; r < events.item.length; r++) watchedItems.add(events.item[r]!);
  const candidates = [...watchedItems].sort((a, b) => a - b);
  for (let i = candidates.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
  }
  const fresh = new Set(candidates.slice(0, newCount));

  // The training dataset: every item and event but the new uploads.
  const itemList = [];
  for (let i = 0; i < items.ids.length; i++) {
    if (fresh.has(i)) continue;
    const code = items.channel.codes[i]!;
    itemList.push({
      id: items.ids[i]!,
      title: items.titles[i]!,
      tags: tagsOf(full, i),
      ...(code >= 0 ? { channel: items.channel.values[code]! } : {}),
      uploadTimestamp: items.uploadTimestamp[i]!,
      durationSeconds: items.durationSeconds[i]!,
    });
  }
  const userList = users.ids.map((id, u) => ({
    id,
    ...(Number.isFinite(users.age[u]!) ? { age: users.age[u]! } : {}),
    ...(users.gender.codes[u]! >= 0 ? { gender: users.gender.values[users.gender.codes[u]!]! } : {}),
    ...(users.occupation.codes[u]! >= 0 ? { occupation: users.occupation.values[users.occupation.codes[u]!]! } : {}),
    ...(users.geo.codes[u]! >= 0 ? { geo: users.geo.values[users.geo.codes[u]!]! } : {}),
  }));
  const kept = [];
  for (let r = 0; r < events.item.length; r++) {
    if (fresh.has(events.item[r]!)) continue;
    kept.push({
      user: users.ids[events.user[r]!]!,
      item: items.ids[events.item[r]!]!,
      timestamp: events.timestamp[r]!,
      weight: events.weight[r]!,
    });
  }
  const train = datasetFromEvents(kept, { items: itemList, users: userList, spec: `cold-start:${spec}` });
  process.stdout.write(
    `dataset ${spec}: ${items.ids.length} items (${fresh.size} held out as new uploads), ${kept.length} training events\n`,
  );

  const result = await trainCandidateGen(train, {
    holdout: "none",
    epochs,
    batchSize: 256,
    negatives: 50,
    seed: 5,
    model: { embeddingDim: 32, searchDim: 8, categoricalDim: 8, tower: [64, 32], finalActivation: "linear" },
  });
  const dir = await mkdtemp(join(tmpdir(), "cold-start-"));
  try {
    await saveBundle(dir, result);
    result.model.dispose();
    const info = await loadBundleInfo(dir);
    const bundle = await loadBundle(dir);
    const catalogue = new Catalogue(train);
    const embedder = ColdEmbedder.build(info, catalogue);
    const dnn = dnnFromBundle(bundle, train);
    const d = info.dim;
    const topicOf = (tags: readonly string[]): string => tags[0] ?? "";

    // Each user's training watches (train indices) and dominant topic.
    const watched = new Map<number, number[]>();
    for (let r = 0; r < train.events.user.length; r++) {
      const u = train.events.user[r]!;
      let list = watched.get(u);
      if (list === undefined) watched.set(u, (list = []));
      list.push(train.events.item[r]!);
    }
    const dominant = new Map<number, string>();
    for (const [u, list] of watched) {
      const counts = new Map<string, number>();
      for (const i of list) {
        const t = topicOf(tagsOf(train, i));
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      let best = "";
      let bestN = -1;
      for (const [t, n] of counts) if (n > bestN) [best, bestN] = [t, n];
      dominant.set(u, best);
    }
    const audienceOf = new Map<string, number[]>();
    for (const [u, t] of dominant) {
      let list = audienceOf.get(t);
      if (list === undefined) audienceOf.set(t, (list = []));
      list.push(u);
    }
    const asOf = Math.max(...Array.from(train.events.timestamp)) + 1;
    const userVectors = new Map<number, Float32Array>();
    const userVector = (u: number): Float32Array => {
      let v = userVectors.get(u);
      if (v === undefined) {
        v = dnn.userVector({ user: u, history: watched.get(u) ?? [], asOf, budget: 0 }) as Float32Array;
        userVectors.set(u, v);
      }
      return v;
    };
    const rowOfTrain = new Int32Array(train.items.ids.length).fill(-1);
    train.items.ids.forEach((id, i) => (rowOfTrain[i] = info.rowOf.get(id) ?? -1));
    /** Rank (0-based) of a vector among the trained items the user has not watched. */
    const rankOf = (u: number, vector: ArrayLike<number>, self?: number): number => {
      const uv = userVector(u);
      let s = 0;
      for (let j = 0; j < d; j++) s += uv[j]! * vector[j]!;
      const seen = new Set(watched.get(u) ?? []);
      let better = 0;
      for (let i = 0; i < train.items.ids.length; i++) {
        if (i === self || seen.has(i)) continue;
        const row = rowOfTrain[i]!;
        if (row < 0) continue;
        let t = 0;
        for (let j = 0; j < d; j++) t += uv[j]! * info.embeddings[row * d + j]!;
        if (t > s) better++;
      }
      return better;
    };
    let norm = 0;
    for (let k = 0; k < info.embeddings.length; k++) norm += info.embeddings[k]! * info.embeddings[k]!;
    const meanNorm = Math.sqrt(norm / info.itemIds.length);

    const tally = { content: [0, 0], random: [0, 0], established: [0, 0], embedded: 0 };
    for (const item of fresh) {
      const tags = tagsOf(full, item);
      const code = items.channel.codes[item]!;
      const vector = embedder.embed({ tags, title: items.titles[item]!, ...(code >= 0 ? { channel: items.channel.values[code]! } : {}) });
      const audience = (audienceOf.get(topicOf(tags)) ?? []).slice(0, audienceSize);
      if (vector === undefined || audience.length === 0) continue;
      tally.embedded++;
      const rand = Array.from({ length: d }, () => random() * 2 - 1);
      const rn = Math.sqrt(rand.reduce((a, v) => a + v * v, 0));
      const randVec = rand.map((v) => (v * meanNorm) / rn);
      // An established item of the same topic (the reference), drawn at random.
      const sameTopic = [];
      for (let i = 0; i < train.items.ids.length; i++)
        if (topicOf(tagsOf(train, i)) === topicOf(tags) && rowOfTrain[i]! >= 0) sameTopic.push(i);
      const established = sameTopic[Math.floor(random() * sameTopic.length)]!;
      const estRow = rowOfTrain[established]!;
      const estVec = info.embeddings.subarray(estRow * d, estRow * d + d);
      for (const u of audience) {
        tally.content[1]!++;
        if (rankOf(u, vector) < K) tally.content[0]!++;
        tally.random[1]!++;
        if (rankOf(u, randVec) < K) tally.random[0]!++;
        if (!(watched.get(u) ?? []).includes(established)) {
          tally.established[1]!++;
          if (rankOf(u, estVec, established) < K) tally.established[0]!++;
        }
      }
    }
    const pct = ([hit, n]: number[]): string => `${((100 * hit!) / Math.max(1, n!)).toFixed(1)}% (${hit}/${n})`;
    process.stdout.write(
      [
        `new items embedded from content: ${tally.embedded}/${fresh.size}; trained items: ${info.itemIds.length}; dim ${d}; ${epochs} epochs`,
        `new item in its audience's top ${K} (content embedding):  ${pct(tally.content)}`,
        `same, random vector of the same norm (no content):       ${pct(tally.random)}`,
        `reference, an established item of the same topic:        ${pct(tally.established)}`,
        `chance (${K} / trained items):                              ${((100 * K) / info.itemIds.length).toFixed(1)}%`,
        `seconds: ${((performance.now() - started) / 1000).toFixed(1)}`,
      ].join("\n") + "\n",
    );
    bundle.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`cold-start-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
