/** Layer-level ops: normalizations, embedding lookup, rotary embedding, concatenation, triangular masks. */
import { TesseraError, describe } from '../errors';
import { dispatch } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { ropeInvFreq } from '../backends/js/rope';
import { checkBool, checkInt, checkNumber, checkOptions, checkShape, fmtShape, normDim } from '../validate';
import { isDetached } from '../storage';
import { computeDType, floatResult, promoteTypes } from './common';

function optionalWeight(v: unknown, op: string, arg: string, D: number): Tensor | null {
  if (v === null || v === undefined) return null;
  const w = assertTensor(v, op, arg);
  if (w.ndim !== 1 || w.shape[0] !== D) {
    throw new TesseraError('E_SHAPE', op, `${arg} must have shape [${D}] (the last dim of x), got ${fmtShape(w.shape)}`);
  }
  return w;
}

function lastDim(op: string, x: Tensor): number {
  if (x.ndim < 1) throw new TesseraError('E_SHAPE', op, `x must have at least 1 dim, got a scalar`);
  return x.shape[x.ndim - 1];
}

/** RMSNorm over the last dim: x / sqrt(mean(x²) + eps) * weight. */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  const op = 'rmsNorm';
  const t = assertTensor(x, op, 'x');
  const w = optionalWeight(weight, op, 'weight', lastDim(op, t));
  checkNumber(eps, op, 'eps');
  const outDtype = floatResult(w ? promoteTypes(t.dtype, w.dtype) : t.dtype);
  return dispatch(op, w ? [t, w] : [t], { eps, hasWeight: !!w, outDtype }) as Tensor;
}

/** LayerNorm over the last dim (biased variance, like PyTorch). */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const t = assertTensor(x, op, 'x');
  const D = lastDim(op, t);
  const w = optionalWeight(weight, op, 'weight', D);
  const b = optionalWeight(bias, op, 'bias', D);
  checkNumber(eps, op, 'eps');
  const inputs = [t];
  if (w) inputs.push(w);
  if (b) inputs.push(b);
  return dispatch(op, inputs, { eps, hasWeight: !!w, hasBias: !!b, outDtype: floatResult(t.dtype) }) as Tensor;
}

/** Rows of table [V, D] picked by integer ids of any shape -> [...ids.shape, D]. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const op = 'embedding';
  const i = assertTensor(ids, op, 'ids');
  const w = assertTensor(table, op, 'table');
  if (w.ndim !== 2) throw new TesseraError('E_SHAPE', op, `table must be 2-D [vocab, dim], got ${fmtShape(w.shape)}`);
  if (i.dtype !== 'int32' && i.dtype !== 'int8' && i.dtype !== 'uint8') {
    throw new TesseraError('E_DTYPE', op, `ids must be an integer tensor (int32, int8, uint8), got ${i.dtype}`);
  }
  checkShape([...i.shape, w.shape[1]], op, `output shape of ids ${fmtShape(i.shape)} and table ${fmtShape(w.shape)}`);
  const vals = i.toFloat64();
  const V = w.shape[0];
  for (let k = 0; k < vals.length; k++) {
    if (vals[k] < 0 || vals[k] >= V) {
      throw new TesseraError('E_ARG', op, `ids contains ${vals[k]} at flat index ${k}, outside [0, ${V}) for table ${fmtShape(w.shape)}`);
    }
  }
  return dispatch(op, [i, w], { outDtype: computeDType(w.dtype) }) as Tensor;
}

export interface RopeOptions {
  /** base of the inverse frequencies (default 10000) */
  theta?: number;
  /** absolute position of the first row (default 0); ignored when positions is given */
  offset?: number;
  /** absolute position of each of the S rows */
  positions?: ArrayLike<number> | Tensor;
  /** how many leading features of D rotate (default D) */
  rotaryDim?: number;
  /** precomputed inverse frequencies (rotaryDim/2 entries), e.g. with Llama-3 style scaling applied */
  invFreq?: ArrayLike<number>;
  /** GPT-J style pairs (2i, 2i+1) instead of rotate-half */
  interleaved?: boolean;
}

