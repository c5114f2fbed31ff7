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
  matmulF32(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, M: number, N: number, K: number,
    strideA: number, strideB: number, transA: boolean, transB: boolean): void;
  matmulF32Async(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, M: number, N: number, K: number,
    strideA: number, strideB: number, transA: boolean, transB: boolean): Promise<void>;
  attentionF32(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, B: number, Hq: number, Hkv: number,
    Sq: number, Sk: number, D: number, Dv: number, scale: number, causal: boolean, kvOffset: number): void;
  attentionF32Async(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, B: number, Hq: number, Hkv: number,
    Sq: number, Sk: number, D: number, Dv: number, scale: number, causal: boolean, kvOffset: number): Promise<void>;
}

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
