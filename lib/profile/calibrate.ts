/**
 * Roofline calibration: this machine's peak compute per dtype and its memory bandwidth, measured once and
 * cached per machine in $XDG_CACHE_HOME/tessera/calibration.json (default ~/.cache/tessera/...), keyed by
 * CPU model + logical core count + the addon's SIMD level + Node version.
 *
 * Peaks are what tessera's best host kernel reaches, not a datasheet number: float32 (and float16 /
 * bfloat16, which the native GEMM widens while packing) through the native cpu matmul at cache-friendly
 * square sizes, or the pure-JS matmul when no addon loads; int8 (GOP/s) through a native W8A8 qmatmul
 * when the addon has one. Dtypes without a native kernel (float64, and int8 without a native qmatmul) are
 * held against the float32 roof: a peak measured on the JS reference would put slow kernels near 100%.
 * Each peak is the best of a few repetitions at two sizes. Bandwidth is a large
 * Float32Array.prototype.set (256 MiB by default, far past any cache): bytes read + written over the best
 * time. Kernels run directly (not through dispatch),
 * so neither setBackend() nor an open profiling session affects or records them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DType } from '../dtype';
import { backends, getKernel, Kernel } from '../registry';
import { Tensor } from '../tensor';
import { randn } from '../creation';
import { quantize } from '../ops/quant';
import { withoutHook } from './profiler';

export interface PeakEntry {
  /** GFLOP/s (GOP/s when unit is 'op') */
  gflops: number;
  unit: 'flop' | 'op';
  backend: string;
  variant: string;
  /** [M, N, K] of the best run */
  shape: number[];
}

export interface Calibration {
  version: 1;
  key: string;
  cpu: string;
  cores: number;
  simd: string;
  node: string;
  measuredAt: string;
  /** wall time the measurement took */
  ms: number;
  /** per compute dtype: float32, float16, bfloat16, int8 (only those measured; others use float32's) */
  peaks: Record<string, PeakEntry>;
  bandwidth: { gbps: number; method: string; bytes: number };
}

export interface CalibrateOptions {
  /** measure again even when this machine has a cached calibration */
  force?: boolean;
  /** cache file (default: calibrationCachePath()); null measures without reading or writing a cache */
  cacheFile?: string | null;
  /** bytes per buffer of the bandwidth copy (default 256 MiB) */
  bandwidthBytes?: number;
}

const VERSION = 1;
const memo = new Map<string, Calibration>();

export function calibrationCachePath(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'tessera', 'calibration.json');
}

function machine(): { key: string; cpu: string; cores: number; simd: string; node: string } {
  const cpus = os.cpus();
  const cpu = cpus[0]?.model?.trim() || 'unknown cpu';
  const cores = cpus.length;
  const native = backends().find((b) => b.name === 'cpu');
  const simd = native?.available ? String(native.detail.simd ?? 'unknown') : 'no-addon';
  const node = process.version;
  return { key: `${cpu} | ${cores} cores | simd ${simd} | node ${node}`, cpu, cores, simd, node };
}

/** Best (smallest) ns of f over repetitions: at least `reps`, until minMs has passed, at most maxReps. */
function bestNs(f: () => void, minMs = 120, reps = 3, maxReps = 40): number {
  f(); // warm-up: page faults, JIT, thread pool start
  let best = Infinity;
  const until = process.hrtime.bigint() + BigInt(minMs * 1e6);
  for (let i = 0; i < maxReps; i++) {
    const t0 = process.hrtime.bigint();
    f();
    const t1 = process.hrtime.bigint();
    best = Math.min(best, Number(t1 - t0));
    if (i + 1 >= reps && t1 >= until) break;
  }
  return best;
}

function firstKernel(op: 'matmul' | 'qmatmul', inputs: Tensor[], attrs: unknown, only?: string): Kernel | null {
  for (const b of backends()) {
    if (!b.available || b.device !== 'cpu' || (only && b.name !== only)) continue;
    const k = getKernel(op, b.name);
    if (k && (!k.supports || k.supports(inputs, attrs) === true)) return k;
  }
  return null;
}

function variantOf(k: Kernel, inputs: Tensor[], attrs: unknown): string {
  return typeof k.variant === 'function' ? k.variant(inputs, attrs) : k.variant ?? `${k.op}_${k.backend}`;
}

function dispose(out: unknown): void {
  if (out instanceof Tensor) out.dispose();
  else if (Array.isArray(out)) out.forEach((t) => t instanceof Tensor && t.dispose());
}

/** Peak of square matmuls of dtype on the first host backend that takes them (or `only`). */
function matmulPeak(dtype: DType, sizes: (native: boolean) => number[], only?: string): PeakEntry | null {
  let best: PeakEntry | null = null;
  for (const native of [true, false]) {
    for (const n of sizes(native)) {
      const a = randn([n, n], { seed: 1, dtype });
      const b = randn([n, n], { seed: 2, dtype });
      const attrs = { outDtype: dtype, shape: [n, n] };
      try {
        const k = firstKernel('matmul', [a, b], attrs, only);
        if (!k || (k.backend === 'js') === native) continue;
        const ns = bestNs(() => dispose(k.run([a, b], attrs)), native ? 250 : 120);
        const gflops = (2 * n * n * n) / ns;
        if (!best || gflops > best.gflops) best = { gflops, unit: 'flop', backend: k.backend, variant: variantOf(k, [a, b], attrs), shape: [n, n, n] };
      } finally {
        a.dispose();
        b.dispose();
      }
    }
    if (best) break; // a native result wins; the JS sizes are only tried without one
  }
  return best;
}

