/** Where the checked files are, from this package's compiled location (packages/deploy-checks/dist). */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const K8S_DIR = join(REPO_ROOT, "k8s");
export const DEPLOY_DIR = join(REPO_ROOT, "deploy");
export const PROMETHEUS_DIR = join(DEPLOY_DIR, "prometheus");
export const PACKAGES_DIR = join(REPO_ROOT, "packages");

/** The overlays a cluster is deployed with (`kubectl apply -k k8s/overlays/<name>`). */
export const OVERLAYS = ["dev", "prod", "gpu", "prod-operator", "prod-managed-redis"] as const;
export type OverlayName = (typeof OVERLAYS)[number];

export function overlayDir(name: OverlayName): string {
  return join(K8S_DIR, "overlays", name);
}

/** The committed PrometheusRule, generated from deploy/prometheus/rules (see generate.ts). */
export const PROMETHEUS_RULE_FILE = join(K8S_DIR, "components", "prometheus-operator", "prometheusrule.yaml");
