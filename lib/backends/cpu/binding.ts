/**
 * Loads the native CPU addon (tessera_cpu.node) with node-gyp-build: a prebuild from
 * prebuilds/<platform>-<arch>/ or a local build in build/Release/. Never throws: a missing or broken
 * addon yields { binding: null, reason } and the js backend serves instead.
 */
import * as path from 'path';

export interface CpuBinding {
  info(): { version: string; simd: string; threads: number; napiVersion: number; compiler: string };
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** n float32 over a recycled native block (contents unspecified), or null below the pool's minimum size.
   *  Optional: an older prebuilt addon lacks it. */
  allocF32?(n: number): Float32Array | null;
  /** Returns an allocF32 array's block to the pool now, detaching its ArrayBuffer; false for any other array.
   *  Optional: an older prebuilt addon lacks it. */
  releaseF32?(a: Float32Array): boolean;
  /** idle bytes the output pool holds */
  poolCachedBytes?(): number;
  /** Register-only calibration loop (native/peak.cc): kind 0 = fp32 FMA, 1 = exact int8 (vpmaddwd + vpaddd);
   *  operations per second over ~seconds, on every pool thread when parallel; 0 without an AVX2+FMA path.
   *  Optional: an older prebuilt addon lacks it. */
  peakRate?(kind: number, seconds: number, parallel: boolean): number;
  /** Sequential read bandwidth (bytes/s) over a fresh buffer of `bytes` (native/peak.cc), on every pool thread
   *  when parallel. Optional: an older prebuilt addon lacks it. */
  readBandwidth?(bytes: number, seconds: number, parallel: boolean): number;
  matmulF32(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, M: number, N: number, K: number,
    strideA: number, strideB: number, transA: boolean, transB: boolean): void;
  matmulF32Async(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, M: number, N: number, K: number,
    strideA: number, strideB: number, transA: boolean, transB: boolean): Promise<void>;
  /** float16/bfloat16 operands as raw bits (Uint16Array), widened while packed; float32 as Float32Array.
   *  Optional: an older prebuilt addon lacks it (half operands are then widened in JS first). */
  matmulMixed?(a: Float32Array | Uint16Array, b: Float32Array | Uint16Array, out: Float32Array, batch: number, M: number, N: number,
    K: number, strideA: number, strideB: number, transA: boolean, transB: boolean, aDtype: string, bDtype: string): void;
  matmulMixedAsync?(a: Float32Array | Uint16Array, b: Float32Array | Uint16Array, out: Float32Array, batch: number, M: number, N: number,
    K: number, strideA: number, strideB: number, transA: boolean, transB: boolean, aDtype: string, bDtype: string): Promise<void>;
  attentionF32(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, B: number, Hq: number, Hkv: number,
    Sq: number, Sk: number, D: number, Dv: number, scale: number, causal: boolean, kvOffset: number): void;
  attentionF32Async(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, B: number, Hq: number, Hkv: number,
    Sq: number, Sk: number, D: number, Dv: number, scale: number, causal: boolean, kvOffset: number): Promise<void>;
  spmmCsrF32(rowPtr: Int32Array, colIdx: Int32Array, values: Float32Array, b: Float32Array, out: Float32Array,
    M: number, K: number, N: number, nnz: number): void;
  spmmCsrF32Async(rowPtr: Int32Array, colIdx: Int32Array, values: Float32Array, b: Float32Array, out: Float32Array,
    M: number, K: number, N: number, nnz: number): Promise<void>;
  spmm24F32(values: Float32Array, meta: Uint8Array, b: Float32Array, out: Float32Array, M: number, K: number, N: number): void;
  spmm24F32Async(values: Float32Array, meta: Uint8Array, b: Float32Array, out: Float32Array, M: number, K: number,
    N: number): Promise<void>;
  /** Repacks a QuantizedTensor's parts once into the qgemm kernels' layout (native/qgemm.cc). */
  qgemmPrepack(qdtype: string, K: number, N: number, groupSize: number, perTensor: boolean, values: Int8Array | Uint8Array,
    scales: Float32Array, zeros: Float32Array | null): QgemmPacked;
  /** out [M, N] = x [M, K] @ dequant(W); x is float32, or raw bf16/f16 bits in a Uint16Array; activations
   *  'int8' = W4A8 (int4/uint4 weights), else 'float'. */
  qgemm(packed: QgemmPacked, x: Float32Array | Uint16Array, out: Float32Array, M: number, xDtype: string, activations: string): void;
  qgemmAsync(packed: QgemmPacked, x: Float32Array | Uint16Array, out: Float32Array, M: number, xDtype: string, activations: string): Promise<void>;
}

/** Opaque packed quantized weights (a type-tagged External owned by the addon). */
export interface QgemmPacked { readonly __qgemmPacked: never }

/** Package root: this file compiles to dist/backends/cpu/binding.js. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

export function loadCpuBinding(): { binding: CpuBinding | null; reason: string } {
  if (process.env.TESSERA_NO_NATIVE === '1') return { binding: null, reason: 'disabled by TESSERA_NO_NATIVE=1' };
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as (dir: string) => unknown;
    const b = load(PACKAGE_ROOT) as CpuBinding;
    if (!b || typeof b.matmulF32 !== 'function') return { binding: null, reason: 'the loaded addon lacks the expected exports' };
    return { binding: b, reason: '' };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return { binding: null, reason: msg };
  }
}
