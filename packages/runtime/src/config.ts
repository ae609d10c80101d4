/**
 * Configuration from environment variables, read once at startup and validated.
 *
 * A service declares a schema: an object whose keys are the environment variable names and whose
 * values say how to parse them. `loadConfig` returns a frozen object with the same keys and typed
 * values, or throws a `ConfigError` naming the variable. The schema object is exported by each
 * service so that the list of variables it reads can be compared with deployment manifests
 * (`Object.keys(schema)`, or `describeSchema(schema)` for kinds, defaults and descriptions).
 *
 * Example:
 *   export const configSchema = {
 *     ...runtimeConfigSchema,
 *     MODEL_DIR: env.string({ required: true, description: "trained model bundle" }),
 *     TOP_K: env.int({ default: 500, min: 1, max: 1000 }),
 *   };
 *   const config = loadConfig(configSchema); // config.MODEL_DIR: string, config.TOP_K: number
 */

/** A missing or malformed environment variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

export type VarKind = "string" | "int" | "number" | "port" | "url" | "enum" | "bool" | "duration" | "list";

/** How one environment variable is parsed. `T` includes `undefined` when it is optional. */
export interface VarSpec<T> {
  readonly kind: VarKind;
  readonly required: boolean;
  /** The value used when the variable is unset or empty (already parsed). */
  readonly default: T | undefined;
  readonly description: string | undefined;
  /** Allowed values, for kind "enum". */
  readonly values?: readonly string[];
  /** Parses a non-empty raw value; throws an Error whose message explains what is expected. */
  readonly parse: (raw: string) => T;
}

export type ConfigSchema = Readonly<Record<string, VarSpec<unknown>>>;

/** The typed configuration object of a schema. */
export type ConfigOf<S extends ConfigSchema> = {
  readonly [K in keyof S]: S[K] extends VarSpec<infer T> ? T : never;
};

interface CommonOptions {
  readonly description?: string;
}
type Presence<T> = { readonly default: T } | { readonly required: true };

/** Builder overloads: with a default or `required: true` the value is `T`, else `T | undefined`. */
interface Builder<T, Extra = unknown> {
  (options: CommonOptions & Extra & Presence<T>): VarSpec<T>;
  (options?: CommonOptions & Extra & { readonly required?: false }): VarSpec<T | undefined>;
}

interface SpecOptions<T> {
  readonly default?: T;
  readonly required?: boolean;
  readonly description?: string;
}

function spec<T>(kind: VarKind, options: SpecOptions<T> | undefined, parse: (raw: string) => T, values?: readonly string[]): VarSpec<T> {
  const out: VarSpec<T> = {
    kind,
    required: options?.required === true,
    default: options?.default,
    description: options?.description,
    parse,
    ...(values === undefined ? {} : { values }),
  };
  return Object.freeze(out);
}

