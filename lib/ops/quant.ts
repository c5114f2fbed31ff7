/**
 * Quantized weights: quantize(w [K, N]) -> QuantizedTensor (values + float32 scales [+ zero points]),
 * dequantize(q), and qmatmul(x, q) = x @ dequant(q) with the arithmetic a real low-precision kernel uses
 * (int8: W8A8 with per-row dynamic activation scales and int32 accumulation; int4/uint4/fp8: weight-only,
 * dequantized in registers, float32 accumulation). Layouts and rounding: backends/js/quant.ts header.
 * Weights of a PyTorch Linear are [out, in] = [N, K]: quantize their transpose, w.transpose().
 */
import { DType } from '../dtype';
import { TesseraError, describe } from '../errors';
import { dispatch, dispatchAsync } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { QuantDtype, QuantRaw } from '../backends/js/quant';
import { NOT_OPTIONS, checkBool, checkDType, checkInt, checkOptions, checkShape, fmtShape } from '../validate';
import { computeDType, isFloatDType } from './common';

const QDTYPES: readonly QuantDtype[] = ['int8', 'int4', 'uint4', 'float8_e4m3fn'];

export interface QuantizeOptions {
  dtype: 'int8' | 'int4' | 'uint4' | 'float8_e4m3fn';
  /** axis that keeps its own scales: the output-channel axis -1 / 1 (default), or null for one scale */
  axis?: number | null;
  /** rows of K sharing a scale (default: 32 for int4/uint4, per-channel for int8 and fp8) */
  groupSize?: number | null;
  /** symmetric (default); false gives asymmetric uint4 with zero points (int4 only) */
  symmetric?: boolean;
}

export class QuantizedTensor {
  readonly dtype: QuantDtype;
  /** logical [K, N] */
  readonly shape: readonly [number, number];
  readonly groupSize: number;
  readonly perTensor: boolean;
  /** int8 / packed int4 (uint4) / fp8 bits, logical shape [K, N] */
  readonly values: Tensor;
  /** float32 [ceil(K/groupSize), N], or [1] per tensor */
  readonly scales: Tensor;
  /** float32 integer zero points shaped like scales (uint4 only) */
  readonly zeros: Tensor | null;

  /** @internal */
  constructor(raw: QuantRaw, values: Tensor, scales: Tensor, zeros: Tensor | null) {
    this.dtype = raw.dtype;
    this.shape = [raw.K, raw.N];
    this.groupSize = raw.groupSize;
    this.perTensor = raw.perTensor;
    this.values = values;
    this.scales = scales;
    this.zeros = zeros;
  }
  get device() {
    return this.values.device;
  }
  /** @internal the tensors a kernel receives, in order */
  _tensors(op: string): Tensor[] {
    const ts = [this.values, this.scales];
    if (this.zeros) ts.push(this.zeros);
    ts.forEach((t, i) => t._check(op, ['values', 'scales', 'zeros'][i]));
    return ts;
  }
  /** @internal */
  _attrs(): { qdtype: QuantDtype; K: number; N: number; groupSize: number; perTensor: boolean } {
    return { qdtype: this.dtype, K: this.shape[0], N: this.shape[1], groupSize: this.groupSize, perTensor: this.perTensor };
  }
  dequantize(dtype: DType = 'float32'): Tensor {
    return dequantize(this, dtype);
  }
  to(device: 'cpu' | 'cuda'): QuantizedTensor {
    const raw = { dtype: this.dtype, K: this.shape[0], N: this.shape[1], groupSize: this.groupSize, perTensor: this.perTensor } as QuantRaw;
    return new QuantizedTensor(raw, this.values.to(device), this.scales.to(device), this.zeros ? this.zeros.to(device) : null);
  }
  dispose(): void {
    this.values.dispose();
    this.scales.dispose();
    this.zeros?.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    const g = this.perTensor ? 'per-tensor' : this.groupSize >= this.shape[0] ? 'per-channel' : `group ${this.groupSize}`;
    return `QuantizedTensor(${this.dtype}, shape=${fmtShape(this.shape)}, ${g})`;
  }
}

Object.defineProperty(QuantizedTensor.prototype, NOT_OPTIONS, { value: true });

export function isQuantized(v: unknown): v is QuantizedTensor {
  return v instanceof QuantizedTensor;
}

