/**
 * MovieLens 100K (`u.data`, `u.user`, `u.item`, `u.genre`) as distributed by GroupLens.
 *
 * - Every rating is a watch event at its timestamp; weight = the rating (1–5).
 * - Users: age, gender, occupation; geo = the first 3 characters of the zip code (the first 3
 *   digits for US zips; Canadian postcodes such as "T8H1N" keep their first 3 characters,
 *   upper-cased, e.g. "T8H").
 * - Items: title, genres (u.genre names, in file order) as tags, upload timestamp = release date
 *   (e.g. "01-Jan-1995") at 00:00 UTC, NaN when empty; no channel, no duration.
 * - u.item is latin1 (e.g. "Misérables") and decoded as such.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { IdInterner } from "./columns.js";
import { buildDataset, type RawItems, type RawUsers } from "./build.js";
import type { Dataset } from "./types.js";

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

/** "01-Jan-1995" → Unix seconds at 00:00 UTC; "" → NaN. */
export function parseReleaseDate(s: string, where: string): number {
  if (s === "") return NaN;
  const m = /^(\d{1,2})-([A-Z][a-z]{2})-(\d{4})$/.exec(s);
  const month = m === null ? undefined : MONTHS[m[2]!];
  if (m === null || month === undefined) throw new Error(`${where}: release date "${s}" is not DD-Mon-YYYY`);
  return Date.UTC(Number(m[3]), month, Number(m[1])) / 1000;
}

/** Geography from a zip code: first 3 characters, upper-cased (digits for US zips). */
export function zipToGeo(zip: string): string | undefined {
  const z = zip.trim();
  return z === "" ? undefined : z.slice(0, 3).toUpperCase();
}

async function readText(dir: string, name: string, encoding: "utf8" | "latin1"): Promise<string> {
  const path = join(dir, name);
  try {
    return await readFile(path, encoding);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new Error(`ml100k: ${path} not found (expected the MovieLens 100K files u.data, u.user, u.item, u.genre in ${dir})`);
    throw err;
  }
}

function lines(text: string): string[] {
  const out = text.split(/\r?\n/);
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}

function int(s: string, where: string, what: string): number {
  if (!/^-?\d+$/.test(s)) throw new Error(`${where}: ${what} "${s}" is not an integer`);
  return Number(s);
}

export async function loadMl100k(spec: string, dir: string): Promise<Dataset> {
  const [data, userText, itemText, genreText] = await Promise.all([
    readText(dir, "u.data", "latin1"),
    readText(dir, "u.user", "latin1"),
    readText(dir, "u.item", "latin1"),
    readText(dir, "u.genre", "latin1"),
  ]);

  const genres: string[] = [];
  lines(genreText).forEach((line, k) => {
    if (line.trim() === "") return;
    const [name, idx] = line.split("|");
    if (name === undefined || idx === undefined || int(idx, `u.genre:${k + 1}`, "genre index") !== genres.length) {
      throw new Error(`u.genre:${k + 1}: expected "name|${genres.length}", got "${line}"`);
    }
    genres.push(name);
  });

  const users: RawUsers = { ids: new IdInterner(), age: [], gender: [], occupation: [], geo: [] };
  lines(userText).forEach((line, k) => {
    const where = `u.user:${k + 1}`;
    const f = line.split("|");
    if (f.length !== 5) throw new Error(`${where}: expected 5 '|'-separated fields, got ${f.length}`);
    const [id, age, gender, occupation, zip] = f as [string, string, string, string, string];
    if (id === "") throw new Error(`${where}: empty user id`);
    if (users.ids.get(id) !== undefined) throw new Error(`${where}: duplicate user id "${id}"`);
    const p = users.ids.intern(id);
    users.age[p] = int(age, where, "age");
    users.gender[p] = gender;
    users.occupation[p] = occupation;
    users.geo[p] = zipToGeo(zip);
  });

  const items: RawItems = {
    ids: new IdInterner(),
    title: [],
    tags: [],
    tagVocabulary: genres,
    channel: [],
    uploadTimestamp: [],
    durationSeconds: [],
  };
  lines(itemText).forEach((line, k) => {
    const where = `u.item:${k + 1}`;
    const f = line.split("|");
    if (f.length !== 5 + genres.length) throw new Error(`${where}: expected ${5 + genres.length} '|'-separated fields, got ${f.length}`);
    const id = f[0]!;
    if (id === "") throw new Error(`${where}: empty item id`);
    if (items.ids.get(id) !== undefined) throw new Error(`${where}: duplicate item id "${id}"`);
    const p = items.ids.intern(id);
    items.title[p] = f[1]!;
    items.uploadTimestamp[p] = parseReleaseDate(f[2]!, where);
    const tags: string[] = [];
    for (let g = 0; g < genres.length; g++) {
      const flag = f[5 + g]!;
      if (flag === "1") tags.push(genres[g]!);
      else if (flag !== "0") throw new Error(`${where}: genre flag ${g + 1} is "${flag}", expected 0 or 1`);
    }
    items.tags[p] = tags;
  });

  const rows = lines(data);
  const n = rows.length;
  const user = new Int32Array(n);
  const item = new Int32Array(n);
  const timestamp = new Float64Array(n);
  const weight = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    const where = `u.data:${r + 1}`;
    const f = rows[r]!.split("\t");
    if (f.length !== 4) throw new Error(`${where}: expected 4 tab-separated fields, got ${f.length}`);
    const u = users.ids.get(f[0]!);
    const i = items.ids.get(f[1]!);
    if (u === undefined) throw new Error(`${where}: user "${f[0]}" is not in u.user`);
    if (i === undefined) throw new Error(`${where}: item "${f[1]}" is not in u.item`);
    user[r] = u;
    item[r] = i;
    weight[r] = int(f[2]!, where, "rating");
    timestamp[r] = int(f[3]!, where, "timestamp");
  }
  return buildDataset(spec, users, items, { user, item, timestamp, weight }, undefined, {}, []);
}
