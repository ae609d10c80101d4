#!/usr/bin/env node
/** The candidate-generation service process (configuration: README.md, src/config.ts). */
import { runService } from "@recsys/runtime";
import { STAGE, configSchema } from "./config.js";
import { createCandidateGenService, type CandidateGenService } from "./service.js";

let stage: CandidateGenService | undefined;
await runService({
  stage: STAGE,
  configSchema,
  setup: async (setup) => {
    stage = await createCandidateGenService(setup);
    return stage.services;
  },
  onStop: () => stage?.close(),
});
