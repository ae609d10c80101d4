/**
 * The lazy Adam update of a large embedding table's touched rows in WebAssembly with 128-bit SIMD
 * (two float64 lanes), for tables whose values, moments, gradients and touched-row list live in
 * one WebAssembly memory of their own (see {@link allocateTableData}).
 *
 * Same numbers as the JavaScript loop of SparseTable.apply, bit for bit: each coordinate is read
 * as float32 and widened to float64, the same IEEE operations run in the same order
 * (g + l2·w; β₁m + (1−β₁)g; β₂v + ((1−β₂)g)·g; w − (lr_t·m)/(√v + ε)) and the results are
 * rounded to float32 on the store, as JavaScript does when it stores a number into a
 * Float32Array. WebAssembly fixes every operation's rounding (no fused multiply-add, correctly
 * rounded square root and division), so only the speed differs: two coordinates per instruction
 * and no bounds check per access.
 *
 * The module is assembled here from its instructions (no toolchain, no binary file); the
 * comments give each instruction's text-format name.
 */

/** Tables of at least this many floats get their storage from {@link allocateTableData}. */
export const WASM_TABLE_MIN_FLOATS = 1 << 20;

/** Rows whose cache lines the kernel reads before updating them (a power of two; see SparseTable.apply). */
export const WASM_READ_AHEAD_ROWS = 16;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function str(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;

// Instructions.
const localGet = (i: number): number[] => [0x20, ...uleb(i)];
const localSet = (i: number): number[] => [0x21, ...uleb(i)];
/** i32.const with a non-negative constant below 2³¹ (signed LEB128). */
function i32Const(n: number): number[] {
  const out: number[] = [0x41];
  for (;;) {
    const b = n & 0x7f;
    n >>>= 7;
    if (n === 0 && (b & 0x40) === 0) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_MUL = 0x6c;
const I32_AND = 0x71;
const I32_EQZ = 0x45;
const I32_GE_U = 0x4f;
const F32_ADD = 0x92;
const i32Load = (): number[] => [0x28, 2, 0];
const f32Load = (): number[] => [0x2a, 2, 0];
const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...uleb(op), ...imm];
const v128Load64Zero = (): number[] => simd(0x5d, 3, 0); // v128.load64_zero align=8 offset=0
const v128Store64Lane0 = (): number[] => simd(0x5b, 3, 0, 0); // v128.store64_lane align=8 offset=0 lane 0
const F64X2_SPLAT = simd(0x14);
const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
const F32X4_DEMOTE_F64X2_ZERO = simd(0x5e);
const F64X2_SQRT = simd(0xef);
const F64X2_ADD = simd(0xf0);
const F64X2_SUB = simd(0xf1);
const F64X2_MUL = simd(0xf2);
const F64X2_DIV = simd(0xf3);
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const IF = [0x04, 0x40];
const END = 0x0b;
const brIf = (depth: number): number[] => [0x0d, depth];
const br = (depth: number): number[] => [0x0c, depth];

/**
 * adam(rows, n, rowBytes, w, m, v, g, ahead, β₁, β₂, 1−β₁, 1−β₂, l2, lr_t, ε) → f32:
 * for i < n, row r = rows[i] (i32 at byte rows + 4i): w, m, v at byte r·rowBytes + k of their
 * arrays (byte offsets w, m, v), the gradient at g + i·rowBytes + k; rowBytes = 4·dim, dim even.
 * With ahead > 0 (a power of two), the cache lines of the w, m, v rows of each block of `ahead`
 * touched rows are read before the block is updated; the sum of what is read is returned so that
 * the reads are not dropped.
 */
function adamModule(): Uint8Array {
  // Parameters 0..14; locals: i32 i=15, o=16, go=17, k=18, p=19, q=20; v128 B1=21, B2=22, A1=23,
  // A2=24, L2=25, LRT=26, EPS=27, wk=28, gk=29, mk=30, vk=31; f32 probe=32.
  const [ROWS, N, ROWB, W, M, V, G, AHEAD] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [I, O, GO, K, P, Q] = [15, 16, 17, 18, 19, 20];
  const [SB1, SB2, SA1, SA2, SL2, SLRT, SEPS, WK, GK, MK, VK] = [21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
  const PROBE = 32;
  const load2 = (base: number, off: number): number[] => [
    ...localGet(base),
    ...localGet(off),
    I32_ADD,
    ...localGet(K),
    I32_ADD,
    ...v128Load64Zero(),
    ...F64X2_PROMOTE_LOW_F32X4,
  ];
  const store2 = (base: number, off: number, value: number[]): number[] => [
    ...localGet(base),
    ...localGet(off),
    I32_ADD,
    ...localGet(K),
    I32_ADD,
    ...value,
    ...F32X4_DEMOTE_F64X2_ZERO,
    ...v128Store64Lane0(),
  ];
  const probeLine = (base: number): number[] => [
    ...localGet(PROBE),
    ...localGet(base),
    ...localGet(O),
    I32_ADD,
    ...localGet(Q),
    I32_ADD,
    ...f32Load(),
    F32_ADD,
    ...localSet(PROBE),
  ];
  // local ← rows[index] · rowBytes (the byte offset of that touched row in w, m and v)
  const setRowOffset = (local: number, index: number): number[] => [
    ...localGet(ROWS),
    ...localGet(index),
    ...i32Const(4),
    I32_MUL,
    I32_ADD,
    ...i32Load(),
    ...localGet(ROWB),
    I32_MUL,
    ...localSet(local),
  ];
  // local += by
  const increment = (local: number, by: number): number[] => [...localGet(local), ...i32Const(by), I32_ADD, ...localSet(local)];
  const body: number[] = [
    // Constants splatted to both lanes.
    ...[8, 9, 10, 11, 12, 13, 14].flatMap((param, j) => [...localGet(param), ...F64X2_SPLAT, ...localSet(SB1 + j)]),
    ...BLOCK,
    ...LOOP,
    // while (i < n)
    ...localGet(I),
    ...localGet(N),
    I32_GE_U,
    ...brIf(1),
    // Read ahead, at the first row of each block of `ahead` rows (a power of two): one f32 per
    // 64-byte line of the w, m and v rows of the block, so that their cache misses overlap.
    // if (ahead > 0 && (i & (ahead − 1)) === 0) for (p = i; p < n && p < i + ahead; p++)
    ...localGet(AHEAD),
    ...IF,
    ...localGet(I),
    ...localGet(AHEAD),
    ...i32Const(1),
    I32_SUB,
    I32_AND,
    I32_EQZ,
    ...IF,
    ...localGet(I),
    ...localSet(P),
    ...BLOCK,
    ...LOOP,
    ...localGet(P),
    ...localGet(N),
    I32_GE_U,
    ...brIf(1),
    ...localGet(P),
    ...localGet(I),
    ...localGet(AHEAD),
    I32_ADD,
    I32_GE_U,
    ...brIf(1),
    // o = rows[p] · rowBytes; for (q = 0; q < rowBytes; q += 64)
    ...setRowOffset(O, P),
    ...i32Const(0),
    ...localSet(Q),
    ...BLOCK,
    ...LOOP,
    ...localGet(Q),
    ...localGet(ROWB),
    I32_GE_U,
    ...brIf(1),
    ...probeLine(W),
    ...probeLine(M),
    ...probeLine(V),
    ...increment(Q, 64),
    ...br(0),
    END,
    END,
    ...increment(P, 1),
    ...br(0),
    END,
    END,
    END,
    END,
    // o = rows[i] · rowBytes; go = i · rowBytes; k = 0
    ...setRowOffset(O, I),
    ...localGet(I),
    ...localGet(ROWB),
    I32_MUL,
    ...localSet(GO),
    ...i32Const(0),
    ...localSet(K),
    ...BLOCK,
    ...LOOP,
    ...localGet(K),
    ...localGet(ROWB),
    I32_GE_U,
    ...brIf(1),
    // wk = w[o + k .. +2]
    ...load2(W, O),
    ...localSet(WK),
    // gk = g + l2·wk
    ...load2(G, GO),
    ...localGet(SL2),
    ...localGet(WK),
    ...F64X2_MUL,
    ...F64X2_ADD,
    ...localSet(GK),
    // mk = β₁·m + (1−β₁)·gk
    ...localGet(SB1),
    ...load2(M, O),
    ...F64X2_MUL,
    ...localGet(SA1),
    ...localGet(GK),
    ...F64X2_MUL,
    ...F64X2_ADD,
    ...localSet(MK),
    // vk = β₂·v + ((1−β₂)·gk)·gk
    ...localGet(SB2),
    ...load2(V, O),
    ...F64X2_MUL,
    ...localGet(SA2),
    ...localGet(GK),
    ...F64X2_MUL,
    ...localGet(GK),
    ...F64X2_MUL,
    ...F64X2_ADD,
    ...localSet(VK),
    ...store2(M, O, localGet(MK)),
    ...store2(V, O, localGet(VK)),
    // w = wk − (lr_t·mk) / (√vk + ε)
    ...store2(W, O, [
      ...localGet(WK),
      ...localGet(SLRT),
      ...localGet(MK),
      ...F64X2_MUL,
      ...localGet(VK),
      ...F64X2_SQRT,
      ...localGet(SEPS),
      ...F64X2_ADD,
      ...F64X2_DIV,
      ...F64X2_SUB,
    ]),
    // k += 8 (two floats)
    ...increment(K, 8),
    ...br(0),
    END,
    END,
    // i++
    ...increment(I, 1),
    ...br(0),
    END,
    END,
    ...localGet(PROBE),
    END,
  ];
  const locals = [...uleb(3), ...uleb(6), I32, ...uleb(11), V128, ...uleb(1), F32];
  const func = [...locals, ...body];
  const params = [I32, I32, I32, I32, I32, I32, I32, I32, F64, F64, F64, F64, F64, F64, F64];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, ...uleb(params.length), ...params, 1, F32]),
    ...section(2, [1, ...str("env"), ...str("memory"), 0x02, 0x00, 0x00]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...str("adam"), 0x00, 0]),
    ...section(10, [1, ...uleb(func.length), ...func]),
  ];
  return Uint8Array.from(bytes);
}

