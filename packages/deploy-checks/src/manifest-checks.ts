/**
 * Consistency checks of rendered manifests: environment against the services' config schemas,
 * ports, probes, Services, autoscalers, volumes, images, security settings, shutdown timing and
 * the retrieval shards. Each check returns a list of problems (empty = fine), worded for a person.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_STORE_PREFIX } from "@recsys/data";
import { CatalogueService, RecommenderService } from "@recsys/gen";
import { parseDurationMs, type ConfigSchema } from "@recsys/runtime";
import { findObject, type K8sObject } from "./kustomize.js";
import { DEPLOY_DIR } from "./paths.js";
import { STAGES, stageOfK8sName, type StageInfo } from "./stages.js";

/* The fields of the objects the checks read (a narrow view of the Kubernetes types). */
interface Port {
  name?: string;
  containerPort?: number;
  port?: number;
  targetPort?: number | string;
}
interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: unknown;
  tcpSocket?: unknown;
  exec?: unknown;
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  ports?: Port[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string }; prefix?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string; readOnly?: boolean }; configMap?: { name: string } }[];
}
export interface Workload extends K8sObject {
  spec: {
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
    serviceName?: string;
    replicas?: number;
    persistentVolumeClaimRetentionPolicy?: { whenDeleted?: string; whenScaled?: string };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
}
interface ServiceObject extends K8sObject {
  spec: { clusterIP?: string; type?: string; selector?: Record<string, string>; ports: Port[] };
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  return objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet") as Workload[];
}

/** A pod template with the object that owns it: Deployments, StatefulSets and CronJobs (the retrain job). */
export interface PodTemplate {
  readonly owner: K8sObject;
  readonly label: string;
  readonly template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
}

export function podTemplates(objects: readonly K8sObject[]): PodTemplate[] {
  const templates: PodTemplate[] = workloads(objects).map((w) => ({ owner: w, label: label(w), template: w.spec.template }));
  for (const cronJob of objects.filter((o) => o.kind === "CronJob") as (K8sObject & {
    spec: { jobTemplate: { spec: { template: PodTemplate["template"] } } };
  })[]) {
    templates.push({ owner: cronJob, label: label(cronJob), template: cronJob.spec.jobTemplate.spec.template });
  }
  return templates;
}

/** The recsys stages' workloads (not Redis). */
export function stageWorkloads(objects: readonly K8sObject[]): Workload[] {
  return workloads(objects).filter((w) => workloadStage(w) !== undefined);
}

/** Auxiliary workloads the deployment may carry besides the stages. */
export const AUXILIARY_WORKLOADS: readonly string[] = ["redis"];

function services(objects: readonly K8sObject[]): ServiceObject[] {
  return objects.filter((o) => o.kind === "Service") as ServiceObject[];
}

function label(workload: K8sObject): string {
  return `${workload.kind}/${workload.metadata.name}`;
}

/** The stage a workload serves, from its name (candidate-generation, retrieval-<i>, ...). */
export function workloadStage(workload: K8sObject): StageInfo | undefined {
  return stageOfK8sName(workload.metadata.name);
}

function mainContainer(workload: Workload): Container | undefined {
  const stage = workloadStage(workload);
  return workload.spec.template.spec.containers.find((c) => c.name === stage?.k8sName) ?? undefined;
}

export interface ResolvedEnv {
  /** Variable → value, from envFrom ConfigMaps then env (env wins, as in Kubernetes). */
  readonly values: Map<string, string>;
  /**
   * Variables a Secret provides (envFrom secretRef): their values are not in the manifests, so
   * they are checked by name only. The keys are the rendered Secret's, or else those the pod
   * template lists in its annotation recsys.io/secret-env (comma-separated).
   */
  readonly secret: Set<string>;
  readonly problems: string[];
}

/** The pod template annotation naming the variables that envFrom Secrets provide. */
export const SECRET_ENV_ANNOTATION = "recsys.io/secret-env";

/**
 * Variables a container may set beyond its service's configSchema: read by Node.js itself, not by
 * the service (checked by checkHeapCaps).
 */
export const RUNTIME_VARIABLES: readonly string[] = ["NODE_OPTIONS"];

/** The environment a container gets from the rendered objects. */
export function containerEnv(
  objects: readonly K8sObject[],
  owner: string,
  container: Container,
  annotations: Record<string, string> = {},
): ResolvedEnv {
  const values = new Map<string, string>();
  const secret = new Set<string>();
  const problems: string[] = [];
  const declared = (annotations[SECRET_ENV_ANNOTATION] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef !== undefined) {
      const configMap = findObject(objects, "ConfigMap", source.configMapRef.name) as
        | (K8sObject & { data?: Record<string, string> })
        | undefined;
      if (configMap === undefined) {
        problems.push(`${owner}: envFrom ConfigMap "${source.configMapRef.name}" is not among the rendered objects`);
        continue;
      }
      for (const [key, value] of Object.entries(configMap.data ?? {})) {
        values.set(`${source.prefix ?? ""}${key}`, value);
        secret.delete(`${source.prefix ?? ""}${key}`);
      }
    } else if (source.secretRef !== undefined) {
      const rendered = findObject(objects, "Secret", source.secretRef.name) as
        | (K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> })
        | undefined;
      const keys = rendered !== undefined ? [...Object.keys(rendered.data ?? {}), ...Object.keys(rendered.stringData ?? {})] : declared;
      if (keys.length === 0) {
        problems.push(
          `${owner}: envFrom Secret "${source.secretRef.name}" is not rendered and the pod template does not list its variables in the annotation ${SECRET_ENV_ANNOTATION}`,
        );
        continue;
      }
      for (const key of keys) {
        // A later source wins: a Secret's variable replaces a ConfigMap's value of the same name.
        values.delete(`${source.prefix ?? ""}${key}`);
        secret.add(`${source.prefix ?? ""}${key}`);
      }
    } else {
      problems.push(`${owner}: envFrom ${JSON.stringify(source)}: only ConfigMaps and Secrets can be checked against the config schema`);
    }
  }
  for (const variable of container.env ?? []) {
    if (variable.value === undefined) {
      problems.push(`${owner}: env ${variable.name} is not a literal value (valueFrom cannot be checked)`);
      continue;
    }
    values.set(variable.name, variable.value);
    secret.delete(variable.name);
  }
  return { values, secret, problems };
}

