/**
 * Human-readable reasons for a recommended item, from the sources that nominated it.
 *
 * | source | reason |
 * |---|---|
 * | session | "Because you just watched <title>" (the recent watch nearest in the session model's space), else "Picked for this session" |
 * | co-watch | "Because you watched <title>" (the history item that contributed most) |
 * | dnn | "Because you watched <title>" (the history item nearest to it in the model's item embedding space), else "Recommended for you" |
 * | fresh | "New from <channel>" ("New upload" when the channel is unknown) |
 * | trending-geo | "Trending in your area" |
 * | popular, trending | "Popular right now" |
 *
 * Combined: at most one "Because you watched" (co-watch's item first, it is the actual cause;
 * else the DNN's), "Recommended for you" only for a DNN item with no "Because you watched",
 * and "Popular right now" only when the item is not already "Trending in your area". Order:
 * personal reasons first, then fresh, then the non-personalised ones.
 */
import { sessionReason, type Provenance } from "@recsys/sources";
import type { Catalogue } from "./catalogue.js";

export const REASON_RECOMMENDED = "Recommended for you";
export const REASON_POPULAR = "Popular right now";
export const REASON_TRENDING_AREA = "Trending in your area";
export const REASON_NEW_UPLOAD = "New upload";

export function becauseYouWatched(title: string): string {
  return `Because you watched ${title}`;
}

export function newFrom(channel: string): string {
  return `New from ${channel}`;
}

/**
 * Reasons for one item. `dnnBecause` is the DNN's nearest history item (catalogue index), when
 * it could be computed.
 */
export function reasonsFor(provenance: readonly Provenance[], catalogue: Catalogue, item: number, dnnBecause?: number): string[] {
  const has = (source: string): Provenance | undefined => provenance.find((p) => p.source === source);
  const out: string[] = [];
  const coWatch = has("co-watch");
  const dnn = has("dnn");
  const session = has("session");
  if (session !== undefined) out.push(sessionReason(session.because === undefined ? undefined : catalogue.displayTitle(session.because)));
  const because = coWatch?.because ?? (dnn === undefined ? undefined : dnnBecause);
  if (because !== undefined) out.push(becauseYouWatched(catalogue.displayTitle(because)));
  else if (dnn !== undefined) out.push(REASON_RECOMMENDED);
  if (has("fresh") !== undefined) {
    const channel = catalogue.channel(item);
    out.push(channel === undefined ? REASON_NEW_UPLOAD : newFrom(channel));
  }
  if (has("trending-geo") !== undefined) out.push(REASON_TRENDING_AREA);
  else if (has("popular") !== undefined || has("trending") !== undefined) out.push(REASON_POPULAR);
  if (out.length === 0) out.push(REASON_RECOMMENDED); // a source without a wording of its own
  return out;
}