type AdamKernel = (
  rows: number,
  n: number,
  rowBytes: number,
  w: number,
  m: number,
  v: number,
  g: number,
  ahead: number,
  b1: number,
  b2: number,
  a1: number,
  a2: number,
  l2: number,
  lrT: number,
  eps: number,
) => number;

/** The parts of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  readonly Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
}

const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

/** The compiled module, or null when this runtime has no WebAssembly SIMD. */
function adamWasmModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = process.env["RECSYS_SPARSE_WASM"] === "off" || wasmApi === undefined ? null : new wasmApi.Module(adamModule());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/**
 * A table's storage in a WebAssembly memory of its own: [values | m | v | gradients] (n floats
 * each) then the touched-row list (n int32), and the Adam kernel bound to that memory. The memory
 * never grows, so its ArrayBuffer (and every view of it) stays valid.
 */
export interface WasmTableArena {
  readonly floats: number;
  readonly buffer: ArrayBuffer;
  /** Byte offsets of the parts (arenaLayout(floats)). */
  readonly layout: ArenaLayout;
  readonly adam: AdamKernel;
}

/** Byte offsets of the parts of an arena of n floats, and its size in bytes. */
export interface ArenaLayout {
  readonly values: number;
  readonly m: number;
  readonly v: number;
  readonly grad: number;
  readonly touchedRows: number;
  readonly bytes: number;
}