/** The environment of a workload's stage container, with its pod annotations. */
export function workloadEnv(objects: readonly K8sObject[], workload: Workload): ResolvedEnv {
  return containerEnv(objects, label(workload), mainContainer(workload)!, workload.spec.template.metadata?.annotations ?? {});
}

/**
 * The environment must be exactly what the service reads: no variable the schema does not know,
 * every required one present, every value accepted by the schema's parser, and the package's
 * cross-variable check (if any) satisfied.
 */
export function checkEnvAgainstSchema(
  owner: string,
  env: ReadonlyMap<string, string>,
  schema: ConfigSchema,
  crossCheck?: (config: Record<string, unknown>) => void,
  secret: ReadonlySet<string> = new Set(),
): string[] {
  const problems: string[] = [];
  for (const name of [...env.keys(), ...secret]) {
    if (!(name in schema) && !RUNTIME_VARIABLES.includes(name))
      problems.push(`${owner}: sets ${name}, which the service does not read (not in its configSchema)`);
  }
  const config: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema)) {
    const raw = env.get(name)?.trim();
    if (secret.has(name)) {
      // Set from a Secret: present, value unknown here (the schema's default stands in for the cross-check).
      config[name] = spec.default;
      continue;
    }
    if (raw === undefined || raw === "") {
      if (spec.required) problems.push(`${owner}: does not set ${name}, which the service requires`);
      config[name] = spec.default;
      continue;
    }
    try {
      config[name] = spec.parse(raw);
    } catch (error) {
      problems.push(`${owner}: ${name}="${raw}" is refused by the service: ${(error as Error).message}`);
    }
  }
  if (problems.length === 0 && crossCheck !== undefined) {
    try {
      crossCheck(config);
    } catch (error) {
      problems.push(`${owner}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** A number from the env or the schema default (ports). */
function envNumber(env: ReadonlyMap<string, string>, schema: ConfigSchema | undefined, name: string, fallback: number): number {
  const raw = env.get(name);
  if (raw !== undefined) return Number(raw);
  const value = schema?.[name]?.default;
  return typeof value === "number" ? value : fallback;
}

function envDurationMs(env: ReadonlyMap<string, string>, schema: ConfigSchema | undefined, name: string, fallback: number): number {
  const raw = env.get(name);
  if (raw !== undefined) return parseDurationMs(raw);
  const value = schema?.[name]?.default;
  return typeof value === "number" ? value : fallback;
}

function preStopSeconds(container: Container): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep !== undefined) return preStop.sleep.seconds;
  const command = preStop?.exec?.command;
  if (command !== undefined && command.length === 2 && command[0] === "sleep" && /^\d+$/.test(command[1]!)) return Number(command[1]);
  return 0;
}

/** Schemas by stage name, for the landed packages (others: the runtime's defaults apply). */
export type SchemaLookup = (stage: StageInfo) => ConfigSchema | undefined;

/**
 * Ports: containers name `grpc` and `metrics` ports equal to GRPC_PORT / METRICS_PORT; gRPC
 * readiness and liveness (and startup) probes on the grpc port; every Service port's targetPort
 * is a port of the pods its selector selects, which must exist.
 */
export function checkPorts(objects: readonly K8sObject[], schemaOf: SchemaLookup): string[] {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const stage = workloadStage(workload);
    const container = mainContainer(workload);
    if (stage === undefined && AUXILIARY_WORKLOADS.includes(workload.metadata.name)) continue;
    if (stage === undefined || container === undefined) {
      problems.push(`${label(workload)}: not a recsys stage, or no container named after it`);
      continue;
    }
    const { values } = containerEnv(objects, label(workload), container);
    const schema = schemaOf(stage);
    const grpcPort = envNumber(values, schema, "GRPC_PORT", 50051);
    const metricsPort = envNumber(values, schema, "METRICS_PORT", 9464);
    const ports = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]));
    if (ports.get("grpc") !== grpcPort)
      problems.push(`${label(workload)}: container port "grpc" is ${ports.get("grpc")}, GRPC_PORT is ${grpcPort}`);
    if (ports.get("metrics") !== metricsPort) {
      problems.push(`${label(workload)}: container port "metrics" is ${ports.get("metrics")}, METRICS_PORT is ${metricsPort}`);
    }
    for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
      const probe = container[kind];
      if (probe === undefined) {
        if (kind !== "startupProbe") problems.push(`${label(workload)}: no ${kind}`);
        continue;
      }
      if (probe.grpc === undefined) problems.push(`${label(workload)}: ${kind} is not a native gRPC health probe`);
      else if (probe.grpc.port !== grpcPort)
        problems.push(`${label(workload)}: ${kind} probes port ${probe.grpc.port}, the gRPC port is ${grpcPort}`);
    }
  }
  for (const service of services(objects)) {
    const selector = service.spec.selector ?? {};
    const selected = workloads(objects).filter((w) => {
      const labels = w.spec.template.metadata?.labels ?? {};
      return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
    });
    if (selected.length === 0) {
      problems.push(`Service/${service.metadata.name}: its selector ${JSON.stringify(selector)} selects no pod template`);
      continue;
    }
    for (const port of service.spec.ports) {
      for (const workload of selected) {
        const containerPorts = workload.spec.template.spec.containers.flatMap((c) => c.ports ?? []);
        const target = port.targetPort ?? port.port;
        const found = containerPorts.some((p) => (typeof target === "string" ? p.name === target : p.containerPort === target));
        if (!found)
          problems.push(`Service/${service.metadata.name}: port ${port.name} targets ${target}, which ${label(workload)} does not expose`);
      }
    }
  }
  return problems;
}

/**
 * The shutdown sequence fits: terminationGracePeriodSeconds > preStop sleep + SHUTDOWN_DELAY +
 * DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT (runtime defaults where unset).
 */
export function checkShutdownTiming(objects: readonly K8sObject[], schemaOf: SchemaLookup): string[] {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const stage = workloadStage(workload);
    const container = mainContainer(workload);
    if (stage === undefined || container === undefined) continue;
    const { values } = containerEnv(objects, label(workload), container);
    const schema = schemaOf(stage);
    const preStop = preStopSeconds(container);
    if (preStop === 0) problems.push(`${label(workload)}: no preStop sleep (endpoints may still send calls after SIGTERM)`);
    const needed =
      preStop +
      (envDurationMs(values, schema, "SHUTDOWN_DELAY", 0) +
        envDurationMs(values, schema, "DRAIN_TIMEOUT", 15_000) +
        envDurationMs(values, schema, "SHUTDOWN_TIMEOUT", 5000)) /
        1000;
    const grace = workload.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    if (!(grace > needed)) {
      problems.push(
        `${label(workload)}: terminationGracePeriodSeconds ${grace} must exceed preStop + SHUTDOWN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT = ${needed} s`,
      );
    }
  }
  return problems;
}

/** Non-root, read-only root filesystem, no privilege escalation, ALL capabilities dropped, requests and limits. */
export function checkSecurityAndResources(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { label: owner, template } of podTemplates(objects)) {
    const pod = template.spec;
    if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${owner}: pod securityContext.runAsNonRoot is not true`);
    for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
      const where = `${owner} container ${container.name}`;
      const sc = container.securityContext;
      if (sc?.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
      if (sc?.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
      if (!(sc?.capabilities?.drop ?? []).includes("ALL")) problems.push(`${where}: capabilities do not drop ALL`);
      if ((sc?.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities ${sc?.capabilities?.add?.join(", ")}`);
      for (const resource of ["cpu", "memory"]) {
        if (container.resources?.requests?.[resource] === undefined) problems.push(`${where}: no ${resource} request`);
        if (container.resources?.limits?.[resource] === undefined) problems.push(`${where}: no ${resource} limit`);
      }
    }
  }
  return problems;
}

/** Volume mounts (init containers and the CronJob too) name a volume of the pod or a claim template; referenced claims are rendered; the stages mount the model claim read-only. */
export function checkVolumes(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { owner, label: where, template } of podTemplates(objects)) {
    const pod = template.spec;
    const claimTemplates = (owner as Workload).spec?.volumeClaimTemplates ?? [];
    const names = new Set([...(pod.volumes ?? []).map((v) => v.name), ...claimTemplates.map((t) => t.metadata.name)]);
    for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
      for (const mount of container.volumeMounts ?? []) {
        if (!names.has(mount.name)) problems.push(`${where}: mounts volume "${mount.name}", which the pod does not have`);
      }
    }
    for (const volume of pod.volumes ?? []) {
      const claim = volume.persistentVolumeClaim?.claimName;
      if (claim !== undefined && findObject(objects, "PersistentVolumeClaim", claim) === undefined) {
        problems.push(`${where}: volume ${volume.name} uses PersistentVolumeClaim "${claim}", which is not rendered`);
      }
      // The serving stages read models; only the training job (a CronJob) writes them.
      if (
        owner.kind !== "CronJob" &&
        volume.persistentVolumeClaim !== undefined &&
        volume.persistentVolumeClaim.readOnly !== true &&
        volume.name === "models"
      ) {
        problems.push(`${where}: the model volume must be mounted read-only`);
      }
    }
  }
  return problems;
}

interface HpaObject extends K8sObject {
  spec: {
    scaleTargetRef: { kind: string; name: string };
    minReplicas?: number;
    maxReplicas: number;
    metrics?: { type: string; pods?: { metric: { name: string } }; resource?: { name: string } }[];
  };
}

/**
 * Autoscalers and disruption budgets: every stage Deployment has an HPA that scales on a per-pod
 * metric (requests per second or calls in flight, through the custom metrics API), not CPU only;
 * retrieval shards have fixed replicas (no HPA: a new pod is useful only after its index is
 * ready) and a PVC retention policy; every workload (Redis too) has exactly one PDB.
 */
export function checkScalingObjects(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const all = workloads(objects);
  const hpas = objects.filter((o) => o.kind === "HorizontalPodAutoscaler") as HpaObject[];
  for (const hpa of hpas) {
    const { kind, name } = hpa.spec.scaleTargetRef;
    if (findObject(all, kind, name) === undefined)
      problems.push(`HorizontalPodAutoscaler/${hpa.metadata.name}: targets ${kind}/${name}, which is not rendered`);
    if ((hpa.spec.minReplicas ?? 1) > hpa.spec.maxReplicas)
      problems.push(`HorizontalPodAutoscaler/${hpa.metadata.name}: minReplicas > maxReplicas`);
    if (
      !(hpa.spec.metrics ?? []).some(
        (m) => m.type === "Pods" && /^recsys_[a-z_]+_grpc_requests_(per_second|in_flight)$/.test(m.pods?.metric.name ?? ""),
      )
    ) {
      problems.push(
        `HorizontalPodAutoscaler/${hpa.metadata.name}: no per-pod request-rate or in-flight metric (CPU alone lags a traffic step)`,
      );
    }
  }
  for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget") as (K8sObject & {
    spec: { selector: { matchLabels?: Record<string, string> } };
  })[]) {
    const selector = pdb.spec.selector.matchLabels ?? {};
    const selected = all.filter((w) => Object.entries(selector).every(([k, v]) => w.spec.template.metadata?.labels?.[k] === v));
    if (selected.length !== 1)
      problems.push(`PodDisruptionBudget/${pdb.metadata.name}: selects ${selected.length} workloads, expected exactly one`);
  }
  for (const workload of all) {
    const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === workload.metadata.name);
    const stage = workloadStage(workload);
    if (stage?.sharded === true || stage === undefined) {
      if (hpa !== undefined)
        problems.push(
          `${label(workload)}: has an HPA; ${stage === undefined ? "it" : "a retrieval shard"} runs a fixed number of replicas`,
        );
      if (workload.spec.replicas === undefined) problems.push(`${label(workload)}: no replicas (fixed count expected)`);
      if (workload.kind === "StatefulSet" && workload.spec.persistentVolumeClaimRetentionPolicy === undefined) {
        problems.push(
          `${label(workload)}: no persistentVolumeClaimRetentionPolicy (what happens to its claims when deleted or scaled down?)`,
        );
      }
    } else if (hpa === undefined) {
      problems.push(`${label(workload)}: no HorizontalPodAutoscaler`);
    } else if (workload.spec.replicas !== undefined) {
      problems.push(`${label(workload)}: sets replicas although its HPA owns the count (an apply would reset it)`);
    }
    if (!objects.some((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === workload.metadata.name))
      problems.push(`${label(workload)}: no PodDisruptionBudget`);
  }
  return problems;
}

/** Mebibytes of a Kubernetes memory quantity (Mi, Gi, M, G, plain bytes). */
export function memoryMiB(quantity: unknown): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity ?? ""));
  if (match === null) return undefined;
  const factor: Record<string, number> = {
    "": 1 / 2 ** 20,
    Ki: 1 / 1024,
    Mi: 1,
    Gi: 1024,
    Ti: 2 ** 20,
    k: 1e3 / 2 ** 20,
    M: 1e6 / 2 ** 20,
    G: 1e9 / 2 ** 20,
    T: 1e12 / 2 ** 20,
  };
  return Number(match[1]) * factor[match[2] ?? ""]!;
}

/** Largest share of a stage container's memory limit its V8 old space may take. */
export const MAX_HEAP_SHARE_OF_LIMIT = 0.75;

/**
 * The V8 heap is capped relative to the memory limit: every stage container sets NODE_OPTIONS
 * with exactly --max-old-space-size=<MiB>, at most MAX_HEAP_SHARE_OF_LIMIT of its memory limit
 * (the rest: native memory such as HNSW indexes and tfjs tensors, the young generation, code).
 * Without a cap V8 sizes its heap from the host's memory, not the container's limit, and a pod is
 * OOM-killed before V8 collects.
 */
export function checkHeapCaps(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of stageWorkloads(objects)) {
    const container = mainContainer(workload)!;
    const options = workloadEnv(objects, workload).values.get("NODE_OPTIONS");
    const limit = memoryMiB(container.resources?.limits?.["memory"]);
    const match = /^--max-old-space-size=(\d+)$/.exec(options ?? "");
    if (match === null) {
      problems.push(`${label(workload)}: NODE_OPTIONS is ${JSON.stringify(options)}, expected exactly --max-old-space-size=<MiB>`);
      continue;
    }
    if (limit === undefined) continue; // checkSecurityAndResources reports it
    const heap = Number(match[1]);
    if (heap > limit * MAX_HEAP_SHARE_OF_LIMIT) {
      problems.push(
        `${label(workload)}: --max-old-space-size=${heap} is over ${MAX_HEAP_SHARE_OF_LIMIT * 100} % of its ${Math.round(limit)} MiB memory limit`,
      );
    }
  }
  return problems;
}

/** Every workload runs as its own ServiceAccount (rendered), never `default`, without an API token. */
export function checkServiceAccounts(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const used = new Map<string, string>();
  for (const { label: owner, template } of podTemplates(objects)) {
    const pod = template.spec;
    const name = pod.serviceAccountName;
    if (name === undefined || name === "default") {
      problems.push(`${owner}: runs as the namespace's default ServiceAccount`);
      continue;
    }
    if (findObject(objects, "ServiceAccount", name) === undefined) problems.push(`${owner}: ServiceAccount ${name} is not rendered`);
    if (used.has(name)) problems.push(`${owner}: shares ServiceAccount ${name} with ${used.get(name)}`);
    used.set(name, owner);
    if (pod.automountServiceAccountToken !== false)
      problems.push(`${owner}: mounts an API token (automountServiceAccountToken is not false)`);
  }
  return problems;
}

/** The namespace enforces Pod Security `restricted` (and audits and warns at it). */
export function checkPodSecurityLabels(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const namespace of objects.filter((o) => o.kind === "Namespace")) {
    for (const mode of ["enforce", "audit", "warn"]) {
      const value = namespace.metadata.labels?.[`pod-security.kubernetes.io/${mode}`];
      if (value !== "restricted")
        problems.push(
          `Namespace/${namespace.metadata.name}: pod-security.kubernetes.io/${mode} is ${JSON.stringify(value)}, expected "restricted"`,
        );
    }
  }
  return problems;
}

/** Retrieval pods carry recsys.io/shard and recsys.io/shard-count equal to SHARD_INDEX and SHARD_COUNT (the scrape reads them). */
export function checkShardLabels(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of stageWorkloads(objects).filter((w) => workloadStage(w)?.sharded === true)) {
    const { values } = workloadEnv(objects, workload);
    const labels = workload.spec.template.metadata?.labels ?? {};
    const expected = { "recsys.io/shard": values.get("SHARD_INDEX") ?? "0", "recsys.io/shard-count": values.get("SHARD_COUNT") ?? "1" };
    for (const [key, value] of Object.entries(expected)) {
      if (labels[key] !== value)
        problems.push(`${label(workload)}: pod label ${key} is ${JSON.stringify(labels[key])}, the shard's env says ${value}`);
    }
  }
  return problems;
}

/**
 * Every stage pod is labelled with its own stage (app.kubernetes.io/component, recsys.io/stage):
 * a component's `labels` transformer applies to everything of the overlay and would relabel them.
 */
export function checkStageLabels(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of stageWorkloads(objects)) {
    const stage = workloadStage(workload)!;
    const labels = workload.spec.template.metadata?.labels ?? {};
    if (labels["app.kubernetes.io/component"] !== stage.k8sName)
      problems.push(
        `${label(workload)}: pod label app.kubernetes.io/component is ${JSON.stringify(labels["app.kubernetes.io/component"])}, expected ${stage.k8sName}`,
      );
    if (labels["recsys.io/stage"] !== stage.stage)
      problems.push(
        `${label(workload)}: pod label recsys.io/stage is ${JSON.stringify(labels["recsys.io/stage"])}, expected ${stage.stage}`,
      );
  }
  return problems;
}

