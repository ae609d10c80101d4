import { describe, expect, it } from "vitest";
import { CsvParser, parseCsv } from "./csv.js";

function chunked(text: string, size: number): { fields: string[]; line: number }[] {
  const out: { fields: string[]; line: number }[] = [];
  const p = new CsvParser("t.csv", (fields, line) => out.push({ fields, line }));
  for (let k = 0; k < text.length; k += size) p.push(text.slice(k, k + size));
  p.end();
  return out;
}

describe("parseCsv", () => {
  it("parses plain, quoted and empty fields with line numbers", () => {
    const text = 'a,b,c\n1,"x, y",\n"he said ""hi""",2,3\n';
    expect(parseCsv(text)).toEqual([
      { fields: ["a", "b", "c"], line: 1 },
      { fields: ["1", "x, y", ""], line: 2 },
      { fields: ['he said "hi"', "2", "3"], line: 3 },
    ]);
  });

  it("keeps newlines inside quotes and counts physical lines", () => {
    const text = 'id,text\n1,"two\nlines"\n2,after\n';
    expect(parseCsv(text)).toEqual([
      { fields: ["id", "text"], line: 1 },
      { fields: ["1", "two\nlines"], line: 2 },
      { fields: ["2", "after"], line: 4 },
    ]);
  });

  it("accepts CRLF, lone CR, a BOM, blank lines and a missing final newline", () => {
    const text = '\uFEFFa,b\r\n1,2\r\n\r\n3,"4\r\n5"\r6,7';
    expect(parseCsv(text)).toEqual([
      { fields: ["a", "b"], line: 1 },
      { fields: ["1", "2"], line: 2 },
      { fields: ["3", "4\r\n5"], line: 4 },
      { fields: ["6", "7"], line: 6 },
    ]);
  });

  it("keeps a trailing empty field", () => {
    expect(parseCsv("a,\n,")).toEqual([
      { fields: ["a", ""], line: 1 },
      { fields: ["", ""], line: 2 },
    ]);
  });

  it("gives the same records whatever the chunk boundaries", () => {
    const text = '\uFEFFuser_id,q\r\n"u,1","a ""b""\r\nc"\r\nu2,\r\n\r\nu3,"x"\n';
    const whole = parseCsv(text, "t.csv");
    for (let size = 1; size <= text.length; size++) expect(chunked(text, size)).toEqual(whole);
  });

  it("rejects malformed quoting with the line number", () => {
    expect(() => parseCsv('a,b\n1,x"y\n', "f.csv")).toThrow(/^f\.csv:2: unexpected '"' inside an unquoted field/);
    expect(() => parseCsv('a,b\n1,"x"y\n', "f.csv")).toThrow(/^f\.csv:2: unexpected character 'y' after a closing quote/);
    expect(() => parseCsv('a,b\n1,2\n3,"open\n\n', "f.csv")).toThrow(/^f\.csv:3: unterminated quoted field/);
  });
});
