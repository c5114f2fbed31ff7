/**
 * Loader of the CUDA addon (cuda/*.cu, built by CMakeLists.txt into build-cuda/Release/tessera_cuda.node).
 * loadCudaBinding() never throws: a machine without the addon, a driver or a GPU gets `binding: null` and a
 * reason to show the user, and the backends below it (cpu, js) carry on.
 */
import * as fs from 'fs';
import * as path from 'path';

declare const cudaBufferBrand: unique symbol;
/** A device allocation owned by the addon (an External); free() it, or the GC frees it eventually. */
export interface CudaBuffer {
  readonly [cudaBufferBrand]: true;
}

declare const cudaEventBrand: unique symbol;
/** A CUDA event recorded on the backend stream (an External from eventRecord()). */
export interface CudaEvent {
  readonly [cudaEventBrand]: true;
}

/** Host memory the copies accept: any TypedArray (not a DataView), the whole of it is copied. */
export type HostArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

export interface CudaDeviceProps {
  index: number;
  name: string;
  /** Compute capability, e.g. 9.0 on an H100. */
  major: number;
  minor: number;
  /** Bytes. */
  totalMem: number;
  smCount: number;
  /** As cudaDriverGetVersion / cudaRuntimeGetVersion report them, e.g. 13000 for 13.0. */
  driverVersion: number;
  runtimeVersion: number;
}

export interface CudaDeviceInfo {
  available: boolean;
  /** '' when available, else the CUDA error (e.g. from cudaGetDeviceCount). */
  reason: string;
  count: number;
  devices: CudaDeviceProps[];
}

/**
 * The addon's exports. Sizes, offsets and counts are non-negative integers (bytes unless named n);
 * every access is bounds-checked against the allocation. Errors carry a `code` from errors.ts:
 * E_TYPE, E_ARG (out of bounds), E_DISPOSED (freed handle), E_DETACHED, E_OOM (message starts with
 * "CUDA out of memory"), E_BACKEND (no device), E_NATIVE (other CUDA errors).
 * All device work runs in order on one stream.
 */
export interface CudaBinding {
  /** Never throws, also without a driver or GPU. */
  deviceInfo(): CudaDeviceInfo;
  malloc(bytes: number): CudaBuffer;
  /** Returns the memory to the caching allocator (no device sync); using the handle afterwards (free included) throws E_DISPOSED. */
  free(handle: CudaBuffer): void;
  /** Copies all of `src` to the device at dstByteOffset; returns when the copy is complete. */
  memcpyHtoD(handle: CudaBuffer, dstByteOffset: number, src: HostArray): void;
  /** Fills all of `dst` from the device at srcByteOffset, after all queued work; blocks until done. */
  memcpyDtoH(dst: HostArray, handle: CudaBuffer, srcByteOffset: number): void;
  /** Queued on the stream; overlapping ranges of one buffer throw E_ARG. */
  memcpyDtoD(dst: CudaBuffer, dstByteOffset: number, src: CudaBuffer, srcByteOffset: number, bytes: number): void;
  /** Like memcpyDtoH, but the wait happens off the JS thread; resolves with `dst` once it holds the data. */
  memcpyDtoHAsync<T extends HostArray>(dst: T, handle: CudaBuffer, srcByteOffset: number): Promise<T>;
  /** Waits for all queued work; reports errors of earlier kernels. */
  synchronize(): void;
  memInfo(): { free: number; total: number };
  /** out[i] = a[i] + b[i] for i < n (float32); out may be a or b. Queued, returns at once. */
  addF32(a: CudaBuffer, b: CudaBuffer, out: CudaBuffer, n: number): void;
  /** buf[i] = Math.fround(value) for i < n. Queued, returns at once. */
  fillF32(buf: CudaBuffer, value: number, n: number): void;