/** The seconds a workload's startup probe allows before the pod is restarted. */
export function startupAllowanceSeconds(workload: Workload): number | undefined {
  const probe = mainContainer(workload)?.startupProbe as
    | (Probe & { periodSeconds?: number; failureThreshold?: number; initialDelaySeconds?: number })
    | undefined;
  if (probe === undefined) return undefined;
  return (probe.initialDelaySeconds ?? 0) + (probe.periodSeconds ?? 10) * (probe.failureThreshold ?? 3);
}

/** The largest retrieval index-build allowance of an overlay: startup probe + MODEL_POLL_INTERVAL, in seconds. */
export function retrievalRolloutAllowanceSeconds(objects: readonly K8sObject[], schemaOf: SchemaLookup): number {
  let most = 0;
  for (const workload of stageWorkloads(objects).filter((w) => workloadStage(w)?.sharded === true)) {
    const { values } = workloadEnv(objects, workload);
    const poll = envDurationMs(values, schemaOf(workloadStage(workload)!), "MODEL_POLL_INTERVAL", 30_000) / 1000;
    most = Math.max(most, (startupAllowanceSeconds(workload) ?? 0) + poll);
  }
  return most;
}

/**
 * Images: `[registry/]recsys/<image>[:tag]` of the workload's own stage, built by
 * deploy/containers/<image>.Containerfile; `-gpu` tags only for stages with a GPU variant.
 */
