/** Minimal `--flag value` / `--flag=value` / `--switch` parser with validation and clear errors. */
export interface ArgSpec {
  readonly [name: string]: {
    readonly type: "string" | "number" | "boolean";
    readonly required?: boolean;
    readonly default?: string | number | boolean;
  };
}

export type ParsedArgs = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[], spec: ArgSpec): ParsedArgs {
  const out: ParsedArgs = {};
  for (const [name, s] of Object.entries(spec)) if (s.default !== undefined) out[name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const s = spec[name];
    if (s === undefined) throw new UsageError(`unknown option --${name}`);
    if (s.type === "boolean") {
      out[name] = eq >= 0 ? arg.slice(eq + 1) !== "false" : true;
      continue;
    }
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    if (s.type === "number") {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got '${raw}'`);
      out[name] = v;
    } else out[name] = raw;
  }
  for (const [name, s] of Object.entries(spec)) {
    if (s.required && out[name] === undefined) throw new UsageError(`--${name} is required`);
  }
  return out;
}
