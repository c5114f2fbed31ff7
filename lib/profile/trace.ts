/**
 * Chrome Trace Event Format export (opens in Perfetto and chrome://tracing): complete 'X' events with ts
 * and dur in microseconds since the profile started, one process, and these tracks (tid), each named by a
 * thread_name metadata event:
 *   1          host: main thread - synchronous kernels (never overlap: one runs at a time)
 *   2, 3, ...  host: async kernels - dispatchAsync calls, packed into as many lanes as were in flight at once
 *   101, ...   device: <backend> - device kernels (device-timer or host-sync intervals), also packed
 * Packing puts each event in the first lane whose last event has ended, so events on one track never
 * partially overlap, and every track's events are written in start order.
 */
import { fmtTensor } from './cost';
import type { ProfileRecord } from './report';

export interface TraceEvent {
  name: string;
  ph: 'X' | 'M';
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  cat?: string;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms' | 'ns';
  otherData: Record<string, unknown>;
}

interface Item {
  rec: ProfileRecord;
  start: number;
  end: number;
  device: boolean;
}

/** Greedy interval packing: lane index per item (items sorted by start). */
function pack(items: Item[]): number[] {
  const ends: number[] = [];
  return items.map((it) => {
    let lane = ends.findIndex((e) => e <= it.start);
    if (lane < 0) lane = ends.push(0) - 1;
    ends[lane] = it.end;
    return lane;
  });
}

const us = (ns: number): number => Math.round(ns) / 1000;

export function chromeTrace(records: ProfileRecord[], startedAt: Date): ChromeTrace {
  const pid = process.pid;
  const events: TraceEvent[] = [];
  const names = new Map<number, string>();
  const byStart = (a: Item, b: Item) => a.start - b.start || a.end - b.end;

  const sync: Item[] = [];
  const asyncs: Item[] = [];
  const device = new Map<string, Item[]>();
  for (const rec of records) {
    const host = { rec, start: rec.startNs, end: rec.endNs, device: false };
    (rec.async ? asyncs : sync).push(host);
    if (rec.deviceStartNs !== undefined && rec.deviceEndNs !== undefined) {
      const list = device.get(rec.backend) ?? [];
      list.push({ rec, start: rec.deviceStartNs, end: rec.deviceEndNs, device: true });
      device.set(rec.backend, list);
    }
  }
  const tracks: [Item, number][] = [];
  const place = (items: Item[], base: number, label: (lane: number) => string) => {
    items.sort(byStart);
    pack(items).forEach((lane, i) => {
      tracks.push([items[i], base + lane]);
      names.set(base + lane, label(lane));
    });
  };
  place(sync, 1, () => 'host: main thread (sync kernels)');
  place(asyncs, 2, (l) => `host: async kernels ${l + 1}`);
  let base = 101;
  for (const [backend, items] of device) {
    const how = items.some((i) => i.rec.timing === 'device') ? 'device timer' : 'host-timed after a device sync';
    place(items, base, (l) => `device: ${backend}${l ? ` ${l + 1}` : ''} (${how})`);
    base += 100;
  }

  events.push({ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: 'tessera' } });
  for (const [tid, name] of [...names].sort((a, b) => a[0] - b[0])) {
    events.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name } });
    events.push({ name: 'thread_sort_index', ph: 'M', ts: 0, pid, tid, args: { sort_index: tid } });
  }
  tracks.sort((a, b) => a[0].start - b[0].start || a[1] - b[1]);
  for (const [it, tid] of tracks) {
    const r = it.rec;
    const ts = us(it.start);
    events.push({
      name: r.op,
      ph: 'X',
      ts,
      dur: Math.max(0, Math.round(it.end) - Math.round(it.start)) / 1000,
      pid,
      tid,
      cat: it.device ? `kernel,device,${r.backend}` : `kernel,${r.async ? 'async' : 'sync'},${r.backend}`,
      args: {
        id: r.id,
        backend: r.backend,
        variant: r.variant,
        inputs: r.inputs.map(fmtTensor),
        shapes: r.inputs.map((t) => t.shape),
        dtypes: r.inputs.map((t) => t.dtype),
        outputs: r.outputs.map(fmtTensor),
        flops: r.flops,
        bytes: r.bytes,
        unit: r.unit,
        gflops: Number(r.gflops.toPrecision(4)),
        gbps: Number(r.gbps.toPrecision(4)),
        timing: r.timing,
        ...(Object.keys(r.attrs).length ? { attrs: r.attrs } : {}),
      },
    });
  }
  return { traceEvents: events, displayTimeUnit: 'ms', otherData: { producer: 'tessera profiler', startedAt: startedAt.toISOString() } };
}