export function checkImages(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of stageWorkloads(objects)) {
    const stage = workloadStage(workload);
    for (const container of [...workload.spec.template.spec.containers, ...(workload.spec.template.spec.initContainers ?? [])]) {
      const match = /^(?:(.+)\/)?recsys\/([a-z0-9-]+)(?::([A-Za-z0-9._-]+))?$/.exec(container.image ?? "");
      if (match === null) {
        problems.push(`${label(workload)}: image "${container.image}" is not one of the recsys images ([registry/]recsys/<name>[:tag])`);
        continue;
      }
      const [, , name, tag] = match;
      if (name !== stage?.image)
        problems.push(`${label(workload)}: runs image recsys/${name}, the stage's image is recsys/${stage?.image}`);
      if (!existsSync(join(DEPLOY_DIR, "containers", `${name}.Containerfile`)))
        problems.push(`${label(workload)}: no deploy/containers/${name}.Containerfile builds recsys/${name}`);
      if (tag?.endsWith("-gpu") === true && stage?.gpu !== true)
        problems.push(`${label(workload)}: a -gpu image for a stage without a GPU variant`);
    }
  }
  return problems;
}

/** Services of internal stages are headless (per-call balancing); the orchestrator's public one is a ClusterIP. */
export function checkServiceKinds(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const service of services(objects)) {
    const stage = stageOfK8sName(service.metadata.name);
    if (stage === undefined) {
      if (AUXILIARY_WORKLOADS.includes(service.metadata.name)) continue;
      if (service.metadata.name !== "orchestrator-headless") problems.push(`Service/${service.metadata.name}: not a known recsys Service`);
      else if (service.spec.clusterIP !== "None") problems.push("Service/orchestrator-headless: must be headless");
      continue;
    }
    const headless = service.spec.clusterIP === "None";
    if (stage.stage === "orchestrator" ? headless : !headless) {
      problems.push(
        `Service/${service.metadata.name}: ${headless ? "headless" : "a ClusterIP"}, expected ${headless ? "a ClusterIP (public API)" : "headless (clients balance per call)"}`,
      );
    }
    if (!service.spec.ports.some((p) => p.name === "grpc")) problems.push(`Service/${service.metadata.name}: no port named grpc`);
    if (stage.stage !== "orchestrator" || service.metadata.name === "orchestrator") {
      if (!service.spec.ports.some((p) => p.name === "metrics")) problems.push(`Service/${service.metadata.name}: no port named metrics`);
    }
  }
  return problems;
}

