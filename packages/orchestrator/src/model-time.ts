/**
 * Model time: the time line of the bundle's own data. The stores and the sources keep real
 * (serving) time; the contexts sent to candidate generation and ranking are shifted onto the
 * bundle's time line, so time features (example age, previous impressions before the request)
 * are measured relative to the bundle's own end of data.
 *
 * The offset (serving time - model time, seconds) is fixed per bundle dataset: a bundle trained on
 * a historical dataset that bootstrapped the stores gets `wall time at the first start - end of
 * its training rows - 1 s` (kept in the user store's metadata: `MODEL_TIME_OFFSET_META_KEY/
 * <dataset fingerprint>`), and the seeded history, upload times included, is stored shifted by it,
 * i.e. in real time. A bundle trained on the live log (real timestamps) has no entry: offset 0.
 */
import type { UserContext } from "@recsys/gen";
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

export const MODEL_TIME_OFFSET_META_KEY = "orchestrator.model_time_offset";

function shift(ts: Timestamp | undefined, offsetSeconds: number): Timestamp | undefined {
  return ts === undefined ? undefined : timestampFromMs(timestampMs(ts) - offsetSeconds * 1000);
}

/** `context` with every time moved back by `offsetSeconds` (itself when 0). */
export function toModelTime(context: UserContext, offsetSeconds: number): UserContext {
  if (offsetSeconds === 0) return context;
  return {
    ...context,
    requestTime: shift(context.requestTime, offsetSeconds),
    watchHistory: context.watchHistory.map((w) => ({ ...w, watchedAt: shift(w.watchedAt, offsetSeconds) })),
    searchHistory: context.searchHistory.map((s) => ({ ...s, searchedAt: shift(s.searchedAt, offsetSeconds) })),
    impressionHistory: context.impressionHistory.map((i) => ({ ...i, shownAt: shift(i.shownAt, offsetSeconds) })),
  };
}