function arenaLayout(n: number): ArenaLayout {
  return { values: 0, m: 4 * n, v: 8 * n, grad: 12 * n, touchedRows: 16 * n, bytes: 20 * n };
}

const arenas = new WeakMap<ArrayBuffer, WasmTableArena>();

/**
 * Storage for an embedding table of n floats: for large tables (n ≥ WASM_TABLE_MIN_FLOATS) the
 * first n floats of a table arena (a SparseTable built on it updates its rows with the SIMD
 * kernel), else (or without WebAssembly SIMD, or with RECSYS_SPARSE_WASM=off) a plain
 * Float32Array. Zero-filled either way.
 */
export function allocateTableData(n: number): Float32Array {
  const layout = arenaLayout(n);
  // Byte offsets are unsigned 32-bit in the kernel: at most 4 GiB of memory.
  const mod = n >= WASM_TABLE_MIN_FLOATS && layout.bytes <= 2 ** 32 - 65536 ? adamWasmModule() : null;
  if (mod === null || wasmApi === undefined) return new Float32Array(n);
  const memory = new wasmApi.Memory({ initial: Math.ceil(layout.bytes / 65536) });
  const instance = new wasmApi.Instance(mod, { env: { memory } });
  const arena: WasmTableArena = { floats: n, buffer: memory.buffer, layout, adam: instance.exports["adam"] as AdamKernel };
  arenas.set(memory.buffer, arena);
  return new Float32Array(memory.buffer, 0, n);
}

/** The arena `data` is the values of (from allocateTableData), or null. */
export function arenaOf(data: Float32Array): WasmTableArena | null {
  if (data.byteOffset !== 0) return null;
  const a = arenas.get(data.buffer as ArrayBuffer);
  return a !== undefined && a.floats === data.length ? a : null;
}
