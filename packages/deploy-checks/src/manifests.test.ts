/**
 * Every kustomization rendered with the real kustomize (kubectl kustomize) and checked offline:
 * Kubernetes JSON schemas (kubernetes-models), unknown fields (TypeScript excess-property check),
 * environment = the services' config schemas, ports/probes/Services, security, shutdown timing,
 * autoscalers, volumes, images, retrieval shards and the orchestrator's addresses. The second half
 * breaks rendered manifests on purpose and expects each check to notice.
 */
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SERVING_NODE_FLAGS, type ConfigSchema } from "@recsys/runtime";
import { findObject, kustomizeVersion, objectsOfKind, renderKustomization, type K8sObject } from "./kustomize.js";
import { parseDurationMs } from "@recsys/runtime";
import {
  checkEnvAgainstSchema,
  checkGrpcRoutes,
  checkHeapCaps,
  checkRetrainDataset,
  expandVariables,
  checkImages,
  checkPodSecurityLabels,
  checkServiceAccounts,
  checkShardLabels,
  checkStageLabels,
  retrievalRolloutAllowanceSeconds,
  workloadEnv,
  checkPorts,
  checkScalingObjects,
  checkSecurityAndResources,
  checkServiceKinds,
  checkShardsAndAddresses,
  checkShutdownTiming,
  checkVolumes,
  containerEnv,
  workloads,
  workloadStage,
  type Workload,
} from "./manifest-checks.js";
import { K8S_DIR, OVERLAYS, overlayDir, PROMETHEUS_RULE_FILE, type OverlayName } from "./paths.js";
import { parseObjects } from "./kustomize.js";
import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { allRules, prometheusRuleObject, readRuleFiles } from "./rules.js";
import { STAGES, isLanded, loadStagePackage, type LandedPackage, type StageInfo } from "./stages.js";
import { strictFieldCheck, validateSchemas } from "./validate.js";
import { checkNetworkPolicies } from "./network-policy.js";

/** Every kustomization directory: bases, shards, components are rendered through overlays. */
const BASES = readdirSync(join(K8S_DIR, "base")).map((d) => join(K8S_DIR, "base", d));
const SHARDS = readdirSync(join(K8S_DIR, "shards")).map((d) => join(K8S_DIR, "shards", d));

const rendered = new Map<string, K8sObject[]>();
const stageWorkloadsOf = (objects: K8sObject[]): Workload[] => workloads(objects).filter((w) => workloadStage(w) !== undefined);
const overlay = (name: OverlayName): K8sObject[] => rendered.get(overlayDir(name))!;
const packages = new Map<string, LandedPackage>();

/** Schemas of landed stages; undefined for the others (the runtime's defaults apply). */
const schemaOf = (stage: StageInfo): ConfigSchema | undefined => packages.get(stage.stage)?.configSchema;

beforeAll(async () => {
  await kustomizeVersion();
  const dirs = [...BASES, ...SHARDS, ...OVERLAYS.map(overlayDir)];
  const results = await Promise.all(dirs.map(async (dir) => [dir, await renderKustomization(dir)] as const));
  for (const [dir, objects] of results) rendered.set(dir, objects);
  for (const stage of STAGES) if (isLanded(stage)) packages.set(stage.stage, await loadStagePackage(stage));
});

describe("rendering", () => {
  it("uses kustomize v5 through kubectl", async () => {
    expect(await kustomizeVersion()).toMatch(/^v5\./);
  });

  it.each(OVERLAYS)("overlay %s has the four stages, its namespace and a way for models to arrive (claim or model-sync)", (name) => {
    const objects = overlay(name);
    const stages = new Set(stageWorkloadsOf(objects).map((w) => workloadStage(w)?.stage));
    expect([...stages].sort()).toEqual(STAGES.map((s) => s.stage).sort());
    const namespaces = new Set(objects.filter((o) => o.kind !== "Namespace").map((o) => o.metadata.namespace));
    expect(namespaces.size).toBe(1);
    expect(objectsOfKind(objects, "Namespace").map((o) => o.metadata.name)).toEqual([...namespaces]);
    const claim = findObject(objects, "PersistentVolumeClaim", "recsys-models") !== undefined;
    const sync = stageWorkloadsOf(objects).every(
      (w) => w.spec.template.spec.initContainers?.some((c) => c.name === "model-fetch") === true,
    );
    expect([claim, sync], "exactly one of the models-pvc and model-sync components").toContainEqual(true);
    expect(claim && sync).toBe(false);
  });

  it("shards retrieval in one StatefulSet per shard: 1 in dev, 2 in prod and gpu", () => {
    expect(checkShardsAndAddresses(overlay("dev")).shards).toBe(1);
    expect(checkShardsAndAddresses(overlay("prod")).shards).toBe(2);
    expect(checkShardsAndAddresses(overlay("gpu")).shards).toBe(2);
  });
});

