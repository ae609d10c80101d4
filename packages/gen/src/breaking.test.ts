/**
 * Shows that the contract check catches breaking edits: a temp copy of proto/ is edited and
 * compared with the real proto/ by `buf breaking` (FILE rules from the real buf.yaml), using the
 * buf binary of the root devDependency.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const buf = join(repoRoot, "node_modules", ".bin", "buf");

let work: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "recsys-breaking-"));
  cpSync(join(repoRoot, "proto"), join(work, "proto"), { recursive: true });
  cpSync(join(repoRoot, "buf.yaml"), join(work, "buf.yaml"));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Replace `from` (which must occur exactly once) with `to` in a proto of the temp copy. */
function edit(file: string, from: string, to: string): void {
  const path = join(work, "proto", "recsys", "v1", file);
  const text = readFileSync(path, "utf8");
  expect(text.split(from).length - 1, `"${from}" must occur once in ${file}`).toBe(1);
  writeFileSync(path, text.replace(from, to));
}

function breaking(): { status: number | null; output: string } {
  const result = spawnSync(buf, ["breaking", work, "--against", repoRoot], {
    cwd: work,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("buf breaking against the real proto/", () => {
  it("accepts the unchanged copy", () => {
    const { status, output } = breaking();
    expect(output).toBe("");
    expect(status).toBe(0);
  });

  it("accepts an added field (wire- and source-compatible)", () => {
    edit("ranking.proto", "  bool debug = 3;\n", "  bool debug = 3;\n  string experiment = 4;\n");
    const { status, output } = breaking();
    expect(output).toBe("");
    expect(status).toBe(0);
  });

  it("rejects a renumbered field", () => {
    edit("retrieval.proto", "uint32 k = 2;", "uint32 k = 12;");
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toMatch(/field "2" with name "k" on message "SearchRequest" was deleted/);
  });

  it("rejects a removed field", () => {
    edit("recommender.proto", "  bool degraded = 3;\n", "");
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toMatch(/"degraded" on message "RecommendResponse"/);
  });

  it("rejects a changed field type", () => {
    edit("common.proto", "float score = 4;", "double score = 4;");
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toMatch(/Provenance/);
  });
});
