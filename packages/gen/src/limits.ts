/**
 * Input limits of the recsys.v1 contracts, declared next to the generated code so that every
 * service checks the same numbers once, at its boundary (the runtime's validation helpers
 * raise INVALID_ARGUMENT naming the field). The .proto comments refer to these names.
 */

/** RecommendRequest.count: 1..MAX_RECOMMEND_COUNT. */
export const MAX_RECOMMEND_COUNT = 500;
/** SearchRequest.k: 1..MAX_SEARCH_K. */
export const MAX_SEARCH_K = 1000;
/** RecommendRequest.excluded_item_ids and SearchRequest.excluded_item_ids. */
export const MAX_EXCLUDED_ITEMS = 10_000;
/** UserContext.watch_history entries accepted (models read only the most recent ones). */
export const MAX_WATCH_HISTORY = 1000;
/** RecommendRequest.session_item_ids (an anonymous session's recent items). */
export const MAX_SESSION_ITEMS = 200;
/** UserContext.search_history entries accepted. */
export const MAX_SEARCH_HISTORY = 200;
/** UserContext.impression_history entries accepted. */
export const MAX_IMPRESSION_HISTORY = 1000;
/** RankRequest.candidates. */
export const MAX_RANK_CANDIDATES = 2000;
/** UpsertItemsRequest.items per call. */
export const MAX_UPSERT_ITEMS = 10_000;
/** DeleteItemsRequest.item_ids per call. */
export const MAX_DELETE_ITEMS = 10_000;
/** RecordEventsRequest.events per call. */
export const MAX_RECORD_EVENTS = 1000;
/** Any user or item id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 256;
/** A search query, in UTF-16 code units. */
export const MAX_QUERY_LENGTH = 512;
/** CatalogueService requests: items / ids per call. */
export const MAX_CATALOGUE_ITEMS = 10_000;
