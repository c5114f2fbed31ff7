/**
 * Reduction-family reference kernels: reduce (sum/mean/max/min/prod over any set of dims), argmax/argmin,
 * softmax/logSoftmax, cumsum, topk.
 *
 * Multi-dim reductions enumerate two offset lists: `kept` (one base offset per output element, walking
 * the kept dims in row-major order) and `red` (one offset per reduced element). Output o is then the
 * reduction of x[kept[o] + red[r]] over r, a plain loop with no index arithmetic in it. Single-dim ops
 * use the (outer, size, inner) split from types.ts. Float64 throughout; sums are plain sequential sums
 * (float64 is the precision headroom over the float32 kernels being checked).
 */
import { Arr, Out, numel, splitAt, stridesOf } from './types';

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min' | 'prod';

/** Flat offsets of every position of `dims` (of a tensor with `shape`), in row-major order of `dims`. */
function offsets(shape: readonly number[], dims: readonly number[]): Int32Array {
  const st = stridesOf(shape);
  const sizes = dims.map((d) => shape[d]);
  const strides = dims.map((d) => st[d]);
  const n = numel(sizes);
  const res = new Int32Array(n);
  const coord = new Array<number>(dims.length).fill(0);
  let off = 0;
  for (let i = 0; i < n; i++) {
    res[i] = off;
    for (let k = dims.length - 1; k >= 0; k--) {
      coord[k]++;
      off += strides[k];
      if (coord[k] < sizes[k]) break;
      off -= coord[k] * strides[k];
      coord[k] = 0;
    }
  }
  return res;
}

/**
 * Reduce over `dims` (each listed at most once; the op layer passes every dim for a full reduction, so
 * dims [] reduces nothing). max/min propagate NaN like torch. An empty reduction gives sum 0, prod 1,
 * mean NaN, max -Infinity, min +Infinity (torch rejects empty max/min; the op layer does too).
 */
export function reduce(op: ReduceOp, a: Arr, dims: number[], keepdim: boolean): Out {
  const rank = a.shape.length;
  const isRed = new Array<boolean>(rank).fill(false);
  for (const d of dims) isRed[d] = true;
  const keptDims: number[] = [];
  const redDims: number[] = [];
  for (let d = 0; d < rank; d++) (isRed[d] ? redDims : keptDims).push(d);
  const kept = offsets(a.shape, keptDims);
  const red = offsets(a.shape, redDims);
  const shape = keepdim ? a.shape.map((s, d) => (isRed[d] ? 1 : s)) : keptDims.map((d) => a.shape[d]);
  const x = a.data;
  const o = new Float64Array(kept.length);
  const m = red.length;
  for (let i = 0; i < kept.length; i++) {
    const base = kept[i];
    let acc: number;
    switch (op) {
      case 'sum':
      case 'mean':
        acc = 0;
        for (let r = 0; r < m; r++) acc += x[base + red[r]];
        if (op === 'mean') acc /= m;
        break;
      case 'prod':
        acc = 1;
        for (let r = 0; r < m; r++) acc *= x[base + red[r]];
        break;
      case 'max':
        acc = -Infinity;
        for (let r = 0; r < m; r++) {
          const v = x[base + red[r]];
          if (v > acc || Number.isNaN(v)) acc = v;
          if (Number.isNaN(acc)) break;
        }
        break;
      case 'min':
        acc = Infinity;
        for (let r = 0; r < m; r++) {
          const v = x[base + red[r]];
          if (v < acc || Number.isNaN(v)) acc = v;
          if (Number.isNaN(acc)) break;
        }
        break;
      default:
        throw new Error(`js.reduce: unknown op ${String(op)}`);
    }
    o[i] = acc;
  }
  return { data: o, shape };
}

function argExtreme(a: Arr, dim: number | null, keepdim: boolean, largest: boolean): Out {
  // dim null: treat the tensor as 1-D; the result is a scalar (all-ones shape when keepdim, like torch).
  const shape = dim === null ? [numel(a.shape)] : a.shape;
  const d = dim === null ? 0 : dim;
  const { outer, size, inner } = splitAt(shape, d);
  const x = a.data;
  const o = new Float64Array(outer * inner);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const base = p * size * inner + q;
      let best = 0;
      let bv = x[base];
      for (let k = 1; k < size && !Number.isNaN(bv); k++) {
        const v = x[base + k * inner];
        // Strict comparison keeps the first index on ties; a NaN wins and ends the scan (torch).
        if (Number.isNaN(v) || (largest ? v > bv : v < bv)) {
          best = k;
          bv = v;
        }
      }
      o[p * inner + q] = best;
    }
  }
  let outShape: number[];
  if (dim === null) outShape = keepdim ? a.shape.map(() => 1) : [];
  else outShape = keepdim ? a.shape.map((s, i) => (i === dim ? 1 : s)) : a.shape.filter((_, i) => i !== dim);
  return { data: o, shape: outShape };
}