/** Quantizes a float weight w [K, N] (x @ w layout) with per-output-channel (and per-group) scales. */
export function quantize(w: Tensor, options: QuantizeOptions): QuantizedTensor {
  const op = 'quantize';
  const t = assertTensor(w, op, 'w');
  const o = checkOptions(options, op);
  if (!QDTYPES.includes(o.dtype as QuantDtype)) {
    throw new TesseraError('E_DTYPE', op, `options.dtype must be one of ${QDTYPES.join(', ')}, got ${describe(o.dtype)}`);
  }
  let qdtype = o.dtype as QuantDtype;
  if (t.ndim !== 2) throw new TesseraError('E_SHAPE', op, `w must be 2-D [K, N], got ${fmtShape(t.shape)}`);
  if (!isFloatDType(computeDType(t.dtype))) throw new TesseraError('E_DTYPE', op, `w must be a float tensor, got ${t.dtype}`);
  const [K, N] = t.shape;
  if (K === 0 || N === 0) throw new TesseraError('E_SHAPE', op, `w must be non-empty, got ${fmtShape(t.shape)}`);
  const symmetric = o.symmetric === undefined ? qdtype !== 'uint4' : checkBool(o.symmetric, op, 'options.symmetric');
  if (!symmetric && qdtype !== 'int4' && qdtype !== 'uint4') {
    throw new TesseraError('E_ARG', op, `options.symmetric = false is supported for int4 (stored as uint4 with zero points), not ${qdtype}`);
  }
  if (qdtype === 'uint4' && symmetric) throw new TesseraError('E_ARG', op, 'uint4 is the asymmetric int4 format: pass symmetric: false');
  if (!symmetric) qdtype = 'uint4';
  let perTensor = false;
  if (o.axis === null) perTensor = true;
  else if (o.axis !== undefined && o.axis !== 1 && o.axis !== -1) {
    throw new TesseraError('E_ARG', op, `options.axis must be -1 or 1 (output channels of w [K, N]) or null (per tensor), got ${describe(o.axis)}; for a [N, K] Linear weight quantize w.transpose()`);
  }
  let groupSize: number | null = null;
  if (o.groupSize !== undefined && o.groupSize !== null) groupSize = checkInt(o.groupSize, op, 'options.groupSize', 1, 2 ** 31 - 1);
  else if ((qdtype === 'int4' || qdtype === 'uint4') && !perTensor) groupSize = 32;
  if (perTensor && o.groupSize !== undefined && o.groupSize !== null) {
    throw new TesseraError('E_ARG', op, 'options.groupSize cannot be combined with axis: null (per tensor)');
  }
  const attrs = { qdtype, K, N, groupSize: groupSize === null ? K : Math.min(groupSize, K), perTensor, symmetric };
  const outs = dispatch(op, [t], attrs) as Tensor[];
  const raw = { dtype: qdtype, K, N, groupSize: attrs.groupSize, perTensor } as QuantRaw;
  return new QuantizedTensor(raw, outs[0], outs[1], outs[2] ?? null);
}

function assertQuantized(v: unknown, op: string, arg: string): QuantizedTensor {
  if (!(v instanceof QuantizedTensor)) throw new TesseraError('E_TYPE', op, `${arg} must be a QuantizedTensor (from quantize()), got ${describe(v)}`);
  return v;
}

/** The float weight a quantized tensor stands for, [K, N]. */
export function dequantize(q: QuantizedTensor, dtype: DType = 'float32'): Tensor {
  const op = 'dequantize';
  const qt = assertQuantized(q, op, 'q');
  if (!isFloatDType(checkDType(dtype, op))) throw new TesseraError('E_DTYPE', op, `dtype must be a float dtype, got ${describe(dtype)}`);
  return dispatch(op, qt._tensors(op), { ...qt._attrs(), outDtype: dtype }) as Tensor;
}

export interface QmatmulOptions {
  /**
   * How x enters the product. 'float' (the default for int4 / uint4 / fp8 weights): x as given, weights
   * dequantized. 'int8': W4A8, int4 / uint4 weights only: x quantized to int8 per row and weight group
   * (symmetric, scale maxabs/127) and integer dot products, as ONNX Runtime's MatMulNBits with
   * accuracy_level 4 and llama.cpp do; faster on CPUs (the decode GEMV becomes memory-bound) at the cost of
   * rounding x to 8 bits. int8 weights always take int8 activations (W8A8): 'int8' is their default and
   * 'float' an error.
   */
  activations?: 'float' | 'int8';
}

function qmatmulArgs(x: unknown, q: unknown, options: unknown): [Tensor[], Record<string, unknown>] {
  const op = 'qmatmul';
  const t = assertTensor(x, op, 'x');
  const qt = assertQuantized(q, op, 'qw');
  const o = checkOptions(options, op);
  const w8 = qt.dtype === 'int8';
  const acts = o.activations === undefined ? (w8 ? 'int8' : 'float') : o.activations;
  if (acts !== 'float' && acts !== 'int8') {
    throw new TesseraError('E_ARG', op, `options.activations must be 'float' or 'int8', got ${describe(o.activations)}`);
  }
  if (w8 && acts === 'float') {
    throw new TesseraError('E_ARG', op, "options.activations 'float' is not available for int8 weights: they always quantize activations to int8 (W8A8)");
  }
  if (!w8 && acts === 'int8' && qt.dtype !== 'int4' && qt.dtype !== 'uint4') {
    throw new TesseraError('E_ARG', op, `options.activations 'int8' (W4A8) needs int4 or uint4 weights, got ${qt.dtype}`);
  }
  const act8 = !w8 && acts === 'int8';
  const [K, N] = qt.shape;
  if (t.ndim < 1 || t.shape[t.ndim - 1] !== K) {
    throw new TesseraError('E_SHAPE', op, `x ${fmtShape(t.shape)} must end in K = ${K} to multiply the quantized weight [${K}, ${N}]`);
  }
  const d = computeDType(t.dtype);
  if (!isFloatDType(d)) throw new TesseraError('E_DTYPE', op, `x must be a float tensor, got ${t.dtype}`);
  const outShape = [...t.shape.slice(0, -1), N];
  checkShape(outShape, op, 'the output shape (x without its last dim, then N)');
  return [[t, ...qt._tensors(op)], { ...qt._attrs(), M: t.size / K, outShape, outDtype: d, act8 }];
}

/** x [..., K] @ dequant(qw) -> [..., N], in x's float dtype; options.activations: see QmatmulOptions. */
export function qmatmul(x: Tensor, qw: QuantizedTensor, options?: QmatmulOptions): Tensor {
  const [inputs, attrs] = qmatmulArgs(x, qw, options);
  return dispatch('qmatmul', inputs, attrs) as Tensor;
}
export async function qmatmulAsync(x: Tensor, qw: QuantizedTensor, options?: QmatmulOptions): Promise<Tensor> {
  const [inputs, attrs] = qmatmulArgs(x, qw, options);
  return (await dispatchAsync('qmatmul', inputs, attrs)) as Tensor;
}
