/**
 * A finished profile: one ProfileRecord per kernel call, key-averages style grouping and a text table,
 * JSON, a Chrome trace (trace.ts) and a roofline picture (svg.ts). Rates use the identity
 * FLOPs / ns = GFLOP/s and bytes / ns = GB/s.
 */
import * as fs from 'fs';
import { BackendName, OpName } from '../registry';
import { Device } from '../storage';
import { isFloatDType } from '../ops/common';
import { DType } from '../dtype';
import { TensorMeta, opCost } from './cost';
import { Calibration, cachedCalibration, calibrate, peakFor } from './calibrate';
import { RawRecord, Session, Timing, closeSession, isProfiling, releaseMarks, resolveDeviceTime } from './profiler';
import { chromeTrace, ChromeTrace } from './trace';
import { rooflineSvg, RooflineOptions } from './svg';

export interface ProfileRecord {
  /** call order within the profile */
  id: number;
  op: OpName;
  backend: BackendName;
  variant: string;
  device: Device;
  /** the kernel returned a promise (an *Async op on a backend that runs it off the main thread) */
  async: boolean;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  /** the op's scalar attributes (causal, kvOffset, qdtype ...); arrays and objects are left out */
  attrs: Record<string, number | boolean | string>;
  /** host interval, ns since the profile started */
  startNs: number;
  endNs: number;
  /** device interval (device kernels only), ns since the profile started */
  deviceStartNs?: number;
  deviceEndNs?: number;
  /** kernel time the rates use: the device interval when there is one, else the host interval */
  durationNs: number;
  timing: Timing;
  flops: number;
  bytes: number;
  unit: 'flop' | 'op';
  /** achieved GFLOP/s (GOP/s for unit 'op') and GB/s */
  gflops: number;
  gbps: number;
  /** the dtype whose peak this kernel is held against */
  computeDtype: string;
}

export type GroupBy = 'op' | 'shape';
export type SortBy = 'total' | 'calls' | 'mean' | 'min' | 'max' | 'name' | 'flops' | 'gflops' | 'gbps' | 'roofline';

export interface GroupStats {
  key: string;
  /** op backend:variant, plus input shapes and dtypes when grouped by shape */
  name: string;
  op: OpName;
  backend: BackendName;
  variant: string;
  shapes: string | null;
  calls: number;
  totalNs: number;
  meanNs: number;
  minNs: number;
  maxNs: number;
  /** share of all kernel time in the profile */
  percent: number;
  flops: number;
  bytes: number;
  unit: 'flop' | 'op';
  gflops: number;
  gbps: number;
  /** FLOPs per byte */
  intensity: number;
  computeDtype: string;
  /** min(peak, intensity · bandwidth) in GFLOP/s (null without calibration or FLOPs) */
  attainable: number | null;
  /** achieved / attainable in %, or GB/s over bandwidth for ops without FLOPs (null without calibration) */
  roofline: number | null;
}

export interface TableOptions {
  sortBy?: SortBy;
  groupBy?: GroupBy;
  /** at most this many rows */
  limit?: number;
  /** roofline column (default true: calibrates this machine on first use, then reads the cache) */
  roofline?: boolean;
}

const SORT: Record<SortBy, (g: GroupStats) => number | string> = {
  total: (g) => g.totalNs, calls: (g) => g.calls, mean: (g) => g.meanNs, min: (g) => g.minNs, max: (g) => g.maxNs,
  name: (g) => g.name, flops: (g) => g.flops, gflops: (g) => g.gflops, gbps: (g) => g.gbps, roofline: (g) => g.roofline ?? -1,
};

/** Only scalar attrs travel into records (attention's causal/kvOffset, qmatmul's qdtype ...). */
function scalarAttrs(attrs: unknown): Record<string, number | boolean | string> {
  const out: Record<string, number | boolean | string> = {};
  if (attrs && typeof attrs === 'object') {
    for (const [k, v] of Object.entries(attrs)) {
      if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') out[k] = v;
    }
  }
  return out;
}

const SHORT: Record<string, string> = {
  float32: 'f32', float64: 'f64', float16: 'f16', bfloat16: 'bf16', float8_e4m3fn: 'f8e4m3', float8_e5m2: 'f8e5m2',
  int8: 'i8', uint8: 'u8', int32: 'i32', int4: 'i4', uint4: 'u4', bool: 'bool',
};
/** f32[2, 3]: the table's compact form of a tensor (records and traces keep the full dtype names) */
export function shortTensor(t: TensorMeta): string {
  return `${SHORT[t.dtype] ?? t.dtype}[${t.shape.join(', ')}]`;
}

