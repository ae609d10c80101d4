#!/usr/bin/env node
/** The retrieval service process (configuration: README.md, src/config.ts). */
import { runService } from "@recsys/runtime";
import { STAGE, configSchema } from "./config.js";
import { createRetrievalService, type RetrievalStage } from "./service.js";

let stage: RetrievalStage | undefined;
await runService({
  stage: STAGE,
  configSchema,
  setup: async (setup) => {
    stage = await createRetrievalService(setup);
    return stage.services;
  },
  onStop: () => stage?.close(),
});
