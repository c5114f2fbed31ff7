/** Argument checks shared by the tensor class and every op: each failure is a TesseraError naming op and argument. */
import { DType, isDType, DTYPES } from './dtype';
import { TesseraError, describe } from './errors';

/** Largest element count a tensor may have (typed arrays and our native code index with 32 bits). */
export const MAX_NUMEL = 2 ** 32 - 1;
/** Most dims a tensor may have (NumPy 2 allows 64): bounds recursion over dims, e.g. in printing. */
export const MAX_RANK = 64;

/**
 * Set on the prototypes of Tensor, QuantizedTensor and SparseTensor, so that checkOptions can refuse them
 * without importing them (they import this file).
 */
export const NOT_OPTIONS: unique symbol = Symbol('tessera.notOptions');

export function checkShape(shape: unknown, op: string, arg = 'shape'): number[] {
  if (!Array.isArray(shape)) {
    throw new TesseraError('E_TYPE', op, `${arg} must be an array of non-negative integers, got ${describe(shape)}`);
  }
  if (shape.length > MAX_RANK) {
    throw new TesseraError('E_SHAPE', op, `${arg} has ${shape.length} dims, more than the limit ${MAX_RANK}`);
  }
  let numel = 1;
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new TesseraError('E_SHAPE', op, `${arg}[${i}] must be a non-negative integer, got ${describe(d)} in ${fmtList(shape)}`);
    }
    numel *= d;
    out.push(d);
  }
  if (numel > MAX_NUMEL) {
    throw new TesseraError('E_SHAPE', op, `${arg} [${out.join(', ')}] has ${numel} elements, more than the limit ${MAX_NUMEL}`);
  }
  return out;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkDType(d: unknown, op: string, arg = 'dtype'): DType {
  if (!isDType(d)) {
    throw new TesseraError('E_DTYPE', op, `${arg} must be one of ${DTYPES.join(', ')}; got ${describe(d)}`);
  }
  return d;
}

/** Normalizes a possibly negative dim against rank (PyTorch rules: -1 is the last dim). */
export function normDim(dim: unknown, rank: number, op: string, arg = 'dim'): number {
  const r = Math.max(rank, 1);
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < -r || dim >= r) {
    throw new TesseraError('E_ARG', op, `${arg} must be an integer in [${-r}, ${r - 1}] for a tensor of rank ${rank}, got ${describe(dim)}`);
  }
  return dim < 0 ? dim + r : dim;
}

export function checkInt(v: unknown, op: string, arg: string, min = -(2 ** 53), max = 2 ** 53): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TesseraError('E_ARG', op, `${arg} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}

export function checkNumber(v: unknown, op: string, arg: string, opts: { finite?: boolean; positive?: boolean } = {}): number {
  if (typeof v !== 'number' || Number.isNaN(v) || (opts.finite !== false && !Number.isFinite(v)) || (opts.positive && v <= 0)) {
    throw new TesseraError('E_ARG', op, `${arg} must be a ${opts.positive ? 'positive ' : ''}finite number, got ${describe(v)}`);
  }
  return v;
}

export function checkBool(v: unknown, op: string, arg: string): boolean {
  if (typeof v !== 'boolean') throw new TesseraError('E_ARG', op, `${arg} must be a boolean, got ${describe(v)}`);
  return v;
}

export function checkOptions(v: unknown, op: string, arg = 'options'): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v) || NOT_OPTIONS in v) {
    throw new TesseraError('E_TYPE', op, `${arg} must be an options object, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** A user-supplied list for a message: numbers as they are, anything else described (never throws). */
export function fmtList(v: readonly unknown[]): string {
  return `[${v.map((x) => (typeof x === 'number' ? String(x) : describe(x))).join(', ')}]`;
}
