/**
 * External tools the checks run: promtool and the Prometheus server from Debian's `prometheus`
 * package. Missing tools are errors with the install command, never skips.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

export const PROMTOOL = process.env["PROMTOOL"] ?? "/usr/bin/promtool";
export const PROMETHEUS = process.env["PROMETHEUS"] ?? "/usr/bin/prometheus";

export function requireTool(path: string, what: string): string {
  if (!existsSync(path)) {
    throw new Error(
      `${what} not found at ${path}: install Debian's prometheus package (\`apt-get install -y prometheus\`), or set ${what === "promtool" ? "PROMTOOL" : "PROMETHEUS"}`,
    );
  }
  return path;
}

export interface ToolResult {
  readonly code: number;
  readonly output: string;
}

/** Runs promtool; resolves with the exit code and the combined output (does not throw on exit ≠ 0). */
export async function promtool(args: readonly string[], cwd?: string): Promise<ToolResult> {
  requireTool(PROMTOOL, "promtool");
  try {
    const { stdout, stderr } = await run(PROMTOOL, [...args], { cwd, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}
