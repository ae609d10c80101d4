/**
 * Prometheus rules and configuration with Debian's promtool (`promtool check rules`,
 * `promtool test rules`, `promtool check config`), and the Grafana dashboard's structure. Metric
 * names against the code are checked in live.test.ts, where the services run.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { DEPLOY_DIR, PROMETHEUS_DIR, REPO_ROOT } from "./paths.js";
import { metricNames } from "./promql.js";
import { allRules, readRuleFiles, recordedNames, ruleFilePaths, RULE_TESTS_DIR } from "./rules.js";
import { promtool } from "./tools.js";

const DASHBOARD = join(DEPLOY_DIR, "grafana", "recsys-stages.json");
const RUNBOOK = join(REPO_ROOT, "docs", "runbook.md");

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function markdownAnchors(markdown: string): string[] {
  return [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^a-z0-9 -]/g, "")
      .replace(/ /g, "-"),
  );
}

/**
 * Where a PromQL expression loses the `namespace` label: an aggregation without `by (...)` listing
 * it, a vector match `on (...)` without it, an absent() without a namespace equality matcher.
 */
function namespaceProblems(expr: string): string[] {
  const problems: string[] = [];
  for (const m of expr.matchAll(
    /\b(sum|count|min|max|avg|group|count_values|stddev|stdvar|topk|bottomk|quantile)\s*(by\s*\(([^)]*)\))?\s*\(/g,
  )) {
    if (m[2] === undefined) problems.push(`${m[1]} without \`by (..., namespace)\``);
    else if (
      !m[3]!
        .split(",")
        .map((l) => l.trim())
        .includes("namespace")
    )
      problems.push(`${m[1]} by (${m[3]}) drops namespace`);
  }
  for (const m of expr.matchAll(/\bon\s*\(([^)]*)\)/g)) {
    if (
      !m[1]!
        .split(",")
        .map((l) => l.trim())
        .includes("namespace")
    )
      problems.push(`on (${m[1]}) drops namespace`);
  }
  for (const m of expr.matchAll(/\babsent\s*\(([^)]*\))/g)) {
    if (!/namespace\s*=\s*"/.test(m[1]!)) problems.push("absent() without a namespace matcher");
  }
  return problems;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string }[];
}

describe("promtool", () => {
  it("accepts every rule file (promtool check rules)", async () => {
    const files = await ruleFilePaths();
    expect(files.length).toBeGreaterThanOrEqual(3);
    const result = await promtool(["check", "rules", ...files]);
    expect(result.output).not.toMatch(/FAILED/);
    expect(result.code, result.output).toBe(0);
  });

  it("passes the rule unit tests in deploy/prometheus/tests (promtool test rules)", async () => {
    const tests = (await readdir(RULE_TESTS_DIR)).filter((f) => f.endsWith(".test.yml")).map((f) => join(RULE_TESTS_DIR, f));
    expect(tests.length).toBeGreaterThanOrEqual(7);
    const result = await promtool(["test", "rules", ...tests]);
    expect(result.code, result.output).toBe(0);
    expect(result.output.match(/SUCCESS/g)?.length).toBe(tests.length);
  });

  it("accepts the local scrape configuration with its rule files (promtool check config)", async () => {
    const result = await promtool(["check", "config", join(PROMETHEUS_DIR, "prometheus.yml")]);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(new RegExp(`SUCCESS: ${(await ruleFilePaths()).length} rule files found`));
  });
});

