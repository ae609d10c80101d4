import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { UserEventSchema } from "@recsys/gen";
import { describe, expect, it } from "vitest";
import { watchEvent } from "./events.js";

describe("watchEvent", () => {
  it("builds a watch with its optional time, watch time and client id", () => {
    const at = new Date("2026-12-01T10:00:00Z");
    const event = create(UserEventSchema, watchEvent("u1", "i9", { watchedAt: at, watchSeconds: 42, clientId: "tv-3" }));
    expect(event.userId).toBe("u1");
    expect(event.clientId).toBe("tv-3");
    expect(event.kind.case).toBe("watch");
    const watch = event.kind.case === "watch" ? event.kind.value : undefined;
    expect(watch?.itemId).toBe("i9");
    expect(watch?.watchSeconds).toBe(42);
    expect(timestampDate(watch!.watchedAt!)).toEqual(at);
  });

  it("leaves out what was not given", () => {
    const event = create(UserEventSchema, watchEvent("u1", "i9"));
    expect(event.clientId).toBe("");
    expect(event.kind.case === "watch" && event.kind.value.watchedAt).toBeUndefined();
    expect(event.kind.case === "watch" && event.kind.value.watchSeconds).toBeUndefined();
  });
});