function computeDtype(unit: 'flop' | 'op', inputs: TensorMeta[], outputs: TensorMeta[]): string {
  if (unit === 'op') return 'int8';
  for (const t of [...outputs, ...inputs]) if (isFloatDType(t.dtype as DType) && !t.dtype.startsWith('float8')) return t.dtype;
  return 'float32';
}

/** @internal raw hook records -> ProfileRecords (costs, device times, rates) */
export function finalize(s: Session): ProfileRecord[] {
  const o = s.origin;
  return s.raws.map((r: RawRecord, id) => {
    const c = opCost(r.op, { inputs: r.inputs, outputs: r.outputs, attrs: r.attrs });
    const rec: ProfileRecord = {
      id, op: r.op, backend: r.backend, variant: r.variant, device: r.device, async: r.async,
      inputs: r.inputs, outputs: r.outputs, attrs: scalarAttrs(r.attrs),
      startNs: Number(r.t0 - o), endNs: Number(r.t1 - o), durationNs: Number(r.t1 - r.t0), timing: r.timing,
      flops: c.flops, bytes: c.bytes, unit: c.unit, gflops: 0, gbps: 0, computeDtype: computeDtype(c.unit, r.inputs, r.outputs),
    };
    if (r.timing === 'host-sync') {
      rec.deviceStartNs = rec.startNs;
      rec.deviceEndNs = rec.endNs;
    } else if (r.timing === 'device') {
      const d = resolveDeviceTime(r);
      if (d) {
        rec.deviceStartNs = Number(d.start - o);
        rec.deviceEndNs = Number(d.end - o);
        rec.durationNs = rec.deviceEndNs - rec.deviceStartNs;
      }
    }
    rec.gflops = rec.durationNs > 0 ? rec.flops / rec.durationNs : 0;
    rec.gbps = rec.durationNs > 0 ? rec.bytes / rec.durationNs : 0;
    return rec;
  });
}

