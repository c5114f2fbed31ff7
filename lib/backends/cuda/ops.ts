/**
 * The cuda backend's tensor kernels (cuda/ops_*.cu through cuda/ops_addon.cc): every op of the foundation
 * set runs on device for float32, float16 and bfloat16 (float32 math inside), except topk, which takes
 * the registry's host round trip (correct, slow; a device sort earns its place when a model needs it).
 *
 * Each kernel's supports() returns a reason for what it does not take (integer outputs, dtypes without a
 * device form such as float64 or fp8, more than 8 dims), and dispatch then falls back to the host round
 * trip. Inputs are passed as views (buffer, offset, shape, strides): the elementwise kernels and matmul
 * read any strides directly (broadcast = stride 0, a transposed weight needs no copy); kernels that want
 * a dense row layout (softmax, cumsum, norms, rope, tril/triu, embedding ids, linear's x) get a device
 * copy of a non-contiguous input first (copyStrided: never the host).
 * Every call only queues work on the backend's one stream; results are read back by data()/dataAsync().
 */
import { DType } from '../../dtype';
import { TesseraError } from '../../errors';
import { OpName, registerKernel } from '../../registry';
import { StorageBlock } from '../../storage';
import { Tensor, contiguousStrides } from '../../tensor';
import { broadcastShapes } from '../js/elementwise';
import { CudaBinding, CudaBuffer, CudaTensorRef } from './native';

/** dtype codes of cuda/ops.cuh (DType). */
export const CUDA_DTYPE: Partial<Record<DType, number>> = {
  float32: 0, float16: 1, bfloat16: 2, int32: 3, uint8: 4, int8: 5, bool: 6,
};
const FLOATS = new Set<DType>(['float32', 'float16', 'bfloat16']);
const MAX_DIMS = 8;

let cb: CudaBinding | null = null;

function binding(op: string): CudaBinding {
  if (!cb) throw new TesseraError('E_BACKEND', op, 'the cuda backend is not loaded');
  return cb;
}

/** Runs an addon call; its coded errors become TesseraErrors (E_OOM stays E_OOM). */
function native<T>(op: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    const err = e as Error & { code?: string };
    const msg = err.message ?? String(e);
    if (err.code === 'E_OOM' || /out of memory/i.test(msg)) throw new TesseraError('E_OOM', op, msg);
    if (err.code === 'E_DISPOSED') throw new TesseraError('E_DISPOSED', op, msg);
    throw new TesseraError('E_NATIVE', op, msg);
  }
}

