/**
 * @recsys/candidate-gen-service: the candidate-generation gRPC stage (EmbedUser). The process is
 * `dist/main.js`; this module exports its parts for tests and tooling.
 */
export { STAGE, configSchema, type CandidateGenConfig } from "./config.js";
export { toFeatureContext } from "./context.js";
export { createCandidateGenService, type CandidateGenService } from "./service.js";