export function fmtTime(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function fmtRate(x: number): string {
  if (x === 0) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toPrecision(2);
}

export class ProfileReport {
  readonly records: ProfileRecord[];
  readonly startedAt: Date;
  /** wall time from start to stop, ns */
  readonly wallNs: number;
  private cal: Calibration | null | undefined;

  /** @internal */
  constructor(records: ProfileRecord[], startedAt: Date, wallNs: number) {
    this.records = records;
    this.startedAt = startedAt;
    this.wallNs = wallNs;
  }

  /**
   * The machine's roofline numbers: set explicitly, or calibrate() (cached per machine; measured the
   * first time, which takes a few seconds).
   */
  get calibration(): Calibration {
    if (!this.cal) this.cal = cachedCalibration() ?? calibrate();
    return this.cal;
  }
  set calibration(c: Calibration) {
    this.cal = c;
  }

  /** Key-averages: one row per kernel (op, backend, variant), or per kernel and input shapes/dtypes. */
  groups(options: { groupBy?: GroupBy; sortBy?: SortBy; roofline?: boolean } = {}): GroupStats[] {
    const by = options.groupBy ?? 'op';
    if (by !== 'op' && by !== 'shape') throw new Error(`groupBy must be 'op' or 'shape', got ${JSON.stringify(by)}`);
    const sortBy = options.sortBy ?? 'total';
    if (!(sortBy in SORT)) throw new Error(`sortBy must be one of ${Object.keys(SORT).join(', ')}, got ${JSON.stringify(sortBy)}`);
    const map = new Map<string, GroupStats>();
    let all = 0;
    for (const r of this.records) {
      const shapes = by === 'shape' ? (r.op === 'attention' && r.attrs.causal ? 'causal ' : '') + r.inputs.map(shortTensor).join(', ') : null;
      const key = `${r.op}|${r.backend}|${r.variant}${shapes === null ? '' : '|' + shapes}`;
      let g = map.get(key);
      if (!g) {
        g = {
          key, name: `${r.op} ${r.backend}:${r.variant}${shapes === null ? '' : ' ' + shapes}`, op: r.op, backend: r.backend,
          variant: r.variant, shapes, calls: 0, totalNs: 0, meanNs: 0, minNs: Infinity, maxNs: 0, percent: 0, flops: 0, bytes: 0,
          unit: r.unit, gflops: 0, gbps: 0, intensity: 0, computeDtype: r.computeDtype, attainable: null, roofline: null,
        };
        map.set(key, g);
      }
      g.calls++;
      g.totalNs += r.durationNs;
      g.minNs = Math.min(g.minNs, r.durationNs);
      g.maxNs = Math.max(g.maxNs, r.durationNs);
      g.flops += r.flops;
      g.bytes += r.bytes;
      all += r.durationNs;
    }
    const cal = options.roofline === false ? null : this.calibration;
    const out = [...map.values()];
    for (const g of out) {
      g.meanNs = g.totalNs / g.calls;
      g.percent = all > 0 ? (100 * g.totalNs) / all : 0;
      g.gflops = g.totalNs > 0 ? g.flops / g.totalNs : 0;
      g.gbps = g.totalNs > 0 ? g.bytes / g.totalNs : 0;
      g.intensity = g.bytes > 0 ? g.flops / g.bytes : 0;
      if (cal) {
        if (g.flops > 0 && g.bytes > 0) {
          g.attainable = Math.min(peakFor(cal, g.computeDtype).gflops, g.intensity * cal.bandwidth.gbps);
          g.roofline = (100 * g.gflops) / g.attainable;
        } else if (g.bytes > 0) g.roofline = (100 * g.gbps) / cal.bandwidth.gbps;
      }
    }
    const key = SORT[sortBy];
    out.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      if (typeof x === 'string') return x < (y as string) ? -1 : x > (y as string) ? 1 : 0;
      return (y as number) - x;
    });
    return out;
  }

  /** A key-averages style text table (like torch.profiler's), followed by totals and the roofline used. */
  table(options: TableOptions = {}): string {
    const roof = options.roofline !== false;
    let groups = this.groups({ groupBy: options.groupBy, sortBy: options.sortBy, roofline: roof });
    const hidden = options.limit !== undefined && groups.length > options.limit ? groups.length - options.limit : 0;
    if (hidden) groups = groups.slice(0, options.limit);
    const head = ['Name', 'Calls', 'Total', 'Mean', 'Min', 'Max', '% time', 'GFLOP/s', 'GB/s', ...(roof ? ['% roof'] : [])];
    const rows = groups.map((g) => [
      g.name.length > 96 ? g.name.slice(0, 95) + '…' : g.name,
      String(g.calls), fmtTime(g.totalNs), fmtTime(g.meanNs), fmtTime(g.minNs), fmtTime(g.maxNs), g.percent.toFixed(1),
      fmtRate(g.gflops) + (g.unit === 'op' && g.gflops ? '*' : ''), fmtRate(g.gbps),
      ...(roof ? [g.roofline === null ? '-' : g.roofline.toFixed(1) + (g.flops > 0 ? '' : ' bw')] : []),
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
    const sep = w.map((n) => '-'.repeat(n)).join('  ');
    const total = this.records.reduce((s, r) => s + r.durationNs, 0);
    const lines = [sep, line(head), sep, ...rows.map(line), sep];
    if (hidden) lines.push(`(${hidden} more rows)`);
    lines.push(`${this.records.length} kernel calls, ${fmtTime(total)} in kernels, ${fmtTime(this.wallNs)} wall`);
    if (groups.some((g) => g.unit === 'op' && g.gflops)) lines.push('* integer ops (GOP/s): int8 W8A8');
    if (roof) {
      const c = this.calibration;
      const peaks = Object.entries(c.peaks).map(([d, p]) => `${d} ${fmtRate(p.gflops)}`).join(', ');
      lines.push(`roofline: peak GFLOP/s ${peaks}; bandwidth ${fmtRate(c.bandwidth.gbps)} GB/s ('bw': % of bandwidth, for ops without FLOPs)`);
    }
    return lines.join('\n');
  }

  toJSON(): { version: 1; startedAt: string; wallNs: number; records: ProfileRecord[]; groups: GroupStats[]; calibration: Calibration | null } {
    const cal = this.cal ?? cachedCalibration();
    if (cal) this.cal = cal;
    return {
      version: 1,
      startedAt: this.startedAt.toISOString(),
      wallNs: this.wallNs,
      records: this.records,
      groups: this.groups({ roofline: !!cal }),
      calibration: cal,
    };
  }

  /** Trace Event Format JSON (Perfetto, chrome://tracing); written to file when given. */
  toChromeTrace(file?: string): ChromeTrace {
    const t = chromeTrace(this.records, this.startedAt);
    if (file) fs.writeFileSync(file, JSON.stringify(t));
    return t;
  }

  /** The roofline picture as SVG text (one point per kernel group); written to file when given. */
  roofline(file?: string, options: RooflineOptions & { groupBy?: GroupBy } = {}): string {
    const svg = rooflineSvg(this.groups({ groupBy: options.groupBy ?? 'op', roofline: true }), this.calibration, options);
    if (file) fs.writeFileSync(file, svg);
    return svg;
  }
}

/** @internal closes a session and builds its report */
export function endSession(s: Session): ProfileReport {
  const wall = Number(process.hrtime.bigint() - s.origin);
  closeSession(s);
  const report = new ProfileReport(finalize(s), s.startedAt, wall);
  if (!isProfiling()) releaseMarks(s.raws);
  return report;
}
