#!/usr/bin/env node
/** The orchestrator process: the public RecommenderService (configuration: README.md, src/config.ts). */
import { runService } from "@recsys/runtime";
import { STAGE, configSchema } from "./config.js";
import { createOrchestrator, type Orchestrator } from "./service.js";

let stage: Orchestrator | undefined;
await runService({
  stage: STAGE,
  configSchema,
  setup: async (setup) => {
    stage = await createOrchestrator(setup);
    return stage.services;
  },
  onStop: () => stage?.close(),
});
