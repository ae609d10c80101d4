/**
 * Starting the stages as real processes (`node packages/<svc>/dist/main.js`, configured only by
 * environment variables, as in a container) and a Prometheus server scraping them, for the live
 * check. Every child is tracked and killed by `stopAll`.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { rename, symlink } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { saveBundle, trainCandidateGen, type BundleManifest } from "@recsys/candidate-gen";
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows, type Dataset } from "@recsys/data";
import { saveRanker, trainRanker, type RankerManifest } from "@recsys/ranking";
import { createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";

type Child = ChildProcessByStdio<null, Readable, Readable>;

export interface Started {
  readonly name: string;
  readonly child: Child;
  readonly port: number;
  readonly metricsPort: number;
  output(): string;
  readonly exited: Promise<number | null>;
}

const children = new Set<Child>();

/** A small synthetic dataset with every feature group live (impressions for the ranker). */
export const TINY_SPEC = "users=120,items=90,events=14,impressions=30,seed=4";

export function tinyDataset(spec = TINY_SPEC): Dataset {
  return generateSynthetic(`synthetic:${spec}`, parseSyntheticSpec(spec));
}

/** A tiny candidate-generation bundle (dimension 8, trained in about a second) saved in `dir`. */
export async function writeTinyBundle(dir: string, dataset: Dataset = tinyDataset()): Promise<BundleManifest> {
  await initBackend({ log: null });
  const result = await trainCandidateGen(dataset, {
    holdout: "none",
    epochs: 1,
    batchSize: 64,
    negatives: 20,
    seed: 1,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear" },
  });
  const manifest = await saveBundle(dir, result);
  result.model.dispose();
  return manifest;
}

/** A tiny ranker trained behind the standard sources of `dataset`, saved as `<bundleDir>/ranker/` (what `recsys train-ranker` writes). */
export async function writeTinyRanker(
  bundleDir: string,
  bundle: BundleManifest,
  dataset: Dataset = tinyDataset(),
): Promise<RankerManifest> {
  await initBackend({ log: null });
  const pipeline = { budget: 20, mergedSize: 40 };
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const result = await trainRanker(dataset, {
    rows: trainingRows(split, "none"),
    sources: createStandardSources(dataset, { mergedSize: pipeline.mergedSize }),
    budget: pipeline.budget,
    train: { epochs: 1, maxExamplesPerUser: 4, negatives: 6, seed: 1 },
    model: { itemDim: 8, categoricalDim: 4, tower: [16, 8] },
    features: { quantiles: 50 },
  });
  const manifest = await saveRanker(join(bundleDir, "ranker"), result, {
    datasetSpec: dataset.spec,
    datasetFingerprint: dataset.fingerprint,
    holdout: "none",
    candidateGenVersion: bundle.modelVersion,
    pipeline,
  });
  result.model.dispose();
  return manifest;
}

/** Points the symlink `link` at `target` atomically, as a deploy does. */
export async function publishBundle(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.publish-${process.pid}`);
  await symlink(target, tmp);
  await rename(tmp, link);
}

/**
 * Starts `node <main>` with exactly `env` (plus PATH) and resolves once it logs "serving" with its
 * bound ports; rejects with its output if it exits first or is not serving within `timeoutMs`.
 */
export function startStage(name: string, main: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env["PATH"] ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    const output = (): string => stdout + stderr;
    const exited = new Promise<number | null>((done) =>
      child.on("exit", (code) => {
        children.delete(child);
        done(code);
      }),
    );
    const timer = setTimeout(() => reject(new Error(`${name}: not serving after ${timeoutMs} ms:\n${output()}`)), timeoutMs);
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split("\n").find((l) => l.includes('"msg":"serving"'));
      if (line !== undefined) {
        clearTimeout(timer);
        const { port, metricsPort } = JSON.parse(line) as { port: number; metricsPort: number };
        resolve({ name, child, port, metricsPort, output, exited });
      }
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before serving:\n${output()}`));
    });
  });
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Starts Prometheus on 127.0.0.1:<port>; resolves once /-/ready answers 200. */
export async function startPrometheus(
  binary: string,
  configFile: string,
  storageDir: string,
  port: number,
  timeoutMs = 30_000,
): Promise<{ child: Child; url: string; output(): string }> {
  const child = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${storageDir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--storage.tsdb.retention.time=1h",
      "--web.enable-lifecycle",
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env["PATH"] ?? "" } },
  );
  children.add(child);
  let log = "";
  child.stdout.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (log += chunk.toString()));
  let exitCode: number | null | undefined;
  child.on("exit", (code) => {
    exitCode = code;
    children.delete(child);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`prometheus exited with ${exitCode}:\n${log}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) return { child, url, output: () => log };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`prometheus not ready after ${timeoutMs} ms:\n${log}`);
}

/** GET <url>/api/v1/<path> and return `data` (throws on status "error"). */
export async function prometheusApi<T>(url: string, path: string): Promise<T> {
  const response = await fetch(`${url}/api/v1/${path}`);
  const body = (await response.json()) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`prometheus /api/v1/${path}: ${body.error ?? response.status}`);
  return body.data;
}

/** SIGTERM every child still running, SIGKILL after `graceMs`; resolves when all have exited. */
export async function stopAll(graceMs = 5000): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}
