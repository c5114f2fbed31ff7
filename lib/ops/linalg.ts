/**
 * matmul (torch.matmul semantics: 1-D operands, broadcast batch dims), linear (x @ wᵀ + b) and
 * scaled dot-product attention in the PyTorch SDPA layout [B, H, S, D]. The *Async forms run the
 * native kernels off the main thread (cpu and cuda backends) and resolve with the result.
 */
import { TesseraError, describe } from '../errors';
import { dispatch, dispatchAsync } from '../registry';
import { Tensor, assertTensor } from '../tensor';
import { matmulShape } from '../backends/js/matmul';
import { checkBool, checkInt, checkNumber, checkOptions, checkShape, fmtShape } from '../validate';
import { broadcastShapes } from '../backends/js/elementwise';
import { isFloatDType, promoteTypes } from './common';

function matmulArgs(op: string, a: unknown, b: unknown): [Tensor[], { outDtype: string; shape: number[] }] {
  const ta = assertTensor(a, op, 'a');
  const tb = assertTensor(b, op, 'b');
  if (ta.ndim === 0 || tb.ndim === 0) {
    throw new TesseraError('E_SHAPE', op, `both operands need at least 1 dim, got ${fmtShape(ta.shape)} (a) and ${fmtShape(tb.shape)} (b)`);
  }
  const shape = matmulShape(ta.shape.slice(), tb.shape.slice());
  if (!shape) {
    throw new TesseraError('E_SHAPE', op, `cannot multiply a ${fmtShape(ta.shape)} by b ${fmtShape(tb.shape)}: inner dims ${ta.shape[ta.ndim - 1]} and ${tb.shape[Math.max(tb.ndim - 2, 0)]} or batch dims do not match`);
  }
  checkShape(shape, op, `output shape of a ${fmtShape(ta.shape)} @ b ${fmtShape(tb.shape)}`);
  return [[ta, tb], { outDtype: promoteTypes(ta.dtype, tb.dtype), shape }];
}

/** a @ b with torch.matmul semantics. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const [inputs, attrs] = matmulArgs('matmul', a, b);
  return dispatch('matmul', inputs, attrs) as Tensor;
}
/** matmul off the main thread (native backends); same result as matmul(). */
export async function matmulAsync(a: Tensor, b: Tensor): Promise<Tensor> {
  const [inputs, attrs] = matmulArgs('matmul', a, b);
  return (await dispatchAsync('matmul', inputs, attrs)) as Tensor;
}

/** x [..., K] @ weight[N, K]ᵀ + bias[N] (the PyTorch Linear layout). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const op = 'linear';
  const t = assertTensor(x, op, 'x');
  const w = assertTensor(weight, op, 'weight');
  if (t.ndim < 1 || w.ndim !== 2 || t.shape[t.ndim - 1] !== w.shape[1]) {
    throw new TesseraError('E_SHAPE', op, `x ${fmtShape(t.shape)} must end in K and weight must be [N, K]; got weight ${fmtShape(w.shape)}`);
  }
  checkShape([...t.shape.slice(0, -1), w.shape[0]], op, `output shape of x ${fmtShape(t.shape)} and weight ${fmtShape(w.shape)}`);
  const inputs = [t, w];
  let outDtype = promoteTypes(t.dtype, w.dtype);
  if (bias !== null && bias !== undefined) {
    const b = assertTensor(bias, op, 'bias');
    if (b.ndim !== 1 || b.shape[0] !== w.shape[0]) {
      throw new TesseraError('E_SHAPE', op, `bias must be [${w.shape[0]}] (N of weight ${fmtShape(w.shape)}), got ${fmtShape(b.shape)}`);
    }
    inputs.push(b);
    outDtype = promoteTypes(outDtype, b.dtype);
  }
  return dispatch(op, inputs, { outDtype, hasBias: inputs.length === 3 }) as Tensor;
}

export interface AttentionOptions {
  /** causal mask aligned to the end: query i sees key j iff j <= kvOffset + i */
  causal?: boolean;
  /** multiplies q·k (default 1/sqrt(D)) */
  scale?: number;
  /** absolute position of query row 0 among the keys (default Sk − Sq) */
  kvOffset?: number;
  /** additive float mask broadcastable to [B, Hq, Sq, Sk] */
  mask?: Tensor | null;
}

export interface AttentionAttrs {
  causal: boolean;
  scale: number;
  kvOffset: number;
  hasMask: boolean;
  outDtype: string;
  B: number; Hq: number; Hkv: number; Sq: number; Sk: number; D: number; Dv: number;
}

