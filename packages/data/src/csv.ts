/**
 * A small streaming CSV parser (RFC 4180 plus common practice): comma-separated fields, fields
 * in double quotes may contain commas, newlines and doubled quotes (`""`); records end with LF,
 * CRLF or a lone CR; a UTF-8 byte-order mark at the start is ignored; blank lines are skipped.
 * Records are reported with the 1-based line on which they start. A quote inside an unquoted
 * field, text after a closing quote and an unterminated quoted field are errors naming the line.
 */
import { createReadStream } from "node:fs";

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

enum State {
  FieldStart,
  Unquoted,
  Quoted,
  QuoteSeen,
}

export class CsvError extends Error {}

export class CsvParser {
  private state = State.FieldStart;
  private field = "";
  private fields: string[] = [];
  private inRecord = false;
  private line = 1;
  private recordLine = 1;
  private pendingCR = false;
  private started = false;

  /** `file` only names the source in error messages. */
  constructor(
    private readonly file: string,
    private readonly onRecord: (fields: string[], line: number) => void,
  ) {}

  push(chunk: string): void {
    let i = 0;
    const n = chunk.length;
    if (!this.started && n > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this.pendingCR && i < n) {
      this.pendingCR = false;
      if (chunk.charCodeAt(i) === LF) i++;
    }
    while (i < n) {
      switch (this.state) {
        case State.FieldStart:
          this.inRecord = true;
          if (chunk.charCodeAt(i) === QUOTE) {
            this.state = State.Quoted;
            i++;
          } else this.state = State.Unquoted;
          break;
        case State.Unquoted: {
          let j = i;
          let c = 0;
          while (j < n) {
            c = chunk.charCodeAt(j);
            if (c === COMMA || c === LF || c === CR || c === QUOTE) break;
            j++;
          }
          this.field += chunk.slice(i, j);
          if (j === n) {
            i = n;
            break;
          }
          if (c === QUOTE) this.fail(`unexpected '"' inside an unquoted field (quote the whole field and double inner quotes)`);
          i = this.endField(chunk, j);
          break;
        }
        case State.Quoted: {
          const j = chunk.indexOf('"', i);
          const end = j < 0 ? n : j;
          for (let k = i; k < end; k++) if (chunk.charCodeAt(k) === LF) this.line++;
          this.field += chunk.slice(i, end);
          if (j < 0) i = n;
          else {
            this.state = State.QuoteSeen;
            i = j + 1;
          }
          break;
        }
        case State.QuoteSeen: {
          const c = chunk.charCodeAt(i);
          if (c === QUOTE) {
            this.field += '"';
            this.state = State.Quoted;
            i++;
          } else if (c === COMMA || c === LF || c === CR) i = this.endField(chunk, i);
          else this.fail(`unexpected character '${chunk[i]}' after a closing quote`);
          break;
        }
      }
    }
  }

  end(): void {
    if (this.state === State.Quoted) {
      throw new CsvError(`${this.file}:${this.recordLine}: unterminated quoted field (the file ends inside quotes)`);
    }
    if (this.inRecord) {
      this.fields.push(this.field);
      this.emit();
    }
  }

  private fail(message: string): never {
    throw new CsvError(`${this.file}:${this.line}: ${message}`);
  }

  /** Ends the current field at delimiter position j; returns the next position. */
  private endField(chunk: string, j: number): number {
    this.fields.push(this.field);
    this.field = "";
    this.state = State.FieldStart;
    const c = chunk.charCodeAt(j);
    if (c === COMMA) return j + 1;
    this.emit();
    this.line++;
    this.recordLine = this.line;
    if (c === CR) {
      if (j + 1 === chunk.length) {
        this.pendingCR = true;
        return j + 1;
      }
      if (chunk.charCodeAt(j + 1) === LF) return j + 2;
    }
    return j + 1;
  }

  private emit(): void {
    const record = this.fields;
    this.fields = [];
    this.inRecord = false;
    if (record.length === 1 && record[0] === "") return; // blank line
    this.onRecord(record, this.recordLine);
  }
}

/** Parses a whole string (tests, small inputs). */
export function parseCsv(text: string, file = "input"): { fields: string[]; line: number }[] {
  const out: { fields: string[]; line: number }[] = [];
  const p = new CsvParser(file, (fields, line) => out.push({ fields, line }));
  p.push(text);
  p.end();
  return out;
}

/** Streams a UTF-8 CSV file through `onRecord`; `name` is used in error messages. */
export async function readCsvFile(path: string, name: string, onRecord: (fields: string[], line: number) => void): Promise<void> {
  const parser = new CsvParser(name, onRecord);
  const stream = createReadStream(path, { encoding: "utf8", highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream) parser.push(chunk as string);
  } finally {
    stream.destroy();
  }
  parser.end();
}