function f64(a: ArrayLike<number>): Float64Array {
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The kernel-side view of t, optionally reshaped/restrided (same storage). */
function ref(t: Tensor, shape: readonly number[] = t.shape, strides: readonly number[] = t.strides, off = t.offset): CudaTensorRef {
  return { h: t._s.handle as CudaBuffer, dt: CUDA_DTYPE[t.dtype] as number, off, shape, strides };
}

/** t read as if broadcast to shape (stride 0 where t has size 1 or lacks the dim). */
function broadcastRef(t: Tensor, shape: readonly number[]): CudaTensorRef {
  const lead = shape.length - t.ndim;
  const strides = shape.map((_, i) => (i >= lead && t.shape[i - lead] !== 1 ? t.strides[i - lead] : 0));
  return ref(t, shape, strides);
}

/** A new uninitialized device tensor (the kernel that gets it writes every element). */
function empty(dtype: DType, shape: readonly number[], op: string): Tensor {
  return new Tensor(StorageBlock.device('cuda', dtype, numel(shape), op), shape);
}

/** Allocates the output, runs the kernel into it, frees it again if the kernel throws. */
function produce(op: string, dtype: DType, shape: readonly number[], f: (out: Tensor) => void): Tensor {
  const out = empty(dtype, shape, op);
  try {
    native(op, () => f(out));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** A device copy of t in dtype (the cast kernel behind to(dtype) on device), contiguous. */
export function cudaCast(t: Tensor, dtype: DType, op = 'to'): Tensor {
  if (CUDA_DTYPE[t.dtype] === undefined || CUDA_DTYPE[dtype] === undefined) {
    throw new TesseraError('E_DTYPE', op, `no device conversion between ${t.dtype} and ${dtype}`);
  }
  return produce(op, dtype, t.shape, (out) => binding(op).copyStrided(ref(out), ref(t)));
}

/** t itself when its elements are row-major contiguous (any offset), else a contiguous device copy. */
export function cudaDense(t: Tensor, op = 'contiguous'): Tensor {
  return t.isContiguous() ? t : cudaCast(t, t.dtype, op);
}

/** Runs f on dense forms of ts, disposing the copies it made. */
function withDense<T>(ts: Tensor[], op: string, f: (d: Tensor[]) => T): T {
  const d: Tensor[] = [];
  try {
    for (const t of ts) d.push(cudaDense(t, op));
    return f(d);
  } finally {
    d.forEach((x, i) => {
      if (x !== ts[i]) x.dispose();
    });
  }
}

// ------------------------------------------------------------------------------------------ supports

type Attrs = { outDtype: DType } & Record<string, any>;

function why(inputs: Tensor[], at: Attrs, opts: { outs?: Set<DType>; ins?: Set<DType>; maxDims?: number } = {}): true | string {
  const outs = opts.outs ?? FLOATS;
  if (!outs.has(at.outDtype)) return `output dtype ${at.outDtype} has no cuda kernel (takes ${[...outs].join(', ')})`;
  for (const t of inputs) {
    if (opts.ins ? !opts.ins.has(t.dtype) : CUDA_DTYPE[t.dtype] === undefined) return `input dtype ${t.dtype} has no cuda kernel`;
    if (t.ndim > (opts.maxDims ?? MAX_DIMS)) return `more than ${opts.maxDims ?? MAX_DIMS} dims`;
  }
  return true;
}

function reg(op: OpName, variant: string | ((i: Tensor[], at: any) => string), supports: (i: Tensor[], at: any) => true | string,
  run: (i: Tensor[], at: any) => Tensor): void {
  registerKernel({ op, backend: 'cuda', variant, supports, run });
}

// ------------------------------------------------------------------------------------------ kernels

export function registerCudaOps(binding_: CudaBinding): void {
  cb = binding_;
  const b = binding_;

  for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const) {
    reg(op, `${op}_cuda`, (i, at) => (at.shape.length > MAX_DIMS ? `more than ${MAX_DIMS} dims` : why(i, at)),
      ([x, y], at) => produce(op, at.outDtype, at.shape, (out) => b.binary(op, ref(out), broadcastRef(x, at.shape), broadcastRef(y, at.shape))));
  }
  for (const op of ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'gelu_tanh', 'square'] as const) {
    reg(op, `${op}_cuda`, (i, at) => why(i, at),
      ([x], at) => produce(op, at.outDtype, x.shape, (out) => b.unary(op, ref(out), ref(x))));
  }
  reg('where', 'where_cuda', (i, at) => (at.shape.length > MAX_DIMS ? `more than ${MAX_DIMS} dims` : why(i, at)),
    ([c, x, y], at) => produce('where', at.outDtype, at.shape, (out) =>
      b.where(ref(out), broadcastRef(c, at.shape), broadcastRef(x, at.shape), broadcastRef(y, at.shape))));

  // reductions: x's dims reordered [kept..., reduced...]
  for (const op of ['sum', 'mean', 'max', 'min'] as const) {
    reg(op, `${op}_cuda`, (i, at) => why(i, at), ([x], at: Attrs & { dims: number[]; keepdim: boolean }) => {
      const red = new Set(at.dims);
      const kept = x.shape.map((_, d) => d).filter((d) => !red.has(d));
      const order = [...kept, ...at.dims];
      const shape = at.keepdim ? x.shape.map((s, d) => (red.has(d) ? 1 : s)) : kept.map((d) => x.shape[d]);
      return produce(op, at.outDtype, shape, (out) =>
        b.reduce(op, ref(out), ref(x, order.map((d) => x.shape[d]), order.map((d) => x.strides[d])), kept.length));
    });
  }
  for (const op of ['argmax', 'argmin'] as const) {
    reg(op, `${op}_cuda`, (i, at) => why(i, at, { outs: new Set<DType>(['int32']) }), ([x], at: Attrs & { dim: number | null; keepdim: boolean }) => {
      const all = x.shape.map((_, d) => d);
      const kept = at.dim === null ? [] : all.filter((d) => d !== at.dim);
      const order = at.dim === null ? all : [...kept, at.dim];
      let shape: number[];
      if (at.dim === null) shape = at.keepdim ? x.shape.map(() => 1) : [];
      else shape = at.keepdim ? x.shape.map((s, d) => (d === at.dim ? 1 : s)) : kept.map((d) => x.shape[d]);
      return produce(op, 'int32', shape, (out) =>
        b.reduce(op, ref(out), ref(x, order.map((d) => x.shape[d]), order.map((d) => x.strides[d])), kept.length));
    });
  }
  for (const op of ['softmax', 'logSoftmax'] as const) {
    reg(op, `${op}_cuda`, (i, at) => why(i, at), (inputs, at: Attrs & { dim: number }) =>
      withDense(inputs, op, ([x]) => produce(op, at.outDtype, x.shape, (out) => b.softmax(ref(out), ref(x), at.dim, op === 'logSoftmax'))));
  }
  reg('cumsum', 'cumsum_cuda', (i, at) => why(i, at), (inputs, at: Attrs & { dim: number }) =>
    withDense(inputs, 'cumsum', ([x]) => produce('cumsum', at.outDtype, x.shape, (out) => b.cumsum(ref(out), ref(x), at.dim))));

  // layer ops
  reg('rmsNorm', 'rmsNorm_cuda', (i, at) => why(i, at), (inputs, at: Attrs & { eps: number; hasWeight: boolean }) =>
    withDense([inputs[0]], 'rmsNorm', ([x]) => produce('rmsNorm', at.outDtype, x.shape, (out) =>
      b.rmsNorm(ref(out), ref(x), at.hasWeight ? ref(inputs[1]) : null, at.eps))));
  reg('layerNorm', 'layerNorm_cuda', (i, at) => why(i, at), (inputs, at: Attrs & { eps: number; hasWeight: boolean; hasBias: boolean }) => {
    let k = 1;
    const w = at.hasWeight ? inputs[k++] : null;
    const bias = at.hasBias ? inputs[k++] : null;
    return withDense([inputs[0]], 'layerNorm', ([x]) => produce('layerNorm', at.outDtype, x.shape, (out) =>
      b.layerNorm(ref(out), ref(x), w && ref(w), bias && ref(bias), at.eps)));
  });
  const ID_DTYPES = new Set<DType>(['int32', 'int8', 'uint8']);
  reg('embedding', 'embedding_cuda', ([ids, table], at) => {
    if (!ID_DTYPES.has(ids.dtype)) return `ids dtype ${ids.dtype}`;
    return why([table], at);
  }, ([ids, table], at) => withDense([ids], 'embedding', ([i]) =>
    produce('embedding', at.outDtype, [...i.shape, table.shape[1]], (out) => b.embedding(ref(out), ref(i), ref(table)))));
  reg('rope', (_i, at) => (at.interleaved ? 'rope_interleaved_cuda' : 'rope_cuda'), (i, at) => why(i, at),
    (inputs, at: Attrs & { positions: Float64Array; invFreq: Float64Array; rotaryDim: number; interleaved: boolean }) =>
      withDense(inputs, 'rope', ([x]) => produce('rope', at.outDtype, x.shape, (out) =>
        b.rope(ref(out), ref(x), f64(at.positions), f64(at.invFreq), at.rotaryDim, at.interleaved))));
  reg('cat', 'cat_cuda', (inputs, at) => {
    // a float output converts; any other output dtype is a bit copy of equal-dtype inputs
    if (!FLOATS.has(at.outDtype) && !inputs.every((t) => t.dtype === at.outDtype)) return `output dtype ${at.outDtype} from mixed inputs`;
    return why(inputs, at, { outs: new Set(Object.keys(CUDA_DTYPE) as DType[]) });
  }, (inputs, at: Attrs & { dim: number }) => {
    const shape = inputs[0].shape.slice();
    shape[at.dim] = inputs.reduce((s, t) => s + t.shape[at.dim], 0);
    const st = contiguousStrides(shape);
    return produce('cat', at.outDtype, shape, (out) => {
      let at0 = 0;
      for (const t of inputs) {
        if (t.size > 0) b.copyStrided(ref(out, t.shape, st, at0 * st[at.dim]), ref(t));
        at0 += t.shape[at.dim];
      }
    });
  });
  for (const op of ['tril', 'triu'] as const) {
    reg(op, `${op}_cuda`, (i, at) => why(i, at), (inputs, at: Attrs & { diagonal: number }) =>
      withDense(inputs, op, ([x]) => {
        const lim = x.shape[x.ndim - 2] + x.shape[x.ndim - 1] + 1; // beyond this every diagonal acts the same
        const diag = Math.max(-lim, Math.min(lim, at.diagonal));
        return produce(op, at.outDtype, x.shape, (out) => b.triangle(ref(out), ref(x), diag, op === 'tril'));
      }));
  }

  // matmul / linear
  const mmVariant = (a: Tensor, w: Tensor) => (a.dtype === w.dtype && a.dtype !== 'float32' ? `gemm_${a.dtype === 'float16' ? 'f16' : 'bf16'}_wmma_cuda` : 'gemm_f32_ffma_cuda');
  const mmWhy = (inputs: Tensor[], at: Attrs, N: number, batchDims: number): true | string => {
    if (batchDims > MAX_DIMS) return `more than ${MAX_DIMS} batch dims`;
    if (Math.ceil(N / 64) > 65535) return `N = ${N} is over the kernel's grid limit`;
    return why(inputs, at, { ins: FLOATS, maxDims: 64 });
  };
  reg('matmul', ([a, w]) => mmVariant(a, w), ([a, w], at) => {
    const batch = Math.max(a.ndim, w.ndim) - 2;
    return mmWhy([a, w], at, w.ndim === 1 ? 1 : w.shape[w.ndim - 1], batch);
  }, ([a, w], at: Attrs & { shape: number[] }) => {
    const as = a.ndim === 1 ? [1, a.shape[0]] : a.shape;
    const ast = a.ndim === 1 ? [0, a.strides[0]] : a.strides;
    const ws = w.ndim === 1 ? [w.shape[0], 1] : w.shape;
    const wst = w.ndim === 1 ? [w.strides[0], 0] : w.strides;
    const [M, K, N] = [as[as.length - 2], as[as.length - 1], ws[ws.length - 1]];
    const aB = as.slice(0, -2);
    const wB = ws.slice(0, -2);
    const batch = broadcastShapes(aB, wB) as number[];
    const bstr = (sh: readonly number[], st: readonly number[]) => batch.map((_, i) => {
      const j = i - (batch.length - sh.length);
      return j >= 0 && sh[j] !== 1 ? st[j] : 0;
    });
    const ar = ref(a, [...batch, M, K], [...bstr(aB, ast), ast[ast.length - 2], ast[ast.length - 1]]);
    const wr = ref(w, [...batch, K, N], [...bstr(wB, wst), wst[wst.length - 2], wst[wst.length - 1]]);
    return produce('matmul', at.outDtype, at.shape, (out) => b.matmul(ref(out), ar, wr, null));
  });
  reg('linear', ([x, w]) => mmVariant(x, w), (inputs, at) => mmWhy(inputs, at, inputs[1].shape[0], 0),
    (inputs, at: Attrs & { hasBias: boolean }) => withDense([inputs[0]], 'linear', ([x]) => {
      const w = inputs[1];
      const [N, K] = w.shape;
      const rows = numel(x.shape.slice(0, -1));
      const xr = ref(x, [rows, K], [K, 1]);
      const wr = ref(w, [K, N], [w.strides[1], w.strides[0]]); // x @ wᵀ without a copy
      const bias = at.hasBias ? inputs[2] : null;
      return produce('linear', at.outDtype, [...x.shape.slice(0, -1), N], (out) =>
        b.matmul(ref(out), xr, wr, bias && ref(bias)));
    }));
}

/** The caching allocator's counters (see CudaAllocatorStats), or null without the cuda backend. */
export function cudaAllocatorStats(): ReturnType<CudaBinding['allocatorStats']> | null {
  return cb ? cb.allocatorStats() : null;
}

/** Returns the allocator's cached blocks to the device (waits for queued work first). */
export function cudaEmptyCache(): void {
  if (cb) native('emptyCache', () => cb!.emptyCache());
}