/** Rotary position embedding on x [..., S, D] (rotate-half convention of HF Llama by default). */
export function rope(x: Tensor, options?: RopeOptions): Tensor {
  const op = 'rope';
  const t = assertTensor(x, op, 'x');
  const o = checkOptions(options, op);
  if (t.ndim < 2) throw new TesseraError('E_SHAPE', op, `x must be [..., S, D], got ${fmtShape(t.shape)}`);
  const S = t.shape[t.ndim - 2];
  const D = t.shape[t.ndim - 1];
  const rotaryDim = o.rotaryDim === undefined ? D : checkInt(o.rotaryDim, op, 'options.rotaryDim', 0, D);
  if (rotaryDim % 2 !== 0) {
    const what = o.rotaryDim === undefined ? `the last dim D = ${D} of x ${fmtShape(t.shape)} (rotated by default)` : 'options.rotaryDim';
    throw new TesseraError('E_ARG', op, `${what} must be even, got ${rotaryDim}`);
  }
  const theta = o.theta === undefined ? 10000 : checkNumber(o.theta, op, 'options.theta', { positive: true });
  let positions: Float64Array;
  if (o.positions !== undefined && o.positions !== null) {
    const p = o.positions instanceof Tensor ? assertTensor(o.positions, op, 'options.positions').toFloat64() : o.positions;
    if (typeof p !== 'object' || typeof (p as ArrayLike<number>).length !== 'number') {
      throw new TesseraError('E_TYPE', op, `options.positions must be an array of numbers or a Tensor, got ${describe(p)}`);
    }
    if (ArrayBuffer.isView(p) && isDetached(p)) throw new TesseraError('E_DETACHED', op, `options.positions ${describe(p)} has a detached ArrayBuffer`);
    const arr = p as ArrayLike<number>;
    if (arr.length !== S) throw new TesseraError('E_SHAPE', op, `options.positions has ${arr.length} entries but x ${fmtShape(t.shape)} has S = ${S}`);
    positions = Float64Array.from(arr, (v, k) => checkNumber(v, op, `options.positions[${k}]`));
  } else {
    const off = o.offset === undefined ? 0 : checkInt(o.offset, op, 'options.offset', 0);
    positions = Float64Array.from({ length: S }, (_, k) => off + k);
  }
  let invFreq: Float64Array;
  if (o.invFreq !== undefined) {
    const f = o.invFreq as ArrayLike<number>;
    if (ArrayBuffer.isView(f) && isDetached(f)) throw new TesseraError('E_DETACHED', op, `options.invFreq ${describe(f)} has a detached ArrayBuffer`);
    if (!f || typeof f.length !== 'number' || f.length !== rotaryDim / 2) {
      throw new TesseraError('E_ARG', op, `options.invFreq must have rotaryDim/2 = ${rotaryDim / 2} entries, got ${describe(f)}`);
    }
    invFreq = Float64Array.from(f, (v, k) => checkNumber(v, op, `options.invFreq[${k}]`));
  } else invFreq = ropeInvFreq(rotaryDim, theta);
  const interleaved = o.interleaved === undefined ? false : checkBool(o.interleaved, op, 'options.interleaved');
  return dispatch(op, [t], { positions, invFreq, rotaryDim, interleaved, outDtype: floatResult(t.dtype) }) as Tensor;
}

/** Concatenate along dim; all other dims must match. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  const op = 'cat';
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new TesseraError('E_TYPE', op, `tensors must be a non-empty array of Tensors, got ${describe(tensors)}`);
  }
  const ts = tensors.map((v, i) => assertTensor(v, op, `tensors[${i}]`));
  const rank = ts[0].ndim;
  if (rank === 0) throw new TesseraError('E_SHAPE', op, 'zero-dim tensors cannot be concatenated');
  const d = normDim(dim, rank, op);
  ts.forEach((t, i) => {
    if (t.ndim !== rank || t.shape.some((s, k) => k !== d && s !== ts[0].shape[k])) {
      throw new TesseraError('E_SHAPE', op, `tensors[${i}] has shape ${fmtShape(t.shape)}, which does not match ${fmtShape(ts[0].shape)} outside dim ${d}`);
    }
  });
  const outDtype = ts.slice(1).reduce((acc, t) => promoteTypes(acc, t.dtype), computeDType(ts[0].dtype));
  return dispatch(op, ts, { dim: d, outDtype }) as Tensor;
}

function triangle(op: 'tril' | 'triu', x: Tensor, diagonal: number): Tensor {
  const t = assertTensor(x, op, 'x');
  if (t.ndim < 2) throw new TesseraError('E_SHAPE', op, `x must have at least 2 dims, got ${fmtShape(t.shape)}`);
  checkInt(diagonal, op, 'diagonal');
  return dispatch(op, [t], { diagonal, outDtype: computeDType(t.dtype) }) as Tensor;
}
export const tril = (x: Tensor, diagonal = 0): Tensor => triangle('tril', x, diagonal);
export const triu = (x: Tensor, diagonal = 0): Tensor => triangle('triu', x, diagonal);
