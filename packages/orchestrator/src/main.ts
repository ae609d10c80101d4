#!/usr/bin/env node
/** The orchestrator process: the public RecommenderService (configuration: README.md, src/config.ts). */
import { runService } from "@recsys/runtime";
import { RecommenderService } from "@recsys/gen";
import { STAGE, configSchema } from "./config.js";
import { createOrchestrator, type Orchestrator } from "./service.js";

let stage: Orchestrator | undefined;
const running = await runService({
  stage: STAGE,
  configSchema,
  setup: async (setup) => {
    stage = await createOrchestrator(setup);
    return stage.services;
  },
  onStop: () => stage?.close(),
});
// Readiness (recsys.v1.RecommenderService) follows the downstream stages; liveness ("") does not.
const readiness = stage!.readiness;
readiness.start((ready, down) => {
  running.logger.warn({ ready, down }, ready ? "every stage answers again: ready" : "a stage is down for too long: not ready");
  running.setServing(ready ? "SERVING" : "NOT_SERVING", RecommenderService.typeName);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => readiness.stop());