describe("rule coverage", () => {
  it("unit-tests every alert and every recording rule family at least once", async () => {
    const tests = await Promise.all(
      (await readdir(RULE_TESTS_DIR)).filter((f) => f.endsWith(".test.yml")).map(async (f) => readFile(join(RULE_TESTS_DIR, f), "utf8")),
    );
    const tested = tests.join("\n");
    const rules = allRules(await readRuleFiles());
    const alerts = rules.flatMap(({ rule }) => (rule.alert === undefined ? [] : [rule.alert]));
    const untestedAlerts = alerts.filter((a) => !new RegExp(`alertname: ${a}\\b`).test(tested));
    expect(untestedAlerts).toEqual([]);
    // Recording rules are exercised through the alerts built on them or tested directly.
    const records = [...recordedNames(await readRuleFiles())];
    const used = new Set(rules.flatMap(({ rule }) => [...metricNames(rule.expr)]));
    const untestedRecords = records.filter((r) => !tested.includes(r) && !used.has(r));
    expect(untestedRecords).toEqual([]);
  });

  it("writes alerts with a severity, a summary, a description and a runbook_url to a section of docs/runbook.md", async () => {
    const anchors = markdownAnchors(await readFile(RUNBOOK, "utf8"));
    for (const { rule } of allRules(await readRuleFiles())) {
      if (rule.alert === undefined) continue;
      expect(["warning", "critical"], rule.alert).toContain(rule.labels?.["severity"]);
      expect(rule.annotations?.["summary"], rule.alert).toBeTruthy();
      expect(rule.annotations?.["description"], rule.alert).toBeTruthy();
      const url = rule.annotations?.["runbook_url"] ?? "";
      expect(url, rule.alert).toMatch(/^docs\/runbook\.md#[a-z0-9-]+$/);
      expect(anchors, `${rule.alert}: ${url}`).toContain(url.slice(url.indexOf("#") + 1));
    }
  });

  it("keeps `namespace` through every aggregation and join of every rule", async () => {
    const problems = allRules(await readRuleFiles()).flatMap(({ rule }) =>
      namespaceProblems(rule.expr).map((p) => `${rule.record ?? rule.alert}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it("names the production overlay's namespace in the absent() alerts, one per stage", async () => {
    const prodNamespace = (
      parse(await readFile(join(REPO_ROOT, "k8s", "overlays", "prod", "kustomization.yaml"), "utf8")) as { namespace: string }
    ).namespace;
    const absent = allRules(await readRuleFiles()).filter(({ rule }) => /\babsent\(/.test(rule.expr));
    expect(absent.map(({ rule }) => rule.labels?.["stage"]).sort()).toEqual([
      "candidate_generation",
      "orchestrator",
      "ranking",
      "retrieval",
    ]);
    for (const { rule } of absent) expect(rule.expr).toBe(`absent(up{job="${rule.labels?.["stage"]}", namespace="${prodNamespace}"})`);
  });

  it("namespaceProblems notices an aggregation or a join that drops namespace", () => {
    expect(namespaceProblems("sum(rate(x[5m]))")).toEqual(["sum without `by (..., namespace)`"]);
    expect(namespaceProblems("count by (model_version) (x)")).toEqual(["count by (model_version) drops namespace"]);
    expect(namespaceProblems("a / on () group_left () b")).toEqual(["on () drops namespace"]);
    expect(
      namespaceProblems(
        'sum by (namespace) (rate(x[5m])) / on (namespace) group_left () max by (le, namespace) (y) and absent(up{job="a", namespace="recsys"})',
      ),
    ).toEqual([]);
    expect(namespaceProblems('absent(up{job="a"})')).toEqual(["absent() without a namespace matcher"]);
  });
});

describe("the Kubernetes scrape configuration (kubernetes-scrape.yml)", () => {
  // Debian's promtool is built without Kubernetes service discovery, so this file is checked
  // structurally: the relabelling that makes `job` the stage and keeps only metrics ports.
  it("keeps recsys Services' metrics ports and sets job from recsys.io/stage", async () => {
    const config = parse(await readFile(join(PROMETHEUS_DIR, "kubernetes-scrape.yml"), "utf8")) as {
      rule_files: string[];
      scrape_configs: {
        job_name: string;
        kubernetes_sd_configs: { role: string }[];
        relabel_configs: { source_labels?: string[]; regex?: string; action?: string; target_label?: string }[];
      }[];
    };
    expect(config.rule_files).toEqual(["rules/*.rules.yml"]);
    const [job] = config.scrape_configs;
    expect(job?.kubernetes_sd_configs[0]?.role).toBe("endpoints");
    const relabel = job!.relabel_configs;
    expect(relabel).toContainEqual({ source_labels: ["__meta_kubernetes_service_label_recsys_io_stage"], regex: ".+", action: "keep" });
    expect(relabel).toContainEqual({ source_labels: ["__meta_kubernetes_endpoint_port_name"], regex: "metrics", action: "keep" });
    expect(relabel).toContainEqual({ source_labels: ["__meta_kubernetes_service_label_recsys_io_stage"], target_label: "job" });
  });
});

describe("the Grafana dashboard", () => {
  it("is valid JSON with unique panel ids, a Prometheus datasource variable and queries on every graph", async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as {
      uid: string;
      panels: Panel[];
      templating: { list: { name: string; type: string; query: string }[] };
    };
    expect(dashboard.uid).toBe("recsys-stages");
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type === "row") continue;
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(metricNames(target.expr).size, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
    }
  });

  it("uses only recording rules that the rule files define", async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as { panels: Panel[] };
    const recorded = recordedNames(await readRuleFiles());
    const missing = dashboard.panels
      .flatMap((p) => p.targets ?? [])
      .flatMap((t) => [...metricNames(t.expr)])
      .filter((name) => name.includes(":") && !recorded.has(name));
    expect(missing).toEqual([]);
  });
});

describe("metricNames (PromQL tokenizer)", () => {
  it("finds metric names, not functions, labels, keywords or durations", () => {
    expect(
      [
        ...metricNames(
          'sum by (le, method) (rate(recsys_a_total{code!~"OK|X",method="a/b"}[5m])) / on () group_left () (up offset 1h > 0) or vector(0)',
        ),
      ].sort(),
    ).toEqual(["recsys_a_total", "up"]);
    expect([...metricNames("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 1e-3 and stage:y:rate5m")].sort()).toEqual([
      "stage:y:rate5m",
      "x_bucket",
    ]);
  });
});