describe("validation against the Kubernetes schemas", () => {
  it("accepts every object of every base, shard and overlay (kubernetes-models)", async () => {
    const problems = [];
    for (const [dir, objects] of rendered) {
      for (const problem of await validateSchemas(objects))
        problems.push(`${dir.slice(K8S_DIR.length + 1)}: ${problem.object}: ${problem.message}`);
    }
    expect(problems).toEqual([]);
  });

  it("finds no unknown field (TypeScript excess-property check against the same models)", () => {
    const items = [...rendered].flatMap(([dir, objects]) =>
      objects.map((object) => ({ label: `${dir.slice(K8S_DIR.length + 1)}: ${object.kind}/${object.metadata.name}`, object })),
    );
    expect(strictFieldCheck(items)).toEqual([]);
  });
});

describe.each(OVERLAYS)("overlay %s", (name) => {
  for (const stage of STAGES) {
    const landed = isLanded(stage);
    const title = `sets exactly the variables ${stage.stage} reads${landed ? "" : ` (skipped: packages/${stage.packageDir} has not landed)`}`;
    it.skipIf(!landed)(title, () => {
      const pkg = packages.get(stage.stage)!;
      expect(pkg.stage).toBe(stage.stage);
      const stageWorkloads = workloads(overlay(name)).filter((w) => workloadStage(w) === stage);
      expect(stageWorkloads.length).toBeGreaterThan(0);
      const problems = stageWorkloads.flatMap((w) => {
        const env = workloadEnv(overlay(name), w);
        return [
          ...env.problems,
          ...checkEnvAgainstSchema(`${w.kind}/${w.metadata.name}`, env.values, pkg.configSchema, pkg.crossCheck, env.secret),
        ];
      });
      expect(problems).toEqual([]);
    });
  }

  it("wires ports, probes and Services consistently", () => {
    expect(checkPorts(overlay(name), schemaOf)).toEqual([]);
    expect(checkServiceKinds(overlay(name))).toEqual([]);
  });

  it("runs non-root, read-only, without capabilities, with requests and limits", () => {
    expect(checkSecurityAndResources(overlay(name))).toEqual([]);
  });

  it("gives pods time to drain: grace period > preStop + SHUTDOWN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT", () => {
    expect(checkShutdownTiming(overlay(name), schemaOf)).toEqual([]);
  });

  it("caps the V8 heap below the memory limit, runs each workload as its own ServiceAccount, enforces Pod Security restricted", () => {
    expect(checkHeapCaps(overlay(name))).toEqual([]);
    expect(checkServiceAccounts(overlay(name))).toEqual([]);
    expect(checkPodSecurityLabels(overlay(name))).toEqual([]);
  });

  it("allows exactly the connections the stages need (NetworkPolicies)", () => {
    expect(checkNetworkPolicies(overlay(name))).toEqual([]);
  });

  it("labels retrieval pods with their shard and shard count, and the skew alert waits for an index build", async () => {
    expect(checkShardLabels(overlay(name))).toEqual([]);
    expect(checkStageLabels(overlay(name))).toEqual([]);
    const skew = allRules(await readRuleFiles()).find(({ rule }) => rule.alert === "RecsysModelVersionSkew")!.rule;
    const allowance = retrievalRolloutAllowanceSeconds(overlay(name), schemaOf);
    expect(allowance).toBeGreaterThan(0);
    expect(
      parseDurationMs(skew.for ?? "0s") / 1000,
      `RecsysModelVersionSkew waits ${skew.for}, a retrieval rollout may take ${allowance} s`,
    ).toBeGreaterThanOrEqual(allowance);
  });

  it("has an autoscaler (on a per-pod metric) per stage Deployment, fixed retrieval replicas, a disruption budget per workload, volumes that exist, the stages' own images", () => {
    expect(checkScalingObjects(overlay(name))).toEqual([]);
    expect(checkVolumes(overlay(name))).toEqual([]);
    expect(checkImages(overlay(name))).toEqual([]);
  });

  it("points the orchestrator at every retrieval shard in order and at the other stages' Services", () => {
    expect(checkShardsAndAddresses(overlay(name)).problems).toEqual([]);
  });

  it("trains the retrain job on the orchestrator's user store; routes only the public services through the gateway", () => {
    expect(checkRetrainDataset(overlay(name))).toEqual([]);
    expect(checkGrpcRoutes(overlay(name))).toEqual([]);
  });
});

