/**
 * The candidate-generation stage: EmbedUser = the trained user tower of the bundle at
 * MODEL_PATH, hot-reloaded when a new bundle is published there.
 */
import { loadUserTower, type UserTower } from "@recsys/candidate-gen";
import { CandidateGenerationService } from "@recsys/gen";
import {
  implement,
  validateUserContext,
  watchModel,
  type ModelWatcher,
  type ServiceRegistration,
  type ServiceSetup,
} from "@recsys/runtime";
import { initBackend } from "@recsys/tf";
import { Histogram } from "prom-client";
import { STAGE, type CandidateGenConfig } from "./config.js";
import { toFeatureContext } from "./context.js";

/** Buckets of the tower's compute time, in seconds: 50 µs .. 1 s. */
const TOWER_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export interface CandidateGenService {
  readonly services: readonly ServiceRegistration[];
  readonly model: ModelWatcher<UserTower>;
  /** Stops watching the bundle and releases the models. */
  close(): Promise<void>;
}

/** Loads the bundle (startup fails if it cannot) and builds the EmbedUser handler. */
export async function createCandidateGenService(setup: ServiceSetup<CandidateGenConfig>): Promise<CandidateGenService> {
  const { config, logger, registry } = setup;
  await initBackend({
    ...(config.RECSYS_TF_BACKEND === undefined ? {} : { backend: config.RECSYS_TF_BACKEND }),
    log: ({ level: _level, msg, ...fields }) => logger.info(fields, String(msg)),
  });
  const towerSeconds = new Histogram({
    name: `recsys_${STAGE}_user_tower_seconds`,
    help: "Time to compute one user vector (feature encoding and the tower), in seconds",
    buckets: TOWER_BUCKETS_SECONDS,
    registers: [registry],
  });
  // The user tower only: the output item embeddings are retrieval's (not loaded here).
  const model = await watchModel<UserTower>({
    path: config.MODEL_PATH,
    load: (dir) => loadUserTower(dir),
    versionOf: (bundle) => bundle.manifest.modelVersion,
    pollMs: config.MODEL_POLL_INTERVAL,
    retireDelayMs: config.MODEL_RETIRE_DELAY,
    retryFailedMs: config.MODEL_RELOAD_RETRY,
    retire: (bundle) => bundle.dispose(),
    logger,
    stage: STAGE,
    registry,
  });
  logger.info(
    { modelVersion: model.version(), dim: model.current().dim, items: model.current().manifest.itemIds.length },
    "user tower ready",
  );

  const service = implement(CandidateGenerationService, {
    async embedUser(request) {
      const context = validateUserContext(request.context);
      const bundle = model.current(); // once: a swap during this call does not affect it
      const features = toFeatureContext(context, Date.now() / 1000);
      const started = performance.now();
      const vector = bundle.userVector(features);
      towerSeconds.observe((performance.now() - started) / 1000);
      return {
        userVector: Array.from(vector),
        version: { component: STAGE, modelVersion: bundle.manifest.modelVersion },
      };
    },
  });
  return { services: [service], model, close: () => model.close() };
}
