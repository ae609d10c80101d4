/**
 * Small columnar building blocks shared by the loaders: id interning, growable typed arrays and
 * categorical columns. Kept free of per-row objects so that millions of rows stay cheap.
 */
import type { CategoricalColumn } from "./types.js";

/** Assigns provisional dense codes to external ids in order of first appearance. */
export class IdInterner {
  readonly ids: string[] = [];
  private readonly codes = new Map<string, number>();

  intern(id: string): number {
    let code = this.codes.get(id);
    if (code === undefined) {
      code = this.ids.length;
      this.codes.set(id, code);
      this.ids.push(id);
    }
    return code;
  }

  get(id: string): number | undefined {
    return this.codes.get(id);
  }

  get size(): number {
    return this.ids.length;
  }
}

type TypedArrayCtor<T> = { new (length: number): T };

/** An append-only typed array that doubles its capacity. */
export class Growable<T extends Int32Array | Float64Array | Float32Array | Uint8Array> {
  private data: T;
  length = 0;

  constructor(
    private readonly ctor: TypedArrayCtor<T>,
    capacity = 1024,
  ) {
    this.data = new ctor(capacity);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new this.ctor(this.data.length * 2);
      (bigger as Int32Array).set(this.data as Int32Array);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  /** A copy trimmed to the used length. */
  toArray(): T {
    return this.data.slice(0, this.length) as T;
  }
}

/**
 * Builds a categorical column from optional string values (undefined or "" = missing, code -1).
 * Values are sorted by code unit so the column does not depend on input order.
 */
export function categorical(values: ArrayLike<string | undefined>, length = values.length): CategoricalColumn {
  const distinct = new Set<string>();
  for (let i = 0; i < length; i++) {
    const v = values[i];
    if (v !== undefined && v !== "") distinct.add(v);
  }
  const sorted = [...distinct].sort(compareCodeUnits);
  const index = new Map<string, number>();
  sorted.forEach((v, i) => index.set(v, i));
  const codes = new Int32Array(length);
  for (let i = 0; i < length; i++) {
    const v = values[i];
    codes[i] = v === undefined || v === "" ? -1 : index.get(v)!;
  }
  return { codes, values: sorted };
}

export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
