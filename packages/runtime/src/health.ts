/**
 * The standard grpc.health.v1 service (grpc-health-check) and a small client for it.
 * The server reports an overall status (service "") and one per registered service
 * ("recsys.v1.RankingService"); Kubernetes' native `grpc:` probes ask for "".
 */
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation, service as healthServiceDefinition } from "grpc-health-check";

export { HealthImplementation };

/** The fully-qualified name of the health service. */
export const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

export type ServingStatus = "SERVING" | "NOT_SERVING";

/** What a health check can answer ("SERVICE_UNKNOWN" only from Watch; Check answers NOT_FOUND). */
export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** The grpc-js definition of grpc.health.v1.Health (methods Check, Watch, List). */
export const healthService = healthServiceDefinition as unknown as grpc.ServiceDefinition;

const checkMethod = healthService["Check"] as grpc.MethodDefinition<{ service: string }, { status: HealthStatus }>;

export interface CheckHealthOptions {
  /** Service to ask about; "" (default) is the server as a whole. */
  readonly service?: string;
  readonly timeoutMs?: number;
}

/**
 * Asks a server for its health (grpc.health.v1.Health/Check) over a fresh channel. Resolves with
 * the status; rejects with the ServiceError when the call fails (UNAVAILABLE when nothing
 * listens, NOT_FOUND for an unknown service).
 */
export function checkHealth(address: string, options: CheckHealthOptions = {}): Promise<HealthStatus> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<HealthStatus>((resolve, reject) => {
    client.makeUnaryRequest(
      checkMethod.path,
      checkMethod.requestSerialize,
      checkMethod.responseDeserialize,
      { service: options.service ?? "" },
      new grpc.Metadata(),
      { deadline: Date.now() + (options.timeoutMs ?? 2000) },
      (error, response) => {
        client.close();
        if (error) reject(error);
        else if (response === undefined) reject(new Error("health check: empty response"));
        else resolve(response.status);
      },
    );
  });
}
