/**
 * Anonymous sessions: a Recommend with `session_item_ids` (a visitor's recent items, oldest
 * first) and no user id. It is answered from the request alone: the session source (the bundle's
 * session model), co-watch of the session's items, popular and trending, ranked by the ranker.
 * Nothing is read from or written to the user store (no profile, no history, no check of
 * earlier watches, no served-log entry) and no DNN candidates are asked for (the candidate
 * generator embeds known users' contexts).
 */
import { create } from "@bufbuild/protobuf";
import { MAX_SESSION_ITEMS, UserContextSchema, type RecommendRequest, type UserContext } from "@recsys/gen";
import { invalidArgument, requireMaxItems, requireNonEmpty } from "@recsys/runtime";
import { secondsTimestamp } from "./context.js";

/**
 * The user id the ranker is given for an anonymous session (RankRequest requires one). It is
 * no user's: ids starting with "~" are reserved for it here and never looked up anywhere.
 */
export const ANONYMOUS_RANK_USER_ID = "~anonymous-session";

/** True when the request is an anonymous session (it sets session_item_ids). */
export function isAnonymousSession(request: RecommendRequest): boolean {
  return request.sessionItemIds.length > 0;
}

/**
 * Checks the anonymous-session fields of `request` (INVALID_ARGUMENT naming the field): no
 * user_id and no context beside a session, at most MAX_SESSION_ITEMS non-blank item ids.
 */
export function validateAnonymousSession(request: RecommendRequest): readonly string[] {
  if (request.userId !== "") throw invalidArgument("session_item_ids is for anonymous sessions: user_id must be empty with it");
  if (request.context !== undefined) throw invalidArgument("session_item_ids is for anonymous sessions: context must be absent with it");
  requireMaxItems(request.sessionItemIds, MAX_SESSION_ITEMS, "session_item_ids");
  request.sessionItemIds.forEach((id, i) => requireNonEmpty(id, `session_item_ids[${i}]`));
  return request.sessionItemIds;
}

/** The context of an anonymous session: its items as the watch history (watched now), no profile. */
export function anonymousContext(sessionItemIds: readonly string[], now: number): UserContext {
  return create(UserContextSchema, {
    userId: ANONYMOUS_RANK_USER_ID,
    watchHistory: sessionItemIds.map((itemId) => ({ itemId, watchedAt: secondsTimestamp(now) })),
    requestTime: secondsTimestamp(now),
  });
}