describe("the gpu overlay", () => {
  type Job = K8sObject & {
    spec: {
      jobTemplate: {
        spec: {
          template: {
            spec: {
              nodeSelector?: Record<string, string>;
              tolerations?: unknown[];
              containers: { image: string; resources: { limits: Record<string, unknown> } }[];
            };
          };
        };
      };
    };
  };
  it("puts the retrain CronJob on a GPU node with the -gpu image, one GPU and RECSYS_TF_BACKEND=node-gpu; prod's runs on CPU", () => {
    const gpuJob = findObject(overlay("gpu"), "CronJob", "retrain") as Job;
    const pod = gpuJob.spec.jobTemplate.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ "nvidia.com/gpu.present": "true" });
    expect(pod.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
    expect(pod.containers[0]!.image).toMatch(/\/recsys\/retrain:.+-gpu$/);
    expect(pod.containers[0]!.resources.limits["nvidia.com/gpu"]).toBe(1);
    const config = objectsOfKind<K8sObject & { data: Record<string, string> }>(overlay("gpu"), "ConfigMap").find((c) =>
      c.metadata.name.startsWith("retrain-config"),
    )!;
    expect(config.data["RECSYS_TF_BACKEND"]).toBe("node-gpu");
    const prodPod = (findObject(overlay("prod"), "CronJob", "retrain") as Job).spec.jobTemplate.spec.template.spec;
    expect(prodPod.nodeSelector).toBeUndefined();
    expect(prodPod.containers[0]!.resources.limits["nvidia.com/gpu"]).toBeUndefined();
  });

  it("keeps every serving stage on CPU: no GPU limit, no -gpu image, no GPU node selector", () => {
    for (const w of workloads(overlay("gpu"))) {
      const spec = w.spec.template.spec as Workload["spec"]["template"]["spec"] & { nodeSelector?: Record<string, string> };
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        expect(
          (c.resources?.limits as Record<string, unknown> | undefined)?.["nvidia.com/gpu"],
          `${w.metadata.name}/${c.name}`,
        ).toBeUndefined();
        expect(c.image, w.metadata.name).not.toMatch(/-gpu$/);
      }
      expect(spec.nodeSelector?.["nvidia.com/gpu.present"], w.metadata.name).toBeUndefined();
    }
  });
});

describe("the Prometheus operator overlay", () => {
  it("adds a ServiceMonitor on the metrics ports and the PrometheusRule generated from deploy/prometheus/rules", async () => {
    const objects = overlay("prod-operator");
    const monitor = findObject(objects, "ServiceMonitor", "recsys") as
      | (K8sObject & { spec: { jobLabel: string; endpoints: { port: string }[] } })
      | undefined;
    expect(monitor?.spec.jobLabel).toBe("recsys.io/stage");
    expect(monitor?.spec.endpoints.map((e) => e.port)).toEqual(["metrics"]);
    // Every Service with a metrics port carries the job label with its stage name.
    for (const service of objectsOfKind<K8sObject & { spec: { ports: { name: string }[] } }>(objects, "Service")) {
      if (service.spec.ports.some((p) => p.name === "metrics")) {
        expect(STAGES.map((s) => s.stage)).toContain(service.metadata.labels?.["recsys.io/stage"]);
      }
    }
    const committed = parseObjects(await readFile(PROMETHEUS_RULE_FILE, "utf8"), PROMETHEUS_RULE_FILE)[0]!;
    expect(committed, "prometheusrule.yaml is stale: run `npm run generate -w @recsys/deploy-checks`").toEqual(
      prometheusRuleObject(await readRuleFiles()),
    );
    const inOverlay = findObject(objects, "PrometheusRule", "recsys") as K8sObject & { spec: unknown };
    expect(inOverlay.spec).toEqual((committed as K8sObject & { spec: unknown }).spec);
  });
});

