/**
 * Builders of the events RecordEvents takes, and the impressions of a Recommend answer.
 *
 * Times are optional Dates. Left out, the orchestrator stamps the event with its serving clock when
 * it receives it: that is right in both of its clock modes (the wall clock for live data; the
 * "dataset" clock, which continues from the end of a historical dataset and would refuse
 * wall-clock times from years after it). Give a time when the event happened earlier than it is
 * sent (a batch, a replay).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { RecommendResponse, UserEventSchema } from "@recsys/gen";

export type UserEventInit = MessageInitShape<typeof UserEventSchema>;

/**
 * `userId` watched `itemId` (for `watchSeconds`, when known). `clientId` names the app
 * installation or device it came from: the watches of one item from one client count at most a
 * few times in the popularity counts, whatever user ids they carry.
 */
export function watchEvent(
  userId: string,
  itemId: string,
  options: { watchedAt?: Date; watchSeconds?: number; clientId?: string } = {},
): UserEventInit {
  return {
    userId,
    ...(options.clientId !== undefined ? { clientId: options.clientId } : {}),
    kind: {
      case: "watch",
      value: {
        itemId,
        ...(options.watchedAt !== undefined ? { watchedAt: timestampFromDate(options.watchedAt) } : {}),
        ...(options.watchSeconds !== undefined ? { watchSeconds: options.watchSeconds } : {}),
      },
    },
  };
}

/** `userId` searched for `query`. */
export function searchEvent(userId: string, query: string, options: { searchedAt?: Date } = {}): UserEventInit {
  const searchedAt = options.searchedAt !== undefined ? { searchedAt: timestampFromDate(options.searchedAt) } : {};
  return { userId, kind: { case: "search", value: { query, ...searchedAt } } };
}

export interface ImpressionOptions {
  /** When the list was shown. Default: the orchestrator's clock when it receives the events. */
  readonly shownAt?: Date;
  /** Only the first `shown` items were shown (e.g. a page of 5 out of 10). Default all. */
  readonly shown?: number;
}

/**
 * One impression per item of `response` shown to `userId`: its 1-based position and the
 * response's request_id, so that the impressions can be joined to the answer they came from.
 */
export function impressionEvents(
  userId: string,
  response: Pick<RecommendResponse, "items" | "requestId">,
  options: ImpressionOptions = {},
): UserEventInit[] {
  const shownAt = options.shownAt !== undefined ? { shownAt: timestampFromDate(options.shownAt) } : {};
  const items = options.shown === undefined ? response.items : response.items.slice(0, Math.max(0, options.shown));
  return items.map((item, i) => ({
    userId,
    kind: { case: "impression", value: { itemId: item.itemId, ...shownAt, position: i + 1, requestId: response.requestId } },
  }));
}
