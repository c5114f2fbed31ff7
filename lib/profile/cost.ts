/**
 * Work and traffic each op declares from its shapes: FLOPs (or integer ops) and bytes moved. One function
 * per op, keyed by the registry's OP_NAMES (the Record type makes a new op without a cost a compile error).
 *
 * Conventions (so the numbers can be checked by hand; test/profile.test.js does):
 *  - bytes = every input read once + every output written once, at the dtype's storage size (float32 4 B,
 *    bf16/f16 2 B, int8/fp8/bool 1 B, packed int4/uint4 0.5 B). Caches, re-reads of tiles and the
 *    expansion of broadcast inputs are not counted: this is the minimum traffic, the roofline's view.
 *    Exception: embedding reads only the gathered rows (ids + rows read + rows written).
 *  - matmul 2·batch·M·N·K (a multiply and an add per MAC); linear the same plus M·N for the bias.
 *  - attention 2·B·Hq·P·(D + Dv), P = (query, key) pairs computed: Sq·Sk, or with `causal` exactly the
 *    visible pairs (query i sees key j iff j <= kvOffset + i), i.e. S(S+1)/2 for a square mask, not a flat
 *    half. Softmax and the mask add are not counted (the FlashAttention convention: matmul FLOPs only).
 *  - qmatmul 2·M·N·K; int8 (W8A8) counts integer ops, unit 'op' (GOP/s), the others are float FLOPs.
 *  - spmm 2·nnz·N, nnz = stored entries (csr nonzeros; 2:4 kept slots, M·K/2).
 *  - elementwise (unary, binary, where) 1 per output element, transcendental or not; reductions,
 *    cumsum, arg-reductions and topk 1 per input element; softmax/logSoftmax 5 per element (max, sub,
 *    exp, sum, div); rmsNorm 3 per element (square, add, scale) +1 with a weight; layerNorm 6 (mean add,
 *    sub + square + add for the variance, sub + scale) +1 weight +1 bias; rope 3 per rotated element;
 *    dequantize 1 per element (+1 with zero points); quantize 3 (abs-max, scale, round); layout ops
 *    (cat, tril, triu, embedding, sparseToDense) 0; sparseFromDense 1 per element (the compare).
 */
import { DType, dtypeInfo } from '../dtype';
import { OpName } from '../registry';

export interface TensorMeta {
  shape: readonly number[];
  dtype: DType;
}

export interface CostInput {
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  attrs: any;
}

