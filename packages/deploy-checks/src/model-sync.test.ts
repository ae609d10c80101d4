/**
 * The model publishing path without ReadWriteMany storage: deploy/models/publish-bundle.sh writes
 * an archive, its SHA-256 and the pointer to a store; k8s/components/model-sync/model-sync.mjs (the
 * stages' init container and sidecar) fetches it over HTTP, verifies it and installs it, with the
 * retrieval shard's prebuilt index. Run for real against a store served on loopback.
 */
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY_DIR, K8S_DIR } from "./paths.js";

const run = promisify(execFile);
const PUBLISH = join(DEPLOY_DIR, "models", "publish-bundle.sh");
const SYNC = join(K8S_DIR, "components", "model-sync", "model-sync.mjs");

let root: string;
let store: string;
let server: Server;
let storeUrl: string;
const requests: string[] = [];

async function makeBundle(version: string): Promise<string> {
  const dir = join(root, "train", version);
  await mkdir(join(dir, "ranker"), { recursive: true });
  await writeFile(join(dir, "manifest.json"), JSON.stringify({ modelVersion: version, format: "test" }));
  await writeFile(join(dir, "item-embeddings.bin"), Buffer.alloc(4096, 7));
  await writeFile(join(dir, "ranker", "manifest.json"), JSON.stringify({ modelVersion: `rk-${version}` }));
  for (const shard of ["shard-0-of-2", "shard-1-of-2"]) {
    await mkdir(join(root, "index", version, shard), { recursive: true });
    await writeFile(join(root, "index", version, shard, "index.json"), JSON.stringify({ shard }));
  }
  await writeFile(join(root, "index", version, "shard-0-of-2.upserts.jsonl"), "{}\n");
  return dir;
}

async function sync(pod: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, [SYNC], {
      env: {
        PATH: process.env["PATH"] ?? "",
        MODEL_STORE_URL: storeUrl,
        MODEL_ROOT: join(root, pod, "models"),
        MODEL_SYNC_MODE: "once",
        ...env,
      },
    });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "recsys-model-sync-"));
  const served = join(root, "store");
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers["authorization"] ?? ""}`);
    if (req.method === "PUT") {
      // A writable store (MinIO, WebDAV, a presigned URL): the body becomes the file.
      const target = normalize(join(served, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        void mkdir(dirname(target), { recursive: true })
          .then(() => writeFile(target, Buffer.concat(chunks)))
          .then(() => res.writeHead(201).end());
      });
      return;
    }
    const path = normalize(join(served, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
    if (!path.startsWith(served) || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  storeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/recsys`;
  store = join(served, "recsys");
});

