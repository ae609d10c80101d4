/**
 * `recsys recommend (--user ID | --session ITEM,ITEM,... (an anonymous session, oldest first)) [--count N] [--address HOST:PORT] [--json] [--debug] [--exclude ID,ID]`
 *
 * Calls the orchestrator's public Recommend and prints a table: rank, item id, title (when the
 * stack `recsys start` runs knows the titles), score, expected watch time, the sources that
 * nominated the item (name#rank) and the reasons; then the version of every stage and whether
 * the answer is degraded (with the failed stages). `--debug` adds the per-stage timings (and the
 * ranker's features in --json). Address: --address, else RECSYS_ADDRESS, else the stack
 * `recsys start` recorded in models/stack.json (`--state FILE` to read another).
 */
import { RecommenderService } from "@recsys/gen";
import { connect, isServiceError, statusName } from "@recsys/runtime";
import { parseArgs, UsageError } from "../args.js";
import { formatRecommendations, recommendationsJson } from "../stack-format.js";
import { readTitles, resolveAddress, stateFilePath } from "../stack-state.js";

const USAGE =
  "usage: recsys recommend (--user ID | --session ITEM,ITEM,...) [--count N] [--address HOST:PORT] [--json] [--debug] [--exclude ID,ID,...] [--timeout MS] [--state FILE]";

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      user: { type: "string" },
      session: { type: "string" },
      count: { type: "number", default: 10 },
      address: { type: "string" },
      json: { type: "boolean", default: false },
      debug: { type: "boolean", default: false },
      exclude: { type: "string" },
      timeout: { type: "number", default: 5000 },
      state: { type: "string", default: stateFilePath() },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys recommend: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const count = Number(args["count"]);
  // Range checks are the server's (count 1..500): it answers INVALID_ARGUMENT with the reason.
  if (!Number.isInteger(count) || count < 0) {
    process.stderr.write(`recsys recommend: --count must be a positive integer, got ${count}\n${USAGE}\n`);
    return 2;
  }
  const session =
    typeof args["session"] === "string"
      ? args["session"]
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : undefined;
  if ((typeof args["user"] === "string") === (session !== undefined)) {
    process.stderr.write(`recsys recommend: give exactly one of --user and --session\n${USAGE}\n`);
    return 2;
  }
  const userId = session === undefined ? String(args["user"]) : "";
  let target;
  try {
    target = await resolveAddress(args["address"] as string | undefined, String(args["state"]));
  } catch (error) {
    process.stderr.write(`recsys recommend: ${(error as Error).message}\n`);
    return 1;
  }
  const excluded =
    typeof args["exclude"] === "string"
      ? args["exclude"]
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : [];
  const client = connect(RecommenderService, target.address, { defaultTimeoutMs: Number(args["timeout"]) });
  try {
    const started = performance.now();
    const response = await client.recommend({
      userId,
      ...(session === undefined ? {} : { sessionItemIds: session }),
      count,
      excludedItemIds: excluded,
      debug: args["debug"] === true,
    });
    const elapsedMs = performance.now() - started;
    if (args["json"] === true) {
      process.stdout.write(`${JSON.stringify(recommendationsJson(userId, response, elapsedMs))}\n`);
    } else {
      const titles = await readTitles(target.state);
      process.stdout.write(formatRecommendations(userId, response, { elapsedMs, ...(titles === undefined ? {} : { titles }) }));
    }
    return 0;
  } catch (error) {
    if (isServiceError(error)) {
      process.stderr.write(`recsys recommend: ${target.address} answered ${statusName(error.code)}: ${error.details}\n`);
      return 1;
    }
    throw error;
  } finally {
    client.$close();
  }
}
