/**
 * The 'cpu' backend: kernels that run in the native addon (C++ with AVX2/FMA dispatch, own thread pool).
 * float32 runs directly; float16/bfloat16 are widened to float32 on the way in and rounded on the way out
 * (the fast kernels of the CPU issue convert while packing). Ops the addon lacks fall through to 'js'.
 */
import { DType } from '../../dtype';
import { TesseraError } from '../../errors';
import { registerKernel, setBackendInfo } from '../../registry';
import { Tensor } from '../../tensor';
import { broadcastShapes } from '../js/elementwise';
import { f32View, fromOut, hostStorage } from '../host';
import { CpuBinding, loadCpuBinding } from './binding';

const NATIVE_DTYPES = new Set<DType>(['float32', 'float16', 'bfloat16']);

interface Operand { data: Float32Array; trans: boolean }

/** t viewed as [..., R, C]: its float32 data and whether the last two dims are stored transposed. */
function operand(t: Tensor): Operand {
  if (t.dtype === 'float32' && t.ndim >= 2 && !t.isContiguous()) {
    const tt = t.transpose(-2, -1);
    const whole = tt.isContiguous() && tt.offset === 0 && tt._s.numel === tt.size;
    const data = whole ? (hostStorage(tt) as Float32Array) : null;
    tt.dispose();
    if (data) return { data, trans: true };
  }
  return { data: f32View(t), trans: false };
}

function prod(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

interface MatmulPlan {
  args: [Float32Array, Float32Array, Float32Array, number, number, number, number, number, number, boolean, boolean];
  out: Float32Array;
  shape: number[];
}

function planMatmul(a: Tensor, b: Tensor, outShape: number[]): MatmulPlan {
  // 1-D operands as torch does: a [K] -> [1, K], b [K] -> [K, 1]; the output shape already drops them
  const A = a.ndim === 1 ? a.reshape(1, a.shape[0]) : a;
  const Bt = b.ndim === 1 ? b.reshape(b.shape[0], 1) : b;
  const M = A.shape[A.ndim - 2];
  const K = A.shape[A.ndim - 1];
  const N = Bt.shape[Bt.ndim - 1];
  const aBatch = A.shape.slice(0, -2);
  const bBatch = Bt.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatch, bBatch)!;
  const batch = prod(batchShape);
  let ea = A;
  let eb = Bt;
  if (prod(aBatch) !== batch && prod(aBatch) !== 1) ea = A.expand([...batchShape, M, K]).contiguous();
  if (prod(bBatch) !== batch && prod(bBatch) !== 1) eb = Bt.expand([...batchShape, K, N]).contiguous();
  const oa = operand(ea);
  const ob = operand(eb);
  const strideA = prod(ea.shape.slice(0, -2)) === 1 ? 0 : M * K;
  const strideB = prod(eb.shape.slice(0, -2)) === 1 ? 0 : K * N;
  for (const t of [A, Bt, ea, eb]) if (t !== a && t !== b) t.dispose();
  const out = new Float32Array(batch * M * N);
  // a shared weight with an untransposed A: one tall GEMM instead of `batch` small ones
  if (strideB === 0 && strideA !== 0 && !oa.trans) {
    return { args: [oa.data, ob.data, out, 1, batch * M, N, K, 0, 0, false, ob.trans], out, shape: outShape };
  }
  return { args: [oa.data, ob.data, out, batch, M, N, K, strideA, strideB, oa.trans, ob.trans], out, shape: outShape };
}

function native(op: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    throw new TesseraError('E_NATIVE', op, (e as Error).message);
  }
}

function matmulSupports(inputs: Tensor[], attrs: { outDtype: DType; shape: number[] }): true | string {
  if (!inputs.every((t) => NATIVE_DTYPES.has(t.dtype))) return 'dtype';
  if (!NATIVE_DTYPES.has(attrs.outDtype)) return 'out dtype';
  if (inputs.some((t) => t.size === 0)) return 'empty';
  return true;
}

