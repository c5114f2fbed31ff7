/**
 * Shared types and shape helpers for the pure-JS reference kernels.
 *
 * Kernels here work on raw contiguous row-major arrays, not Tensor objects: a glue layer turns a
 * (possibly strided) Tensor into an `Arr` and the `Out` back into a Tensor. Every kernel computes in
 * float64, returns a new `Out`, and never mutates its inputs. Inputs are already validated by the op
 * layer (shapes fit, dims are non-negative ints < rank), so these functions do not re-check.
 */

export type Num = Float64Array | Float32Array;
/** Contiguous row-major input; shape [] is a scalar (data.length 1). */
export interface Arr {
  data: Num;
  shape: number[];
}
/** Contiguous row-major float64 output. */
export interface Out {
  data: Float64Array;
  shape: number[];
}

/** Number of elements of a shape (1 for a scalar shape []). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

/**
 * Strides to read a contiguous `src` as if broadcast to `out` (right-aligned, NumPy rules): one per
 * dim of `out`, 0 where `src` has size 1 or lacks the dim. Assumes `src` broadcasts to `out`.
 */
export function broadcastStrides(src: readonly number[], out: readonly number[]): number[] {
  const st = stridesOf(src);
  const lead = out.length - src.length;
  const res = new Array<number>(out.length).fill(0);
  for (let d = 0; d < src.length; d++) {
    if (src[d] !== 1) res[lead + d] = st[d];
  }
  return res;
}

/**
 * For each element of `out` in row-major order, the flat index into `src` it reads when `src` is
 * broadcast to `out`. Walks `out` with an odometer, so the cost is O(numel(out)) plus carries.
 */
export function broadcastIndex(src: readonly number[], out: readonly number[]): Int32Array {
  const n = numel(out);
  const idx = new Int32Array(n);
  const rank = out.length;
  const st = broadcastStrides(src, out);
  const coord = new Array<number>(rank).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    idx[i] = off;
    for (let d = rank - 1; d >= 0; d--) {
      coord[d]++;
      off += st[d];
      if (coord[d] < out[d]) break;
      off -= coord[d] * st[d];
      coord[d] = 0;
    }
  }
  return idx;
}

/** Copy `a` into a new float64 array laid out as `a` broadcast to `out`. */
export function expandTo(a: Arr, out: readonly number[]): Float64Array {
  const src = a.data;
  if (a.shape.length === out.length && a.shape.every((s, d) => s === out[d])) return Float64Array.from(src);
  const idx = broadcastIndex(a.shape, out);
  const res = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) res[i] = src[idx[i]];
  return res;
}

/**
 * Split `shape` around `dim` into (outer, size, inner): element (o, k, i) lives at
 * o * size * inner + k * inner + i. Most single-dim kernels walk this view.
 */
export function splitAt(shape: readonly number[], dim: number): { outer: number; size: number; inner: number } {
  return { outer: numel(shape.slice(0, dim)), size: shape[dim], inner: numel(shape.slice(dim + 1)) };
}
