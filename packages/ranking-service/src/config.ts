/**
 * Every environment variable the ranking service reads (exported: the Kubernetes manifests test
 * compares its keys with the Deployment's env).
 */
import { BACKEND_CHOICES } from "@recsys/tf";
import { env, runtimeConfigSchema, type ConfigOf } from "@recsys/runtime";

export const STAGE = "ranking";

export const configSchema = {
  ...runtimeConfigSchema,
  MODEL_PATH: env.string({
    required: true,
    description:
      "model bundle directory holding the ranker in RANKER_SUBDIR (`recsys train-ranker` writes <bundle>/ranker/); usually a symlink deploys flip",
  }),
  RANKER_SUBDIR: env.string({
    default: "ranker",
    description:
      "subdirectory of MODEL_PATH with the ranker's manifest.json and weights (ranker-noprov: the ablation without provenance features)",
  }),
  MODEL_POLL_INTERVAL: env.duration({
    default: 30_000,
    description: "how often <MODEL_PATH>/<RANKER_SUBDIR>/manifest.json is checked for a new ranker modelVersion (0 = never)",
  }),
  MODEL_RETIRE_DELAY: env.duration({
    default: 30_000,
    description: "how long a swapped-out ranker is kept before its tensors are released",
  }),
  MODEL_RELOAD_RETRY: env.duration({
    default: 60_000,
    description: "a ranker that failed to load is retried at most this often",
  }),
  RECSYS_TF_BACKEND: env.enum(BACKEND_CHOICES, {
    description: "force a tfjs backend (default: the fastest available: node-gpu, node, wasm, cpu)",
  }),
};

export type RankingConfig = ConfigOf<typeof configSchema>;