/** Parses `dns:///name:port` or `name:port` into its host and port. */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const match = /^(?:dns:\/\/\/)?([a-z0-9.-]+):(\d+)$/.exec(address);
  return match === null ? undefined : { host: match[1]!, port: Number(match[2]) };
}

/**
 * Retrieval shards and the orchestrator's addresses: shard StatefulSets retrieval-0..n-1, each with
 * SHARD_INDEX=i and SHARD_COUNT=n; RETRIEVAL_ADDRESSES lists dns:///retrieval-<i>:<grpc port> in
 * shard order; CANDIDATE_GENERATION_ADDRESS and RANKING_ADDRESS name headless Services' grpc ports.
 * Returns the shard count with the problems.
 */
export function checkShardsAndAddresses(objects: readonly K8sObject[]): { shards: number; problems: string[] } {
  const problems: string[] = [];
  const retrieval = STAGES.find((s) => s.sharded)!;
  const shards = workloads(objects)
    .filter((w) => workloadStage(w) === retrieval)
    .map((w) => {
      const container = mainContainer(w)!;
      const { values } = containerEnv(objects, label(w), container);
      return { name: w.metadata.name, kind: w.kind, index: values.get("SHARD_INDEX") ?? "0", count: values.get("SHARD_COUNT") ?? "1" };
    })
    .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  const n = shards.length;
  shards.forEach((shard, i) => {
    if (shard.name !== `${retrieval.k8sName}-${i}`)
      problems.push(`retrieval shard workloads must be named ${retrieval.k8sName}-0..${n - 1}; found ${shard.name}`);
    if (shard.kind !== "StatefulSet")
      problems.push(`${shard.kind}/${shard.name}: a retrieval shard must be a StatefulSet (its own index volume per pod)`);
    if (shard.index !== String(i) || shard.count !== String(n)) {
      problems.push(`${shard.kind}/${shard.name}: SHARD_INDEX=${shard.index} SHARD_COUNT=${shard.count}, expected ${i} and ${n}`);
    }
  });
  const orchestrator = findObject(objects, "Deployment", "orchestrator") as Workload | undefined;
  if (orchestrator === undefined) {
    problems.push("no orchestrator Deployment");
    return { shards: n, problems };
  }
  const { values } = containerEnv(objects, "Deployment/orchestrator", mainContainer(orchestrator)!);
  const grpcPortOf = (serviceName: string): number | undefined => {
    const service = findObject(objects, "Service", serviceName) as ServiceObject | undefined;
    return service?.spec.ports.find((p) => p.name === "grpc")?.port;
  };
  const expected = shards.map((_, i) => `dns:///${retrieval.k8sName}-${i}:${grpcPortOf(`${retrieval.k8sName}-${i}`)}`);
  const listed = (values.get("RETRIEVAL_ADDRESSES") ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  if (listed.join(",") !== expected.join(",")) {
    problems.push(`orchestrator RETRIEVAL_ADDRESSES is "${listed.join(",")}", the rendered shards need "${expected.join(",")}"`);
  }
  for (const [variable, serviceName] of [
    ["CANDIDATE_GENERATION_ADDRESS", "candidate-generation"],
    ["RANKING_ADDRESS", "ranking"],
  ] as const) {
    const address = parseAddress(values.get(variable) ?? "");
    const service = findObject(objects, "Service", serviceName) as ServiceObject | undefined;
    if (address === undefined || service === undefined) {
      problems.push(`orchestrator ${variable}="${values.get(variable)}" does not name a rendered Service`);
      continue;
    }
    if (!values.get(variable)!.startsWith("dns:///"))
      problems.push(`orchestrator ${variable} should use dns:/// (round_robin over the headless Service's pods)`);
    if (address.host !== serviceName || address.port !== grpcPortOf(serviceName)) {
      problems.push(`orchestrator ${variable}="${values.get(variable)}", the Service is ${serviceName}:${grpcPortOf(serviceName)}`);
    }
  }
  return { shards: n, problems };
}

/**
 * A container's variables as Kubernetes resolves them: envFrom sources in order (a later one wins),
 * then env with `$(NAME)` references expanded from the variables before it. A Secret's variable
 * stands as `$(secret <Secret>/<key>)`: the last Secret that may provide it (its rendered keys,
 * or else the pod template's recsys.io/secret-env list), as the later source wins.
 */
function resolvedVariables(
  objects: readonly K8sObject[],
  container: Container,
  annotations: Record<string, string> = {},
): Map<string, string> {
  const declared = (annotations[SECRET_ENV_ANNOTATION] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const values = new Map<string, string>();
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef !== undefined) {
      const configMap = findObject(objects, "ConfigMap", source.configMapRef.name) as
        | (K8sObject & { data?: Record<string, string> })
        | undefined;
      for (const [key, value] of Object.entries(configMap?.data ?? {})) values.set(`${source.prefix ?? ""}${key}`, value);
    } else if (source.secretRef !== undefined) {
      const rendered = findObject(objects, "Secret", source.secretRef.name) as
        | (K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> })
        | undefined;
      const keys = rendered !== undefined ? [...Object.keys(rendered.data ?? {}), ...Object.keys(rendered.stringData ?? {})] : declared;
      for (const key of keys) values.set(`${source.prefix ?? ""}${key}`, `$(secret ${source.secretRef.name}/${key})`);
    }
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) values.set(variable.name, expandVariables(variable.value, values));
  }
  return values;
}

