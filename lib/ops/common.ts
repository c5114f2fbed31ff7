/** Shared by the op front ends: dtype promotion and scalar handling (PyTorch-like rules, documented in README). */
import { DType, dtypeInfo } from '../dtype';
import { TesseraError, describe } from '../errors';
import { Tensor, assertTensor } from '../tensor';
import { tensor } from '../creation';

const FLOAT_RANK: Partial<Record<DType, number>> = { float16: 1, bfloat16: 1, float32: 2, float64: 3 };
const INT_RANK: Partial<Record<DType, number>> = { bool: 0, uint8: 1, int8: 1, int32: 2 };

/** fp8 and int4/uint4 are storage formats: arithmetic on them computes in and returns float32. */
export function computeDType(d: DType): DType {
  if (d === 'float8_e4m3fn' || d === 'float8_e5m2' || d === 'int4' || d === 'uint4') return 'float32';
  return d;
}

export function promoteTypes(a: DType, b: DType): DType {
  a = computeDType(a);
  b = computeDType(b);
  if (a === b) return a;
  const fa = FLOAT_RANK[a];
  const fb = FLOAT_RANK[b];
  if (fa !== undefined && fb !== undefined) {
    if (fa === 1 && fb === 1) return 'float32'; // float16 with bfloat16
    return fa > fb ? a : b;
  }
  if (fa !== undefined) return a;
  if (fb !== undefined) return b;
  const ia = INT_RANK[a]!;
  const ib = INT_RANK[b]!;
  if (ia === ib) return 'int32'; // int8 with uint8: no int16 here
  return ia > ib ? a : b;
}

export function isFloatDType(d: DType): boolean {
  return dtypeInfo(d).isFloat;
}

/** Result dtype of an op that must produce floats (exp, softmax, mean, division ...). */
export function floatResult(d: DType): DType {
  const c = computeDType(d);
  return isFloatDType(c) ? c : 'float32';
}

/** A Tensor argument, or a JS number turned into a 0-d tensor of the other operand's kind (a "weak" scalar). */
export function tensorOrScalar(v: unknown, other: unknown, op: string, arg: string): Tensor {
  if (typeof v === 'number' || typeof v === 'boolean') {
    const o = other instanceof Tensor ? other : null;
    let dtype: DType = typeof v === 'boolean' ? 'bool' : 'float32';
    if (o) {
      const od = computeDType(o.dtype);
      if (typeof v === 'boolean') dtype = od;
      else if (isFloatDType(od)) dtype = od;
      else dtype = Number.isInteger(v) ? (od === 'bool' ? 'int32' : od) : 'float32';
    } else if (typeof v === 'number' && Number.isInteger(v)) dtype = 'float32';
    return tensor(Number(v), { dtype, device: o ? o.device : 'cpu' });
  }
  if (!(v instanceof Tensor)) throw new TesseraError('E_TYPE', op, `${arg} must be a Tensor or a number, got ${describe(v)}`);
  return assertTensor(v, op, arg);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
