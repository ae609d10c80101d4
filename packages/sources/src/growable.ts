/** Returns `array` if it holds at least `length` elements, else a zero-filled copy with room for them (doubling). */
export function growFloat64(array: Float64Array<ArrayBuffer>, length: number): Float64Array<ArrayBuffer> {
  if (array.length >= length) return array;
  const next = new Float64Array(Math.max(length, array.length * 2, 16));
  next.set(array);
  return next;
}

/** Like `growFloat64`; new elements are `fill`. */
export function growInt32(array: Int32Array<ArrayBuffer>, length: number, fill = 0): Int32Array<ArrayBuffer> {
  if (array.length >= length) return array;
  const next = new Int32Array(Math.max(length, array.length * 2, 16));
  next.set(array);
  if (fill !== 0) next.fill(fill, array.length);
  return next;
}
