#!/usr/bin/env node
/**
 * Starts the example backend: RECSYS_ADDRESS (the orchestrator, required), HOST (default
 * 127.0.0.1), PORT (default 3000; 0 = any free port). Prints its URL; stops on SIGTERM / SIGINT.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createRecsysClient } from "@recsys/client";
import { createApp } from "./app.js";

const address = process.env.RECSYS_ADDRESS;
if (address === undefined || address === "") {
  process.stderr.write("RECSYS_ADDRESS is required: the orchestrator's gRPC address, e.g. 127.0.0.1:50051\n");
  process.exit(1);
}
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || "3000");

const recsys = createRecsysClient({ address, timeoutMs: 1000 });
const server = createServer(createApp(recsys));
server.listen(port, host, () => {
  process.stdout.write(`example backend listening on http://${host}:${(server.address() as AddressInfo).port}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close(() => {
      recsys.close();
      process.exit(0);
    });
    server.closeIdleConnections();
  });
}
