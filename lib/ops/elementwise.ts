/**
 * Elementwise ops with NumPy/PyTorch broadcasting. Numbers are accepted wherever a tensor is and act as
 * "weak" scalars (they take the tensor's dtype). Results follow promoteTypes(); division and the
 * transcendental functions return floats.
 */
import { TesseraError, describe } from '../errors';
import { dispatch, OpName } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { broadcastShapes } from '../backends/js/elementwise';
import { checkOptions, checkShape, fmtShape } from '../validate';
import { computeDType, floatResult, promoteTypes, tensorOrScalar } from './common';

export type TensorLike = Tensor | number;
type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';

function binary(op: BinaryName, a: unknown, b: unknown): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor) && (typeof a === 'number' && typeof b === 'number')) {
    throw new TesseraError('E_TYPE', op, 'at least one argument must be a Tensor');
  }
  const ta = tensorOrScalar(a, b, op, 'a');
  let tb: Tensor;
  try {
    tb = tensorOrScalar(b, a, op, 'b');
  } catch (e) {
    if (ta !== a) ta.dispose(); // a number made into a tensor above
    throw e;
  }
  try {
    const shape = broadcastShapes(ta.shape.slice(), tb.shape.slice());
    if (!shape) {
      throw new TesseraError('E_SHAPE', op, `shapes ${fmtShape(ta.shape)} (a) and ${fmtShape(tb.shape)} (b) do not broadcast`);
    }
    checkShape(shape, op, `broadcast shape of a ${fmtShape(ta.shape)} and b ${fmtShape(tb.shape)}`);
    let outDtype = promoteTypes(ta.dtype, tb.dtype);
    if (op === 'div' || op === 'pow') outDtype = op === 'div' ? floatResult(outDtype) : outDtype;
    return dispatch(op, [ta, tb], { outDtype, shape }) as Tensor;
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b);
export const pow = (a: TensorLike, b: TensorLike): Tensor => binary('pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b);

/** Ops that keep integer dtypes; the others produce floats. */
const INT_PRESERVING = new Set(['neg', 'abs', 'relu', 'square']);

function unary(op: OpName, x: unknown): Tensor {
  const t = assertTensor(x, op, 'x');
  const d = computeDType(t.dtype);
  const outDtype = INT_PRESERVING.has(op) ? (d === 'bool' ? 'int32' : d) : floatResult(d);
  return dispatch(op, [t], { outDtype }) as Tensor;
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const square = (x: Tensor): Tensor => unary('square', x);
/** GELU; { approximate: 'tanh' } selects the tanh form (as in PyTorch). */
export function gelu(x: Tensor, options?: { approximate?: 'none' | 'tanh' }): Tensor {
  const a = checkOptions(options, 'gelu').approximate ?? 'none';
  if (a !== 'none' && a !== 'tanh') {
    throw new TesseraError('E_ARG', 'gelu', `options.approximate must be 'none' or 'tanh', got ${describe(a)}`);
  }
  return unary(a === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

/** where(cond, a, b): a where cond is nonzero, else b (broadcasting all three). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const op = 'where';
  const c = assertTensor(cond, op, 'cond');
  const ta = tensorOrScalar(a, b, op, 'a');
  let tb: Tensor;
  try {
    tb = tensorOrScalar(b, a, op, 'b');
  } catch (e) {
    if (ta !== a) ta.dispose();
    throw e;
  }
  try {
    const s1 = broadcastShapes(ta.shape.slice(), tb.shape.slice());
    const shape = s1 && broadcastShapes(c.shape.slice(), s1);
    if (!shape) {
      throw new TesseraError('E_SHAPE', op, `shapes ${fmtShape(c.shape)} (cond), ${fmtShape(ta.shape)} (a) and ${fmtShape(tb.shape)} (b) do not broadcast`);
    }
    checkShape(shape, op, 'broadcast shape of cond, a and b');
    return dispatch(op, [c, ta, tb], { outDtype: promoteTypes(ta.dtype, tb.dtype), shape }) as Tensor;
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}