describe("the checks catch broken manifests", () => {
  /** A deep copy of the dev overlay with `edit` applied to the named workload's main container. */
  function broken(kind: string, name: string, edit: (w: Workload, objects: K8sObject[]) => void): K8sObject[] {
    const objects = structuredClone(overlay("dev"));
    const workload = findObject(objects, kind, name) as Workload;
    edit(workload, objects);
    return objects;
  }
  const cg = STAGES[0]!;
  const configMapOf = (w: Workload, objects: K8sObject[]): { data: Record<string, string> } =>
    findObject(objects, "ConfigMap", w.spec.template.spec.containers[0]!.envFrom![0]!.configMapRef!.name) as unknown as {
      data: Record<string, string>;
    };
  const envProblems = (objects: K8sObject[]): string[] => {
    const w = findObject(objects, "Deployment", cg.k8sName) as Workload;
    const env = containerEnv(objects, "cg", w.spec.template.spec.containers[0]!);
    return checkEnvAgainstSchema("cg", env.values, packages.get(cg.stage)!.configSchema);
  };

  it("an unknown variable, a missing required one, a value the service refuses", () => {
    expect(envProblems(broken("Deployment", cg.k8sName, (w, o) => (configMapOf(w, o).data["MODEL_DIR"] = "/models")))).toEqual([
      "cg: sets MODEL_DIR, which the service does not read (not in its configSchema)",
    ]);
    expect(envProblems(broken("Deployment", cg.k8sName, (w, o) => delete configMapOf(w, o).data["MODEL_PATH"]))).toEqual([
      "cg: does not set MODEL_PATH, which the service requires",
    ]);
    expect(envProblems(broken("Deployment", cg.k8sName, (w, o) => (configMapOf(w, o).data["DRAIN_TIMEOUT"] = "15 seconds")))[0]).toMatch(
      /DRAIN_TIMEOUT="15 seconds" is refused/,
    );
  });

  it("a probe or a Service on the wrong port, a port that disagrees with GRPC_PORT", () => {
    expect(
      checkPorts(
        broken("Deployment", cg.k8sName, (w) => (w.spec.template.spec.containers[0]!.readinessProbe!.grpc!.port = 50052)),
        schemaOf,
      ),
    ).toEqual(["Deployment/candidate-generation: readinessProbe probes port 50052, the gRPC port is 50051"]);
    const wrongTarget = structuredClone(overlay("dev"));
    (findObject(wrongTarget, "Service", "ranking") as unknown as { spec: { ports: { targetPort: string }[] } }).spec.ports[0]!.targetPort =
      "grcp";
    expect(checkPorts(wrongTarget, schemaOf)).toEqual([
      "Service/ranking: port grpc targets grcp, which Deployment/ranking does not expose",
    ]);
    expect(
      checkPorts(
        broken("Deployment", cg.k8sName, (w, o) => (configMapOf(w, o).data["GRPC_PORT"] = "6000")),
        schemaOf,
      ),
    ).toContain('Deployment/candidate-generation: container port "grpc" is 50051, GRPC_PORT is 6000');
  });

  it("a writable root filesystem, a short grace period, a foreign image, a missing claim", () => {
    expect(
      checkSecurityAndResources(
        broken("Deployment", cg.k8sName, (w) => (w.spec.template.spec.containers[0]!.securityContext!.readOnlyRootFilesystem = false)),
      ),
    ).toEqual(["Deployment/candidate-generation container candidate-generation: readOnlyRootFilesystem is not true"]);
    expect(
      checkShutdownTiming(
        broken("StatefulSet", "retrieval-0", (w) => (w.spec.template.spec.terminationGracePeriodSeconds = 20)),
        schemaOf,
      ),
    ).toEqual([
      "StatefulSet/retrieval-0: terminationGracePeriodSeconds 20 must exceed preStop + SHUTDOWN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT = 27 s",
    ]);
    expect(
      checkImages(broken("Deployment", "ranking", (w) => (w.spec.template.spec.containers[0]!.image = "localhost/recsys/retrieval:dev"))),
    ).toEqual(["Deployment/ranking: runs image recsys/retrieval, the stage's image is recsys/ranking"]);
    expect(
      checkVolumes(broken("Deployment", "ranking", (w) => (w.spec.template.spec.volumes![0]!.persistentVolumeClaim!.claimName = "models"))),
    ).toEqual(['Deployment/ranking: volume models uses PersistentVolumeClaim "models", which is not rendered']);
  });

  it("a Redis URL from a Secret: accepted when the pod template names its variables, refused otherwise or for an unknown one", () => {
    const managed = overlay("prod-managed-redis");
    const orchestrator = findObject(managed, "Deployment", "orchestrator") as Workload;
    const env = workloadEnv(managed, orchestrator);
    expect([...env.secret]).toEqual(["REDIS_URL"]);
    expect(env.values.has("REDIS_URL")).toBe(false);
    const schema = packages.get("orchestrator")!.configSchema;
    expect(checkEnvAgainstSchema("orchestrator", env.values, schema, packages.get("orchestrator")!.crossCheck, env.secret)).toEqual([]);
    const undeclared = structuredClone(managed);
    delete (findObject(undeclared, "Deployment", "orchestrator") as Workload).spec.template.metadata!.annotations;
    expect(workloadEnv(undeclared, findObject(undeclared, "Deployment", "orchestrator") as Workload).problems).toEqual([
      'Deployment/orchestrator: envFrom Secret "recsys-redis" is not rendered and the pod template does not list its variables in the annotation recsys.io/secret-env',
    ]);
    expect(checkEnvAgainstSchema("orchestrator", env.values, schema, undefined, new Set(["REDIS_PASSWORD"]))).toEqual([
      "orchestrator: sets REDIS_PASSWORD, which the service does not read (not in its configSchema)",
    ]);
  });

  it("a retrain job reading another store than the orchestrator's (the managed-redis one's former in-namespace URL)", () => {
    const managed = structuredClone(overlay("prod-managed-redis"));
    const job = findObject(managed, "CronJob", "retrain") as K8sObject & {
      spec: { jobTemplate: { spec: { template: { spec: { containers: { env?: { name: string; value: string }[] }[] } } } } };
    };
    const container = job.spec.jobTemplate.spec.template.spec.containers[0]!;
    container.env = [{ name: "RETRAIN_DATASET", value: "store:redis://redis:6379?prefix=recsys:" }];
    expect(checkRetrainDataset(managed)).toEqual([
      "CronJob/retrain: --dataset=store:redis://redis:6379?prefix=recsys: does not read the orchestrator's user store store:$(secret recsys-redis/REDIS_URL)",
    ]);
    container.env = [{ name: "RETRAIN_DATASET", value: "store:$(REDIS_URL)?prefix=other:" }];
    expect(checkRetrainDataset(managed)).toEqual([
      "CronJob/retrain: --dataset=store:$(secret recsys-redis/REDIS_URL)?prefix=other: reads key prefix other:, the orchestrator writes under recsys:",
    ]);
    delete container.env;
    expect(checkRetrainDataset(managed)).toEqual([
      "CronJob/retrain: --dataset=$(RETRAIN_DATASET) does not read the orchestrator's user store store:$(secret recsys-redis/REDIS_URL)",
    ]);
    expect(expandVariables("a$(X)b$(Y)$$(X)", new Map([["X", "1"]]))).toBe("a1b$(Y)$(X)");
  });

  it("a GRPCRoute for health or reflection, to another backend, or a public service left out", () => {
    type Route = K8sObject & {
      spec: { rules: { matches: { method: { type?: string; service?: string } }[]; backendRefs: { name: string; port: number }[] }[] };
    };
    const prod = (): { objects: K8sObject[]; catalogue: Route } => {
      const objects = structuredClone(overlay("prod"));
      return { objects, catalogue: findObject(objects, "GRPCRoute", "recsys-catalogue") as Route };
    };
    let { objects, catalogue } = prod();
    catalogue.spec.rules[0]!.matches.push({ method: { type: "Exact", service: "grpc.health.v1.Health" } });
    expect(checkGrpcRoutes(objects)).toEqual([
      "GRPCRoute/recsys-catalogue: routes grpc.health.v1.Health, which is not one of the public services (recsys.v1.RecommenderService, recsys.v1.CatalogueService)",
    ]);
    ({ objects, catalogue } = prod());
    catalogue.spec.rules[0]!.matches = [{ method: { type: "RegularExpression", service: ".*" } }];
    catalogue.spec.rules[0]!.backendRefs[0]!.name = "ranking";
    expect(checkGrpcRoutes(objects)).toEqual([
      "GRPCRoute/recsys-catalogue: backend ranking:50051, expected the orchestrator Service's grpc port 50051",
      "GRPCRoute/recsys-catalogue: a match without an exact service name routes more than the public services",
      "no GRPCRoute routes recsys.v1.CatalogueService",
    ]);
    ({ objects } = prod());
    expect(checkGrpcRoutes(objects.filter((o) => o.metadata.name !== "recsys-catalogue"))).toEqual([
      "no GRPCRoute routes recsys.v1.CatalogueService",
    ]);
  });

  it("a heap cap over the limit, a shared or default ServiceAccount, a namespace without Pod Security, a CPU-only HPA, an autoscaled shard", () => {
    expect(
      checkHeapCaps(broken("Deployment", "ranking", (w, o) => (configMapOf(w, o).data["NODE_OPTIONS"] = "--max-old-space-size=4096"))),
    ).toEqual([expect.stringMatching(/^Deployment\/ranking: --max-old-space-size=4096 is over 75 % of its \d+ MiB memory limit$/)]);
    expect(checkHeapCaps(broken("Deployment", "ranking", (w, o) => delete configMapOf(w, o).data["NODE_OPTIONS"]))).toEqual([
      "Deployment/ranking: NODE_OPTIONS is undefined, expected exactly --max-old-space-size=<MiB>",
    ]);
    expect(
      checkServiceAccounts(broken("Deployment", "ranking", (w) => (w.spec.template.spec.serviceAccountName = "orchestrator"))),
    ).toEqual(["Deployment/ranking: shares ServiceAccount orchestrator with Deployment/orchestrator"]);
    expect(checkServiceAccounts(broken("Deployment", "ranking", (w) => delete w.spec.template.spec.serviceAccountName))).toEqual([
      "Deployment/ranking: runs as the namespace's default ServiceAccount",
    ]);
    const lax = structuredClone(overlay("dev"));
    delete (lax.find((o) => o.kind === "Namespace")!.metadata.labels as Record<string, string>)["pod-security.kubernetes.io/enforce"];
    expect(checkPodSecurityLabels(lax)).toEqual([
      'Namespace/recsys-dev: pod-security.kubernetes.io/enforce is undefined, expected "restricted"',
    ]);
    const cpuOnly = structuredClone(overlay("dev"));
    const hpa = findObject(cpuOnly, "HorizontalPodAutoscaler", "ranking") as unknown as { spec: { metrics: { type: string }[] } };
    hpa.spec.metrics = hpa.spec.metrics.filter((m) => m.type === "Resource");
    expect(checkScalingObjects(cpuOnly)).toEqual([
      "HorizontalPodAutoscaler/ranking: no per-pod request-rate or in-flight metric (CPU alone lags a traffic step)",
    ]);
    const scaled = structuredClone(overlay("dev"));
    scaled.push({
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: { name: "retrieval-0" },
      spec: {
        ...(hpa.spec as object),
        scaleTargetRef: { apiVersion: "apps/v1", kind: "StatefulSet", name: "retrieval-0" },
        metrics: [
          {
            type: "Pods",
            pods: { metric: { name: "recsys_retrieval_grpc_requests_in_flight" }, target: { type: "AverageValue", averageValue: "4" } },
          },
        ],
        maxReplicas: 4,
      },
    });
    expect(checkScalingObjects(scaled)).toEqual(["StatefulSet/retrieval-0: has an HPA; a retrieval shard runs a fixed number of replicas"]);
  });

  it("a NetworkPolicy gone or too open, a shard pod labelled with another shard", () => {
    const cut = structuredClone(overlay("prod")).filter(
      (o) => !(o.kind === "NetworkPolicy" && o.metadata.name === "stages-from-orchestrator"),
    );
    expect(checkNetworkPolicies(cut)).toEqual([
      "orchestrator → Deployment/candidate-generation:50051: refused, must be allowed",
      "orchestrator → Deployment/ranking:50051: refused, must be allowed",
      "orchestrator → StatefulSet/retrieval-0:50051: refused, must be allowed",
      "orchestrator → StatefulSet/retrieval-1:50051: refused, must be allowed",
    ]);
    const open = structuredClone(overlay("prod")).filter((o) => o.kind !== "NetworkPolicy" || o.metadata.name !== "default-deny");
    expect(checkNetworkPolicies(open)).toContain("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)");
    const relabelled = structuredClone(overlay("prod"));
    (findObject(relabelled, "StatefulSet", "retrieval-1") as Workload).spec.template.metadata!.labels!["recsys.io/shard-count"] = "3";
    expect(checkShardLabels(relabelled)).toEqual([
      'StatefulSet/retrieval-1: pod label recsys.io/shard-count is "3", the shard\'s env says 2',
    ]);
    (findObject(relabelled, "StatefulSet", "retrieval-1") as Workload).spec.template.metadata!.labels!["app.kubernetes.io/component"] =
      "user-store";
    expect(checkStageLabels(relabelled)).toEqual([
      'StatefulSet/retrieval-1: pod label app.kubernetes.io/component is "user-store", expected retrieval',
    ]);
  });

  it("a retrieval startup probe that allows more than the skew alert waits", () => {
    const slow = structuredClone(overlay("prod"));
    const probe = (findObject(slow, "StatefulSet", "retrieval-0") as Workload).spec.template.spec.containers[0]!.startupProbe as {
      failureThreshold: number;
    };
    probe.failureThreshold = 180; // 30 minutes
    expect(retrievalRolloutAllowanceSeconds(slow, schemaOf)).toBe(1830);
    expect(retrievalRolloutAllowanceSeconds(overlay("prod"), schemaOf)).toBe(1230);
  });

  it("a shard missing from RETRIEVAL_ADDRESSES, shards out of order", () => {
    const prod = structuredClone(overlay("prod"));
    const orchestrator = findObject(prod, "Deployment", "orchestrator") as Workload;
    const cm = findObject(prod, "ConfigMap", orchestrator.spec.template.spec.containers[0]!.envFrom![0]!.configMapRef!.name) as unknown as {
      data: Record<string, string>;
    };
    cm.data["RETRIEVAL_ADDRESSES"] = "dns:///retrieval-0:50051";
    expect(checkShardsAndAddresses(prod).problems).toEqual([
      'orchestrator RETRIEVAL_ADDRESSES is "dns:///retrieval-0:50051", the rendered shards need "dns:///retrieval-0:50051,dns:///retrieval-1:50051"',
    ]);
    const swapped = structuredClone(overlay("prod"));
    const shard1 = findObject(swapped, "StatefulSet", "retrieval-1") as Workload;
    (
      findObject(swapped, "ConfigMap", shard1.spec.template.spec.containers[0]!.envFrom![0]!.configMapRef!.name) as unknown as {
        data: Record<string, string>;
      }
    ).data["SHARD_INDEX"] = "0";
    expect(checkShardsAndAddresses(swapped).problems).toEqual(["StatefulSet/retrieval-1: SHARD_INDEX=0 SHARD_COUNT=2, expected 1 and 2"]);
  });

  it("a misspelt field (schemas alone accept it) and a wrong type", async () => {
    const objects = broken("Deployment", cg.k8sName, (w) => {
      const sc = w.spec.template.spec.containers[0]!.securityContext as Record<string, unknown>;
      sc["readOnlyRootFileSystem"] = true;
    });
    const deployment = findObject(objects, "Deployment", cg.k8sName)!;
    expect(await validateSchemas([deployment])).toEqual([]); // why the second check exists
    const strict = strictFieldCheck([{ label: "cg", object: deployment }]);
    expect(strict).toHaveLength(1);
    expect(strict[0]!.message).toMatch(/readOnlyRootFileSystem.*does not exist in type 'ISecurityContext'/);
    const wrongType = structuredClone(deployment) as Workload;
    (wrongType.spec.template.spec.containers[0]!.ports![0] as unknown as Record<string, unknown>)["containerPort"] = "50051";
    expect((await validateSchemas([wrongType]))[0]?.message).toMatch(/containerPort must be integer/);
  });
});

