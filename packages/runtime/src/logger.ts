/**
 * JSON logs (pino): one line per event with `service` (the stage name), `level`, `time` (epoch
 * ms) and `msg`. Errors go under `err` with their stack — in the log only, never to callers.
 */
import { pino, type DestinationStream, type Level, type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** Service name written on every line, e.g. "ranking". */
  readonly service: string;
  /** Default "info". "silent" disables logging. */
  readonly level?: Level | "silent";
  /** Where lines go; default stdout. Tests pass a stream to inspect them. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const config = {
    level: options.level ?? "info",
    base: { service: options.service, pid: process.pid },
    serializers: { err: pino.stdSerializers.err },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}