/** int8 W8A8 qmatmul peak (integer ops) on a native backend; null when only the JS reference has it. */
function int8Peak(): PeakEntry | null {
  let best: PeakEntry | null = null;
  for (const [M, K, N] of [[128, 512, 512], [256, 1024, 1024]]) {
    const w = randn([K, N], { seed: 3 });
    const x = randn([M, K], { seed: 4 });
    const q = quantize(w, { dtype: 'int8' });
    try {
      const inputs = [x, ...q._tensors('calibrate')];
      const attrs = { ...q._attrs(), M, outShape: [M, N], outDtype: 'float32' };
      const k = firstKernel('qmatmul', inputs, attrs);
      if (!k || k.backend === 'js') return null;
      const ns = bestNs(() => dispose(k.run(inputs, attrs)));
      const gflops = (2 * M * N * K) / ns;
      if (!best || gflops > best.gflops) best = { gflops, unit: 'op', backend: k.backend, variant: variantOf(k, inputs, attrs), shape: [M, N, K] };
    } finally {
      w.dispose();
      x.dispose();
      q.dispose();
    }
  }
  return best;
}

function bandwidth(bytes: number): Calibration['bandwidth'] {
  const n = Math.max(1024, Math.floor(bytes / 4));
  const src = new Float32Array(n);
  const dst = new Float32Array(n);
  src.fill(1); // touch every page before timing
  dst.fill(0);
  const ns = bestNs(() => dst.set(src), 200, 3, 8);
  const mib = (n * 4) / 2 ** 20;
  return { gbps: (2 * n * 4) / ns, method: `Float32Array.prototype.set ${mib} MiB -> ${mib} MiB, read + write counted`, bytes: n * 4 };
}

function readCache(file: string): Record<string, Calibration> {
  try {
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (j && j.version === VERSION && j.entries && typeof j.entries === 'object') return j.entries;
  } catch {
    /* missing or unreadable: measure */
  }
  return {};
}

function writeCache(file: string, entries: Record<string, Calibration>): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ version: VERSION, entries }, null, 2) + '\n');
    fs.renameSync(tmp, file);
  } catch (e) {
    process.emitWarning(`tessera: could not cache the calibration in ${file}: ${(e as Error).message}`, { code: 'TESSERA_CALIBRATION' });
  }
}

function valid(c: Calibration | undefined): c is Calibration {
  return !!c && c.version === VERSION && !!c.peaks?.float32 && c.peaks.float32.gflops > 0 && c.bandwidth?.gbps > 0;
}

/** The cached calibration of this machine, or null (never measures). */
export function cachedCalibration(options: { cacheFile?: string | null } = {}): Calibration | null {
  const m = machine();
  const file = options.cacheFile === undefined ? calibrationCachePath() : options.cacheFile;
  const hit = memo.get(`${file}\0${m.key}`) ?? (file ? readCache(file)[m.key] : undefined);
  return valid(hit) ? hit : null;
}

/**
 * Measures (or loads from the cache) this machine's peak GFLOP/s per dtype and its memory bandwidth.
 * Takes one to a few seconds when it measures.
 */
export function calibrate(options: CalibrateOptions = {}): Calibration {
  const m = machine();
  const file = options.cacheFile === undefined ? calibrationCachePath() : options.cacheFile;
  const memoKey = `${file}\0${m.key}`;
  if (!options.force) {
    const hit = cachedCalibration({ cacheFile: file });
    if (hit) {
      memo.set(memoKey, hit);
      return hit;
    }
  }
  const t0 = Date.now();
  const peaks: Record<string, PeakEntry> = {};
  withoutHook(() => {
    const f32 = matmulPeak('float32', (native) => (native ? [256, 512] : [96, 128]));
    if (f32) peaks.float32 = f32;
    if (f32 && f32.backend !== 'js') {
      for (const d of ['bfloat16', 'float16'] as const) {
        const p = matmulPeak(d, (native) => (native ? [256, 512] : []));
        if (p && p.backend !== 'js') peaks[d] = p;
      }
    }
    try {
      const i8 = int8Peak();
      if (i8) peaks.int8 = i8;
    } catch {
      /* no int8 peak: int8 records are held against the float32 roof */
    }
  });
  const cal: Calibration = {
    version: VERSION,
    ...m,
    measuredAt: new Date().toISOString(),
    ms: 0,
    peaks,
    bandwidth: bandwidth(options.bandwidthBytes ?? 256 * 2 ** 20),
  };
  cal.ms = Date.now() - t0;
  memo.set(memoKey, cal);
  if (file) writeCache(file, { ...readCache(file), [m.key]: cal });
  return cal;
}

/** Peak for a compute dtype: its own when measured, else float32's. */
export function peakFor(cal: Calibration, dtype: string): PeakEntry {
  return cal.peaks[dtype] ?? cal.peaks.float32;
}
