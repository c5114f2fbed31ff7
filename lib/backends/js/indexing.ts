/**
 * Indexing reference kernels: embedding, cat, stack, gather, tril/triu.
 * Index tensors arrive as float arrays holding integers (the op layer checks they are in range).
 * Copies go block by block through the (outer, size, inner) split; gather walks the index tensor
 * with an odometer and computes each source offset from strides.
 */
import { Arr, Out, numel, stridesOf } from './types';

/** embedding: ids of any shape, table [V, D] -> [...ids.shape, D]; row i of the output is table[ids[i]]. */
export function embedding(ids: Arr, table: Arr): Out {
  const D = table.shape[1];
  const n = numel(ids.shape);
  const t = table.data;
  const o = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    const row = ids.data[i] * D;
    for (let j = 0; j < D; j++) o[i * D + j] = t[row + j];
  }
  return { data: o, shape: [...ids.shape, D] };
}

/** Concatenate along `dim`; all inputs have the same rank and agree on every other dim. */
export function cat(xs: Arr[], dim: number): Out {
  const shape = xs[0].shape.slice();
  shape[dim] = xs.reduce((s, x) => s + x.shape[dim], 0);
  const outer = numel(shape.slice(0, dim));
  const inner = numel(shape.slice(dim + 1));
  const rowLen = shape[dim] * inner; // one outer slice of the output
  const o = new Float64Array(numel(shape));
  let at = 0; // where the current input starts inside an output slice
  for (const x of xs) {
    const chunk = x.shape[dim] * inner;
    for (let p = 0; p < outer; p++) {
      const src = p * chunk;
      const dst = p * rowLen + at;
      for (let i = 0; i < chunk; i++) o[dst + i] = x.data[src + i];
    }
    at += chunk;
  }
  return { data: o, shape };
}

/** Stack equal-shaped inputs along a new dim `dim` (0 <= dim <= rank). */
export function stack(xs: Arr[], dim: number): Out {
  return cat(
    xs.map((x) => ({ data: x.data, shape: [...x.shape.slice(0, dim), 1, ...x.shape.slice(dim)] })),
    dim,
  );
}

/**
 * gather(a, dim, idx): out has idx's shape and out[c] = a[c with c[dim] replaced by idx[c]] (torch
 * semantics: idx has a's rank and idx.size(d) <= a.size(d) for d != dim).
 */
export function gather(a: Arr, dim: number, idx: Arr): Out {
  const shape = idx.shape.slice();
  const rank = shape.length;
  const st = stridesOf(a.shape);
  const n = numel(shape);
  const o = new Float64Array(n);
  const coord = new Array<number>(rank).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < rank; d++) off += (d === dim ? idx.data[i] : coord[d]) * st[d];
    o[i] = a.data[off];
    for (let d = rank - 1; d >= 0; d--) {
      if (++coord[d] < shape[d]) break;
      coord[d] = 0;
    }
  }
  return { data: o, shape };
}

function triangle(a: Arr, diagonal: number, lower: boolean): Out {
  const rank = a.shape.length;
  const M = a.shape[rank - 2];
  const N = a.shape[rank - 1];
  const o = Float64Array.from(a.data);
  const mats = M * N === 0 ? 0 : o.length / (M * N);
  for (let m = 0; m < mats; m++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const keep = lower ? j - i <= diagonal : j - i >= diagonal;
        if (!keep) o[m * M * N + i * N + j] = 0;
      }
    }
  }
  return { data: o, shape: a.shape.slice() };
}

/** Keep entries with j - i <= diagonal of the last two dims [..., M, N]; zero the rest. */
export function tril(a: Arr, diagonal = 0): Out {
  return triangle(a, diagonal, true);
}

/** Keep entries with j - i >= diagonal of the last two dims [..., M, N]; zero the rest. */
export function triu(a: Arr, diagonal = 0): Out {
  return triangle(a, diagonal, false);
}
