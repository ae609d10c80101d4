#!/usr/bin/env node
/** The ranking service process (configuration: README.md, src/config.ts). */
import { runService } from "@recsys/runtime";
import { STAGE, configSchema } from "./config.js";
import { createRankingService, type RankingStage } from "./service.js";

let stage: RankingStage | undefined;
await runService({
  stage: STAGE,
  configSchema,
  setup: async (setup) => {
    stage = await createRankingService(setup);
    return stage.services;
  },
  onStop: () => stage?.close(),
});
