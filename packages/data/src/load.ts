import { stat } from "node:fs/promises";
import { loadEventsDir } from "./events-dir.js";
import { loadMl100k } from "./ml100k.js";
import { loadStoreDataset } from "./store.js";
import { generateSynthetic, parseSyntheticSpec } from "./synthetic.js";
import type { Dataset } from "./types.js";

export const ACCEPTED_SPECS = [
  "ml100k:DIR                  MovieLens 100K files (u.data, u.user, u.item, u.genre) in DIR",
  "events:DIR                  events.csv (+ optional users.csv, items.csv, searches.csv) in DIR",
  "synthetic[:KEY=VALUE,...]   the seeded generator, e.g. synthetic:users=5000,items=2000,seed=1",
  "store:DIR[?until=SEQ]       the system's own embedded stores in DIR (events logged through the API, catalogue)",
  "store:redis://H:P[/db][?prefix=P][&until=SEQ]  the system's own Redis stores under key prefix P (default recsys:)",
];

function specError(message: string): Error {
  return new Error(`${message}\naccepted dataset specifications:\n  ${ACCEPTED_SPECS.join("\n  ")}`);
}

async function requireDirectory(dir: string, spec: string): Promise<void> {
  if (dir === "") throw specError(`dataset "${spec}": missing directory after the colon`);
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    throw specError(`dataset "${spec}": directory ${dir} does not exist`);
  }
  if (!isDir) throw specError(`dataset "${spec}": ${dir} is not a directory`);
}

/**
 * Loads a dataset from a specification of ../shared/PROTOCOL.md (see ACCEPTED_SPECS). Errors
 * name the file and line of a malformed row, or list the accepted forms for an unknown spec.
 */
export async function loadDataset(spec: string): Promise<Dataset> {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? "" : spec.slice(colon + 1);
  switch (kind) {
    case "ml100k":
      await requireDirectory(rest, spec);
      return loadMl100k(spec, rest);
    case "events":
      await requireDirectory(rest, spec);
      return loadEventsDir(spec, rest);
    case "synthetic":
      return generateSynthetic(spec, parseSyntheticSpec(rest));
    case "store":
      if (rest === "") throw specError(`dataset "${spec}": missing the store after the colon`);
      if (!rest.startsWith("redis://") && !rest.startsWith("rediss://")) await requireDirectory(rest.split("?")[0]!, spec);
      return loadStoreDataset(spec, rest);
    default:
      throw specError(`unknown dataset specification "${spec}"`);
  }
}
