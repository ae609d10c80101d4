/**
 * Consistency checks of rendered manifests: environment against the services' config schemas,
 * ports, probes, Services, autoscalers, volumes, images, security settings, shutdown timing and
 * the retrieval shards. Each check returns a list of problems (empty = fine), worded for a person.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
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
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string; readOnly?: boolean }; configMap?: { name: string } }[];
}
export interface Workload extends K8sObject {
  spec: {
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
    serviceName?: string;
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
}
interface ServiceObject extends K8sObject {
  spec: { clusterIP?: string; type?: string; selector?: Record<string, string>; ports: Port[] };
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  return objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet") as Workload[];
}

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
  readonly problems: string[];
}

/** The environment a container gets from the rendered objects. */
export function containerEnv(objects: readonly K8sObject[], owner: string, container: Container): ResolvedEnv {
  const values = new Map<string, string>();
  const problems: string[] = [];
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef !== undefined) {
      const configMap = findObject(objects, "ConfigMap", source.configMapRef.name) as (K8sObject & { data?: Record<string, string> }) | undefined;
      if (configMap === undefined) {
        problems.push(`${owner}: envFrom ConfigMap "${source.configMapRef.name}" is not among the rendered objects`);
        continue;
      }
      for (const [key, value] of Object.entries(configMap.data ?? {})) values.set(`${source.prefix ?? ""}${key}`, value);
    } else {
      problems.push(`${owner}: envFrom ${JSON.stringify(source)}: only ConfigMaps can be checked against the config schema`);
    }
  }
  for (const variable of container.env ?? []) {
    if (variable.value === undefined) {
      problems.push(`${owner}: env ${variable.name} is not a literal value (valueFrom cannot be checked)`);
      continue;
    }
    values.set(variable.name, variable.value);
  }
  return { values, problems };
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
): string[] {
  const problems: string[] = [];
  for (const name of env.keys()) {
    if (!(name in schema)) problems.push(`${owner}: sets ${name}, which the service does not read (not in its configSchema)`);
  }
  const config: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema)) {
    const raw = env.get(name)?.trim();
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
    if (stage === undefined || container === undefined) {
      problems.push(`${label(workload)}: not a recsys stage, or no container named after it`);
      continue;
    }
    const { values } = containerEnv(objects, label(workload), container);
    const schema = schemaOf(stage);
    const grpcPort = envNumber(values, schema, "GRPC_PORT", 50051);
    const metricsPort = envNumber(values, schema, "METRICS_PORT", 9464);
    const ports = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]));
    if (ports.get("grpc") !== grpcPort) problems.push(`${label(workload)}: container port "grpc" is ${ports.get("grpc")}, GRPC_PORT is ${grpcPort}`);
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
      else if (probe.grpc.port !== grpcPort) problems.push(`${label(workload)}: ${kind} probes port ${probe.grpc.port}, the gRPC port is ${grpcPort}`);
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
        if (!found) problems.push(`Service/${service.metadata.name}: port ${port.name} targets ${target}, which ${label(workload)} does not expose`);
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
      (envDurationMs(values, schema, "SHUTDOWN_DELAY", 0) + envDurationMs(values, schema, "DRAIN_TIMEOUT", 15_000) + envDurationMs(values, schema, "SHUTDOWN_TIMEOUT", 5000)) / 1000;
    const grace = workload.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    if (!(grace > needed)) {
      problems.push(`${label(workload)}: terminationGracePeriodSeconds ${grace} must exceed preStop + SHUTDOWN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT = ${needed} s`);
    }
  }
  return problems;
}

