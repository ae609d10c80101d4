/**
 * Builders of the events RecordEvents takes (times as Date, default now), and the impressions of
 * a Recommend answer.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { RecommendResponse, UserEventSchema } from "@recsys/gen";

export type UserEventInit = MessageInitShape<typeof UserEventSchema>;

/** `userId` watched `itemId` (for `watchSeconds`, when known). */
export function watchEvent(userId: string, itemId: string, options: { watchedAt?: Date; watchSeconds?: number } = {}): UserEventInit {
  return {
    userId,
    kind: {
      case: "watch",
      value: {
        itemId,
        watchedAt: timestampFromDate(options.watchedAt ?? new Date()),
        ...(options.watchSeconds !== undefined ? { watchSeconds: options.watchSeconds } : {}),
      },
    },
  };
}

/** `userId` searched for `query`. */
export function searchEvent(userId: string, query: string, options: { searchedAt?: Date } = {}): UserEventInit {
  return { userId, kind: { case: "search", value: { query, searchedAt: timestampFromDate(options.searchedAt ?? new Date()) } } };
}

export interface ImpressionOptions {
  /** When the list was shown. Default now. */
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
  const shownAt = timestampFromDate(options.shownAt ?? new Date());
  const items = options.shown === undefined ? response.items : response.items.slice(0, Math.max(0, options.shown));
  return items.map((item, i) => ({
    userId,
    kind: { case: "impression", value: { itemId: item.itemId, shownAt, position: i + 1, requestId: response.requestId } },
  }));
}
