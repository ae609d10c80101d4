/**
 * `recsys event --user ID (--watch ITEM [--seconds S] | --search "query" | --impression ITEM [--position N])
 *   [--address HOST:PORT]`
 *
 * Records one event through the orchestrator's public RecordEvents (it returns once the event is
 * durable in the user store, so the next `recsys recommend` reflects it). The event time is the
 * server's clock. Address resolution as in `recsys recommend`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { RecommenderService, type UserEventSchema } from "@recsys/gen";
import { connect, isServiceError, statusName } from "@recsys/runtime";
import { parseArgs, UsageError } from "../args.js";
import { resolveAddress, stateFilePath } from "../stack-state.js";

const USAGE =
  'usage: recsys event --user ID (--watch ITEM [--seconds S] | --search "query" | --impression ITEM [--position N]) [--address HOST:PORT] [--state FILE]';

function usageError(message: string): number {
  process.stderr.write(`recsys event: ${message}\n${USAGE}\n`);
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      user: { type: "string", required: true },
      watch: { type: "string" },
      seconds: { type: "number" },
      search: { type: "string" },
      impression: { type: "string" },
      position: { type: "number" },
      address: { type: "string" },
      timeout: { type: "number", default: 5000 },
      state: { type: "string", default: stateFilePath() },
    });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const kinds = (["watch", "search", "impression"] as const).filter((k) => args[k] !== undefined);
  if (kinds.length !== 1)
    return usageError(
      `give exactly one of --watch, --search, --impression${kinds.length > 1 ? ` (got ${kinds.map((k) => `--${k}`).join(", ")})` : ""}`,
    );
  const kind = kinds[0]!;
  if (args["seconds"] !== undefined && kind !== "watch") return usageError("--seconds goes with --watch");
  if (args["position"] !== undefined && kind !== "impression") return usageError("--position goes with --impression");
  const seconds = args["seconds"] === undefined ? undefined : Number(args["seconds"]);
  if (seconds !== undefined && !(seconds >= 0)) return usageError(`--seconds must be >= 0, got ${seconds}`);
  const position = args["position"] === undefined ? undefined : Number(args["position"]);
  if (position !== undefined && (!Number.isInteger(position) || position < 1))
    return usageError(`--position must be a positive integer, got ${position}`);

  const userId = String(args["user"]);
  const value = String(args[kind]);
  let event: MessageInitShape<typeof UserEventSchema>;
  if (kind === "watch")
    event = { userId, kind: { case: "watch", value: { itemId: value, ...(seconds === undefined ? {} : { watchSeconds: seconds }) } } };
  else if (kind === "search") event = { userId, kind: { case: "search", value: { query: value } } };
  else event = { userId, kind: { case: "impression", value: { itemId: value, ...(position === undefined ? {} : { position }) } } };

  let target;
  try {
    target = await resolveAddress(args["address"] as string | undefined, String(args["state"]));
  } catch (error) {
    process.stderr.write(`recsys event: ${(error as Error).message}\n`);
    return 1;
  }
  const client = connect(RecommenderService, target.address, { defaultTimeoutMs: Number(args["timeout"]) });
  try {
    const response = await client.recordEvents({ events: [event] });
    process.stdout.write(
      `recorded ${response.accepted} ${kind} event for user ${userId} (${kind === "search" ? JSON.stringify(value) : `item ${value}`}) at ${target.address}\n`,
    );
    return 0;
  } catch (error) {
    if (isServiceError(error)) {
      process.stderr.write(`recsys event: ${target.address} answered ${statusName(error.code)}: ${error.details}\n`);
      return 1;
    }
    throw error;
  } finally {
    client.$close();
  }
}