/** Non-root, read-only root filesystem, no privilege escalation, ALL capabilities dropped, requests and limits. */
export function checkSecurityAndResources(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const pod = workload.spec.template.spec;
    if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${label(workload)}: pod securityContext.runAsNonRoot is not true`);
    for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
      const where = `${label(workload)} container ${container.name}`;
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

/** Volume mounts name a volume of the pod (or a claim template); PVCs and ConfigMaps referenced exist. */
export function checkVolumes(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const pod = workload.spec.template.spec;
    const names = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(workload.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name)]);
    for (const container of pod.containers) {
      for (const mount of container.volumeMounts ?? []) {
        if (!names.has(mount.name)) problems.push(`${label(workload)}: mounts volume "${mount.name}", which the pod does not have`);
      }
    }
    for (const volume of pod.volumes ?? []) {
      const claim = volume.persistentVolumeClaim?.claimName;
      if (claim !== undefined && findObject(objects, "PersistentVolumeClaim", claim) === undefined) {
        problems.push(`${label(workload)}: volume ${volume.name} uses PersistentVolumeClaim "${claim}", which is not rendered`);
      }
      if (volume.persistentVolumeClaim !== undefined && volume.persistentVolumeClaim.readOnly !== true && volume.name === "models") {
        problems.push(`${label(workload)}: the model volume must be mounted read-only`);
      }
    }
  }
  return problems;
}

/** Autoscalers and disruption budgets point at rendered workloads. */
export function checkScalingObjects(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const all = workloads(objects);
  for (const hpa of objects.filter((o) => o.kind === "HorizontalPodAutoscaler") as (K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas?: number; maxReplicas: number } })[]) {
    const { kind, name } = hpa.spec.scaleTargetRef;
    if (findObject(all, kind, name) === undefined) problems.push(`HorizontalPodAutoscaler/${hpa.metadata.name}: targets ${kind}/${name}, which is not rendered`);
    if ((hpa.spec.minReplicas ?? 1) > hpa.spec.maxReplicas) problems.push(`HorizontalPodAutoscaler/${hpa.metadata.name}: minReplicas > maxReplicas`);
  }
  for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget") as (K8sObject & { spec: { selector: { matchLabels?: Record<string, string> } } })[]) {
    const selector = pdb.spec.selector.matchLabels ?? {};
    const selected = all.filter((w) => Object.entries(selector).every(([k, v]) => w.spec.template.metadata?.labels?.[k] === v));
    if (selected.length !== 1) problems.push(`PodDisruptionBudget/${pdb.metadata.name}: selects ${selected.length} workloads, expected exactly one`);
  }
  for (const workload of all) {
    if (!objects.some((o) => o.kind === "HorizontalPodAutoscaler" && (o as unknown as { spec: { scaleTargetRef: { name: string } } }).spec.scaleTargetRef.name === workload.metadata.name)) {
      problems.push(`${label(workload)}: no HorizontalPodAutoscaler`);
    }
    if (!objects.some((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === workload.metadata.name)) problems.push(`${label(workload)}: no PodDisruptionBudget`);
  }
  return problems;
}

/**
 * Images: `[registry/]recsys/<image>[:tag]` of the workload's own stage, built by
 * deploy/containers/<image>.Containerfile; `-gpu` tags only for stages with a GPU variant.
 */
export function checkImages(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const stage = workloadStage(workload);
    for (const container of workload.spec.template.spec.containers) {
      const match = /^(?:(.+)\/)?recsys\/([a-z0-9-]+)(?::([A-Za-z0-9._-]+))?$/.exec(container.image ?? "");
      if (match === null) {
        problems.push(`${label(workload)}: image "${container.image}" is not one of the recsys images ([registry/]recsys/<name>[:tag])`);
        continue;
      }
      const [, , name, tag] = match;
      if (name !== stage?.image) problems.push(`${label(workload)}: runs image recsys/${name}, the stage's image is recsys/${stage?.image}`);
      if (!existsSync(join(DEPLOY_DIR, "containers", `${name}.Containerfile`))) problems.push(`${label(workload)}: no deploy/containers/${name}.Containerfile builds recsys/${name}`);
      if (tag?.endsWith("-gpu") === true && stage?.gpu !== true) problems.push(`${label(workload)}: a -gpu image for a stage without a GPU variant`);
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
      if (service.metadata.name !== "orchestrator-headless") problems.push(`Service/${service.metadata.name}: not a known recsys Service`);
      else if (service.spec.clusterIP !== "None") problems.push("Service/orchestrator-headless: must be headless");
      continue;
    }
    const headless = service.spec.clusterIP === "None";
    if (stage.stage === "orchestrator" ? headless : !headless) {
      problems.push(`Service/${service.metadata.name}: ${headless ? "headless" : "a ClusterIP"}, expected ${headless ? "a ClusterIP (public API)" : "headless (clients balance per call)"}`);
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
    if (shard.name !== `${retrieval.k8sName}-${i}`) problems.push(`retrieval shard workloads must be named ${retrieval.k8sName}-0..${n - 1}; found ${shard.name}`);
    if (shard.kind !== "StatefulSet") problems.push(`${shard.kind}/${shard.name}: a retrieval shard must be a StatefulSet (its own index volume per pod)`);
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
  const listed = (values.get("RETRIEVAL_ADDRESSES") ?? "").split(",").map((a) => a.trim()).filter((a) => a !== "");
  if (listed.join(",") !== expected.join(",")) {
    problems.push(`orchestrator RETRIEVAL_ADDRESSES is "${listed.join(",")}", the rendered shards need "${expected.join(",")}"`);
  }
  for (const [variable, serviceName] of [["CANDIDATE_GENERATION_ADDRESS", "candidate-generation"], ["RANKING_ADDRESS", "ranking"]] as const) {
    const address = parseAddress(values.get(variable) ?? "");
    const service = findObject(objects, "Service", serviceName) as ServiceObject | undefined;
    if (address === undefined || service === undefined) {
      problems.push(`orchestrator ${variable}="${values.get(variable)}" does not name a rendered Service`);
      continue;
    }
    if (!values.get(variable)!.startsWith("dns:///")) problems.push(`orchestrator ${variable} should use dns:/// (round_robin over the headless Service's pods)`);
    if (address.host !== serviceName || address.port !== grpcPortOf(serviceName)) {
      problems.push(`orchestrator ${variable}="${values.get(variable)}", the Service is ${serviceName}:${grpcPortOf(serviceName)}`);
    }
  }
  return { shards: n, problems };
}
