/**
 * The embedded stores read in place while the store is open (and locked) by its writer: every
 * appended event in order, the catalogue, and the users' profiles from the snapshot and logs.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDataset, registerStoreOpener } from "@recsys/data";
import { openCatalogueStore, openUserStore } from "@recsys/user-store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStoreContents, readEmbeddedProfiles } from "./store-opener.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "store-opener-"));
  registerStoreOpener(openStoreContents);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("store:DIR", () => {
  it("reads events, catalogue and profiles of a store another process holds open", async () => {
    const users = await openUserStore({ backend: "embedded", path: join(dir, "users"), compactBytes: 2000 });
    const catalogue = await openCatalogueStore({ backend: "embedded", path: join(dir, "users", "catalogue") });
    try {
      await catalogue.upsert(["a", "b", "c"].map((itemId) => ({ itemId, title: `Title ${itemId}`, tags: ["t"], channel: "ch" })));
      await users.putUsers([{ userId: "u2", profile: { age: 31, gender: "F", geo: "94" } }]);
      await users.setProfile("u1", { occupation: "writer" });
      for (let k = 0; k < 30; k++) {
        await users.append([
          { kind: "watch", userId: k % 2 === 0 ? "u1" : "u2", itemId: ["a", "b", "c"][k % 3]!, timestamp: 1000 + k, watchSeconds: 10 + k },
        ]);
      }
      await users.setProfile("u1", { occupation: "editor", age: 40 });
      await catalogue.delete(["c"]);
      const profiles = await readEmbeddedProfiles(join(dir, "users"));
      expect(profiles.get("u1")).toEqual({ occupation: "editor", age: 40 });
      expect(profiles.get("u2")).toEqual({ age: 31, gender: "F", geo: "94" });
      const d = await loadDataset(`store:${join(dir, "users")}`);
      expect(d.items.ids).toEqual(["a", "b"]);
      expect(d.items.titles).toEqual(["Title a", "Title b"]);
      expect(d.events.user.length).toBe(20); // the 10 watches of c (taken down) left out
      expect(d.report.counts["last_seq"]).toBe(30);
      const u2 = d.users.ids.indexOf("u2");
      expect(d.users.age[u2]).toBe(31);
      expect(d.users.gender.values[d.users.gender.codes[u2]!]).toBe("F");
      const pinned = await loadDataset(`store:${join(dir, "users")}?until=10`);
      expect(pinned.report.counts["last_seq"]).toBe(10);
    } finally {
      await catalogue.close();
      await users.close();
    }
  });
});
