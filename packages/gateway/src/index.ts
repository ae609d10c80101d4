/**
 * @recsys/gateway: the public API as JSON over HTTP (Connect) and gRPC-Web. See README.md.
 */
export { STAGE, configSchema, type GatewayConfig } from "./config.js";
export { createGatewayHandler, type GatewayOptions } from "./gateway.js";
export { runGateway, startGateway, type RunningGateway } from "./server.js";
