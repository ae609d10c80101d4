/**
 * @recsys/client: a typed client of the recsys public API. See README.md.
 */
export {
  IDEMPOTENT,
  RecsysClient,
  createRecsysClient,
  type CallOptions,
  type MethodName,
  type RecsysClientOptions,
  type RequestOf,
  type ResponseOf,
  type RetryEvent,
} from "./client.js";
export { ErrorCode, GRPC_STATUS, RecsysError, errorCodeOf, isRecsysError, toRecsysError } from "./errors.js";
export { impressionEvents, searchEvent, watchEvent, type ImpressionOptions, type UserEventInit } from "./events.js";
/** Builds a `google.protobuf.Timestamp` (e.g. a catalogue item's `uploadedAt`) from a Date. */
export { timestampFromDate } from "@bufbuild/protobuf/wkt";
export { DEFAULT_RETRY_POLICY, backoffMs, type RetryPolicy } from "./retry.js";
export {
  MAX_CATALOGUE_ITEMS,
  MAX_RECOMMEND_COUNT,
  MAX_RECORD_EVENTS,
  type RecommendRequest,
  type RecommendResponse,
  type RecommendedItem,
  type RecordEventsRequest,
  type RecordEventsResponse,
  type UserEvent,
  type CatalogueItem,
  type CatalogueServiceDeleteItemsRequest,
  type CatalogueServiceDeleteItemsResponse,
  type CatalogueServiceGetItemsRequest,
  type CatalogueServiceGetItemsResponse,
  type CatalogueServiceUpsertItemsRequest,
  type CatalogueServiceUpsertItemsResponse,
} from "@recsys/gen";