it("has a Containerfile for every stage image", () => {
  for (const stage of STAGES)
    expect(existsSync(join(K8S_DIR, "..", "deploy", "containers", `${stage.image}.Containerfile`)), stage.image).toBe(true);
});

it("starts every stage image with the runtime's SERVING_NODE_FLAGS", async () => {
  for (const stage of STAGES) {
    const text = await readFile(join(K8S_DIR, "..", "deploy", "containers", `${stage.image}.Containerfile`), "utf8");
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(text);
    expect(entrypoint, `${stage.image}: an exec-form ENTRYPOINT`).not.toBeNull();
    const argv = JSON.parse(entrypoint![1]!) as string[];
    expect(argv[0], stage.image).toBe("node");
    expect(argv.slice(1, -1), stage.image).toEqual([...SERVING_NODE_FLAGS]);
    expect(argv.at(-1), stage.image).toMatch(/^packages\/[a-z-]+\/dist\/main\.js$/);
  }
});

it("builds every image (the stages' and the retrain job's) with Node.js from the base image's Debian package, and a runtime stage without build tools, addon objects or source maps", async () => {
  for (const stage of [...STAGES, { image: "retrain" }]) {
    const text = await readFile(join(K8S_DIR, "..", "deploy", "containers", `${stage.image}.Containerfile`), "utf8");
    const version = /^ARG NODE_DEB_VERSION=(\S+)$/m.exec(text)?.[1];
    expect(version, stage.image).toMatch(/^20\.(19|[2-9]\d)\.\d+\+dfsg-\S+$/); // an exact Debian version, ≥ 20.19
    const [build, runtime] = text.split(/^FROM \$\{NODE_IMAGE\}$/m);
    expect(runtime, `${stage.image}: a runtime stage FROM \${NODE_IMAGE}`).toBeDefined();
    expect(runtime, stage.image).toMatch(/apt-get install [^\n]*"nodejs=\$\{NODE_DEB_VERSION\}"/);
    expect(runtime, stage.image).not.toMatch(/\bnpm\b|\bg\+\+|\bmake\b|python3|COPY (?!--from=build \/app \/app)/);
    expect(build, stage.image).toMatch(/"nodejs=\$\{NODE_DEB_VERSION\}" "libnode-dev=\$\{NODE_DEB_VERSION\}"/);
    expect(build, stage.image).toMatch(/-name build -prune -exec test -f '\{\}\/\.\.\/binding\.gyp'/);
    expect(build, stage.image).toMatch(/-name '\*\.map'/);
    expect(runtime, stage.image).toMatch(/apt-get clean/);
    expect(text, stage.image).not.toMatch(/^FROM (?!\$\{)/m); // every base from a build argument (bases made by build-images.sh)
  }
});

it("serves every HPA's custom metric from a prometheus-adapter rule over a series the stages export", async () => {
  const config = parse(await readFile(join(K8S_DIR, "..", "deploy", "prometheus-adapter", "config.yaml"), "utf8")) as {
    rules: { seriesQuery: string; name: { matches: string; as: string }; metricsQuery: string }[];
  };
  // The runtime's metric names of each stage (packages/runtime/src/metrics.ts).
  const series = STAGES.flatMap((s) => [`recsys_${s.stage}_grpc_requests_total`, `recsys_${s.stage}_grpc_requests_in_flight`]);
  const served = new Set<string>();
  for (const rule of config.rules) {
    const selector = /__name__=~"([^"]+)"/.exec(rule.seriesQuery)?.[1];
    expect(selector, rule.seriesQuery).toBeDefined();
    expect(rule.seriesQuery).toMatch(/namespace!="",pod!=""/);
    for (const name of series.filter((n) => new RegExp(`^(?:${selector})$`).test(n))) {
      const match = new RegExp(rule.name.matches).exec(name);
      if (match !== null) served.add(rule.name.as.replace(/\$\{(\d+)\}/g, (_, i: string) => match[Number(i)] ?? ""));
    }
  }
  const wanted = objectsOfKind<K8sObject & { spec: { metrics: { type: string; pods?: { metric: { name: string } } }[] } }>(
    overlay("prod"),
    "HorizontalPodAutoscaler",
  ).flatMap((h) => h.spec.metrics.flatMap((m) => (m.type === "Pods" ? [m.pods!.metric.name] : [])));
  expect(wanted.length).toBe(6);
  expect(wanted.filter((name) => !served.has(name))).toEqual([]);
});
