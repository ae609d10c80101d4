/**
 * The layering of @recsys/transport under @recsys/runtime, checked on the sources: no import
 * cycle among the modules of packages/transport/src and packages/runtime/src (type-only imports
 * count too), and nothing in packages/transport imports @recsys/runtime.
 * Imports are read with TypeScript's own pre-processor (`ts.preProcessFile`): static imports,
 * `import type`, `export ... from` and dynamic `import("...")`.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const transportSrc = join(packagesDir, "transport/src");
const runtimeSrc = join(packagesDir, "runtime/src");

/** Workspace package specifiers whose sources are part of the graph. */
const PACKAGE_ENTRIES: Readonly<Record<string, string>> = {
  "@recsys/transport": join(transportSrc, "index.ts"),
  "@recsys/runtime": join(runtimeSrc, "index.ts"),
  "@recsys/runtime/testing": join(runtimeSrc, "testing/index.ts"),
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out.sort();
}

/** Every module specifier a file imports or re-exports from. */
function specifiers(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((f) => f.fileName);
}

/** The file a specifier names inside the graph, or undefined (npm packages, node: modules). */
function resolveSpecifier(from: string, specifier: string): string | undefined {
  if (specifier in PACKAGE_ENTRIES) return PACKAGE_ENTRIES[specifier];
  if (!specifier.startsWith(".")) return undefined;
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base.replace(/\.js$/u, ".ts"), `${base}.ts`, join(base, "index.ts")]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  throw new Error(`${relative(packagesDir, from)}: cannot resolve import "${specifier}"`);
}

type Graph = ReadonlyMap<string, readonly string[]>;

function importGraph(files: readonly string[]): Graph {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const edges = specifiers(file)
      .map((s) => resolveSpecifier(file, s))
      .filter((target): target is string => target !== undefined);
    graph.set(file, [...new Set(edges)]);
  }
  return graph;
}

/** The cycles of a graph: its strongly connected components of more than one node, or self-loops (Tarjan). */
function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const to of graph.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe("import graph of @recsys/transport and @recsys/runtime", () => {
  const transportFiles = sourceFiles(transportSrc);
  const graph = importGraph([...transportFiles, ...sourceFiles(runtimeSrc)]);

  it("finds the cycles of a graph (the check itself)", () => {
    const sample = new Map([
      ["deadline", ["grpc-adapter"]],
      ["grpc-adapter", ["deadline", "transport"]],
      ["transport", ["errors"]],
      ["errors", []],
      ["self", ["self"]],
    ]);
    expect(cycles(sample)).toEqual([["deadline", "grpc-adapter"], ["self"]]);
    expect(
      cycles(
        new Map([
          ["a", ["b"]],
          ["b", []],
        ]),
      ),
    ).toEqual([]);
  });

  it("reads the modules of both packages", () => {
    const names = [...graph.keys()].map((file) => relative(packagesDir, file));
    expect(names).toContain("transport/src/http2-server.ts");
    expect(names).toContain("runtime/src/service.ts");
    // service.ts uses the transport's server: the edge crosses the package boundary.
    expect(graph.get(join(runtimeSrc, "service.ts"))).toContain(join(transportSrc, "index.ts"));
  });

  it("has no import cycle", () => {
    const named = cycles(graph).map((cycle) => cycle.map((file) => relative(packagesDir, file)));
    expect(named).toEqual([]);
  });

  it("keeps packages/transport free of @recsys/runtime", () => {
    const offending: string[] = [];
    for (const file of transportFiles) {
      for (const specifier of specifiers(file)) {
        const target = resolveSpecifier(file, specifier);
        const intoRuntime = target !== undefined && !relative(runtimeSrc, target).startsWith("..");
        if (specifier.startsWith("@recsys/runtime") || intoRuntime) {
          offending.push(`${relative(packagesDir, file)} imports "${specifier}"`);
        }
      }
    }
    expect(offending).toEqual([]);
  });
});