/** Kubernetes' `$(NAME)` expansion: a defined variable's value, an undefined one left as written, `$$` an escaped `$`. */
export function expandVariables(text: string, values: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) =>
    name === undefined ? "$" : (values.get(name) ?? whole),
  );
}

/**
 * The retrain job learns from the log the orchestrators write: with USER_STORE=redis its
 * `--dataset` (expanded from its environment) must be store:<the orchestrator's REDIS_URL> under
 * the orchestrator's key prefix, a REDIS_URL from a Secret coming from the same Secret.
 */
export function checkRetrainDataset(objects: readonly K8sObject[]): string[] {
  const cronJob = findObject(objects, "CronJob", "retrain") as
    | (K8sObject & { spec: { jobTemplate: { spec: { template: PodTemplate["template"] } } } })
    | undefined;
  const orchestrator = findObject(objects, "Deployment", "orchestrator") as Workload | undefined;
  if (cronJob === undefined || orchestrator === undefined) return [];
  const orchestratorEnv = resolvedVariables(objects, mainContainer(orchestrator)!, orchestrator.spec.template.metadata?.annotations);
  if (orchestratorEnv.get("USER_STORE") !== "redis") return [];
  const template = cronJob.spec.jobTemplate.spec.template;
  const container = template.spec.containers[0]!;
  const env = resolvedVariables(objects, container, template.metadata?.annotations);
  const arg = (container.args ?? []).find((a) => a.startsWith("--dataset="));
  if (arg === undefined) return ["CronJob/retrain: no --dataset argument"];
  const dataset = expandVariables(arg.slice("--dataset=".length), env);
  const wanted = `store:${orchestratorEnv.get("REDIS_URL") ?? "(unset)"}`;
  const query = dataset.indexOf("?");
  const where = query < 0 ? dataset : dataset.slice(0, query);
  const prefix = new URLSearchParams(query < 0 ? "" : dataset.slice(query + 1)).get("prefix") ?? DEFAULT_STORE_PREFIX;
  const problems: string[] = [];
  if (where !== wanted) problems.push(`CronJob/retrain: --dataset=${dataset} does not read the orchestrator's user store ${wanted}`);
  if (prefix !== DEFAULT_STORE_PREFIX)
    problems.push(
      `CronJob/retrain: --dataset=${dataset} reads key prefix ${prefix}, the orchestrator writes under ${DEFAULT_STORE_PREFIX}`,
    );
  return problems;
}