function attentionArgs(q: unknown, k: unknown, v: unknown, options: unknown): [Tensor[], AttentionAttrs] {
  const op = 'attention';
  const tq = assertTensor(q, op, 'q');
  const tk = assertTensor(k, op, 'k');
  const tv = assertTensor(v, op, 'v');
  const o = checkOptions(options, op);
  for (const [name, t] of [['q', tq], ['k', tk], ['v', tv]] as const) {
    if (t.ndim !== 4) throw new TesseraError('E_SHAPE', op, `${name} must be 4-D [B, H, S, D], got ${fmtShape(t.shape)}`);
    if (!isFloatDType(t.dtype) || t.dtype.startsWith('float8')) {
      throw new TesseraError('E_DTYPE', op, `${name} must be float32, float64, float16 or bfloat16, got ${t.dtype}`);
    }
  }
  if (tq.dtype !== tk.dtype || tq.dtype !== tv.dtype) {
    throw new TesseraError('E_DTYPE', op, `q, k, v must share a dtype, got ${tq.dtype}, ${tk.dtype}, ${tv.dtype}`);
  }
  const [B, Hq, Sq, D] = tq.shape;
  const [Bk, Hkv, Sk, Dk] = tk.shape;
  const [Bv, Hv, Sv, Dv] = tv.shape;
  const shapes = `q ${fmtShape(tq.shape)}, k ${fmtShape(tk.shape)}, v ${fmtShape(tv.shape)}`;
  if (Bk !== B || Bv !== B) throw new TesseraError('E_SHAPE', op, `batch sizes differ: ${shapes}`);
  if (Dk !== D) throw new TesseraError('E_SHAPE', op, `q and k head dims differ: ${shapes}`);
  if (Hv !== Hkv || Sv !== Sk) throw new TesseraError('E_SHAPE', op, `k and v must have the same heads and length: ${shapes}`);
  if (Hkv === 0 || Hq % Hkv !== 0) throw new TesseraError('E_SHAPE', op, `query heads (${Hq}) must be a multiple of kv heads (${Hkv}): ${shapes}`);
  checkShape([B, Hq, Sq, Dv], op, `output shape [B, Hq, Sq, Dv] for ${shapes}`);
  const causal = o.causal === undefined ? false : checkBool(o.causal, op, 'options.causal');
  const scale = o.scale === undefined || o.scale === null ? 1 / Math.sqrt(Math.max(D, 1)) : checkNumber(o.scale, op, 'options.scale');
  const kvOffset = o.kvOffset === undefined ? Sk - Sq : checkInt(o.kvOffset, op, 'options.kvOffset', -(2 ** 31), 2 ** 31 - 1);
  const inputs = [tq, tk, tv];
  if (o.mask !== undefined && o.mask !== null) {
    const m = assertTensor(o.mask, op, 'options.mask');
    if (!isFloatDType(m.dtype)) {
      // torch reads a bool mask as keep/drop; adding its 0/1 would silently differ, so ask for the float form
      throw new TesseraError('E_DTYPE', op, `options.mask must be an additive float mask (0 or -Infinity), got ${m.dtype} ${fmtShape(m.shape)}; for a boolean keep-mask pass where(mask, 0, -Infinity)`);
    }
    const target = [B, Hq, Sq, Sk];
    const bs = broadcastShapes(m.shape.slice(), target);
    if (m.ndim > 4 || !bs || bs.some((d, i) => d !== target[i])) {
      throw new TesseraError('E_SHAPE', op, `options.mask ${fmtShape(m.shape)} must broadcast to [B, Hq, Sq, Sk] = ${fmtShape(target)}`);
    }
    inputs.push(m);
  } else if (o.mask !== undefined && o.mask !== null) {
    throw new TesseraError('E_TYPE', op, `options.mask must be a Tensor, got ${describe(o.mask)}`);
  }
  return [inputs, { causal, scale, kvOffset, hasMask: inputs.length === 4, outDtype: tq.dtype, B, Hq, Hkv, Sq, Sk, D, Dv }];
}

/** softmax(scale · q kᵀ + mask) v; q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] -> [B, Hq, Sq, Dv]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Tensor {
  const [inputs, attrs] = attentionArgs(q, k, v, options);
  return dispatch('attention', inputs, attrs) as Tensor;
}
export async function attentionAsync(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Promise<Tensor> {
  const [inputs, attrs] = attentionArgs(q, k, v, options);
  return (await dispatchAsync('attention', inputs, attrs)) as Tensor;
}
