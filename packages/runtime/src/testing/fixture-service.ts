/**
 * A ranking-service stand-in for the runtime's child-process tests (service.test.ts): started with
 * `node dist/testing/fixture-service.js`, configured only through the environment like a real
 * stage. Rank sleeps FIXTURE_RANK_DELAY (so a test can hold a call in flight across SIGTERM) and
 * scores candidates by their position.
 */
import { RankingService } from "@recsys/gen";
import { env, implement, runService, runtimeConfigSchema } from "../index.js";

export const fixtureConfigSchema = {
  ...runtimeConfigSchema,
  FIXTURE_RANK_DELAY: env.duration({ default: 0, description: "how long Rank takes" }),
  FIXTURE_MODEL_VERSION: env.string({ required: true, description: "reported model version" }),
};

const running = await runService({
  stage: "fixture",
  configSchema: fixtureConfigSchema,
  setup: ({ config }) => [
    implement(RankingService, {
      async rank(request, context) {
        if (config.FIXTURE_RANK_DELAY > 0) {
          await new Promise((resolve) => setTimeout(resolve, config.FIXTURE_RANK_DELAY));
        }
        context.logger.info({ candidates: request.candidates.length }, "ranked");
        return {
          items: request.candidates.map((candidate, i) => ({
            itemId: candidate.itemId,
            score: request.candidates.length - i,
            expectedWatchSeconds: 60,
          })),
          version: { component: "ranking", modelVersion: config.FIXTURE_MODEL_VERSION },
        };
      },
    }),
  ],
});
// One line the parent test waits for (the logs are JSON lines on stdout too).
process.stdout.write(`${JSON.stringify({ ready: true, port: running.port, metricsPort: running.metricsPort })}\n`);