  // ---- caching allocator and tensor kernels (cuda/ops_addon.cc; callers in ops.ts)
  /** Waits for the stream, then returns every cached (free) block to the device. */
  emptyCache(): void;
  allocatorStats(): CudaAllocatorStats;
  /** peakAllocated/peakReserved := their current values. */
  resetPeakStats(): void;
  unary(op: string, out: CudaTensorRef, x: CudaTensorRef): void;
  binary(op: string, out: CudaTensorRef, a: CudaTensorRef, b: CudaTensorRef): void;
  where(out: CudaTensorRef, cond: CudaTensorRef, a: CudaTensorRef, b: CudaTensorRef): void;
  /** out = x converted to out's dtype (bit copy for equal dtypes); both may be strided views of one shape. */
  copyStrided(out: CudaTensorRef, x: CudaTensorRef): void;
  triangle(out: CudaTensorRef, x: CudaTensorRef, diagonal: number, lower: boolean): void;
  /** x's dims ordered [kept..., reduced...]; op sum|mean|max|min|argmax|argmin. */
  reduce(op: string, out: CudaTensorRef, x: CudaTensorRef, nKept: number): void;
  softmax(out: CudaTensorRef, x: CudaTensorRef, dim: number, log: boolean): void;
  cumsum(out: CudaTensorRef, x: CudaTensorRef, dim: number): void;
  rmsNorm(out: CudaTensorRef, x: CudaTensorRef, weight: CudaTensorRef | null, eps: number): void;
  layerNorm(out: CudaTensorRef, x: CudaTensorRef, weight: CudaTensorRef | null, bias: CudaTensorRef | null, eps: number): void;
  embedding(out: CudaTensorRef, ids: CudaTensorRef, table: CudaTensorRef): void;
  rope(out: CudaTensorRef, x: CudaTensorRef, positions: Float64Array, invFreq: Float64Array, rotaryDim: number, interleaved: boolean): void;
  /** a [...batch, M, K] @ b [...batch, K, N] (+ bias [N]) into dense out; a and b any strides. */
  matmul(out: CudaTensorRef, a: CudaTensorRef, b: CudaTensorRef, bias: CudaTensorRef | null): void;
  /** Fused flash attention (cuda/attention.cuh), queued on the stream; returns the kernel variant that runs. */
  attention(q: CudaBuffer, k: CudaBuffer, v: CudaBuffer, out: CudaBuffer, params: CudaAttentionParams): string;
  /** '' when attention() takes these params on this device, else the reason it does not. */
  attentionUnsupported(params: CudaAttentionParams): string;
  /** Benchmarks attention(): milliseconds of each of `iters` launches (CUDA events) after `warmup` runs. */
  attentionTime(q: CudaBuffer, k: CudaBuffer, v: CudaBuffer, out: CudaBuffer, params: CudaAttentionParams, iters: number, warmup: number): { variant: string; ms: number[] };
  // ---- CUDA events for the profiler's device timer (cuda/events.cu; timer.ts). Optional: an addon built
  // before they existed still loads, and then cuda ops are profiled host-timed ('host-sync').
  /** Records an event on the backend stream (from a pool) and returns its handle. */
  eventRecord?(): CudaEvent;
  /** An event recorded when the next op first queues work on the stream (leaves out its host preparation). */
  eventRecordDeferred?(): CudaEvent;
  /** Nanoseconds from a to b on the device; waits for b to complete. E_DISPOSED for a released handle. */
  eventElapsedNs?(a: CudaEvent, b: CudaEvent): number;
  /** Returns the event to the pool (idempotent); the GC does it for a forgotten handle. */
  eventRelease?(h: CudaEvent): void;
  /** Events idle in the pool and handed out (not released). */
  eventPoolStats?(): { idle: number; live: number };
}

