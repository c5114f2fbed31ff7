/**
 * The 'cpu' backend: kernels that run in the native addon (C++ with AVX2/FMA dispatch, own thread pool).
 * float32 runs directly; float16/bfloat16 are widened to float32 on the way in and rounded on the way out
 * (the fast kernels of the CPU issue convert while packing). Ops the addon lacks fall through to 'js'.
 */
import { DType } from '../../dtype';
import { TesseraError } from '../../errors';
import { registerKernel, setBackendInfo } from '../../registry';
import { setHostRecycler } from '../../storage';
import { Tensor } from '../../tensor';
import { broadcastShapes } from '../js/elementwise';
import { f32View, fromOut, hostStorage } from '../host';
import { CpuBinding, QgemmPacked, loadCpuBinding } from './binding';

const NATIVE_DTYPES = new Set<DType>(['float32', 'float16', 'bfloat16']);

type GemmDtype = 'float32' | 'float16' | 'bfloat16';
interface Operand { data: Float32Array | Uint16Array; trans: boolean; dtype: GemmDtype }

const isHalf = (t: Tensor) => t.dtype === 'float16' || t.dtype === 'bfloat16';

/** t viewed as [..., R, C]: its data and whether the last two dims are stored transposed. With `raw` (the
 *  addon widens half operands while packing) float16/bfloat16 stay raw bits; otherwise they are widened here. */
function operand(t: Tensor, raw: boolean): Operand {
  const keep = t.dtype === 'float32' || (raw && isHalf(t));
  const dtype: GemmDtype = keep ? (t.dtype as GemmDtype) : 'float32';
  if (keep && t.ndim >= 2 && !t.isContiguous()) {
    const tt = t.transpose(-2, -1);
    const whole = tt.isContiguous() && tt.offset === 0 && tt._s.numel === tt.size;
    const data = whole ? (hostStorage(tt) as Float32Array | Uint16Array) : null;
    tt.dispose();
    if (data) return { data, trans: true, dtype };
  }
  if (keep && dtype !== 'float32') return { data: hostStorage(t) as Uint16Array, trans: false, dtype };
  return { data: f32View(t), trans: false, dtype: 'float32' };
}

