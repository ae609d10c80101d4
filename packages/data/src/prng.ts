/**
 * Seeded pseudo-random numbers for the synthetic generator: xoshiro128** seeded through a
 * 32-bit splitmix mix of (seed, stream, index), so that every user gets an independent,
 * reproducible stream regardless of the order users are generated in.
 */

/** A 32-bit avalanche mix (splitmix32 finaliser). */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal = NaN;

  constructor(seed: number, stream = 0, index = 0) {
    let h = mix32((seed >>> 0) ^ mix32(Math.floor(seed / 0x100000000)));
    h = mix32(h ^ mix32(stream + 0x632be5ab));
    h = mix32(h ^ mix32(index ^ 0x5bd1e995) ^ mix32(Math.floor(index / 0x100000000)));
    this.a = mix32(h);
    this.b = mix32(this.a ^ 0x2545f491);
    this.c = mix32(this.b ^ 0x9e3779b9);
    this.d = mix32(this.c ^ 0x7f4a7c15) | 1;
  }

  /** Uniform 32-bit unsigned integer (xoshiro128**). */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller, caching the second value). */
  normal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const v = this.spareNormal;
      this.spareNormal = NaN;
      return v;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Exponential with mean 1. */
  exp(): number {
    return -Math.log(1 - this.next());
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
