/**
 * Offline validation of Kubernetes objects, two ways:
 * 1. `kubernetes-models` (and `@kubernetes-models/prometheus-operator` for ServiceMonitor and
 *    PrometheusRule, `@kubernetes-models/gateway-api` for GRPCRoute): each object through its model class's `.validate()` (JSON schema of the
 *    Kubernetes OpenAPI: types, required fields, formats). These schemas accept unknown fields.
 * 2. Unknown fields (a typo such as `readOnlyRootFileSystem` would be silently dropped by the API
 *    server): every object is type-checked by the TypeScript compiler as an object literal of the
 *    same package's interface (IDeployment, IService, ...), where excess properties are errors.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import type { K8sObject } from "./kustomize.js";

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The module of an object's model, or undefined when no model package covers its apiVersion. */
export function modelModule(apiVersion: string, kind: string): string | undefined {
  if (!/^[A-Za-z]+$/.test(kind)) return undefined;
  if (apiVersion === "monitoring.coreos.com/v1") return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`;
  if (apiVersion === "gateway.networking.k8s.io/v1") return `@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/${kind}`;
  if (apiVersion === "v1") return `kubernetes-models/v1/${kind}`;
  if (/^[a-z0-9.]+\/v[0-9a-z]+$/.test(apiVersion)) return `kubernetes-models/${apiVersion}/${kind}`;
  return undefined;
}

export interface ValidationProblem {
  readonly object: string;
  readonly message: string;
}

export function describeObject(object: K8sObject): string {
  return `${object.kind}/${object.metadata.name}`;
}

/** Schema validation of every object; an apiVersion/kind without a model is itself a problem. */
export async function validateSchemas(objects: readonly K8sObject[]): Promise<ValidationProblem[]> {
  const problems: ValidationProblem[] = [];
  for (const object of objects) {
    const specifier = modelModule(object.apiVersion, object.kind);
    let Model: (new (data: unknown) => { validate(): void }) | undefined;
    if (specifier !== undefined) {
      try {
        Model = ((await import(specifier)) as Record<string, new (data: unknown) => { validate(): void }>)[object.kind];
      } catch {
        Model = undefined;
      }
    }
    if (Model === undefined) {
      problems.push({ object: describeObject(object), message: `no schema for ${object.apiVersion} ${object.kind}` });
      continue;
    }
    try {
      new Model(structuredClone(object)).validate();
    } catch (error) {
      problems.push({ object: describeObject(object), message: (error as Error).message });
    }
  }
  return problems;
}

/**
 * Type-checks every object against its kubernetes-models interface (excess properties are
 * errors). `label` names the source of each object in the problems.
 */
export function strictFieldCheck(items: readonly { label: string; object: K8sObject }[]): ValidationProblem[] {
  const fileName = join(PACKAGE_DIR, "__manifests__.ts");
  const imports = new Map<string, string>();
  const spans: { start: number; end: number; label: string }[] = [];
  const problems: ValidationProblem[] = [];
  let body = "";
  items.forEach(({ label, object }, i) => {
    const specifier = modelModule(object.apiVersion, object.kind);
    if (specifier === undefined) {
      problems.push({ object: label, message: `no model for ${object.apiVersion} ${object.kind}` });
      return;
    }
    let alias = imports.get(specifier);
    if (alias === undefined) {
      alias = `T${imports.size}`;
      imports.set(specifier, alias);
    }
    const start = body.length;
    body += `export const o${i}: ${alias} = ${JSON.stringify(object, null, 1)};\n`;
    spans.push({ start, end: body.length, label });
  });
  const header = [...imports]
    .map(([specifier, alias]) => {
      const kind = specifier.slice(specifier.lastIndexOf("/") + 1);
      return `import type { I${kind} as ${alias} } from "${specifier}";\n`;
    })
    .join("");
  const source = header + body;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const original = {
    getSourceFile: host.getSourceFile.bind(host),
    fileExists: host.fileExists.bind(host),
    readFile: host.readFile.bind(host),
  };
  host.getSourceFile = (name, languageVersion, ...rest) =>
    name === fileName ? ts.createSourceFile(name, source, languageVersion, true) : original.getSourceFile(name, languageVersion, ...rest);
  host.fileExists = (name) => name === fileName || original.fileExists(name);
  host.readFile = (name) => (name === fileName ? source : original.readFile(name));
  const program = ts.createProgram([fileName], options, host);
  const diagnostics = [...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()].filter(
    (d) => d.file?.fileName === fileName || d.file === undefined,
  );
  for (const diagnostic of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    const offset = (diagnostic.start ?? 0) - header.length;
    const span = spans.find((s) => offset >= s.start && offset < s.end);
    let where = "";
    if (diagnostic.file !== undefined && diagnostic.start !== undefined) {
      const text = source.slice(diagnostic.start, diagnostic.start + 60).split("\n")[0];
      where = ` at ${text}`;
    }
    problems.push({ object: span?.label ?? "(imports)", message: `${message}${where}` });
  }
  return problems;
}