interface AttnAttrs {
  causal: boolean; scale: number; kvOffset: number; hasMask: boolean; outDtype: DType;
  B: number; Hq: number; Hkv: number; Sq: number; Sk: number; D: number; Dv: number;
}

function attnArgs(inputs: Tensor[], at: AttnAttrs, out: Float32Array) {
  const [q, k, v] = inputs.map(f32View);
  return [q, k, v, out, at.B, at.Hq, at.Hkv, at.Sq, at.Sk, at.D, at.Dv, at.scale, at.causal, at.causal ? at.kvOffset : 0] as const;
}

export function registerCpuBackend(): void {
  const { binding, reason } = loadCpuBinding();
  if (!binding) {
    setBackendInfo({ name: 'cpu', device: 'cpu', available: false, reason, detail: {} });
    return;
  }
  const nb: CpuBinding = binding;
  const info = nb.info();
  setBackendInfo({ name: 'cpu', device: 'cpu', available: true, reason: '', detail: { ...info } });

  registerKernel({
    op: 'matmul',
    backend: 'cpu',
    variant: () => `gemm_f32_${info.simd}`,
    supports: matmulSupports,
    run(inputs, attrs) {
      const p = planMatmul(inputs[0], inputs[1], attrs.shape);
      native('matmul', () => nb.matmulF32(...p.args));
      return fromOut({ data: p.out, shape: p.shape }, attrs.outDtype);
    },
    async runAsync(inputs, attrs) {
      const p = planMatmul(inputs[0], inputs[1], attrs.shape);
      try {
        await nb.matmulF32Async(...p.args);
      } catch (e) {
        throw new TesseraError('E_NATIVE', 'matmul', (e as Error).message);
      }
      return fromOut({ data: p.out, shape: p.shape }, attrs.outDtype);
    },
  });

  registerKernel({
    op: 'linear',
    backend: 'cpu',
    variant: () => `gemm_f32_${info.simd}`,
    supports: (inputs, attrs) => matmulSupports(inputs, attrs),
    run(inputs, attrs) {
      const [x, w, b] = inputs;
      const K = x.shape[x.ndim - 1];
      const N = w.shape[0];
      const M = x.size / K;
      const out = new Float32Array(M * N);
      native('linear', () => nb.matmulF32(f32View(x), f32View(w), out, 1, M, N, K, 0, 0, false, true));
      if (b) {
        const bias = f32View(b);
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) out[i * N + j] += bias[j];
      }
      return fromOut({ data: out, shape: [...x.shape.slice(0, -1), N] }, attrs.outDtype);
    },
  });

  const attnSupports = (inputs: Tensor[], at: AttnAttrs): true | string => {
    if (at.hasMask) return 'mask';
    if (!NATIVE_DTYPES.has(inputs[0].dtype)) return 'dtype';
    if ([at.B, at.Hq, at.Hkv, at.Sq, at.Sk, at.D, at.Dv].some((d) => d === 0)) return 'empty';
    if (at.causal && at.kvOffset < 0) return 'negative kvOffset';
    return true;
  };
  registerKernel({
    op: 'attention',
    backend: 'cpu',
    variant: () => `flash_attention_f32_${info.simd}`,
    supports: attnSupports,
    run(inputs, at: AttnAttrs) {
      const out = new Float32Array(at.B * at.Hq * at.Sq * at.Dv);
      native('attention', () => nb.attentionF32(...attnArgs(inputs, at, out)));
      return fromOut({ data: out, shape: [at.B, at.Hq, at.Sq, at.Dv] }, at.outDtype);
    },
    async runAsync(inputs, at: AttnAttrs) {
      const out = new Float32Array(at.B * at.Hq * at.Sq * at.Dv);
      try {
        await nb.attentionF32Async(...attnArgs(inputs, at, out));
      } catch (e) {
        throw new TesseraError('E_NATIVE', 'attention', (e as Error).message);
      }
      return fromOut({ data: out, shape: [at.B, at.Hq, at.Sq, at.Dv] }, at.outDtype);
    },
  });
}

