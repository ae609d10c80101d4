// model-sync: fetches the published model bundle into the pod's model volume (an emptyDir), so that
// no ReadWriteMany storage is needed and nobody flips a symlink by hand. Runs in the stage's own
// image (Node.js, tar and gzip are there), as an init container (MODEL_SYNC_MODE=once: the stage
// starts with a model) and as a sidecar (MODEL_SYNC_MODE=watch: later versions arrive by
// themselves; the stages already poll MODEL_PATH=/models/current).
//
// The store is plain HTTP(S) (an object store bucket or gateway: S3/GCS/Azure through a public-read
// or in-cluster gateway, MinIO, any static file server), laid out by deploy/models/publish-bundle.sh:
//   <MODEL_STORE_URL>/current.json        {"version": "<modelVersion>", "bundle": "bundles/<v>.tar.gz", "sha256": "<hex>"}
//   <MODEL_STORE_URL>/bundles/<v>.tar.gz  bundle/: the bundle with its ranker/ and, when published
//                                         with them, its prebuilt retrieval indexes
//                                         (bundle/indexes/shard-<i>-of-<n>/, which retrieval loads
//                                         instead of building an index)
// A version is installed only when the archive's SHA-256 equals the pointer's and its manifest's
// modelVersion equals the pointer's version; otherwise the old version keeps serving (watch) or the
// init container fails and is retried (once). Installing: extract beside the others, keep only this
// pod's own shard's prebuilt index (retrieval pods: INDEX_DIR, SHARD_INDEX and SHARD_COUNT come
// from the stage's ConfigMap; other stages keep none), then point `current` at the version with an
// atomic rename of a new symlink. The newest MODEL_KEEP versions are kept (rollback = publish
// the old pointer again: it is still on disk, so it is instant).
//
// MODEL_SYNC_MODE=publish is the other direction, for the training job on a cluster without shared
// storage: it archives the bundle MODEL_ROOT/current points at (with its prebuilt indexes), uploads
// bundles/<version>.tar.gz with HTTP PUT, then current.json (the same layout as
// deploy/models/publish-bundle.sh, which does this from a workstation or CI). The training job's
// run report, MODEL_ROOT/retrain-status.json, is uploaded too when present (MODEL_PUBLISH_BUNDLE=0:
// only the report, for a run whose candidate was refused), and every syncing pod installs the
// store's copy beside its bundles, where the retrieval stage reads it (its retrain gauges).
//
// Environment: MODEL_STORE_URL (required), MODEL_STORE_AUTH_HEADER ("Name: value", optional, from a
// Secret), MODEL_ROOT (/models), MODEL_SYNC_MODE (once|watch|publish), MODEL_SYNC_INTERVAL (seconds, 30),
// MODEL_KEEP (2), and for retrieval INDEX_DIR (its presence marks a retrieval pod), SHARD_INDEX,
// SHARD_COUNT.
// Tested by packages/deploy-checks (model-sync.test.ts) against a local HTTP server.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

const VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

function log(level, msg, fields = {}) {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, component: "model-sync", msg, ...fields }) + "\n");
}

