/**
 * Sparse matrices A [M, K] and spmm(A, B) = A @ B for dense B [K, N]. Two formats:
 *  - 'csr': rowPtr int32 [M+1], colIdx int32 [nnz], values [nnz] (exact nonzeros of the dense input);
 *  - '2:4': structured sparsity along K: in every group of 4 the 2 largest |values| are kept, values
 *    [M, 2·ceil(K/4)] plus 2-bit positions packed in meta uint8 (layout: backends/js/sparse.ts header).
 * sparse.csr(...) builds a CSR matrix from user arrays after checking its structure.
 */
import { TesseraError, describe } from '../errors';
import { dispatch, dispatchAsync } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { tensor } from '../creation';
import { validateCsr, CsrRaw } from '../backends/js/sparse';
import { NOT_OPTIONS, checkOptions, checkShape, fmtShape } from '../validate';
import { isDetached } from '../storage';
import { computeDType, isFloatDType, promoteTypes } from './common';

export type SparseFormat = 'csr' | '2:4';

export class SparseTensor {
  readonly format: SparseFormat;
  readonly shape: readonly [number, number];
  /** csr: [rowPtr, colIdx, values]; 2:4: [values, meta] */
  readonly parts: readonly Tensor[];

  /** @internal */
  constructor(format: SparseFormat, shape: [number, number], parts: Tensor[]) {
    this.format = format;
    this.shape = shape;
    this.parts = parts;
  }
  get dtype() {
    return this.values.dtype;
  }
  get device() {
    return this.values.device;
  }
  get values(): Tensor {
    return this.format === 'csr' ? this.parts[2] : this.parts[0];
  }
  /** stored entries (csr: nonzeros; 2:4: M · K/2 kept slots) */
  get nnz(): number {
    return this.values.size;
  }
  /** @internal */
  _check(op: string): Tensor[] {
    this.parts.forEach((t, i) => t._check(op, `sparse part ${i}`));
    return this.parts.slice();
  }
  toDense(): Tensor {
    return toDense(this);
  }
  /** The same matrix with its parts on another device. */
  to(device: 'cpu' | 'cuda'): SparseTensor {
    return new SparseTensor(this.format, [this.shape[0], this.shape[1]], this._check('to').map((t) => t.to(device)));
  }
  dispose(): void {
    this.parts.forEach((t) => t.dispose());
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    return `SparseTensor(${this.format}, shape=${fmtShape(this.shape)}, nnz=${this.nnz}, dtype=${this.dtype})`;
  }
}

Object.defineProperty(SparseTensor.prototype, NOT_OPTIONS, { value: true });

function assertSparse(v: unknown, op: string, arg: string): SparseTensor {
  if (!(v instanceof SparseTensor)) throw new TesseraError('E_TYPE', op, `${arg} must be a SparseTensor (from sparse.fromDense or sparse.csr), got ${describe(v)}`);
  return v;
}

/** Compresses a dense 2-D float tensor: { format: 'csr' } keeps exact nonzeros, { format: '2:4' } prunes. */
export function fromDense(w: Tensor, options: { format: SparseFormat }): SparseTensor {
  const op = 'sparse.fromDense';
  const t = assertTensor(w, op, 'w');
  const o = checkOptions(options, op);
  if (o.format !== 'csr' && o.format !== '2:4') {
    throw new TesseraError('E_ARG', op, `options.format must be 'csr' or '2:4', got ${describe(o.format)}`);
  }
  if (t.ndim !== 2) throw new TesseraError('E_SHAPE', op, `w must be 2-D [M, K], got ${fmtShape(t.shape)}`);
  const d = computeDType(t.dtype);
  if (!isFloatDType(d)) throw new TesseraError('E_DTYPE', op, `w must be a float tensor, got ${t.dtype}`);
  const parts = dispatch('sparseFromDense', [t], { format: o.format, outDtype: d }) as Tensor[];
  return new SparseTensor(o.format, [t.shape[0], t.shape[1]], parts);
}

/** The dense [M, K] matrix (pruned entries of a 2:4 matrix are zeros). */
export function toDense(s: SparseTensor): Tensor {
  const op = 'sparse.toDense';
  const st = assertSparse(s, op, 's');
  return dispatch('sparseToDense', st._check(op), { format: st.format, M: st.shape[0], K: st.shape[1], outDtype: st.dtype }) as Tensor;
}

