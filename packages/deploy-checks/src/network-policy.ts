/**
 * An evaluator of the rendered NetworkPolicies (the subset of the API the recsys policies use:
 * podSelector and namespaceSelector with matchLabels/matchExpressions, ipBlock, numeric ports) and
 * the connections the deployment needs, so that a policy edit that cuts the orchestrator from a
 * stage, or opens a stage to everyone, fails the checks instead of a rollout.
 */
import { findObject, type K8sObject } from "./kustomize.js";
import { podTemplates, stageWorkloads, workloads, workloadStage, type Workload } from "./manifest-checks.js";

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[];
}
interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { port?: number | string; protocol?: string }[];
}
interface NetworkPolicy extends K8sObject {
  spec: { podSelector: LabelSelector; policyTypes?: ("Ingress" | "Egress")[]; ingress?: Rule[]; egress?: Rule[] };
}

/** One end of a connection: a pod (its labels and its namespace's labels) or an address outside the cluster. */
export type Endpoint = { pod: Record<string, string>; namespace: Record<string, string> } | { external: true };

export function matches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = key(labels, e.key);
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
    if (e.operator === "In" && !(has && (e.values ?? []).includes(labels[e.key]!))) return false;
    if (e.operator === "NotIn" && has && (e.values ?? []).includes(labels[e.key]!)) return false;
  }
  return true;
}

function key(labels: Record<string, string>, name: string): boolean {
  return Object.hasOwn(labels, name);
}

function peerMatches(peer: Peer, other: Endpoint, policyNamespace: Record<string, string>): boolean {
  if ("external" in other) return peer.ipBlock !== undefined;
  if (peer.ipBlock !== undefined) return false;
  const namespaceOk =
    peer.namespaceSelector === undefined
      ? sameNamespace(policyNamespace, other.namespace)
      : matches(peer.namespaceSelector, other.namespace);
  const podOk = peer.podSelector === undefined || matches(peer.podSelector, other.pod);
  return namespaceOk && podOk;
}

function sameNamespace(a: Record<string, string>, b: Record<string, string>): boolean {
  return a["kubernetes.io/metadata.name"] === b["kubernetes.io/metadata.name"];
}

function portMatches(rule: Rule, port: number): boolean {
  return rule.ports === undefined || rule.ports.length === 0 || rule.ports.some((p) => p.port === undefined || p.port === port);
}

/**
 * Whether a connection from `from` to `to` on `port` is allowed by the policies of `namespace`
 * (the namespace the policies live in; `namespaceLabels` its labels): egress where `from` is a pod
 * of it, ingress where `to` is. A pod no policy of a direction selects is open in that direction.
 */
export function allowed(
  policies: readonly NetworkPolicy[],
  namespaceLabels: Record<string, string>,
  from: Endpoint,
  to: Endpoint,
  port: number,
): boolean {
  const inNamespace = (e: Endpoint): e is { pod: Record<string, string>; namespace: Record<string, string> } =>
    !("external" in e) && sameNamespace(e.namespace, namespaceLabels);
  const direction = (kind: "Ingress" | "Egress", self: Endpoint, other: Endpoint): boolean => {
    if (!inNamespace(self)) return true; // another namespace's policies: not ours to check
    const selecting = policies.filter((p) => (p.spec.policyTypes ?? ["Ingress"]).includes(kind) && matches(p.spec.podSelector, self.pod));
    if (selecting.length === 0) return true;
    return selecting.some((p) =>
      ((kind === "Ingress" ? p.spec.ingress : p.spec.egress) ?? []).some((rule) => {
        const peers = kind === "Ingress" ? rule.from : rule.to;
        return portMatches(rule, port) && (peers === undefined || peers.some((peer) => peerMatches(peer, other, namespaceLabels)));
      }),
    );
  };
  return direction("Egress", from, to) && direction("Ingress", to, from);
}

export function networkPolicies(objects: readonly K8sObject[]): NetworkPolicy[] {
  return objects.filter((o) => o.kind === "NetworkPolicy") as NetworkPolicy[];
}

/**
 * The connections the deployment needs are allowed and a few it must not have are refused:
 * default deny; DNS for every pod; orchestrator → every stage's grpc port and → Redis; the
 * `monitoring` namespace → every stage's metrics port; API clients' namespaces → orchestrator;
 * stages → the model store (outside). Refused: stage → stage (other than from the orchestrator),
 * monitoring → grpc ports, an unlabelled namespace → orchestrator, anyone but the orchestrator → Redis.
 */