function parseInteger(raw: string, min: number, max: number): number {
  if (!/^[+-]?\d+$/.test(raw)) throw new Error(`expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`expected an integer in ${min}..${max}, got ${raw}`);
  }
  return value;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses "250ms", "1.5s", "2m", "1h" or a bare number of milliseconds into milliseconds. */
export function parseDurationMs(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw);
  if (match === null) {
    throw new Error(`expected a duration such as 500ms, 2s, 1m or a number of milliseconds, got "${raw}"`);
  }
  const unit = match[2] ?? "ms";
  return Number(match[1]) * (DURATION_UNITS_MS[unit] ?? 1);
}

const TRUE_VALUES = new Set(["true", "1", "yes", "on"]);
const FALSE_VALUES = new Set(["false", "0", "no", "off"]);

/** Schema builders, one per kind of variable. */
export const env = {
  string: ((options?: SpecOptions<string>) => spec("string", options, (raw) => raw)) as Builder<string>,

  int: ((options?: SpecOptions<number> & { min?: number; max?: number }) =>
    spec("int", options, (raw) =>
      parseInteger(raw, options?.min ?? Number.MIN_SAFE_INTEGER, options?.max ?? Number.MAX_SAFE_INTEGER),
    )) as Builder<number, { readonly min?: number; readonly max?: number }>,

  number: ((options?: SpecOptions<number> & { min?: number; max?: number }) =>
    spec("number", options, (raw) => {
      const value = Number(raw);
      if (!Number.isFinite(value)) throw new Error(`expected a number, got "${raw}"`);
      const min = options?.min ?? -Infinity;
      const max = options?.max ?? Infinity;
      if (value < min || value > max) throw new Error(`expected a number in ${min}..${max}, got ${raw}`);
      return value;
    })) as Builder<number, { readonly min?: number; readonly max?: number }>,

  /** A TCP port, 0..65535 (0 = any free port). */
  port: ((options?: SpecOptions<number>) => spec("port", options, (raw) => parseInteger(raw, 0, 65535))) as Builder<number>,

  /** An absolute URL, returned as written. */
  url: ((options?: SpecOptions<string>) =>
    spec("url", options, (raw) => {
      if (!URL.canParse(raw)) throw new Error(`expected an absolute URL, got "${raw}"`);
      return raw;
    })) as Builder<string>,

  /** One of a fixed set of strings. */
  enum: (<const V extends string>(values: readonly V[], options?: SpecOptions<V>) =>
    spec(
      "enum",
      options,
      (raw) => {
        if (!(values as readonly string[]).includes(raw)) {
          throw new Error(`expected one of ${values.join(", ")}, got "${raw}"`);
        }
        return raw as V;
      },
      values,
    )) as {
    <const V extends string>(values: readonly V[], options: CommonOptions & Presence<V>): VarSpec<V>;
    <const V extends string>(values: readonly V[], options?: CommonOptions & { readonly required?: false }): VarSpec<V | undefined>;
  },

  /** true/false, 1/0, yes/no, on/off (case-insensitive). */
  bool: ((options?: SpecOptions<boolean>) =>
    spec("bool", options, (raw) => {
      const lower = raw.toLowerCase();
      if (TRUE_VALUES.has(lower)) return true;
      if (FALSE_VALUES.has(lower)) return false;
      throw new Error(`expected true or false, got "${raw}"`);
    })) as Builder<boolean>,

  /** A duration ("500ms", "2s", "1m", "1h", or bare milliseconds), as milliseconds. */
  duration: ((options?: SpecOptions<number>) => spec("duration", options, parseDurationMs)) as Builder<number>,

  /** A comma-separated list; items are trimmed and empty items dropped. */
  list: ((options?: SpecOptions<readonly string[]>) =>
    spec("list", options, (raw) =>
      Object.freeze(
        raw
          .split(",")
          .map((item) => item.trim())
          .filter((item) => item !== ""),
      ),
    )) as Builder<readonly string[]>,
};

/**
 * Reads and validates every variable of `schema` from `environment` (default: process.env).
 * An unset or empty variable takes its default; a required one without value, or any value that
 * does not parse, throws a ConfigError naming the variable.
 */
export function loadConfig<S extends ConfigSchema>(
  schema: S,
  environment: Readonly<Record<string, string | undefined>> = process.env,
): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, varSpec] of Object.entries(schema)) {
    const raw = environment[name]?.trim();
    if (raw === undefined || raw === "") {
      if (varSpec.required) {
        throw new ConfigError(name, `${name} is required but not set${varSpec.description ? ` (${varSpec.description})` : ""}`);
      }
      out[name] = varSpec.default;
      continue;
    }
    try {
      out[name] = varSpec.parse(raw);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(name, `${name} is invalid: ${reason}`);
    }
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/** One row per variable of a schema, e.g. to print `--help` or to compare with manifests. */
export interface VariableDescription {
  readonly name: string;
  readonly kind: VarKind;
  readonly required: boolean;
  readonly default: unknown;
  readonly description: string | undefined;
}

export function describeSchema(schema: ConfigSchema): VariableDescription[] {
  return Object.entries(schema).map(([name, varSpec]) => ({
    name,
    kind: varSpec.kind,
    required: varSpec.required,
    default: varSpec.default,
    description: varSpec.description,
  }));
}

/** The log levels accepted by LOG_LEVEL. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * Variables every service reads (spread it into the service's own schema). Kubernetes defaults:
 * terminationGracePeriodSeconds must exceed SHUTDOWN_DELAY + DRAIN_TIMEOUT + SHUTDOWN_TIMEOUT.
 */
export const runtimeConfigSchema = {
  GRPC_HOST: env.string({ default: "0.0.0.0", description: "address the gRPC server binds" }),
  GRPC_PORT: env.port({ default: 50051, description: "gRPC port (0 = any free port)" }),
  METRICS_PORT: env.port({
    default: 9464,
    description: "Prometheus /metrics HTTP port (0 = any free port)",
  }),
  LOG_LEVEL: env.enum(LOG_LEVELS, { default: "info", description: "pino log level" }),
  GRPC_MAX_MESSAGE_BYTES: env.int({
    default: 16 * 1024 * 1024,
    min: 1024,
    max: 2 ** 31 - 1,
    description: "largest gRPC message sent or received",
  }),
  GRPC_REFLECTION: env.bool({ default: true, description: "serve gRPC server reflection" }),
  GRPC_SERVER: env.enum(["http2", "grpc-js"] as const, {
    default: "http2",
    description: "the gRPC server: the runtime's own on node:http2 (http2-server.ts), or grpc-js's",
  }),
  GRPC_MAX_CONNECTION_AGE: env.duration({
    default: 300_000,
    description:
      "a client connection is closed after this long (GOAWAY; its calls in flight get DRAIN_TIMEOUT to finish), so callers reconnect and reach pods added since; 0 = never",
  }),
  SHUTDOWN_DELAY: env.duration({
    default: 0,
    description: "after SIGTERM, keep serving while reporting NOT_SERVING so load balancers notice",
  }),
  DRAIN_TIMEOUT: env.duration({
    default: 15_000,
    description: "longest wait for in-flight calls to finish before closing the server",
  }),
  SHUTDOWN_TIMEOUT: env.duration({
    default: 5000,
    description: "longest graceful server shutdown before it is forced",
  }),
};

export type RuntimeConfig = ConfigOf<typeof runtimeConfigSchema>;