/** A user array (plain, typed, or a Tensor): the typed-array checks, then each entry. */
function userArray(v: unknown, op: string, arg: string, what: string): ArrayLike<unknown> {
  if (v instanceof Tensor) return assertTensor(v, op, arg).toFloat64();
  const isView = ArrayBuffer.isView(v) && !(v instanceof DataView);
  if (!Array.isArray(v) && !isView) throw new TesseraError('E_TYPE', op, `${arg} must be an array, typed array or Tensor of ${what}, got ${describe(v)}`);
  if (isView && isDetached(v as ArrayBufferView)) throw new TesseraError('E_DETACHED', op, `${arg} ${describe(v)} has a detached ArrayBuffer`);
  return v as ArrayLike<unknown>;
}

/** rowPtr / colIdx entries must be int32 integers: Int32Array.from would truncate 0.5 or 'x' silently. */
function int32Array(v: unknown, op: string, arg: string): Int32Array {
  const a = userArray(v, op, arg, 'integers');
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) {
      throw new TesseraError('E_ARG', op, `${arg}[${i}] must be an int32 integer, got ${describe(x)}`);
    }
    out[i] = x;
  }
  return out;
}

/** values as given (a Tensor), or numbers -> float32 (a Float64Array stays float64). */
function valuesTensor(v: unknown, op: string): Tensor {
  if (v instanceof Tensor) return assertTensor(v, op, 'values');
  const a = userArray(v, op, 'values', 'numbers');
  for (let i = 0; i < a.length; i++) {
    if (typeof a[i] !== 'number') throw new TesseraError('E_TYPE', op, `values[${i}] must be a number, got ${describe(a[i])}`);
  }
  return tensor(a instanceof Float64Array || a instanceof Float32Array ? a : Float32Array.from(a as ArrayLike<number>));
}

/** CSR matrix from its arrays; the structure is checked (monotone rowPtr, sorted in-range columns). */
export function csr(rowPtr: ArrayLike<number>, colIdx: ArrayLike<number>, values: ArrayLike<number> | Tensor, shape: [number, number]): SparseTensor {
  const op = 'sparse.csr';
  const [M, K] = checkShape(shape, op);
  if (shape.length !== 2) throw new TesseraError('E_SHAPE', op, `shape must be [M, K], got ${describe(shape)}`);
  const rp = int32Array(rowPtr, op, 'rowPtr');
  const cols = int32Array(colIdx, op, 'colIdx');
  const vt = valuesTensor(values, op);
  const raw: CsrRaw = { M, K, rowPtr: rp, colIdx: cols, values: vt.toFloat64() };
  const err = validateCsr(raw);
  if (err) {
    if (vt !== values) vt.dispose();
    throw new TesseraError('E_ARG', op, `${err} (shape [${M}, ${K}], rowPtr length ${rp.length}, ${cols.length} column indices, ${raw.values.length} values)`);
  }
  const rpt = tensor(raw.rowPtr, { dtype: 'int32' });
  const ci = tensor(raw.colIdx, { dtype: 'int32' });
  return new SparseTensor('csr', [M, K], [rpt, ci, vt === values ? vt.contiguous() : vt]);
}

function spmmArgs(a: unknown, b: unknown): [Tensor[], Record<string, unknown>] {
  const op = 'spmm';
  const sa = assertSparse(a, op, 'a');
  const tb = assertTensor(b, op, 'b');
  const [M, K] = sa.shape;
  if (tb.ndim !== 2 || tb.shape[0] !== K) {
    throw new TesseraError('E_SHAPE', op, `b must be 2-D [K, N] with K = ${K} to multiply sparse a ${fmtShape(sa.shape)}, got ${fmtShape(tb.shape)}`);
  }
  if (!isFloatDType(computeDType(tb.dtype))) throw new TesseraError('E_DTYPE', op, `b must be a float tensor, got ${tb.dtype}`);
  if (sa.device !== tb.device) throw new TesseraError('E_DEVICE', op, `a is on ${sa.device}, b on ${tb.device}`);
  const outDtype = promoteTypes(sa.dtype, tb.dtype);
  checkShape([M, tb.shape[1]], op, `output shape of a ${fmtShape(sa.shape)} @ b ${fmtShape(tb.shape)}`);
  return [[...sa._check(op), tb], { format: sa.format, M, K, N: tb.shape[1], outDtype }];
}

/** sparse a [M, K] @ dense b [K, N] -> [M, N]. */
export function spmm(a: SparseTensor, b: Tensor): Tensor {
  const [inputs, attrs] = spmmArgs(a, b);
  return dispatch('spmm', inputs, attrs) as Tensor;
}
export async function spmmAsync(a: SparseTensor, b: Tensor): Promise<Tensor> {
  const [inputs, attrs] = spmmArgs(a, b);
  return (await dispatchAsync('spmm', inputs, attrs)) as Tensor;
}

export const sparse = { fromDense, toDense, csr, spmm, spmmAsync, SparseTensor };
