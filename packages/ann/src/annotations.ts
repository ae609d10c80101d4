import { InvalidArgumentError } from "./errors.js";

/** Checks free-form index annotations: at most 64 string → string entries of modest length. */
export function validateAnnotations(annotations: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (annotations === null || typeof annotations !== "object" || Array.isArray(annotations)) {
    throw new InvalidArgumentError("annotations must be an object of strings");
  }
  const entries = Object.entries(annotations);
  if (entries.length > 64) throw new InvalidArgumentError("at most 64 annotations are allowed");
  for (const [key, value] of entries) {
    if (typeof value !== "string" || key.length > 256 || value.length > 4096) {
      throw new InvalidArgumentError(`annotation ${JSON.stringify(key)} must be a string of at most 4096 characters`);
    }
  }
  return Object.freeze({ ...annotations });
}
