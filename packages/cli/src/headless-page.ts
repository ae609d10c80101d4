/**
 * Opens a local HTML page in Debian's headless Chromium (for the report's check): takes a
 * screenshot and collects what the page wrote to the console (Chromium logs every console
 * message and uncaught error as an `INFO:CONSOLE` line on stderr with --enable-logging=stderr).
 * Also a minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium writes) to tell a
 * blank screenshot from a drawn one.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { inflateSync } from "node:zlib";

export interface PageShot {
  readonly png: Buffer;
  readonly consoleLines: readonly string[];
}

export const CHROMIUM = process.env["CHROMIUM"] ?? "chromium";

/** Screenshots `htmlFile` at `width`×`height` into `pngFile`. Rejects when Chromium cannot run. */
export async function openInChromium(htmlFile: string, pngFile: string, width = 1280, height = 2400): Promise<PageShot> {
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    `--window-size=${width},${height}`,
    `--screenshot=${pngFile}`,
    `file://${htmlFile}`,
  ];
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(CHROMIUM, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${CHROMIUM} (${e.message}); install Debian's chromium: apt-get install -y chromium`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(err);
      else reject(new Error(`${CHROMIUM} exited with ${code}: ${err.slice(-2000)}`));
    });
  });
  const consoleLines = stderr.split("\n").filter((l) => l.includes(":CONSOLE"));
  return { png: await readFile(pngFile), consoleLines };
}

/** Width, height and RGBA pixels of a PNG (8-bit, colour type 2 or 6, no interlace). */
export function decodePng(png: Buffer): { width: number; height: number; rgba: Uint8Array } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error("not a PNG");
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString("latin1", pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8]!;
      const colour = data[9]!;
      if (depth !== 8 || (colour !== 2 && colour !== 6) || data[12] !== 0)
        throw new Error(`unsupported PNG (depth ${depth}, colour type ${colour}, interlace ${data[12]})`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels]! : 0;
      const b = prev[x]!;
      const c = x >= channels ? prev[x - channels]! : 0;
      let v = line[x]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[x] = v & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[i * 4] = pixels[i * channels]!;
    rgba[i * 4 + 1] = pixels[i * channels + 1]!;
    rgba[i * 4 + 2] = pixels[i * channels + 2]!;
    rgba[i * 4 + 3] = channels === 4 ? pixels[i * channels + 3]! : 255;
  }
  return { width, height, rgba };
}

/** Share of pixels that are not (near) white, and the number of distinct colours. */
export function inkStats(png: Buffer): { ink: number; colours: number; width: number; height: number } {
  const { width, height, rgba } = decodePng(png);
  let ink = 0;
  const colours = new Set<number>();
  for (let i = 0; i < width * height; i++) {
    const r = rgba[i * 4]!;
    const g = rgba[i * 4 + 1]!;
    const b = rgba[i * 4 + 2]!;
    if (r < 240 || g < 240 || b < 240) ink++;
    if (colours.size < 100_000) colours.add((r << 16) | (g << 8) | b);
  }
  return { ink: ink / (width * height), colours: colours.size, width, height };
}