function prod(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

interface MatmulPlan {
  args: [Float32Array | Uint16Array, Float32Array | Uint16Array, Float32Array, number, number, number, number, number, number, boolean, boolean];
  dtypes: [GemmDtype, GemmDtype];
  out: Float32Array;
  shape: number[];
}

/** The addon's output pool (allocF32), set at registration when the addon has one. */
let poolAlloc: ((n: number) => Float32Array | null) | null = null;
/** The pooled outputs handed out and not yet given back (releaseF32 would refuse any other array anyway). */
const pooled = new WeakSet<Float32Array>();
let poolRelease: ((a: Float32Array) => void) | null = null;
/** Hands a pooled output back at once (its ArrayBuffer detached); other arrays are left alone. */
function recycle(a: unknown): void {
  if (poolRelease && a instanceof Float32Array && pooled.has(a)) {
    pooled.delete(a);
    poolRelease(a);
  }
}
/** k_pool_min_bytes of native/out_pool.h: smaller outputs skip the native call (it would return null). */
const POOL_MIN_BYTES = 1 << 18;

/**
 * A float32 output for a native kernel that overwrites every element (gemm, attention, spmm, qgemm: see their
 * headers), never zero-filled. Large outputs come from the addon's pool (native/out_pool.h): blocks given back
 * by dispose() (recycle) or by the garbage collector are handed out again warm, where fresh memory would
 * fault in every 4 KB page on the kernel's first write (16.2 vs 14.6 ms for a 1024^3 GEMM on the 2-core
 * VM). Never handed out unwritten: a kernel that throws drops its output.
 */
function outBuffer(n: number): Float32Array {
  const fromPool = poolAlloc && n * 4 >= POOL_MIN_BYTES ? poolAlloc(n) : null;
  if (fromPool) {
    if (poolRelease) pooled.add(fromPool);
    return fromPool;
  }
  const bytes = Buffer.allocUnsafeSlow(n * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

/** A kernel's fresh, unshared float32 output as the result tensor: handed over as is for float32 (no copy),
 *  rounded into a new storage for the half dtypes. */
function result(out: Float32Array, shape: number[], dtype: DType): Tensor {
  if (dtype === 'float32') return Tensor._fromHost('float32', shape, out);
  const t = fromOut({ data: out, shape }, dtype);
  recycle(out); // rounded into t's own storage: nothing else holds out
  return t;
}

function planMatmul(a: Tensor, b: Tensor, outShape: number[], raw: boolean): MatmulPlan {
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
  const oa = operand(ea, raw);
  const ob = operand(eb, raw);
  const dtypes: [GemmDtype, GemmDtype] = [oa.dtype, ob.dtype];
  const strideA = prod(ea.shape.slice(0, -2)) === 1 ? 0 : M * K;
  const strideB = prod(eb.shape.slice(0, -2)) === 1 ? 0 : K * N;
  for (const t of [A, Bt, ea, eb]) if (t !== a && t !== b) t.dispose();
  const out = outBuffer(batch * M * N);
  // a shared weight with an untransposed A: one tall GEMM instead of `batch` small ones
  if (strideB === 0 && strideA !== 0 && !oa.trans) {
    return { args: [oa.data, ob.data, out, 1, batch * M, N, K, 0, 0, false, ob.trans], dtypes, out, shape: outShape };
  }
  return { args: [oa.data, ob.data, out, batch, M, N, K, strideA, strideB, oa.trans, ob.trans], dtypes, out, shape: outShape };
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

interface SpmmAttrs { format: string; M: number; K: number; N: number; outDtype: DType }

/** inputs: csr [rowPtr int32, colIdx int32, values, B]; 2:4 [values, meta uint8, B] (ops/sparse.ts). */
function spmmSupports(inputs: Tensor[], at: SpmmAttrs): true | string {
  const csr = at.format === 'csr';
  if (!csr && at.format !== '2:4') return 'format';
  const values = csr ? inputs[2] : inputs[0];
  if (!NATIVE_DTYPES.has(values.dtype) || !NATIVE_DTYPES.has(inputs[inputs.length - 1].dtype)) return 'dtype';
  if (!NATIVE_DTYPES.has(at.outDtype)) return 'out dtype';
  if (csr ? inputs[0].dtype !== 'int32' || inputs[1].dtype !== 'int32' : inputs[1].dtype !== 'uint8') return 'index dtype';
  if (at.M === 0 || at.K === 0 || at.N === 0) return 'empty';
  return true;
}

/** The native spmm call, sync and async forms, into a new [M, N] float32 out; f16/bf16 values and B are widened here. */
function spmmCall(nb: CpuBinding, inputs: Tensor[], at: SpmmAttrs): { out: Float32Array; run: () => void; runAsync: () => Promise<void> } {
  const out = outBuffer(at.M * at.N);
  const b = f32View(inputs[inputs.length - 1]);
  if (at.format === 'csr') {
    const [rowPtr, colIdx, values] = inputs;
    const a = [hostStorage(rowPtr) as Int32Array, hostStorage(colIdx) as Int32Array, f32View(values), b, out, at.M, at.K, at.N, colIdx.size] as const;
    return { out, run: () => nb.spmmCsrF32(...a), runAsync: () => nb.spmmCsrF32Async(...a) };
  }
  const a = [f32View(inputs[0]), hostStorage(inputs[1]) as Uint8Array, b, out, at.M, at.K, at.N] as const;
  return { out, run: () => nb.spmm24F32(...a), runAsync: () => nb.spmm24F32Async(...a) };
}

/** The [M, N] result: a float32 out is handed over as is (it is fresh and unshared), others are rounded. */
function spmmResult(out: Float32Array, at: SpmmAttrs): Tensor {
  return result(out, [at.M, at.N], at.outDtype);
}

interface QAttrs { qdtype: string; K: number; N: number; groupSize: number; perTensor: boolean; M: number; outShape: number[]; outDtype: DType; act8?: boolean }

/**
 * Packed weights, made once per QuantizedTensor: keyed by the values' storage block (aliases from .to('cpu')
 * share it) and checked against the scales/zeros storage, the layout and the storages' versions, so writing
 * a part in place (Tensor.copy_) repacks on the next qmatmul.
 */
const qgemmCache = new WeakMap<object, { sig: unknown[]; packed: QgemmPacked }>();

/** What the packed copy depends on: layout attrs, and each part's storage, offset, strides and version. */
function qgemmSignature(inputs: Tensor[], at: QAttrs): unknown[] {
  const sig: unknown[] = [at.qdtype, at.K, at.N, at.groupSize, at.perTensor];
  for (let i = 1; i < 4; i++) {
    const t = inputs[i];
    if (!t) {
      sig.push(null);
      continue;
    }
    sig.push(t._s, t._s.version, t.offset, ...t.strides);
  }
  return sig;
}

function sameSignature(a: unknown[], b: unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function qgemmPacked(nb: CpuBinding, inputs: Tensor[], at: QAttrs): QgemmPacked {
  const [, values, scales, zeros] = inputs;
  const sig = qgemmSignature(inputs, at);
  const hit = qgemmCache.get(values._s);
  if (hit && sameSignature(hit.sig, sig)) return hit.packed;
  const packed = nb.qgemmPrepack(at.qdtype, at.K, at.N, at.groupSize, at.perTensor, hostStorage(values) as Int8Array | Uint8Array,
    hostStorage(scales) as Float32Array, zeros ? (hostStorage(zeros) as Float32Array) : null);
  qgemmCache.set(values._s, { sig, packed });
  return packed;
}

/** qgemm arguments for inputs [x, values, scales, zeros?] (ops/quant.ts); f16/bf16 x goes in as raw bits. */
function qgemmArgs(nb: CpuBinding, inputs: Tensor[], at: QAttrs, out: Float32Array) {
  const x = hostStorage(inputs[0]) as Float32Array | Uint16Array;
  return [qgemmPacked(nb, inputs, at), x, out, at.M, inputs[0].dtype, at.act8 ? 'int8' : 'float'] as const;
}

export function registerCpuBackend(): void {
  const { binding, reason } = loadCpuBinding();
  if (!binding) {
    setBackendInfo({ name: 'cpu', device: 'cpu', available: false, reason, detail: {} });
    return;
  }
  const nb: CpuBinding = binding;
  poolAlloc = typeof nb.allocF32 === 'function' ? (n) => nb.allocF32!(n) : null;
  // dispose of the last tensor on a pooled output returns it at once (storage.ts); async ops hold their
  // inputs' storage until they settle (registry.ts dispatchAsync), so no kernel still reads a returned block
  if (poolAlloc && typeof nb.releaseF32 === 'function') {
    poolRelease = (a) => void nb.releaseF32!(a);
    setHostRecycler(recycle);
  }
  const info = nb.info();
  setBackendInfo({ name: 'cpu', device: 'cpu', available: true, reason: '', detail: { ...info } });

  // float16/bfloat16 operands go to the addon as raw bits, widened while packed (matmulMixed)
  const raw = typeof nb.matmulMixed === 'function' && typeof nb.matmulMixedAsync === 'function';
  const gemmVariant = (inputs: Tensor[]) => (raw && inputs.some(isHalf) ? `gemm_half_${info.simd}` : `gemm_f32_${info.simd}`);
  const runPlan = (p: MatmulPlan): void => {
    if (p.dtypes[0] === 'float32' && p.dtypes[1] === 'float32') nb.matmulF32(...(p.args as Parameters<CpuBinding['matmulF32']>));
    else nb.matmulMixed!(...p.args, ...p.dtypes);
  };
  const runPlanAsync = (p: MatmulPlan): Promise<void> =>
    p.dtypes[0] === 'float32' && p.dtypes[1] === 'float32'
      ? nb.matmulF32Async(...(p.args as Parameters<CpuBinding['matmulF32Async']>))
      : nb.matmulMixedAsync!(...p.args, ...p.dtypes);

  registerKernel({
    op: 'matmul',
    backend: 'cpu',
    variant: gemmVariant,
    supports: matmulSupports,
    run(inputs, attrs) {
      const p = planMatmul(inputs[0], inputs[1], attrs.shape, raw);
      native('matmul', () => runPlan(p));
      return result(p.out, p.shape, attrs.outDtype);
    },
    async runAsync(inputs, attrs) {
      const p = planMatmul(inputs[0], inputs[1], attrs.shape, raw);
      try {
        await runPlanAsync(p);
      } catch (e) {
        throw new TesseraError('E_NATIVE', 'matmul', (e as Error).message);
      }
      return result(p.out, p.shape, attrs.outDtype);
    },
  });

  registerKernel({
    op: 'linear',
    backend: 'cpu',
    variant: gemmVariant,
    supports: (inputs, attrs) => matmulSupports(inputs, attrs),
    run(inputs, attrs) {
      const [x, w, b] = inputs;
      const K = x.shape[x.ndim - 1];
      const N = w.shape[0];
      const M = x.size / K;
      const out = outBuffer(M * N);
      // x [..., K] as M x K rows (contiguous data); w [N, K], whose transposed storage operand() may find
      const ox: Operand = raw && isHalf(x) ? { data: hostStorage(x) as Uint16Array, trans: false, dtype: x.dtype as GemmDtype } : { data: f32View(x), trans: false, dtype: 'float32' };
      const ow = operand(w, raw);
      // w [N, K] as B = w^T: stored transposed, unless operand() found w itself stored transposed
      const args = [ox.data, ow.data, out, 1, M, N, K, 0, 0, false, !ow.trans] as MatmulPlan['args'];
      native('linear', () => runPlan({ args, dtypes: [ox.dtype, ow.dtype], out, shape: [] }));
      if (b) {
        const bias = f32View(b);
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) out[i * N + j] += bias[j];
      }
      return result(out, [...x.shape.slice(0, -1), N], attrs.outDtype);
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
      const out = outBuffer(at.B * at.Hq * at.Sq * at.Dv);
      native('attention', () => nb.attentionF32(...attnArgs(inputs, at, out)));
      return result(out, [at.B, at.Hq, at.Sq, at.Dv], at.outDtype);
    },
    async runAsync(inputs, at: AttnAttrs) {
      const out = outBuffer(at.B * at.Hq * at.Sq * at.Dv);
      try {
        await nb.attentionF32Async(...attnArgs(inputs, at, out));
      } catch (e) {
        throw new TesseraError('E_NATIVE', 'attention', (e as Error).message);
      }
      return result(out, [at.B, at.Hq, at.Sq, at.Dv], at.outDtype);
    },
  });

  registerKernel({
    op: 'spmm',
    backend: 'cpu',
    variant: (_i: Tensor[], at: SpmmAttrs) => `${at.format === 'csr' ? 'spmm_csr' : 'spmm_2to4'}_f32_${info.simd}`,
    supports: spmmSupports,
    run(inputs, at: SpmmAttrs) {
      const c = spmmCall(nb, inputs, at);
      native('spmm', c.run);
      return spmmResult(c.out, at);
    },
    async runAsync(inputs, at: SpmmAttrs) {
      const c = spmmCall(nb, inputs, at);
      try {
        await c.runAsync();
      } catch (e) {
        throw new TesseraError('E_NATIVE', 'spmm', (e as Error).message);
      }
      return spmmResult(c.out, at);
    },
  });

  // an older prebuilt addon may lack qgemm: qmatmul then stays on js
  if (typeof nb.qgemmPrepack === 'function') {
    registerKernel({
      op: 'qmatmul',
      backend: 'cpu',
      variant: (_i: Tensor[], at: QAttrs) => `qgemm_${at.qdtype === 'int8' ? 'w8a8' : at.act8 ? `${at.qdtype}_a8` : `${at.qdtype}_weight_only`}_${info.simd}`,
      supports(inputs: Tensor[], at: QAttrs) {
        if (!NATIVE_DTYPES.has(inputs[0].dtype)) return 'dtype';
        if (!NATIVE_DTYPES.has(at.outDtype)) return 'out dtype';
        if (at.M === 0) return 'empty';
        return true;
      },
      run(inputs, at: QAttrs) {
        const out = outBuffer(at.M * at.N);
        native('qmatmul', () => nb.qgemm(...qgemmArgs(nb, inputs, at, out)));
        return result(out, at.outShape, at.outDtype);
      },
      async runAsync(inputs, at: QAttrs) {
        const out = outBuffer(at.M * at.N);
        try {
          await nb.qgemmAsync(...qgemmArgs(nb, inputs, at, out));
        } catch (e) {
          throw new TesseraError('E_NATIVE', 'qmatmul', (e as Error).message);
        }
        return result(out, at.outShape, at.outDtype);
      },
    });
  }
}

