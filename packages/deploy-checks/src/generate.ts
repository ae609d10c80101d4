#!/usr/bin/env node
/** Writes k8s/components/prometheus-operator/prometheusrule.yaml from deploy/prometheus/rules. */
import { writeFile } from "node:fs/promises";
import { PROMETHEUS_RULE_FILE } from "./paths.js";
import { prometheusRuleYaml, readRuleFiles } from "./rules.js";

await writeFile(PROMETHEUS_RULE_FILE, prometheusRuleYaml(await readRuleFiles()));
console.log(`wrote ${PROMETHEUS_RULE_FILE}`);
