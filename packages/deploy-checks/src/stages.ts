/**
 * The four serving stages as the deployment sees them: stage name (metric prefix), Kubernetes
 * name, workspace package and container image. A package is "landed" when its folder has a
 * package.json; its configSchema is then read from its compiled dist/index.js.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ConfigSchema } from "@recsys/runtime";
import { PACKAGES_DIR } from "./paths.js";

export interface StageInfo {
  /** The runtime's stage name: metrics `recsys_<stage>_*`, Prometheus `job`. */
  readonly stage: string;
  /** Kubernetes name (Deployment/Service/ConfigMap base name); retrieval shards add "-<i>". */
  readonly k8sName: string;
  /** Folder under packages/ holding the service. */
  readonly packageDir: string;
  /** Image name under the registry (recsys/<image>), built from deploy/containers/<image>.Containerfile. */
  readonly image: string;
  /** Whether a `-gpu` image variant exists (tfjs-node-gpu). */
  readonly gpu: boolean;
  /** Whether the stage is deployed as shards (StatefulSet per shard). */
  readonly sharded: boolean;
}

export const STAGES: readonly StageInfo[] = [
  {
    stage: "candidate_generation",
    k8sName: "candidate-generation",
    packageDir: "candidate-gen-service",
    image: "candidate-generation",
    gpu: true,
    sharded: false,
  },
  { stage: "retrieval", k8sName: "retrieval", packageDir: "retrieval-service", image: "retrieval", gpu: false, sharded: true },
  { stage: "ranking", k8sName: "ranking", packageDir: "ranking-service", image: "ranking", gpu: true, sharded: false },
  { stage: "orchestrator", k8sName: "orchestrator", packageDir: "orchestrator", image: "orchestrator", gpu: false, sharded: false },
];

export function stageByName(stage: string): StageInfo {
  const info = STAGES.find((s) => s.stage === stage);
  if (info === undefined) throw new Error(`unknown stage "${stage}"`);
  return info;
}

/** The stage a Kubernetes object name belongs to ("retrieval-1" → retrieval), or undefined. */
export function stageOfK8sName(name: string): StageInfo | undefined {
  return STAGES.find((s) => name === s.k8sName || (s.sharded && new RegExp(`^${s.k8sName}-\\d+$`).test(name)));
}

export function packagePath(info: StageInfo): string {
  return join(PACKAGES_DIR, info.packageDir);
}

/** True when the stage's package is in the workspace. */
export function isLanded(info: StageInfo): boolean {
  return existsSync(join(packagePath(info), "package.json"));
}

export interface LandedPackage {
  readonly name: string;
  /** The exported configSchema: every environment variable the service reads. */
  readonly configSchema: ConfigSchema;
  /** The exported STAGE constant. */
  readonly stage: string;
  /** Absolute path of the process entry point (dist/main.js). */
  readonly main: string;
  /** The package's check between variables (an exported check<Name>Config), if any. */
  readonly crossCheck?: (config: Record<string, unknown>) => void;
}

/**
 * Imports a landed stage's compiled index and returns its configSchema and STAGE. Throws with a
 * clear message when it is not built or does not export them.
 */
export async function loadStagePackage(info: StageInfo): Promise<LandedPackage> {
  const dir = packagePath(info);
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name: string };
  const index = join(dir, "dist", "index.js");
  const main = join(dir, "dist", "main.js");
  if (!existsSync(index) || !existsSync(main)) {
    throw new Error(`${pkg.name}: dist/index.js or dist/main.js missing; run \`npx tsc --build\` first`);
  }
  const module = (await import(pathToFileURL(index).href)) as Record<string, unknown>;
  if (typeof module["configSchema"] !== "object" || module["configSchema"] === null) {
    throw new Error(`${pkg.name} does not export configSchema (every environment variable it reads)`);
  }
  if (typeof module["STAGE"] !== "string") throw new Error(`${pkg.name} does not export STAGE`);
  const checks = Object.entries(module).filter(([key, value]) => /^check[A-Z]\w*Config$/.test(key) && typeof value === "function");
  if (checks.length > 1) throw new Error(`${pkg.name} exports several config checks: ${checks.map(([k]) => k).join(", ")}`);
  const crossCheck = checks[0]?.[1] as ((config: Record<string, unknown>) => void) | undefined;
  return {
    name: pkg.name,
    configSchema: module["configSchema"] as ConfigSchema,
    stage: module["STAGE"],
    main,
    ...(crossCheck === undefined ? {} : { crossCheck }),
  };
}