/** attention() arguments: [B, H, S, D] contiguous views at element offsets; see cuda/attention.cuh. */
export interface CudaAttentionParams {
  dtype: 'float16' | 'bfloat16';
  B: number; Hq: number; Hkv: number; Sq: number; Sk: number; D: number; Dv: number;
  causal: boolean;
  scale: number;
  kvOffset: number;
  qOffset: number; kOffset: number; vOffset: number; outOffset: number;
  /** kernel choice for tests and benchmarks (default 'auto') */
  variant?: 'auto' | 'mma' | 'decode' | 'sm90' | 'sm90pp' | 'sm90s3' | 'sm90w3';
}

/**
 * A tensor as the kernels see it: buffer, dtype code (ops.ts CUDA_DTYPE), element offset, shape and
 * element strides (0 on broadcast dims). The addon checks that the view lies inside the buffer.
 */
export interface CudaTensorRef {
  h: CudaBuffer;
  dt: number;
  off: number;
  shape: readonly number[];
  strides: readonly number[];
}

/** Caching allocator counters (bytes are size-class bytes: what the device holds for tessera). */
export interface CudaAllocatorStats {
  allocated: number;
  cached: number;
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  requested: number;
  liveBuffers: number;
  cachedBlocks: number;
  allocCalls: number;
  cacheHits: number;
  deviceMallocs: number;
  deviceFrees: number;
  oomRetries: number;
  ooms: number;
}

const EXPORTS: readonly (keyof CudaBinding)[] = [
  'deviceInfo',
  'malloc',
  'free',
  'memcpyHtoD',
  'memcpyDtoH',
  'memcpyDtoD',
  'memcpyDtoHAsync',
  'synchronize',
  'memInfo',
  'addF32',
  'fillF32',
  'emptyCache',
  'allocatorStats',
  'resetPeakStats',
  'unary',
  'binary',
  'where',
  'copyStrided',
  'triangle',
  'reduce',
  'softmax',
  'cumsum',
  'rmsNorm',
  'layerNorm',
  'embedding',
  'rope',
  'matmul',
  'attention',
  'attentionUnsupported',
  'attentionTime',
];

export const CUDA_NOT_BUILT = 'CUDA addon not built (run npm run build:cuda on a machine with nvcc)';

/** This file runs as dist/backends/cuda/native.js: the package root is three levels up. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * Where the addon would be loaded from: $TESSERA_CUDA_ADDON if set (whether or not it exists), else the
 * first existing of build-cuda/Release and prebuilds-cuda/<platform>-<arch>; null if none exists.
 */
export function findCudaAddon(): string | null {
  const override = process.env.TESSERA_CUDA_ADDON;
  if (override) return path.resolve(override);
  const candidates = [
    path.join(PACKAGE_ROOT, 'build-cuda', 'Release', 'tessera_cuda.node'),
    path.join(PACKAGE_ROOT, 'prebuilds-cuda', `${process.platform}-${process.arch}`, 'tessera_cuda.node'),
  ];
  return candidates.find((file) => fs.existsSync(file)) ?? null;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Loads the addon and checks that a device is there. Never throws. */
export function loadCudaBinding(): { binding: CudaBinding | null; reason: string } {
  const file = findCudaAddon();
  if (file === null) return { binding: null, reason: CUDA_NOT_BUILT };
  if (!fs.existsSync(file)) return { binding: null, reason: `TESSERA_CUDA_ADDON=${file} does not exist` };
  let binding: CudaBinding;
  try {
    binding = require(file) as CudaBinding;
  } catch (err) {
    return { binding: null, reason: `CUDA addon at ${file} failed to load: ${message(err)}` };
  }
  const missing = EXPORTS.filter((name) => typeof (binding as unknown as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0) {
    return { binding: null, reason: `CUDA addon at ${file} lacks ${missing.join(', ')} (a stale build? rebuild it)` };
  }
  try {
    const info = binding.deviceInfo();
    if (!info.available) return { binding: null, reason: info.reason || 'no CUDA device available' };
  } catch (err) {
    return { binding: null, reason: `CUDA addon at ${file}: deviceInfo failed: ${message(err)}` };
  }
  return { binding, reason: '' };
}
