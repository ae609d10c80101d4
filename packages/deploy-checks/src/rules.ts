/**
 * The Prometheus rule files (deploy/prometheus/rules/*.rules.yml), their expressions, and the
 * PrometheusRule object (monitoring.coreos.com/v1) the operator component carries: generated from
 * the same files so that the two cannot drift (`npm run generate -w @recsys/deploy-checks`).
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { PROMETHEUS_DIR } from "./paths.js";

export interface Rule {
  readonly record?: string;
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
export interface RuleGroup {
  readonly name: string;
  readonly interval?: string;
  readonly rules: readonly Rule[];
}
export interface RuleFile {
  readonly path: string;
  readonly groups: readonly RuleGroup[];
}

export const RULES_DIR = join(PROMETHEUS_DIR, "rules");
export const RULE_TESTS_DIR = join(PROMETHEUS_DIR, "tests");

export async function ruleFilePaths(): Promise<string[]> {
  return (await readdir(RULES_DIR))
    .filter((f) => f.endsWith(".rules.yml"))
    .sort()
    .map((f) => join(RULES_DIR, f));
}

export async function readRuleFiles(): Promise<RuleFile[]> {
  const files: RuleFile[] = [];
  for (const path of await ruleFilePaths()) {
    const parsed = parse(await readFile(path, "utf8")) as { groups?: RuleGroup[] };
    if (!Array.isArray(parsed.groups)) throw new Error(`${path}: no groups`);
    files.push({ path, groups: parsed.groups });
  }
  return files;
}

/** Names the rules record (recording rules, e.g. stage:recsys_grpc_requests:rate5m). */
export function recordedNames(files: readonly RuleFile[]): Set<string> {
  return new Set(files.flatMap((f) => f.groups.flatMap((g) => g.rules.flatMap((r) => (r.record === undefined ? [] : [r.record])))));
}

export function allRules(files: readonly RuleFile[]): { file: string; rule: Rule }[] {
  return files.flatMap((f) => f.groups.flatMap((g) => g.rules.map((rule) => ({ file: f.path, rule }))));
}

/** The PrometheusRule carrying every group of every rule file. */
export function prometheusRuleObject(files: readonly RuleFile[]): Record<string, unknown> {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "recsys", labels: { "app.kubernetes.io/part-of": "recsys" } },
    spec: { groups: files.flatMap((f) => f.groups) },
  };
}

export const PROMETHEUS_RULE_HEADER =
  "# GENERATED from deploy/prometheus/rules/*.rules.yml by `npm run generate -w @recsys/deploy-checks`.\n" +
  "# Do not edit: edit the rule files (promtool-tested) and regenerate; a test fails when they differ.\n";

export function prometheusRuleYaml(files: readonly RuleFile[]): string {
  return PROMETHEUS_RULE_HEADER + stringify(prometheusRuleObject(files), { lineWidth: 0 });
}