function config(env) {
  const base = env.MODEL_STORE_URL;
  if (base === undefined || !/^https?:\/\//.test(base))
    throw new Error("MODEL_STORE_URL must be an http(s) URL (the directory holding current.json)");
  const mode = env.MODEL_SYNC_MODE ?? "watch";
  if (mode !== "once" && mode !== "watch" && mode !== "publish")
    throw new Error(`MODEL_SYNC_MODE is once, watch or publish, not "${mode}"`);
  const interval = Number(env.MODEL_SYNC_INTERVAL ?? "30");
  const keep = Number(env.MODEL_KEEP ?? "2");
  if (!(interval > 0)) throw new Error("MODEL_SYNC_INTERVAL must be a positive number of seconds");
  if (!Number.isInteger(keep) || keep < 1) throw new Error("MODEL_KEEP must be an integer >= 1");
  const headers = {};
  if (env.MODEL_STORE_AUTH_HEADER) {
    const colon = env.MODEL_STORE_AUTH_HEADER.indexOf(":");
    if (colon <= 0) throw new Error('MODEL_STORE_AUTH_HEADER must be "Name: value"');
    headers[env.MODEL_STORE_AUTH_HEADER.slice(0, colon).trim()] = env.MODEL_STORE_AUTH_HEADER.slice(colon + 1).trim();
  }
  const shardTag = env.INDEX_DIR ? `shard-${Number(env.SHARD_INDEX ?? "0")}-of-${Number(env.SHARD_COUNT ?? "1")}` : undefined;
  return { base: base.endsWith("/") ? base : `${base}/`, root: env.MODEL_ROOT ?? "/models", mode, interval, keep, headers, shardTag };
}

async function fetchOk(url, headers) {
  const response = await fetch(url, { headers, redirect: "follow" });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response;
}

async function readPointer(cfg) {
  const url = new URL("current.json", cfg.base).href;
  const pointer = await (await fetchOk(url, cfg.headers)).json();
  if (typeof pointer?.version !== "string" || !VERSION.test(pointer.version)) throw new Error(`${url}: "version" is not a model version`);
  if (typeof pointer.bundle !== "string" || pointer.bundle === "") throw new Error(`${url}: no "bundle"`);
  if (typeof pointer.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(pointer.sha256))
    throw new Error(`${url}: "sha256" is not 64 hex digits`);
  return { ...pointer, url: new URL(pointer.bundle, cfg.base).href };
}

async function currentVersion(root) {
  try {
    return await readlink(join(root, "current"));
  } catch {
    return undefined;
  }
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")}: exit ${code}: ${stderr.trim()}`)),
    );
  });
}

