/**
 * `tessera bench`: micro-benchmarks of the heavy kernels over a standard shape grid, run under the
 * profiler (so the report has the usual table, trace and roofline). Sizes are modest: the whole grid
 * finishes in about a minute on 2 cores even on the pure-JS backend. Each case runs once untimed (warm-up:
 * JIT, thread pool, page faults), then repeatedly until minMs has passed (at least 2, at most 50 calls).
 * Inputs are built with the profiler's hook removed, so quantize/fromDense never show in the table.
 */
import { TesseraError } from '../errors';
import { DType } from '../dtype';
import { BackendName, backends, setBackend } from '../registry';
import { Device } from '../storage';
import { Tensor } from '../tensor';
import { randn, fromTypedArray } from '../creation';
import { matmul, attention } from '../ops/linalg';
import { quantize, qmatmul, QuantizedTensor } from '../ops/quant';
import { fromDense, spmm, SparseTensor } from '../ops/sparse';
import { closeSession, openSession, withoutHook } from './profiler';
import { ProfileReport, endSession } from './report';

export const BENCH_OPS = ['matmul', 'attention', 'qmatmul', 'spmm'] as const;
export type BenchOp = (typeof BENCH_OPS)[number];
const FLOAT_DTYPES = ['float32', 'float64', 'float16', 'bfloat16'];
const QUANT_DTYPES = ['int8', 'int4', 'uint4', 'float8_e4m3fn'];

export interface BenchOptions {
  ops?: BenchOp[];
  backend?: BackendName | null;
  /** a float dtype for the operands (qmatmul's x), or a quantized weight format (qmatmul only) */
  dtype?: string | null;
  /** time per case (default 200 ms) */
  minMs?: number;
}

export interface BenchCase {
  op: BenchOp;
  label: string;
  /** builds the inputs; returns the call to time and a cleanup */
  setup(device: Device): { call: () => unknown; dispose: () => void };
}

function sparseDense(M: number, K: number, density: number, seed: number, dtype: DType, device: Device): Tensor {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const a = new Float32Array(M * K);
  for (let i = 0; i < a.length; i++) a[i] = next() < density ? next() * 2 - 1 : 0;
  const t = fromTypedArray(a, { shape: [M, K] });
  if (dtype === 'float32' && device === 'cpu') return t;
  const u = t.to({ dtype, device });
  t.dispose();
  return u;
}

const disposeAll = (...xs: { dispose(): void }[]) => () => xs.forEach((x) => x.dispose());

