/**
 * The package as published: `npm pack` it, unpack the tarball into a consumer project beside its
 * dependencies, then import it with Node (runtime entry points and the `./testing` export) and
 * type-check a consumer against the shipped declarations.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootDir = resolve(packageDir, "../..");
let dir: string;
let files: string[];
let consumer: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "recsys-client-pack-"));
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: packageDir });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  files = packed!.files.map((file) => file.path).sort();
  consumer = join(dir, "consumer");
  const installed = join(consumer, "node_modules", "@recsys", "client");
  await mkdir(installed, { recursive: true });
  await run("tar", ["-xzf", join(dir, packed!.filename), "-C", installed, "--strip-components=1"]);
  // Its dependencies, as an install would place them (the workspace's copies).
  for (const dep of ["@recsys/gen", "@recsys/runtime", "@bufbuild/protobuf", "@grpc/grpc-js", "@types/node"]) {
    await mkdir(join(consumer, "node_modules", dirname(dep)), { recursive: true });
    await symlink(join(rootDir, "node_modules", dep), join(consumer, "node_modules", dep));
  }
  await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
}, 120_000);

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("npm pack of @recsys/client", () => {
  it("ships the compiled code, its declarations, the sources their maps point to, the README and the license, and no tests", async () => {
    for (const path of [
      "package.json",
      "README.md",
      "LICENSE",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/client.js",
      "dist/testing/index.js",
      "dist/testing/index.d.ts",
    ]) {
      expect(files).toContain(path);
    }
    expect(files).toContain("src/client.ts");
    expect(files.filter((path) => path.includes(".test.") || path.endsWith(".tsbuildinfo"))).toEqual([]);
    const license = await readFile(join(consumer, "node_modules/@recsys/client/LICENSE"), "utf8");
    expect(license).toContain("Apache License");
    expect(license).toContain("Version 2.0, January 2004");
  });

  it("imports and calls a fake orchestrator from the unpacked tarball", async () => {
    await writeFile(
      join(consumer, "main.mjs"),
      `import { createRecsysClient, ErrorCode, watchEvent } from "@recsys/client";
import { startFakeRecommender } from "@recsys/client/testing";
const fake = await startFakeRecommender();
const recsys = createRecsysClient({ address: fake.address, timeoutMs: 2000 });
const answer = await recsys.recommend({ userId: "7", count: 2 });
const recorded = await recsys.recordImpressions("7", answer);
const watched = await recsys.recordEvents({ events: [watchEvent("7", answer.items[0].itemId)] });
const upserted = await recsys.upsertItems({ items: [{ itemId: "v-1", channel: "ch-a" }] });
const deleted = await recsys.deleteItems({ itemIds: ["v-1"] });
const read = await recsys.getItems({ itemIds: ["v-1"] });
recsys.close();
await fake.stop();
console.log(JSON.stringify({ items: answer.items.map((i) => i.itemId), recorded, watched: watched.accepted, code: ErrorCode.Unavailable,
  catalogue: [upserted.upserted, deleted.deleted, read.deletedItemIds] }));
`,
    );
    const { stdout } = await run(process.execPath, ["main.mjs"], { cwd: consumer, timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({
      items: ["item-1", "item-2"],
      recorded: 2,
      watched: 1,
      code: "UNAVAILABLE",
      catalogue: [1, 1, ["v-1"]],
    });
  });

  it("type-checks a consumer against the shipped declarations (and they are not `any`)", async () => {
    await writeFile(
      join(consumer, "main.ts"),
      `import { createRecsysClient, ErrorCode, isRecsysError, type RecommendResponse } from "@recsys/client";
const recsys = createRecsysClient({ address: "127.0.0.1:50051" });
export async function top(userId: string): Promise<string[]> {
  try {
    const answer: RecommendResponse = await recsys.recommend({ userId, count: 10 }, { timeoutMs: 300 });
    return answer.items.map((item) => item.itemId);
  } catch (error) {
    if (isRecsysError(error) && error.code === ErrorCode.Unavailable) return [];
    throw error;
  }
}
// @ts-expect-error count is a number
void recsys.recommend({ userId: "1", count: "ten" });
export async function upload(itemId: string): Promise<number> {
  const answer = await recsys.upsertItems({ items: [{ itemId, tags: ["cats"], durationSeconds: 95 }] }, { timeoutMs: 10_000 });
  return answer.upserted + answer.notEmbedded;
}
// @ts-expect-error item_ids are strings
void recsys.deleteItems({ itemIds: [1] });
// @ts-expect-error no such error code
void (ErrorCode.Unavailable === "SOMETHING_ELSE");
`,
    );
    const tsc = join(rootDir, "node_modules/typescript/bin/tsc");
    const args = [
      "--noEmit",
      "--strict",
      "--skipLibCheck",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2022",
      "--types",
      "node",
      "main.ts",
    ];
    await expect(run(process.execPath, [tsc, ...args], { cwd: consumer, timeout: 60_000 })).resolves.toBeDefined();
  });
});
