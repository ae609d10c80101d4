/**
 * Every environment variable the candidate-generation service reads (exported: the Kubernetes
 * manifests test compares its keys with the Deployment's env).
 */
import { BACKEND_CHOICES } from "@recsys/tf";
import { env, runtimeConfigSchema, type ConfigOf } from "@recsys/runtime";

export const STAGE = "candidate_generation";

export const configSchema = {
  ...runtimeConfigSchema,
  MODEL_PATH: env.string({
    required: true,
    description: "model bundle directory written by `recsys train` (usually a symlink deploys flip)",
  }),
  MODEL_POLL_INTERVAL: env.duration({
    default: 30_000,
    description: "how often the bundle's manifest.json is checked for a new modelVersion (0 = never)",
  }),
  MODEL_RETIRE_DELAY: env.duration({
    default: 30_000,
    description: "how long a swapped-out model is kept before its tensors are released",
  }),
  MODEL_RELOAD_RETRY: env.duration({
    default: 60_000,
    description: "a bundle that failed to load is retried at most this often",
  }),
  RECSYS_TF_BACKEND: env.enum(BACKEND_CHOICES, {
    description: "force a tfjs backend (default: the fastest available: node-gpu, node, wasm, cpu)",
  }),
};

export type CandidateGenConfig = ConfigOf<typeof configSchema>;