/** The gRPC services the orchestrator serves to clients outside the namespace (not health or reflection). */
export const PUBLIC_SERVICES: readonly string[] = [RecommenderService.typeName, CatalogueService.typeName];

interface GrpcRoute extends K8sObject {
  spec: {
    rules?: {
      matches?: { method?: { type?: string; service?: string; method?: string } }[];
      backendRefs?: { name: string; port?: number; kind?: string }[];
    }[];
  };
}

/**
 * GRPCRoutes (the gateway-api component) send exactly the orchestrator's public services
 * (PUBLIC_SERVICES, each matched by service name) to the orchestrator Service's grpc port: every
 * public service is routed when any route exists, and nothing else (no health, no reflection).
 */
export function checkGrpcRoutes(objects: readonly K8sObject[]): string[] {
  const routes = objects.filter((o) => o.kind === "GRPCRoute") as GrpcRoute[];
  if (routes.length === 0) return [];
  const problems: string[] = [];
  const grpcPort = (findObject(objects, "Service", "orchestrator") as ServiceObject | undefined)?.spec.ports.find(
    (p) => p.name === "grpc",
  )?.port;
  const routed = new Set<string>();
  for (const route of routes) {
    for (const rule of route.spec.rules ?? []) {
      for (const backend of rule.backendRefs ?? []) {
        if ((backend.kind ?? "Service") !== "Service" || backend.name !== "orchestrator" || backend.port !== grpcPort)
          problems.push(
            `${label(route)}: backend ${backend.name}:${backend.port}, expected the orchestrator Service's grpc port ${grpcPort}`,
          );
      }
      for (const match of rule.matches ?? [{}]) {
        const service = match.method?.service;
        if (service === undefined || (match.method?.type ?? "Exact") !== "Exact") {
          problems.push(`${label(route)}: a match without an exact service name routes more than the public services`);
        } else if (!PUBLIC_SERVICES.includes(service)) {
          problems.push(`${label(route)}: routes ${service}, which is not one of the public services (${PUBLIC_SERVICES.join(", ")})`);
        } else {
          routed.add(service);
        }
      }
    }
  }
  for (const service of PUBLIC_SERVICES) if (!routed.has(service)) problems.push(`no GRPCRoute routes ${service}`);
  return problems;
}