/** Index of the first maximum along `dim` (NaN counts as the maximum); dim null = flattened -> scalar. */
export function argmax(a: Arr, dim: number | null, keepdim: boolean): Out {
  return argExtreme(a, dim, keepdim, true);
}

/** Index of the first minimum along `dim` (NaN counts as the minimum); dim null = flattened -> scalar. */
export function argmin(a: Arr, dim: number | null, keepdim: boolean): Out {
  return argExtreme(a, dim, keepdim, false);
}

function softmaxImpl(a: Arr, dim: number, log: boolean): Out {
  const { outer, size, inner } = splitAt(a.shape, dim);
  const x = a.data;
  const o = new Float64Array(x.length);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const base = p * size * inner + q;
      let mx = -Infinity;
      for (let k = 0; k < size; k++) mx = Math.max(mx, x[base + k * inner]);
      let sum = 0;
      for (let k = 0; k < size; k++) {
        const e = Math.exp(x[base + k * inner] - mx);
        if (!log) o[base + k * inner] = e;
        sum += e;
      }
      if (log) {
        const lse = mx + Math.log(sum);
        for (let k = 0; k < size; k++) o[base + k * inner] = x[base + k * inner] - lse;
      } else {
        for (let k = 0; k < size; k++) o[base + k * inner] /= sum;
      }
    }
  }
  return { data: o, shape: a.shape.slice() };
}

/**
 * softmax along `dim`, max-subtracted in float64. A slice that is all -Infinity gives NaN, like torch
 * (attention handles fully masked rows itself).
 */
export function softmax(a: Arr, dim: number): Out {
  return softmaxImpl(a, dim, false);
}

/** log_softmax along `dim`: x - max - log(sum(exp(x - max))). */
export function logSoftmax(a: Arr, dim: number): Out {
  return softmaxImpl(a, dim, true);
}

/** Inclusive running sum along `dim`. */
export function cumsum(a: Arr, dim: number): Out {
  const { outer, size, inner } = splitAt(a.shape, dim);
  const x = a.data;
  const o = new Float64Array(x.length);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const base = p * size * inner + q;
      let acc = 0;
      for (let k = 0; k < size; k++) {
        acc += x[base + k * inner];
        o[base + k * inner] = acc;
      }
    }
  }
  return { data: o, shape: a.shape.slice() };
}

/**
 * The k largest (or smallest) entries along `dim`, sorted, ties broken by lower index. NaN ranks above
 * every number (torch): first when largest, last when smallest. Output shape is a.shape with dim -> k;
 * indices are stored as float64 integers.
 */
export function topk(a: Arr, k: number, dim: number, largest: boolean): { values: Out; indices: Out } {
  const { outer, size, inner } = splitAt(a.shape, dim);
  const x = a.data;
  const shape = a.shape.map((s, i) => (i === dim ? k : s));
  const vals = new Float64Array(outer * k * inner);
  const idxs = new Float64Array(outer * k * inner);
  const order: number[] = new Array<number>(size);
  const key = new Float64Array(size);
  // Ascending comparator on key with NaN greatest, then lower index first; largest flips only the key.
  const cmp = (i: number, j: number): number => {
    const a1 = key[i];
    const b1 = key[j];
    const an = Number.isNaN(a1);
    const bn = Number.isNaN(b1);
    if (an !== bn) return an === largest ? -1 : 1;
    if (!an && a1 !== b1) return (largest ? a1 > b1 : a1 < b1) ? -1 : 1;
    return i - j;
  };
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const base = p * size * inner + q;
      for (let t = 0; t < size; t++) {
        order[t] = t;
        key[t] = x[base + t * inner];
      }
      order.sort(cmp);
      const ob = p * k * inner + q;
      for (let t = 0; t < k; t++) {
        vals[ob + t * inner] = key[order[t]];
        idxs[ob + t * inner] = order[t];
      }
    }
  }
  return { values: { data: vals, shape }, indices: { data: idxs, shape: shape.slice() } };
}