async function exists(path) {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Downloads, verifies and installs `pointer.version`; the old version stays current on any failure. */
async function install(cfg, pointer) {
  const { root } = cfg;
  const staging = join(root, `.staging-${pointer.version}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const archive = join(staging, "bundle.tar.gz");
    const hash = createHash("sha256");
    const response = await fetchOk(pointer.url, cfg.headers);
    const body = Readable.fromWeb(response.body);
    body.on("data", (chunk) => hash.update(chunk));
    await pipeline(body, createWriteStream(archive));
    const sha256 = hash.digest("hex");
    if (sha256 !== pointer.sha256) throw new Error(`${pointer.url}: SHA-256 ${sha256}, the pointer says ${pointer.sha256}: not installed`);
    await run("tar", ["-xzf", archive, "-C", staging, "--no-same-owner", "--no-same-permissions", "--touch"]);
    await rm(archive);
    const manifest = JSON.parse(await readFile(join(staging, "bundle", "manifest.json"), "utf8"));
    if (manifest.modelVersion !== pointer.version) {
      throw new Error(
        `bundle/manifest.json says modelVersion ${JSON.stringify(manifest.modelVersion)}, the pointer says ${pointer.version}`,
      );
    }
    // Prebuilt retrieval indexes: a retrieval pod keeps its own shard's, other pods none.
    const indexes = join(staging, "bundle", "indexes");
    let index = "none";
    if (await exists(indexes)) {
      for (const name of await readdir(indexes)) {
        if (name === cfg.shardTag) index = `indexes/${name}`;
        else await rm(join(indexes, name), { recursive: true, force: true });
      }
      if (cfg.shardTag === undefined) await rm(indexes, { recursive: true, force: true });
    }
    const dir = join(root, pointer.version);
    await rm(dir, { recursive: true, force: true });
    await rename(join(staging, "bundle"), dir);
    const link = join(root, "current.sync");
    await rm(link, { force: true });
    await symlink(pointer.version, link);
    await rename(link, join(root, "current"));
    log("info", "model installed", { version: pointer.version, sha256, index });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Removes all but the newest `keep` version directories (by install order), never the current one. */
async function prune(cfg) {
  const current = await currentVersion(cfg.root);
  const entries = [];
  for (const name of await readdir(cfg.root)) {
    if (name === "current" || name.startsWith(".") || !VERSION.test(name)) continue;
    const stat = await lstat(join(cfg.root, name));
    if (stat.isDirectory()) entries.push({ name, mtime: stat.mtimeMs });
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const { name } of entries.slice(cfg.keep)) {
    if (name === current) continue;
    await rm(join(cfg.root, name), { recursive: true, force: true });
    log("info", "old model removed", { version: name });
  }
}

async function syncOnce(cfg) {
  await syncStatus(cfg);
  const pointer = await readPointer(cfg);
  if ((await currentVersion(cfg.root)) === pointer.version) return false;
  await install(cfg, pointer);
  await prune(cfg);
  return true;
}

const STATUS_FILE = "retrain-status.json";

async function putStatus(cfg, path) {
  const url = new URL(STATUS_FILE, cfg.base).href;
  const response = await fetch(url, {
    method: "PUT",
    body: await readFile(path),
    headers: { ...cfg.headers, "Content-Type": "application/json" },
  });
  if (!response.ok) throw new Error(`PUT ${url}: HTTP ${response.status}`);
  log("info", "run report published", { file: STATUS_FILE });
}

/** Installs the store's retrain-status.json beside the bundles (absent in the store: nothing). */
async function syncStatus(cfg) {
  const response = await fetch(new URL(STATUS_FILE, cfg.base).href, { headers: cfg.headers });
  if (response.status === 404) return;
  if (!response.ok) throw new Error(`GET ${STATUS_FILE}: HTTP ${response.status}`);
  const tmp = join(cfg.root, `.${STATUS_FILE}.sync`);
  await pipeline(Readable.fromWeb(response.body), createWriteStream(tmp));
  await rename(tmp, join(cfg.root, STATUS_FILE));
}

/** Uploads the bundle `current` points at: the archive first, the pointer last. */
async function publish(cfg, withBundle) {
  const status = join(cfg.root, STATUS_FILE);
  if (!withBundle) {
    if (await exists(status)) await putStatus(cfg, status);
    return;
  }
  const version = await currentVersion(cfg.root);
  if (version === undefined || !VERSION.test(version)) throw new Error(`${join(cfg.root, "current")} does not point at a model version`);
  const manifest = JSON.parse(await readFile(join(cfg.root, version, "manifest.json"), "utf8"));
  if (manifest.modelVersion !== version)
    throw new Error(`${version}/manifest.json says modelVersion ${JSON.stringify(manifest.modelVersion)}`);
  if (!(await exists(join(cfg.root, version, "ranker")))) throw new Error(`${version} has no ranker/: the ranking stage would refuse it`);
  const staging = join(cfg.root, `.publish-${version}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const archive = join(staging, `${version}.tar.gz`);
    await run("tar", ["-czhf", archive, "-C", cfg.root, "--transform", `s,^${version},bundle,`, version]);
    const bytes = await readFile(archive);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const put = async (name, body, type) => {
      const url = new URL(name, cfg.base).href;
      const response = await fetch(url, { method: "PUT", body, headers: { ...cfg.headers, "Content-Type": type } });
      if (!response.ok) throw new Error(`PUT ${url}: HTTP ${response.status}`);
    };
    await put(`bundles/${version}.tar.gz`, bytes, "application/gzip");
    await put("current.json", JSON.stringify({ version, bundle: `bundles/${version}.tar.gz`, sha256 }) + "\n", "application/json");
    log("info", "model published", { version, sha256, bytes: bytes.length });
    if (await exists(status)) await putStatus(cfg, status);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function main() {
  const cfg = config(process.env);
  await mkdir(cfg.root, { recursive: true });
  if (cfg.mode === "publish") {
    await publish(cfg, process.env.MODEL_PUBLISH_BUNDLE !== "0");
    return;
  }
  if (cfg.mode === "once") {
    await syncOnce(cfg);
    return;
  }
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  while (!stopping) {
    try {
      await syncOnce(cfg);
    } catch (error) {
      log("error", "model sync failed; the current version keeps serving", { error: error.message });
    }
    for (let waited = 0; waited < cfg.interval && !stopping; waited += 1) await new Promise((r) => setTimeout(r, 1000));
  }
}

main().catch((error) => {
  log("error", "model sync failed", { error: error.message });
  process.exit(1);
});