/** The grid for these options (throws E_ARG on a dtype that fits none of the requested ops). */
export function benchCases(options: BenchOptions = {}): BenchCase[] {
  const dtype = options.dtype ?? null;
  if (dtype !== null && !FLOAT_DTYPES.includes(dtype) && !QUANT_DTYPES.includes(dtype)) {
    throw new TesseraError('E_DTYPE', 'bench', `--dtype must be one of ${[...FLOAT_DTYPES, ...QUANT_DTYPES].join(', ')}, got ${dtype}`);
  }
  const quantOnly = dtype !== null && QUANT_DTYPES.includes(dtype);
  let ops = options.ops ?? (quantOnly ? ['qmatmul'] : [...BENCH_OPS]);
  if (quantOnly && ops.some((o) => o !== 'qmatmul')) {
    throw new TesseraError('E_DTYPE', 'bench', `--dtype ${dtype} is a quantized weight format: it applies to qmatmul only`);
  }
  ops = ops.filter((o, i) => ops.indexOf(o) === i);
  const fd = (quantOnly ? 'float32' : dtype ?? 'float32') as DType;
  const cases: BenchCase[] = [];
  for (const op of ops) {
    if (op === 'matmul') {
      for (const [M, K, N] of [[64, 64, 64], [256, 256, 256], [512, 512, 512], [1, 1024, 1024], [128, 512, 2048]]) {
        cases.push({
          op, label: `matmul ${fd} [${M}, ${K}] @ [${K}, ${N}]`,
          setup: (device) => {
            const a = randn([M, K], { seed: 1, dtype: fd, device });
            const b = randn([K, N], { seed: 2, dtype: fd, device });
            return { call: () => matmul(a, b), dispose: disposeAll(a, b) };
          },
        });
      }
    } else if (op === 'attention') {
      // [B, Hq, Hkv, Sq, Sk, D, causal]: prefill, causal prefill, GQA decode against a KV cache
      for (const [B, Hq, Hkv, Sq, Sk, D, causal] of [[1, 8, 8, 128, 128, 64, 0], [1, 8, 8, 512, 512, 64, 1], [4, 8, 2, 1, 1024, 64, 1], [2, 8, 2, 256, 256, 64, 1]]) {
        cases.push({
          op, label: `attention ${fd} B${B} Hq${Hq} Hkv${Hkv} Sq${Sq} Sk${Sk} D${D}${causal ? ' causal' : ''}`,
          setup: (device) => {
            const q = randn([B, Hq, Sq, D], { seed: 3, dtype: fd, device });
            const k = randn([B, Hkv, Sk, D], { seed: 4, dtype: fd, device });
            const v = randn([B, Hkv, Sk, D], { seed: 5, dtype: fd, device });
            return { call: () => attention(q, k, v, { causal: !!causal }), dispose: disposeAll(q, k, v) };
          },
        });
      }
    } else if (op === 'qmatmul') {
      const formats = quantOnly ? [dtype as string] : ['int8', 'int4', 'float8_e4m3fn'];
      for (const qd of formats) {
        for (const [M, K, N] of [[1, 1024, 1024], [32, 512, 512]]) {
          cases.push({
            op, label: `qmatmul ${qd} x ${fd} [${M}, ${K}] @ [${K}, ${N}]`,
            setup: (device) => {
              const w = randn([K, N], { seed: 6 });
              const q0 = quantize(w, qd === 'uint4' ? { dtype: 'int4', symmetric: false } : { dtype: qd as 'int8' });
              const q: QuantizedTensor = device === 'cpu' ? q0 : q0.to(device);
              const x = randn([M, K], { seed: 7, dtype: fd, device });
              w.dispose();
              if (q !== q0) q0.dispose();
              return { call: () => qmatmul(x, q), dispose: disposeAll(x, q) };
            },
          });
        }
      }
    } else {
      for (const [fmt, M, K, N, density] of [['csr', 512, 512, 64, 0.1], ['csr', 1024, 1024, 128, 0.05], ['2:4', 512, 512, 64, 1]] as const) {
        cases.push({
          op, label: `spmm ${fmt}${fmt === 'csr' ? ` ${density * 100}%` : ''} ${fd} [${M}, ${K}] @ [${K}, ${N}]`,
          setup: (device) => {
            const d = sparseDense(M, K, density, 8, fd, device);
            const s: SparseTensor = fromDense(d, { format: fmt });
            d.dispose();
            const b = randn([K, N], { seed: 9, dtype: fd, device });
            return { call: () => spmm(s, b), dispose: disposeAll(s, b) };
          },
        });
      }
    }
  }
  return cases;
}

function dispose(out: unknown): void {
  if (out instanceof Tensor) out.dispose();
  else if (Array.isArray(out)) out.forEach((t) => t instanceof Tensor && t.dispose());
}

/**
 * Runs the grid under one profiling session and returns its report. With options.backend, dispatch starts
 * at that backend (ops it lacks fall down the order, and the table shows who ran them); setBackend(null)
 * is restored afterwards.
 */
export async function runBench(options: BenchOptions = {}, onProgress?: (done: number, total: number, label: string) => void): Promise<ProfileReport> {
  const cases = benchCases(options);
  const backend = options.backend ?? null;
  if (backend) {
    const b = backends().find((x) => x.name === backend);
    if (!b) throw new TesseraError('E_BACKEND', 'bench', `unknown backend ${backend}`);
    if (!b.available) throw new TesseraError('E_BACKEND', 'bench', `backend '${backend}' is unavailable: ${b.reason}`);
    setBackend(backend);
  }
  const device: Device = backend === 'cuda' ? 'cuda' : 'cpu';
  const minNs = BigInt(Math.round((options.minMs ?? 200) * 1e6));
  const s = openSession();
  try {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      onProgress?.(i, cases.length, c.label);
      const { call, dispose: free } = withoutHook(() => c.setup(device));
      try {
        withoutHook(() => dispose(call()));
        const until = process.hrtime.bigint() + minNs;
        for (let n = 0; n < 50; n++) {
          dispose(call());
          if (n >= 1 && process.hrtime.bigint() >= until) break;
        }
      } finally {
        free();
      }
      await new Promise<void>((r) => setImmediate(r)); // let a TTY progress bar paint
    }
    onProgress?.(cases.length, cases.length, 'done');
    return endSession(s);
  } finally {
    if (s.open) closeSession(s);
    if (backend) setBackend(null);
  }
}
