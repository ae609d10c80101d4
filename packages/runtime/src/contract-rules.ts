/**
 * `checkContractRules`: the contracts' validation table (@recsys/gen rules.ts) applied to a
 * decoded request, walking the message by its descriptor, so every message of every service is
 * checked the same way, once, at the boundary (startService calls it on every request before the
 * handler). Throws INVALID_ARGUMENT naming the first field that breaks a rule.
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FIELD_RULES, ID_FIELD_PATTERN, ID_MAX_LENGTH, MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS, type FieldRule } from "@recsys/gen";
import { invalidArgument } from "@recsys/transport";

const TIMESTAMP = "google.protobuf.Timestamp";

function isFloat(scalar: ScalarType): boolean {
  return scalar === ScalarType.FLOAT || scalar === ScalarType.DOUBLE;
}

function checkNumber(value: number, path: string, finite: boolean, rule: FieldRule | undefined): void {
  // A float with a lower bound: one message for both failures, as the services word it.
  if (finite && rule?.gte !== undefined && !(Number.isFinite(value) && value >= rule.gte)) {
    throw invalidArgument(`${path} must be a finite number >= ${rule.gte}, got ${value}`);
  }
  if (finite && !Number.isFinite(value)) throw invalidArgument(`${path} must be a finite number, got ${value}`);
  if (rule === undefined) return;
  if (rule.gte !== undefined && !(value >= rule.gte)) throw invalidArgument(`${path} must be >= ${rule.gte}, got ${value}`);
  if (rule.gt !== undefined && !(value > rule.gt)) throw invalidArgument(`${path} must be > ${rule.gt}, got ${value}`);
  if (rule.lte !== undefined && !(value <= rule.lte)) throw invalidArgument(`${path} must be <= ${rule.lte}, got ${value}`);
}

function checkId(value: string, path: string): void {
  if (value === "") return;
  if (value.trim() === "") throw invalidArgument(`${path} must not be blank (only whitespace)`);
  if (value.length > ID_MAX_LENGTH) throw invalidArgument(`${path} is too long: ${value.length} characters, at most ${ID_MAX_LENGTH}`);
}

function checkTimestamp(ts: { seconds: bigint; nanos: number }, path: string): void {
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw invalidArgument(`${path}.nanos must be in 0..999999999, got ${ts.nanos}`);
  }
  if (ts.seconds < MIN_TIMESTAMP_SECONDS || ts.seconds > MAX_TIMESTAMP_SECONDS) {
    throw invalidArgument(`${path} is out of the Timestamp range (0001-01-01 to 9999-12-31): seconds ${ts.seconds}`);
  }
}

function checkScalar(field: DescField & { fieldKind: "scalar" | "list" | "map" }, scalar: ScalarType, value: unknown, path: string): void {
  if (isFloat(scalar)) checkNumber(value as number, path, true, FIELD_RULES[field.parent.typeName + "." + field.name]);
  else if (scalar === ScalarType.STRING && ID_FIELD_PATTERN.test(field.name)) checkId(value as string, path);
  else if (typeof value === "number") {
    const rule = FIELD_RULES[field.parent.typeName + "." + field.name];
    if (rule !== undefined) checkNumber(value, path, false, rule);
  }
}

/** Checks `message` (of type `desc`) against the contract rules; throws INVALID_ARGUMENT. */
export function checkContractRules(desc: DescMessage, message: unknown, path = ""): void {
  if (desc.typeName === TIMESTAMP) {
    checkTimestamp(message as { seconds: bigint; nanos: number }, path === "" ? "timestamp" : path);
    return;
  }
  const record = message as Record<string, unknown>;
  for (const field of desc.fields) {
    let value: unknown;
    if (field.oneof !== undefined) {
      const chosen = record[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case !== field.localName) continue;
      value = chosen.value;
    } else {
      value = record[field.localName];
    }
    if (value === undefined) continue;
    const at = path === "" ? field.name : `${path}.${field.name}`;
    switch (field.fieldKind) {
      case "scalar":
        checkScalar(field, field.scalar, value, at);
        break;
      case "message":
        checkContractRules(field.message, value, at);
        break;
      case "list": {
        const list = value as unknown[];
        if (field.listKind === "scalar") for (let i = 0; i < list.length; i++) checkScalar(field, field.scalar, list[i], `${at}[${i}]`);
        else if (field.listKind === "message")
          for (let i = 0; i < list.length; i++) checkContractRules(field.message, list[i], `${at}[${i}]`);
        break;
      }
      case "map": {
        const map = value as Record<string, unknown>;
        for (const key of Object.keys(map)) {
          if (field.mapKind === "scalar") checkScalar(field, field.scalar, map[key], `${at}["${key}"]`);
          else if (field.mapKind === "message") checkContractRules(field.message, map[key], `${at}["${key}"]`);
        }
        break;
      }
      default:
        break; // enums: any value (unknown ones are kept open, as proto3 does)
    }
  }
}