afterAll(async () => {
  server?.close();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("publish-bundle.sh and model-sync.mjs", () => {
  it("publishes a bundle with its shards' indexes, and a pod installs it and its own shard's index", async () => {
    await run(PUBLISH, [await makeBundle("cg-1"), store, join(root, "index")]);
    const pointer = JSON.parse(await readFile(join(store, "current.json"), "utf8")) as { version: string; bundle: string; sha256: string };
    expect(pointer).toMatchObject({ version: "cg-1", bundle: "bundles/cg-1.tar.gz" });
    const { stdout: listing } = await run("tar", ["-tzf", join(store, pointer.bundle)]);
    expect(listing).toMatch(/^bundle\/indexes\/shard-1-of-2\/index\.json$/m);
    expect(listing).not.toMatch(/upserts/);

    const result = await sync("retrieval-1-0", {
      INDEX_DIR: join(root, "retrieval-1-0", "index"),
      SHARD_INDEX: "1",
      SHARD_COUNT: "2",
      MODEL_STORE_AUTH_HEADER: "Authorization: Bearer t0k",
    });
    expect(result.code, result.stdout).toBe(0);
    const models = join(root, "retrieval-1-0", "models");
    expect(await readlink(join(models, "current"))).toBe("cg-1");
    expect(JSON.parse(await readFile(join(models, "current", "ranker", "manifest.json"), "utf8"))).toEqual({ modelVersion: "rk-cg-1" });
    // Its own shard's prebuilt index only, where the retrieval stage looks for it (<bundle>/indexes/).
    expect(JSON.parse(await readFile(join(models, "current", "indexes", "shard-1-of-2", "index.json"), "utf8"))).toEqual({
      shard: "shard-1-of-2",
    });
    expect(existsSync(join(models, "current", "indexes", "shard-0-of-2"))).toBe(false);
    expect(requests.at(-1)).toBe("GET /recsys/bundles/cg-1.tar.gz Bearer t0k");
  });

  it("does nothing when the pointer names the current version; installs a new one and keeps MODEL_KEEP", async () => {
    const before = requests.length;
    expect((await sync("ranking-a")).code).toBe(0);
    expect(existsSync(join(root, "ranking-a", "models", "current", "indexes"))).toBe(false); // not a retrieval pod
    expect((await sync("ranking-a")).code).toBe(0);
    expect(requests.slice(before).filter((r) => r.includes("tar.gz"))).toHaveLength(1);
    for (const version of ["cg-2", "cg-3"]) {
      await run(PUBLISH, [await makeBundle(version), store]);
      expect((await sync("ranking-a", { MODEL_KEEP: "2" })).code).toBe(0);
    }
    const models = join(root, "ranking-a", "models");
    expect(await readlink(join(models, "current"))).toBe("cg-3");
    expect([existsSync(join(models, "cg-1")), existsSync(join(models, "cg-2")), existsSync(join(models, "cg-3"))]).toEqual([
      false,
      true,
      true,
    ]);
  });

  it("refuses an archive whose SHA-256 differs from the pointer's, and a bundle of another version; the old one stays current", async () => {
    const pointerFile = join(store, "current.json");
    const good = await readFile(pointerFile, "utf8");
    await run(PUBLISH, [await makeBundle("cg-4"), store]);
    const pointer = JSON.parse(await readFile(pointerFile, "utf8")) as { sha256: string };
    await writeFile(pointerFile, JSON.stringify({ ...pointer, sha256: "0".repeat(64) }));
    const bad = await sync("ranking-a");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/SHA-256 [0-9a-f]{64}, the pointer says 0{64}: not installed/);
    expect(await readlink(join(root, "ranking-a", "models", "current"))).toBe("cg-3");

    await writeFile(pointerFile, JSON.stringify({ ...pointer, version: "cg-5" }));
    const mislabelled = await sync("ranking-a");
    expect(mislabelled.code).toBe(1);
    expect(mislabelled.stdout).toMatch(/modelVersion \\"cg-4\\", the pointer says cg-5/);
    expect(await readlink(join(root, "ranking-a", "models", "current"))).toBe("cg-3");
    expect(existsSync(join(root, "ranking-a", "models", ".staging-cg-5"))).toBe(false);
    await writeFile(pointerFile, good);
  });

  it("publishes from a pod (MODEL_SYNC_MODE=publish: the training job) what another pod then installs", async () => {
    // The training job's volume: /models/<version>/ with current -> <version>.
    const trainer = join(root, "trainer", "models");
    await mkdir(trainer, { recursive: true });
    const { stdout: cp } = await run("cp", ["-r", await makeBundle("cg-9"), join(trainer, "cg-9")]);
    expect(cp).toBe("");
    await run("ln", ["-sfn", "cg-9", join(trainer, "current")]);
    await mkdir(join(trainer, "cg-9", "indexes", "shard-0-of-2"), { recursive: true });
    await writeFile(join(trainer, "cg-9", "indexes", "shard-0-of-2", "index.json"), "{}");
    await writeFile(join(trainer, "retrain-status.json"), JSON.stringify({ outcome: "published" }));
    const published = await sync("trainer", { MODEL_SYNC_MODE: "publish", MODEL_STORE_AUTH_HEADER: "Authorization: Bearer pub" });
    expect(published.code, published.stdout).toBe(0);
    expect(requests.slice(-3)).toEqual([
      "PUT /recsys/bundles/cg-9.tar.gz Bearer pub",
      "PUT /recsys/current.json Bearer pub",
      "PUT /recsys/retrain-status.json Bearer pub",
    ]);
    // A refused run publishes its report only.
    await writeFile(join(trainer, "retrain-status.json"), JSON.stringify({ outcome: "refused" }));
    expect((await sync("trainer", { MODEL_SYNC_MODE: "publish", MODEL_PUBLISH_BUNDLE: "0" })).code).toBe(0);
    expect(requests.at(-1)).toBe("PUT /recsys/retrain-status.json ");
    expect((await sync("retrieval-0-0", { INDEX_DIR: "/unused", SHARD_INDEX: "0", SHARD_COUNT: "2" })).code).toBe(0);
    expect(await readlink(join(root, "retrieval-0-0", "models", "current"))).toBe("cg-9");
    expect(existsSync(join(root, "retrieval-0-0", "models", "cg-9", "indexes", "shard-0-of-2", "index.json"))).toBe(true);
    // The run report lands beside the bundles, where the retrieval stage reads it.
    expect(JSON.parse(await readFile(join(root, "retrieval-0-0", "models", "retrain-status.json"), "utf8"))).toEqual({
      outcome: "refused",
    });
  });

  it("refuses to publish a bundle without its ranker", async () => {
    const dir = join(root, "train", "no-ranker");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "manifest.json"), JSON.stringify({ modelVersion: "cg-x" }));
    await expect(run(PUBLISH, [dir, store])).rejects.toMatchObject({ stderr: expect.stringMatching(/ranker not found/) });
  });
});
