/**
 * The request's UserContext (proto, validated) → the features package's UserContext, the one
 * shape training and serving share (so the user vector is computed exactly as in training).
 *
 * - Timestamps become Unix seconds (seconds + nanos / 1e9).
 * - request_time absent → `nowSeconds` (the service's clock).
 * - A watch without watched_at counts as watched at the request time (visible: the model sees
 *   watches at or before the request time); a search without searched_at counts as made 1 ms
 *   before it (the model sees only searches strictly before the request time).
 * - Demographics and geo: empty strings and an absent age mean unknown. The device is not a
 *   feature of the candidate-generation model.
 * - Items and tokens the model does not know are fine: the feature space maps them to its
 *   out-of-vocabulary ids.
 * The example age is not part of the context: at serving it is 0 (`bundle.userVector(ctx)`).
 */
import type { UserContext as ProtoUserContext } from "@recsys/gen";
import type { Search, UserContext, Watch } from "@recsys/features";
import { timestampSeconds } from "@recsys/runtime";

export function toFeatureContext(context: ProtoUserContext, nowSeconds: number): UserContext {
  const requestTime = context.requestTime === undefined ? nowSeconds : timestampSeconds(context.requestTime);
  const watches: Watch[] = context.watchHistory.map((watch) => ({
    itemId: watch.itemId,
    timestamp: watch.watchedAt === undefined ? requestTime : timestampSeconds(watch.watchedAt),
  }));
  const searches: Search[] = context.searchHistory.map((search) => ({
    query: search.query,
    timestamp: search.searchedAt === undefined ? requestTime - 0.001 : timestampSeconds(search.searchedAt),
  }));
  const out: { -readonly [K in keyof UserContext]: UserContext[K] } = { watches, searches, requestTime };
  const demographics = context.demographics;
  if (demographics?.age !== undefined) out.age = demographics.age;
  if (demographics !== undefined && demographics.gender !== "") out.gender = demographics.gender;
  if (demographics !== undefined && demographics.occupation !== "") out.occupation = demographics.occupation;
  if (context.geo !== "") out.geo = context.geo;
  return out;
}
