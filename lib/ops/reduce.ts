/** Reductions, softmax, arg-reductions and topk. Dims may be negative; `dim` omitted reduces everything. */
import { TesseraError } from '../errors';
import { dispatch, OpName } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { checkBool, checkInt, checkOptions, normDim } from '../validate';
import { computeDType, floatResult } from './common';

export interface ReduceOptions {
  dim?: number | number[];
  keepdim?: boolean;
}

function dimsOf(op: string, t: Tensor, dim: unknown): number[] {
  if (dim === undefined || dim === null) return t.shape.map((_, i) => i);
  const list = Array.isArray(dim) ? dim : [dim];
  const out = list.map((d, i) => normDim(d, t.ndim, op, Array.isArray(dim) ? `dim[${i}]` : 'dim'));
  if (new Set(out).size !== out.length) throw new TesseraError('E_ARG', op, `dim [${list.join(', ')}] repeats a dim`);
  return out.filter((d) => d < t.ndim).sort((a, b) => a - b);
}

function reduce(op: 'sum' | 'mean' | 'max' | 'min', x: unknown, options: unknown): Tensor {
  const t = assertTensor(x, op, 'x');
  const o = checkOptions(options, op);
  const keepdim = o.keepdim === undefined ? false : checkBool(o.keepdim, op, 'options.keepdim');
  const dims = dimsOf(op, t, o.dim);
  if ((op === 'max' || op === 'min') && dims.some((d) => t.shape[d] === 0)) {
    throw new TesseraError('E_SHAPE', op, `cannot reduce an empty dim of shape [${t.shape.join(', ')}]`);
  }
  const d = computeDType(t.dtype);
  const outDtype = op === 'mean' ? floatResult(d) : op === 'sum' && d === 'bool' ? 'int32' : d;
  return dispatch(op, [t], { dims, keepdim, outDtype }) as Tensor;
}
export const sum = (x: Tensor, options?: ReduceOptions): Tensor => reduce('sum', x, options);
export const mean = (x: Tensor, options?: ReduceOptions): Tensor => reduce('mean', x, options);
export const max = (x: Tensor, options?: ReduceOptions): Tensor => reduce('max', x, options);
export const min = (x: Tensor, options?: ReduceOptions): Tensor => reduce('min', x, options);

function argReduce(op: 'argmax' | 'argmin', x: unknown, options: unknown): Tensor {
  const t = assertTensor(x, op, 'x');
  const o = checkOptions(options, op);
  const dim = o.dim === undefined || o.dim === null ? null : normDim(o.dim, t.ndim, op);
  const keepdim = o.keepdim === undefined ? false : checkBool(o.keepdim, op, 'options.keepdim');
  if (t.size === 0) throw new TesseraError('E_SHAPE', op, `cannot take ${op} of an empty tensor [${t.shape.join(', ')}]`);
  return dispatch(op, [t], { dim: dim !== null && t.ndim === 0 ? null : dim, keepdim, outDtype: 'int32' }) as Tensor;
}
/** Index of the (first) largest value along options.dim, or over the flattened tensor; int32. */
export const argmax = (x: Tensor, options?: { dim?: number; keepdim?: boolean }): Tensor => argReduce('argmax', x, options);
export const argmin = (x: Tensor, options?: { dim?: number; keepdim?: boolean }): Tensor => argReduce('argmin', x, options);

/**
 * Runs f on a 0-d tensor viewed as [1] (the kernels index shape[dim]) and views one-element results back
 * as 0-d (an empty topk(k = 0) result stays [0], as in torch).
 */
function asVector<T extends Tensor | Tensor[]>(t: Tensor, f: (v: Tensor) => T): T {
  const v = t.reshape([1]);
  try {
    const r = f(v);
    const back = (o: Tensor) => {
      if (o.size !== 1) return o;
      const s = o.reshape([]);
      o.dispose();
      return s;
    };
    return (Array.isArray(r) ? r.map(back) : back(r as Tensor)) as T;
  } finally {
    v.dispose();
  }
}

function alongDim(op: OpName, x: unknown, dim: unknown): Tensor {
  const t = assertTensor(x, op, 'x');
  const d = normDim(dim === undefined ? -1 : dim, t.ndim, op);
  if (t.ndim === 0) return asVector(t, (v) => alongDim(op, v, 0));
  return dispatch(op, [t], { dim: Math.min(d, Math.max(t.ndim - 1, 0)), outDtype: floatResult(computeDType(t.dtype)) }) as Tensor;
}
/** softmax(x, dim = -1), computed with the max subtracted. */
export const softmax = (x: Tensor, dim = -1): Tensor => alongDim('softmax', x, dim);
export const logSoftmax = (x: Tensor, dim = -1): Tensor => alongDim('logSoftmax', x, dim);
export function cumsum(x: Tensor, dim: number): Tensor {
  const t = assertTensor(x, 'cumsum', 'x');
  const d = normDim(dim, t.ndim, 'cumsum');
  if (t.ndim === 0) return asVector(t, (v) => cumsum(v, 0));
  const c = computeDType(t.dtype);
  return dispatch('cumsum', [t], { dim: Math.min(d, Math.max(t.ndim - 1, 0)), outDtype: c === 'bool' ? 'int32' : c }) as Tensor;
}

/** The k largest (or smallest) values along dim, sorted, with their int32 indices. */
export function topk(x: Tensor, k: number, options?: { dim?: number; largest?: boolean }): { values: Tensor; indices: Tensor } {
  const op = 'topk';
  const t = assertTensor(x, op, 'x');
  const o = checkOptions(options, op);
  const dim = normDim(o.dim === undefined ? -1 : o.dim, t.ndim, op);
  const n = t.ndim === 0 ? 1 : t.shape[dim];
  checkInt(k, op, 'k', 0, n);
  const largest = o.largest === undefined ? true : checkBool(o.largest, op, 'options.largest');
  if (t.ndim === 0) {
    const [values, indices] = asVector(t, (v) => { const r = topk(v, k, { largest }); return [r.values, r.indices]; });
    return { values, indices };
  }
  const [values, indices] = dispatch(op, [t], { k, dim: Math.min(dim, Math.max(t.ndim - 1, 0)), largest, outDtype: computeDType(t.dtype) }) as Tensor[];
  return { values, indices };
}