export function checkNetworkPolicies(objects: readonly K8sObject[]): string[] {
  const policies = networkPolicies(objects);
  const namespace = objects.find((o) => o.kind === "Namespace");
  if (namespace === undefined) return ["no Namespace rendered"];
  const nsLabels = { ...namespace.metadata.labels, "kubernetes.io/metadata.name": namespace.metadata.name };
  const problems: string[] = [];
  if (
    !policies.some(
      (p) =>
        Object.keys(p.spec.podSelector).length === 0 &&
        (p.spec.ingress ?? []).length === 0 &&
        (p.spec.egress ?? []).length === 0 &&
        ["Ingress", "Egress"].every((t) => p.spec.policyTypes?.includes(t as "Ingress")),
    )
  ) {
    problems.push("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)");
  }
  const pod = (w: Workload): Endpoint => ({ pod: w.spec.template.metadata?.labels ?? {}, namespace: nsLabels });
  const outside = (name: string, labels: Record<string, string> = {}): Endpoint => ({
    pod: labels,
    namespace: { "kubernetes.io/metadata.name": name },
  });
  const name = (w: Workload): string => `${w.kind}/${w.metadata.name}`;
  const expect = (ok: boolean, want: boolean, what: string): void => {
    if (ok !== want) problems.push(`${what}: ${ok ? "allowed, must be refused" : "refused, must be allowed"}`);
  };
  const stages = stageWorkloads(objects);
  const orchestrator = stages.find((w) => workloadStage(w)?.stage === "orchestrator");
  const redis = findObject(workloads(objects), "StatefulSet", "redis") as Workload | undefined;
  const dns = outside("kube-system", { "k8s-app": "kube-dns" });
  for (const w of [...workloads(objects)]) expect(allowed(policies, nsLabels, pod(w), dns, 53), true, `${name(w)} → kube-dns:53`);
  // The retrain job (CronJob): DNS, the user store, the model store; nothing serves it.
  for (const job of podTemplates(objects).filter((p) => p.owner.kind === "CronJob")) {
    const self: Endpoint = { pod: job.template.metadata?.labels ?? {}, namespace: nsLabels };
    expect(allowed(policies, nsLabels, self, dns, 53), true, `${job.label} → kube-dns:53`);
    expect(allowed(policies, nsLabels, self, { external: true }, 443), true, `${job.label} → model store:443`);
    const redisPod = findObject(workloads(objects), "StatefulSet", "redis") as Workload | undefined;
    if (redisPod !== undefined) expect(allowed(policies, nsLabels, self, pod(redisPod), 6379), true, `${job.label} → redis:6379`);
    for (const w of stageWorkloads(objects))
      expect(allowed(policies, nsLabels, self, pod(w), 50051), false, `${job.label} → ${name(w)}:50051`);
  }
  for (const w of stages) {
    expect(allowed(policies, nsLabels, outside("monitoring"), pod(w), 9464), true, `monitoring → ${name(w)}:9464 (metrics)`);
    expect(allowed(policies, nsLabels, outside("monitoring"), pod(w), 50051), false, `monitoring → ${name(w)}:50051`);
    expect(allowed(policies, nsLabels, pod(w), { external: true }, 443), true, `${name(w)} → model store:443`);
    if (orchestrator !== undefined && w !== orchestrator) {
      expect(allowed(policies, nsLabels, pod(orchestrator), pod(w), 50051), true, `orchestrator → ${name(w)}:50051`);
      for (const other of stages)
        if (other !== orchestrator && other !== w)
          expect(allowed(policies, nsLabels, pod(other), pod(w), 50051), false, `${name(other)} → ${name(w)}:50051`);
    }
  }
  if (orchestrator !== undefined) {
    expect(
      allowed(policies, nsLabels, outside("gateway", {}), pod(orchestrator), 50051),
      false,
      "an unlabelled namespace → orchestrator:50051",
    );
    const client = { pod: {}, namespace: { "kubernetes.io/metadata.name": "gateway", "recsys.io/api-client": "true" } };
    expect(
      allowed(policies, nsLabels, client, pod(orchestrator), 50051),
      true,
      "a namespace labelled recsys.io/api-client=true → orchestrator:50051",
    );
    if (redis !== undefined) {
      expect(allowed(policies, nsLabels, pod(orchestrator), pod(redis), 6379), true, "orchestrator → redis:6379");
      for (const w of stages)
        if (w !== orchestrator) expect(allowed(policies, nsLabels, pod(w), pod(redis), 6379), false, `${name(w)} → redis:6379`);
    } else {
      expect(allowed(policies, nsLabels, pod(orchestrator), { external: true }, 6380), true, "orchestrator → a managed Redis:6380");
    }
  }
  return problems;
}
