/**
 * `recsys status [--state FILE] [--json]`: every stage of the stack `recsys start` runs (from its
 * state file, models/stack.json by default) with its health, the orchestrator's readiness, the
 * model version each serves, how often the launcher restarted it, its state and pid.
 * Exit code 0 when every stage is SERVING (and the orchestrator ready), 1 otherwise.
 */
import { parseArgs, UsageError } from "../args.js";
import { formatStackHealth, stackHealth } from "../stack-status.js";
import { processAlive, readStackState, stateFilePath } from "../stack-state.js";

const USAGE = "usage: recsys status [--state FILE] [--json] [--timeout MS]";

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      state: { type: "string", default: stateFilePath() },
      json: { type: "boolean", default: false },
      timeout: { type: "number", default: 2000 },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys status: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const path = String(args["state"]);
  const state = await readStackState(path);
  if (state === undefined) {
    process.stderr.write(`recsys status: no running stack recorded in ${path}; start one with 'npm start'\n`);
    return 1;
  }
  if (!processAlive(state.pid)) {
    process.stderr.write(`recsys status: the stack recorded in ${path} (recsys start, pid ${state.pid}) is not running any more\n`);
    return 1;
  }
  const stages = await stackHealth(state, Number(args["timeout"]));
  if (args["json"] === true) process.stdout.write(`${JSON.stringify({ address: state.address, startedAt: state.startedAt, stages })}\n`);
  else
    process.stdout.write(
      `recsys start (pid ${state.pid}) since ${state.startedAt}; public API at ${state.address}\n${formatStackHealth(stages)}`,
    );
  const healthy = stages.every((s) => s.health === "SERVING" && (s.ready === undefined || s.ready === "SERVING"));
  return healthy ? 0 : 1;
}
