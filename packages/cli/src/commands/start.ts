import { parseArgs } from "../args.js";
import { run as evaluate } from "./evaluate.js";
import { run as train } from "./train.js";

/**
 * The README's main job: train on a dataset (the embedded synthetic one by default) into
 * ./models/<name>, then evaluate it with protocol lastout next to the baselines.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    dataset: { type: "string", default: "synthetic:" },
    out: { type: "string" },
    epochs: { type: "number" },
    seed: { type: "number", default: 1 },
  });
  const dataset = String(args["dataset"]);
  const out = typeof args["out"] === "string" ? args["out"] : `models/${dataset.split(":")[0]}`;
  const trainArgs = ["--dataset", dataset, "--out", out, "--seed", String(args["seed"])];
  if (args["epochs"] !== undefined) trainArgs.push("--epochs", String(args["epochs"]));
  process.stderr.write(`== recsys train ${trainArgs.join(" ")}\n`);
  const trained = await train(trainArgs);
  if (trained !== 0) return trained;
  process.stderr.write(`== recsys evaluate --dataset ${dataset} --model ${out}\n`);
  return evaluate(["--dataset", dataset, "--model", out]);
}
