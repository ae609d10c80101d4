import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadDataset } from "./load.js";
import { lastoutSplit } from "./split.js";

const REAL = join(import.meta.dirname, "../../../../shared/data/ml-100k");
const GENRES = ["unknown", "Action", "Comedy"];

let dir = "";
afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function tiny(): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), "recsys-ml100k-"));
  await writeFile(join(dir, "u.genre"), GENRES.map((g, k) => `${g}|${k}`).join("\n") + "\n\n");
  await writeFile(join(dir, "u.user"), "1|24|M|technician|85711\n2|53|F|other|94043\n10|39|M|scientist|t8h1n\n");
  const item = (id: number, title: string, date: string, flags: string): string => `${id}|${title}|${date}||http://x|${flags}`;
  await writeFile(
    join(dir, "u.item"),
    Buffer.from(
      [
        item(1, "Toy Story (1995)", "01-Jan-1995", "0|0|1"),
        item(2, "Misérables, Les (1995)", "27-Jun-1997", "0|1|1"),
        item(3, "unknown", "", "1|0|0"),
      ].join("\n") + "\n",
      "latin1",
    ),
  );
  await writeFile(join(dir, "u.data"), "10\t2\t5\t300\n1\t3\t4\t200\n1\t1\t3\t200\n2\t1\t1\t100\n");
  return dir;
}

describe("ml100k loader", () => {
  it("reads users, latin1 items, genres and ratings as watch events", async () => {
    const d = await loadDataset(`ml100k:${await tiny()}`);
    expect(d.users.ids).toEqual(["1", "2", "10"]);
    expect(Array.from(d.users.age)).toEqual([24, 53, 39]);
    expect(d.users.geo.values).toEqual(["857", "940", "T8H"]);
    expect(d.users.occupation.values).toEqual(["other", "scientist", "technician"]);
    expect(d.items.titles).toEqual(["Toy Story (1995)", "Misérables, Les (1995)", "unknown"]);
    expect(d.items.tagValues).toEqual(GENRES);
    const tags = (i: number): number[] => Array.from(d.items.tagCodes.subarray(d.items.tagOffsets[i], d.items.tagOffsets[i + 1]));
    expect([tags(0), tags(1), tags(2)]).toEqual([[2], [1, 2], [0]]);
    expect(d.items.uploadTimestamp[0]).toBe(Date.UTC(1995, 0, 1) / 1000);
    expect(d.items.uploadTimestamp[1]).toBe(Date.UTC(1997, 5, 27) / 1000);
    expect(d.items.uploadTimestamp[2]).toBeNaN();
    expect(d.items.durationSeconds[0]).toBeNaN();
    expect(d.items.channel.values).toEqual([]);
    // User "1" rated items 3 and 1 in the same second: item id order decides.
    expect(Array.from(d.events.user)).toEqual([0, 0, 1, 2]);
    expect(Array.from(d.events.item)).toEqual([0, 2, 0, 1]);
    expect(Array.from(d.events.weight)).toEqual([3, 4, 1, 5]);
    expect(d.report.counts).toMatchObject({ users: 3, items: 3, events: 4, duplicate_events: 0 });
  });

  it("names the file and line of a malformed row", async () => {
    const d = await tiny();
    await writeFile(join(d, "u.data"), "1\t1\t3\t200\n1\t2\tx\t201\n");
    await expect(loadDataset(`ml100k:${d}`)).rejects.toThrow(/^u\.data:2: rating "x" is not an integer$/);
    await writeFile(join(d, "u.data"), "1\t9\t3\t200\n");
    await expect(loadDataset(`ml100k:${d}`)).rejects.toThrow(/^u\.data:1: item "9" is not in u\.item$/);
    await rm(join(d, "u.user"));
    await expect(loadDataset(`ml100k:${d}`)).rejects.toThrow(/u\.user not found/);
  });

  it("loads the real MovieLens 100K (943 users, 1682 items, 100000 events)", async () => {
    const d = await loadDataset(`ml100k:${REAL}`);
    expect(d.report.counts).toMatchObject({ users: 943, items: 1682, events: 100000, duplicate_events: 0 });
    // Pinned: a change means the canonical serialisation changed and trained bundles no longer match.
    expect(d.fingerprint).toBe("0c08905cc13dd4e071d967bee68a939e782aa768f5ddcf25cfefdb95e1e82e02");
    expect(d.items.titles[542]).toBe("Misérables, Les (1995)");
    const split = lastoutSplit(d.events, 943);
    expect(split.evaluatedUsers).toBe(943);
    // Protocol note: 415 of 943 users have their last two events in the same second.
    let sameSecond = 0;
    for (let u = 0; u < 943; u++) if (d.events.timestamp[split.testRow[u]!] === d.events.timestamp[split.valRow[u]!]) sameSecond++;
    expect(sameSecond).toBe(415);
  });
});
