/**
 * Renders kustomizations with the real kustomize: `kubectl kustomize` (kubectl ≥ 1.27 embeds
 * kustomize v5; the node-svc machine image ships kubectl 1.32 with kustomize v5.5). Debian's own
 * kubernetes-client package is kubectl 1.20 with kustomize v2, too old for `components` and
 * `labels`: it is refused with a message rather than producing a wrong rendering.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);

/** A Kubernetes object as rendered: apiVersion, kind, metadata.name at least. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly [key: string]: unknown;
}

const KUBECTL = process.env["KUBECTL"] ?? "kubectl";
const MIN_KUSTOMIZE_MAJOR = 5;

let checked: Promise<string> | undefined;

/** The kustomize version kubectl embeds ("v5.5.0"); throws a clear error when unusable. */
export function kustomizeVersion(): Promise<string> {
  checked ??= (async () => {
    let stdout: string;
    try {
      ({ stdout } = await run(KUBECTL, ["version", "--client", "-o", "json"]));
    } catch (error) {
      throw new Error(
        `kubectl not found or failed (${(error as Error).message.split("\n")[0]}): the overlays are rendered with ` +
          "`kubectl kustomize`; install kubectl ≥ 1.27 (kustomize v5), e.g. the machine image's google-cloud-cli kubectl",
      );
    }
    const info = JSON.parse(stdout) as { kustomizeVersion?: string };
    const version = info.kustomizeVersion ?? "";
    const major = Number(/^v?(\d+)\./.exec(version)?.[1] ?? "0");
    if (major < MIN_KUSTOMIZE_MAJOR) {
      throw new Error(`kubectl embeds kustomize "${version || "unknown"}"; v${MIN_KUSTOMIZE_MAJOR}+ is needed (components, labels)`);
    }
    return version;
  })();
  return checked;
}

/** `kubectl kustomize <dir>` parsed into objects (in kustomize's output order). */
export async function renderKustomization(dir: string): Promise<K8sObject[]> {
  await kustomizeVersion();
  let stdout: string;
  try {
    ({ stdout } = await run(KUBECTL, ["kustomize", dir], { maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`kubectl kustomize ${dir} failed: ${stderr.trim() || (error as Error).message}`);
  }
  return parseObjects(stdout, dir);
}

/** Parses a multi-document YAML stream of Kubernetes objects; throws on a YAML error. */
export function parseObjects(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    const object = value as Partial<K8sObject>;
    if (typeof object.apiVersion !== "string" || typeof object.kind !== "string" || typeof object.metadata?.name !== "string") {
      throw new Error(`${source}: a document without apiVersion, kind or metadata.name`);
    }
    out.push(object as K8sObject);
  }
  return out;
}

export function objectsOfKind<T = K8sObject>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[];
}

export function findObject(objects: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}
