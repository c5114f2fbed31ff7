/**
 * machinePeak(): this machine's arithmetic ceilings, from register-only calibration loops in the native
 * addon (no memory traffic, so nothing a kernel could beat): fp32 as vfmadd231ps on 12 independent
 * accumulators (GFLOP/s), int8 as the exact product pair of the W8A8 kernel, vpmaddwd + vpaddd (GOP/s,
 * 2 ops per MAC; without VNNI no exact int8 multiply-accumulate is faster). Each is measured on one thread
 * and on every thread of the pool, best of 3 short runs. Unlike calibrate() (what tessera's own kernels
 * reach, cached), this is the roof those kernels are held against, measured afresh on each call: on a
 * shared machine it moves with the neighbours' load, so measure it next to what you compare it with.
 *
 * memoryBandwidth(): the memory roof next to it, sequential read bandwidth (GB/s) over a fresh buffer, on
 * one thread and on every pool thread. With the default 256 MiB buffer (larger than any last-level cache
 * here) it is the DRAM read roof a decode-time GEMV streams its weights against; a buffer that fits the
 * cache gives that cache's roof instead.
 */
import { loadCpuBinding } from '../backends/cpu/binding';
import { TesseraError, describe } from '../errors';

export interface PeakRate {
  /** on every pool thread together (GFLOP/s for fp32, GOP/s for int8) */
  all: number;
  /** on the calling thread alone */
  perThread: number;
  /** the instruction loop measured */
  loop: string;
}

export interface MachinePeak {
  fp32: PeakRate;
  int8: PeakRate;
  /** pool threads the `all` figures ran on */
  threads: number;
  simd: string;
}

export interface MemoryBandwidth {
  /** GB/s (1e9 bytes/s) with every pool thread reading its share */
  all: number;
  /** GB/s on the calling thread alone */
  perThread: number;
  /** bytes of the buffer read */
  bytes: number;
  /** pool threads the `all` figure ran on */
  threads: number;
  /** the loop measured */
  loop: string;
}

export interface MemoryBandwidthOptions {
  /** buffer size in bytes, in [2^20, 2^30]; default 256 MiB */
  bytes?: number;
  /** seconds per measurement (2 per call: one thread / all threads); default 0.3, in [0.001, 10] */
  seconds?: number;
}

export interface MachinePeakOptions {
  /** seconds per measurement (4 per call: 2 kinds x one thread / all threads); default 0.2, in [0.001, 10] */
  seconds?: number;
}

/** options is an object; its seconds (default `fallback`) a number in [0.001, 10]. */
function checkSeconds(op: string, options: { seconds?: number }, fallback: number): number {
  if (options === null || typeof options !== 'object') throw new TesseraError('E_TYPE', op, `options must be an object, got ${describe(options)}`);
  const seconds = options.seconds ?? fallback;
  if (typeof seconds !== 'number' || !(seconds >= 0.001 && seconds <= 10)) {
    throw new TesseraError('E_ARG', op, `options.seconds must be a number in [0.001, 10], got ${describe(seconds)}`);
  }
  return seconds;
}

/**
 * Measures the fp32 FMA and exact-int8 ceilings of this CPU (blocking the event loop for ~4 x seconds).
 * Null when there is no native cpu addon or no AVX2+FMA calibration loop for this CPU.
 */
export function machinePeak(options: MachinePeakOptions = {}): MachinePeak | null {
  const op = 'machinePeak';
  const seconds = checkSeconds(op, options, 0.2);
  const { binding } = loadCpuBinding();
  if (!binding || typeof binding.peakRate !== 'function') return null;
  const rate = (kind: number, parallel: boolean) => binding.peakRate!(kind, seconds, parallel) / 1e9;
  const fp32 = { perThread: rate(0, false), all: rate(0, true), loop: 'vfmadd231ps ymm x 12 accumulators (16 FLOP each)' };
  if (!(fp32.perThread > 0)) return null;
  const int8 = { perThread: rate(1, false), all: rate(1, true), loop: 'vpmaddwd + vpaddd ymm, 6 accumulators (16 MACs = 32 ops a pair)' };
  const info = binding.info();
  return { fp32, int8, threads: info.threads, simd: info.simd };
}

/**
 * Measures sequential read bandwidth (blocking the event loop for ~2 x seconds plus writing the buffer once).
 * Null when there is no native cpu addon, or an older one without the loop.
 */
export function memoryBandwidth(options: MemoryBandwidthOptions = {}): MemoryBandwidth | null {
  const op = 'memoryBandwidth';
  const seconds = checkSeconds(op, options, 0.3);
  const bytes = options.bytes ?? 256 * 2 ** 20;
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 2 ** 20 || bytes > 2 ** 30) {
    throw new TesseraError('E_ARG', op, `options.bytes must be an integer in [2^20, 2^30], got ${describe(bytes)}`);
  }
  const { binding } = loadCpuBinding();
  if (!binding || typeof binding.readBandwidth !== 'function') return null;
  const rate = (parallel: boolean) => binding.readBandwidth!(bytes, seconds, parallel) / 1e9;
  const perThread = rate(false);
  const all = rate(true);
  return {
    all,
    perThread,
    bytes,
    threads: binding.info().threads,
    loop: `sequential 32-byte loads, 4 streams per thread, ${bytes / 2 ** 20} MiB buffer`,
  };
}
