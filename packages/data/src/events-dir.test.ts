import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadDataset } from "./load.js";

const dirs: string[] = [];
async function fixture(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "recsys-events-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("events:DIR", () => {
  it("loads columns in any order, sorts events and assigns indices in id order", async () => {
    const dir = await fixture({
      "events.csv": [
        "timestamp,extra,item_id,user_id,watch_seconds",
        "100,x,10,b,30",
        "100,x,9,b,20",
        "50,x,9,a,",
        "100,x,10,b,5",
        '60,"q,r",v1,a,12.5',
      ].join("\n"),
      "users.csv": "user_id,age,gender,geo,job\nb,31,F,941,x\nz,,M,,y\n",
      "items.csv":
        'item_id,title,tags,channel,duration_seconds,upload_timestamp\n9,"Nine, the ""movie""",drama|comedy| drama,ch1,120,5\n11,Only listed,,,,\n',
      "searches.csv": "user_id,timestamp,query\na,55,cats\nghost,1,boo\nb,99,\nb,99,dogs\n",
    });
    const d = await loadDataset(`events:${dir}`);
    expect(d.users.ids).toEqual(["a", "b", "z"]);
    expect(d.items.ids).toEqual(["9", "10", "11", "v1"]);
    // Events of user a: 9@50, v1@60; user b: 9@100, 10@100 (item id order within a second), 10@100.
    expect(Array.from(d.events.user)).toEqual([0, 0, 1, 1, 1]);
    expect(Array.from(d.events.item)).toEqual([0, 3, 0, 1, 1]);
    expect(Array.from(d.events.timestamp)).toEqual([50, 60, 100, 100, 100]);
    expect(Array.from(d.events.weight)).toEqual([NaN, 12.5, 20, 30, 5]);
    expect(Array.from(d.events.userOffsets)).toEqual([0, 2, 5, 5]);
    expect(d.users.age[1]).toBe(31);
    expect(d.users.age[0]).toBeNaN();
    expect(d.users.gender.values).toEqual(["F", "M"]);
    expect(Array.from(d.users.gender.codes)).toEqual([-1, 0, 1]);
    expect(d.users.geo.values).toEqual(["941"]);
    expect(d.items.titles).toEqual(['Nine, the "movie"', "", "Only listed", ""]);
    expect(d.items.tagValues).toEqual(["comedy", "drama"]);
    expect(Array.from(d.items.tagCodes.subarray(d.items.tagOffsets[0], d.items.tagOffsets[1]))).toEqual([1, 0]);
    expect(d.items.tagOffsets[4]).toBe(2);
    expect(d.items.channel.values).toEqual(["ch1"]);
    expect(d.items.durationSeconds[0]).toBe(120);
    expect(d.items.uploadTimestamp[0]).toBe(5);
    expect(d.items.uploadTimestamp[2]).toBeNaN();
    expect(d.searches.query).toEqual(["cats", "dogs"]);
    expect(Array.from(d.searches.userOffsets)).toEqual([0, 1, 2, 2]);
    expect(d.report.counts).toMatchObject({
      users: 3,
      items: 4,
      events: 5,
      duplicate_events: 1,
      users_without_events: 1,
      items_without_events: 1,
      events_without_watch_seconds: 1,
      event_users_missing_from_users_csv: 1,
      event_items_missing_from_items_csv: 2,
      searches: 2,
      searches_unknown_user_dropped: 1,
      searches_empty_query_dropped: 1,
    });
    expect(d.report.warnings.join("\n")).toMatch(/1 searches by users not in events.csv or users.csv were dropped/);
    expect(d.report.warnings.join("\n")).toMatch(/1 repeated \(user, item\) events/);
  });

  it("fingerprints the content, not the location or the row order", async () => {
    const a = await fixture({ "events.csv": "user_id,item_id,timestamp\nu,1,1\nu,2,2\nv,1,3\n" });
    const b = await fixture({ "events.csv": "item_id,user_id,timestamp\r\n1,v,3\r\n2,u,2\r\n1,u,1\r\n" });
    const c = await fixture({ "events.csv": "user_id,item_id,timestamp\nu,1,1\nu,2,2\nv,1,4\n" });
    const [da, db, dc] = await Promise.all([a, b, c].map((dir) => loadDataset(`events:${dir}`)));
    expect(da!.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(db!.fingerprint).toBe(da!.fingerprint);
    expect(dc!.fingerprint).not.toBe(da!.fingerprint);
  });

  it.each([
    ["user_id,item_id,timestamp\nu,1,1\nu,2,abc\n", /^events\.csv:3: timestamp "abc" is not a number$/],
    ["user_id,item_id,timestamp\nu,1,1\nu,2\n", /^events\.csv:3: expected 3 fields like the header, got 2$/],
    ["user_id,item_id,timestamp\nu,1,1\n,2,5\n", /^events\.csv:3: empty user_id$/],
    ["user_id,item_id,timestamp\nu,,1\n", /^events\.csv:2: empty item_id$/],
    ["user_id,item_id,timestamp\nu,1,\n", /^events\.csv:2: empty timestamp$/],
    ["user_id,item_id,timestamp,watch_seconds\nu,1,1,-3\n", /^events\.csv:2: watch_seconds -3 is negative$/],
    ['user_id,item_id,timestamp\nu,"a\nb",1\nu,2,0x10\n', /^events\.csv:4: timestamp "0x10" is not a number$/],
    ["user,item_id,timestamp\nu,1,1\n", /^events\.csv:1: missing required column\(s\) user_id/],
    ["user_id,item_id,timestamp,user_id\nu,1,1,u\n", /^events\.csv:1: column "user_id" appears twice/],
    ["", /^events\.csv:1: the file is empty/],
  ])("rejects a malformed events.csv (%#)", async (text, message) => {
    const dir = await fixture({ "events.csv": text });
    await expect(loadDataset(`events:${dir}`)).rejects.toThrow(message);
  });

  it("rejects malformed users.csv, items.csv and searches.csv rows", async () => {
    const events = "user_id,item_id,timestamp\nu,1,1\n";
    const cases: [Record<string, string>, RegExp][] = [
      [{ "users.csv": "user_id,age\nu,3\nu,4\n" }, /^users\.csv:3: duplicate user_id "u" \(first at users\.csv:2\)$/],
      [{ "users.csv": "user_id,age\nu,old\n" }, /^users\.csv:2: age "old" is not a number$/],
      [{ "items.csv": "item_id,duration_seconds\n1,-1\n" }, /^items\.csv:2: duration_seconds -1 is negative$/],
      [{ "items.csv": "title\nx\n" }, /^items\.csv:1: missing required column\(s\) item_id/],
      [{ "searches.csv": "user_id,timestamp,query\nu,soon,x\n" }, /^searches\.csv:2: timestamp "soon" is not a number$/],
    ];
    for (const [files, message] of cases) {
      const dir = await fixture({ "events.csv": events, ...files });
      await expect(loadDataset(`events:${dir}`)).rejects.toThrow(message);
    }
  });

  it("explains a missing events.csv", async () => {
    const dir = await fixture({ "users.csv": "user_id\nu\n" });
    await expect(loadDataset(`events:${dir}`)).rejects.toThrow(/events\.csv not found .*user_id,item_id,timestamp/);
  });
});

describe("loadDataset", () => {
  it("lists the accepted forms for an unknown prefix or a missing directory", async () => {
    await expect(loadDataset("movielens:/tmp")).rejects.toThrow(
      /unknown dataset specification "movielens:\/tmp"\naccepted dataset specifications:\n {2}ml100k:DIR.*\n {2}events:DIR.*\n {2}synthetic/,
    );
    await expect(loadDataset("ml100k:/nonexistent/dir")).rejects.toThrow(/directory \/nonexistent\/dir does not exist\naccepted/);
    await expect(loadDataset("events:")).rejects.toThrow(/missing directory after the colon/);
  });
});
