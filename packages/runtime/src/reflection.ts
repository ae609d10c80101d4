/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, via @grpc/reflection) for services
 * described by protobuf-es descriptors, so that grpcurl / grpcui / Postman can list and call them
 * without .proto files.
 *
 * @grpc/reflection expects a @grpc/proto-loader PackageDefinition, but all it reads from one is
 * each entry's `fileDescriptorProtos` (serialized google.protobuf.FileDescriptorProto). protobuf-es
 * keeps the FileDescriptorProto of every file (`DescFile.proto`), so we serialize those (with all
 * their dependencies) and hand them over in that shape; the health service's descriptors come from
 * grpc-health-check's proto-loader definition.
 */
import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";
import { healthService } from "./health.js";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/** Serialized FileDescriptorProtos of `files` and everything they import, dependencies first. */
export function fileDescriptorProtos(files: Iterable<DescFile>): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  const visit = (file: DescFile): void => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dependency of file.dependencies) visit(dependency);
    out.push(Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
  };
  for (const file of files) visit(file);
  return out;
}

/** The health service's serialized descriptors, as loaded by grpc-health-check. */
function healthDescriptorProtos(): Buffer[] {
  const check = (healthService as unknown as Record<string, { requestType?: { fileDescriptorProtos?: unknown } }>)["Check"];
  const protos = check?.requestType?.fileDescriptorProtos;
  return Array.isArray(protos) ? (protos as Buffer[]) : [];
}

/** A reflection service describing `services` and grpc.health.v1.Health. */
export function createReflectionService(services: readonly DescService[]): ReflectionService {
  const packageDefinition: Record<string, { fileDescriptorProtos: Buffer[] }> = {
    "grpc.health.v1": { fileDescriptorProtos: healthDescriptorProtos() },
  };
  for (const service of services) {
    packageDefinition[service.typeName] = { fileDescriptorProtos: fileDescriptorProtos([service.file]) };
  }
  return new ReflectionService(packageDefinition as unknown as PackageDefinition);
}
