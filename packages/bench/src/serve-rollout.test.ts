import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { prepareRankerVersion, publishRankerVersion, restoreRankerVersion } from "./serve-rollout.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const versionIn = async (dir: string): Promise<string> =>
  (JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as { modelVersion: string }).modelVersion;

describe("a ranker rollout in a bundle directory", () => {
  it("prepares a copy under a new version, publishes it by renames and puts the old one back", async () => {
    const bundle = await mkdtemp(join(tmpdir(), "rollout-"));
    dirs.push(bundle);
    await mkdir(join(bundle, "ranker"));
    await writeFile(
      join(bundle, "ranker", "manifest.json"),
      JSON.stringify({ format: "f", modelVersion: "rk-20260101000000-aaaaaaaa", space: { big: [1, 2] } }),
    );
    await writeFile(join(bundle, "ranker", "tower.f32"), Buffer.alloc(16, 7));

    const versions = await prepareRankerVersion(bundle);
    expect(versions.previous).toBe("rk-20260101000000-aaaaaaaa");
    expect(versions.next).toMatch(/^rk-\d{14}-[0-9a-f]{8}$/);
    expect(versions.next).not.toBe(versions.previous);
    expect(await versionIn(join(bundle, "ranker.next"))).toBe(versions.next);
    // Weights are the same file (a hard link), the rest of the manifest unchanged.
    expect((await stat(join(bundle, "ranker.next", "tower.f32"))).ino).toBe((await stat(join(bundle, "ranker", "tower.f32"))).ino);
    expect(JSON.parse(await readFile(join(bundle, "ranker.next", "manifest.json"), "utf8")).space).toEqual({ big: [1, 2] });

    await publishRankerVersion(bundle);
    expect(await versionIn(join(bundle, "ranker"))).toBe(versions.next);
    expect(await versionIn(join(bundle, "ranker.prev"))).toBe(versions.previous);

    await restoreRankerVersion(bundle);
    expect(await versionIn(join(bundle, "ranker"))).toBe(versions.previous);
    expect((await readdir(bundle)).sort()).toEqual(["ranker"]);
  });
});