export interface Cost {
  /** floating-point operations, or integer operations when unit is 'op' */
  flops: number;
  /** bytes read + written (see the conventions above) */
  bytes: number;
  unit: 'flop' | 'op';
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Storage bytes of one element: packed int4 is half a byte. */
export function elementBytes(d: DType): number {
  return dtypeInfo(d).bits / 8;
}

export function fmtTensor(t: TensorMeta): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

export function tensorBytes(t: TensorMeta): number {
  return numel(t.shape) * elementBytes(t.dtype);
}

function allBytes(c: CostInput): number {
  let b = 0;
  for (const t of c.inputs) b += tensorBytes(t);
  for (const t of c.outputs) b += tensorBytes(t);
  return b;
}

const outNumel = (c: CostInput): number => (c.outputs.length ? numel(c.outputs[0].shape) : 0);
const inNumel = (c: CostInput): number => (c.inputs.length ? numel(c.inputs[0].shape) : 0);

/** FLOPs = k per element of the output (or input), bytes by the default rule. */
const perOut = (k: number) => (c: CostInput): Cost => ({ flops: k * outNumel(c), bytes: allBytes(c), unit: 'flop' });
const perIn = (k: number) => (c: CostInput): Cost => ({ flops: k * inNumel(c), bytes: allBytes(c), unit: 'flop' });
const moveOnly = (c: CostInput): Cost => ({ flops: 0, bytes: allBytes(c), unit: 'flop' });

/**
 * (query, key) pairs an attention kernel computes: all Sq·Sk, or with a causal mask the visible ones,
 * query i seeing keys 0 .. min(kvOffset + i, Sk − 1) (none when kvOffset + i < 0).
 */
export function attentionPairs(Sq: number, Sk: number, causal: boolean, kvOffset: number): number {
  if (!causal) return Sq * Sk;
  let p = 0;
  for (let i = 0; i < Sq; i++) p += Math.min(Math.max(kvOffset + i + 1, 0), Sk);
  return p;
}

const last = (t: TensorMeta): number => t.shape[t.shape.length - 1] ?? 1;

export const COST: Record<OpName, (c: CostInput) => Cost> = {
  add: perOut(1), sub: perOut(1), mul: perOut(1), div: perOut(1), pow: perOut(1),
  maximum: perOut(1), minimum: perOut(1), where: perOut(1),
  neg: perOut(1), abs: perOut(1), exp: perOut(1), log: perOut(1), sqrt: perOut(1), rsqrt: perOut(1),
  sin: perOut(1), cos: perOut(1), tanh: perOut(1), sigmoid: perOut(1), relu: perOut(1), silu: perOut(1),
  gelu: perOut(1), gelu_tanh: perOut(1), square: perOut(1),

  sum: perIn(1), mean: perIn(1), max: perIn(1), min: perIn(1), argmax: perIn(1), argmin: perIn(1),
  cumsum: perIn(1), topk: perIn(1),
  softmax: perIn(5), logSoftmax: perIn(5),
  rmsNorm: (c) => perIn(3 + (c.attrs?.hasWeight ? 1 : 0))(c),
  layerNorm: (c) => perIn(6 + (c.attrs?.hasWeight ? 1 : 0) + (c.attrs?.hasBias ? 1 : 0))(c),

  embedding: (c) => {
    const ids = c.inputs[0] ? tensorBytes(c.inputs[0]) : 0;
    const rows = c.outputs[0] ? tensorBytes(c.outputs[0]) : 0;
    return { flops: 0, bytes: ids + 2 * rows, unit: 'flop' };
  },
  cat: moveOnly, tril: moveOnly, triu: moveOnly,
  rope: (c) => {
    const x = c.inputs[0];
    const D = last(x);
    const rotary = typeof c.attrs?.rotaryDim === 'number' ? c.attrs.rotaryDim : D;
    return { flops: D ? (3 * numel(x.shape) * rotary) / D : 0, bytes: allBytes(c), unit: 'flop' };
  },

  matmul: (c) => ({ flops: 2 * outNumel(c) * last(c.inputs[0]), bytes: allBytes(c), unit: 'flop' }),
  linear: (c) => {
    const mn = outNumel(c);
    return { flops: 2 * mn * last(c.inputs[0]) + (c.inputs.length > 2 ? mn : 0), bytes: allBytes(c), unit: 'flop' };
  },
  attention: (c) => {
    const a = c.attrs;
    const pairs = attentionPairs(a.Sq, a.Sk, !!a.causal, a.kvOffset ?? a.Sk - a.Sq);
    return { flops: 2 * a.B * a.Hq * pairs * (a.D + a.Dv), bytes: allBytes(c), unit: 'flop' };
  },
  quantize: perIn(3),
  dequantize: (c) => perOut(c.inputs.length > 2 ? 2 : 1)(c),
  qmatmul: (c) => {
    const a = c.attrs;
    return { flops: 2 * a.M * a.N * a.K, bytes: allBytes(c), unit: a.qdtype === 'int8' ? 'op' : 'flop' };
  },
  sparseFromDense: perIn(1),
  sparseToDense: moveOnly,
  spmm: (c) => {
    const a = c.attrs;
    const values = a.format === 'csr' ? c.inputs[2] : c.inputs[0];
    return { flops: 2 * numel(values.shape) * a.N, bytes: allBytes(c), unit: 'flop' };
  },
};

/** The declared cost of one kernel call; an op that throws while counting (odd attrs) costs 0 FLOPs. */
export function opCost(op: OpName, c: CostInput): Cost {
  const f = COST[op];
  try {
    const r = f(c);
    if (Number.isFinite(r.flops) && Number.isFinite(r.bytes)) return r;
  } catch {
    /* fall through: never let accounting break a profile */
  }
  return { flops: 0, bytes: allBytes(c), unit: 'flop' };
}
