'use strict';
// Checks the profiler's CUDA event timer (lib/backends/cuda/timer.ts) against Nsight Compute on the
// attention benchmark's shapes (benchmark/cuda/attention.js): per shape, the median device duration of
// an attention call as tessera.profile() records it (timing 'device': CUDA events on the stream around each
// launch, calls queued back to back with no sync between them) against the median of ncu's
// gpu__time_duration.sum over the attention kernels of a call (summed when a call launches several).
// Passes when every ratio event/ncu is within 1 ± TOL (default 0.10).
//
//   node benchmark/cuda/ncu_check.js [OUTDIR]        on a GPU machine with ncu on PATH (or $NCU)
//   node benchmark/cuda/ncu_check.js --child I W N   (what runs under ncu: W + N plain calls of shape I)
//
// ncu runs with --clock-control none (the GPU keeps the clocks it runs the event pass at; ncu's default
// would lock them to base), --cache-control none (no cache flush before each kernel: the event pass runs
// calls back to back on the same inputs, so it sees warm caches too), -k regex:attn_ (the attention
// kernels: attn_sm90_kernel, attn_mma_kernel, attn_combine_kernel), --csv --print-units base.
// Writes OUTDIR/cuda-profile-ncu.md and .json; exits 1 when a shape is off by more than TOL.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const T = require('../../dist');
const native = require('../../dist/backends/cuda/native.js');
const { getDeviceTimer } = require('../../dist/profile/profiler.js');

const SHAPES = [
  { name: 'B4 H16 S4096 D128', B: 4, Hq: 16, Sq: 4096, D: 128 },
  { name: 'B4 H16 S4096 D128 causal', B: 4, Hq: 16, Sq: 4096, D: 128, causal: true },
  { name: 'B8 H16 S2048 D64', B: 8, Hq: 16, Sq: 2048, D: 64 },
  { name: 'B8 H16 S2048 D64 causal', B: 8, Hq: 16, Sq: 2048, D: 64, causal: true },
  { name: 'decode B8 Hq32 Hkv8 Sk8192 D128', B: 8, Hq: 32, Hkv: 8, Sq: 1, Sk: 8192, D: 128, calls: 50 },
].map((s) => ({ Hkv: s.Hq, Sk: s.Sq, causal: false, calls: 20, ...s }));
const WARMUP = 3;
const NCU_CALLS = 10;
const TOL = Number(process.env.NCU_TOL || 0.1);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** bf16 cuda tensors q, k, v: one batch of uniform noise made on the host, repeated over B on the device. */
function inputs(s) {
  const mk = (H, S, seed) => {
    const one = T.rand([1, H, S, s.D], { seed, dtype: 'bfloat16' });
    const dev = one.to({ device: 'cuda' });
    one.dispose();
    const full = dev.expand([s.B, H, S, s.D]).contiguous();
    if (full !== dev) dev.dispose();
    return full;
  };
  return { q: mk(s.Hq, s.Sq, 1), k: mk(s.Hkv, s.Sk, 2), v: mk(s.Hkv, s.Sk, 3) };
}

function call(x, s) {
  const out = T.attention(x.q, x.k, x.v, { causal: s.causal });
  out.dispose();
}

const cuda = native.loadCudaBinding().binding;

if (process.argv[2] === '--child') {
  // under ncu: plain calls, no profiler
  const [i, w, n] = process.argv.slice(3).map(Number);
  const s = SHAPES[i];
  const x = inputs(s);
  cuda.synchronize();
  for (let c = 0; c < w + n; c++) call(x, s);
  cuda.synchronize();
  Object.values(x).forEach((t) => t.dispose());
  process.exit(0);
}

const OUT = process.argv[2] || '.';
if (!cuda) {
  console.log(`cuda unavailable: ${native.loadCudaBinding().reason}`);
  process.exit(0);
}
const timer = getDeviceTimer('cuda');
if (!timer) {
  console.log('no device timer registered for cuda (addon without eventRecord?): nothing to check');
  process.exit(1);
}
const NCU = process.env.NCU || 'ncu';
const device = cuda.deviceInfo().devices[0];

/** ncu's CSV (--csv --print-units base) -> [{id, kernel, ns}] in launch order */
function parseNcuCsv(text) {
  const lines = text.split('\n');
  const h = lines.findIndex((l) => l.startsWith('"ID"'));
  if (h < 0) return [];
  const split = (l) => {
    const out = [];
    let cur = '', q = false;
    for (let i = 0; i < l.length; i++) {
      const ch = l[i];
      if (q) {
        if (ch === '"' && l[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') q = false; else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') { out.push(cur); cur = ''; } else cur += ch;
    }
    out.push(cur);
    return out;
  };
  const head = split(lines[h]);
  const col = (name) => head.indexOf(name);
  const [cId, cK, cM, cU, cV] = ['ID', 'Kernel Name', 'Metric Name', 'Metric Unit', 'Metric Value'].map(col);
  const scale = { ns: 1, nsecond: 1, us: 1e3, usecond: 1e3, ms: 1e6, msecond: 1e6, s: 1e9, second: 1e9 };
  const rows = [];
  for (const l of lines.slice(h + 1)) {
    if (!l.startsWith('"')) continue;
    const r = split(l);
    if (r[cM] !== 'gpu__time_duration.sum') continue;
    const unit = r[cU];
    if (!(unit in scale)) throw new Error(`ncu: unexpected unit '${unit}' for gpu__time_duration.sum`);
    rows.push({ id: Number(r[cId]), kernel: r[cK], ns: Number(r[cV].replace(/,/g, '')) * scale[unit] });
  }
  return rows.sort((a, b) => a.id - b.id);
}

async function eventPass(s) {
  const x = inputs(s);
  for (let c = 0; c < WARMUP; c++) call(x, s);
  cuda.synchronize();
  const w0 = process.hrtime.bigint();
  const rep = await T.profile(() => {
    for (let c = 0; c < s.calls; c++) call(x, s);
  });
  const wallNs = Number(process.hrtime.bigint() - w0); // includes stopProfiling's wait for the last event
  const recs = rep.records.filter((r) => r.op === 'attention');
  // the same calls host-timed between device syncs (what the profiler did before the event timer)
  T.setDeviceTimer('cuda', null);
  let hostSync;
  try {
    const rep2 = await T.profile(() => {
      for (let c = 0; c < s.calls; c++) call(x, s);
    });
    hostSync = rep2.records.filter((r) => r.op === 'attention').map((r) => r.durationNs);
  } finally {
    T.setDeviceTimer('cuda', timer);
  }
  Object.values(x).forEach((t) => t.dispose());
  const trace = rep.toChromeTrace();
  const tracks = trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args.name);
  return {
    timing: [...new Set(recs.map((r) => r.timing))].join(','),
    variant: recs[0] && recs[0].variant,
    calls: recs.length,
    eventNs: recs.map((r) => r.durationNs),
    hostNs: recs.map((r) => r.endNs - r.startNs),
    hostSyncNs: hostSync,
    wallNs,
    deviceTrack: tracks.find((n) => n.startsWith('device: cuda')) || null,
  };
}

function ncuPass(i, s) {
  const log = path.join(OUT, `ncu-${i}.csv`);
  const args = ['--metrics', 'gpu__time_duration.sum', '--csv', '--print-units', 'base', '--clock-control', 'none',
    '--cache-control', 'none', '-k', 'regex:attn_', '--log-file', log,
    process.execPath, __filename, '--child', String(i), String(WARMUP), String(NCU_CALLS)];
  const r = spawnSync(NCU, args, { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 120000 });
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : r.stdout || '';
  const rows = parseNcuCsv(text);
  const calls = WARMUP + NCU_CALLS;
  if (r.status !== 0 || rows.length === 0 || rows.length % calls !== 0) {
    return { error: `ncu exit ${r.status}, ${rows.length} kernel rows for ${calls} calls: ${(r.stderr || '').slice(-600)} ${text.slice(-600)}` };
  }
  const k = rows.length / calls;
  const perCall = [];
  for (let c = WARMUP; c < calls; c++) perCall.push(rows.slice(c * k, (c + 1) * k).reduce((a, b) => a + b.ns, 0));
  return { kernels: [...new Set(rows.map((x) => x.kernel.replace(/\([^()]*\)$/, '')))], perCall: k, ns: perCall };
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const res = { device: device.name, date: new Date().toISOString(), tol: TOL, ncu: '', shapes: [] };
  const v = spawnSync(NCU, ['--version'], { encoding: 'utf8' });
  res.ncu = (v.stdout || '').trim().split('\n').pop() || `ncu not runnable: ${v.error || v.stderr}`;
  console.log(`${device.name}; ${res.ncu}`);
  for (const [i, s] of SHAPES.entries()) {
    const ev = await eventPass(s);
    const nc = ncuPass(i, s);
    const evMs = median(ev.eventNs) / 1e6;
    const ncMs = nc.ns ? median(nc.ns) / 1e6 : NaN;
    const row = {
      shape: s.name, ...ev, eventMs: evMs, hostSyncMs: median(ev.hostSyncNs) / 1e6, ncuMs: ncMs,
      ratio: evMs / ncMs, ncu: nc, sumEventNs: ev.eventNs.reduce((a, b) => a + b, 0),
    };
    row.ok = Number.isFinite(row.ratio) && Math.abs(row.ratio - 1) <= TOL && row.sumEventNs <= ev.wallNs && ev.timing === 'device';
    res.shapes.push(row);
    console.log(`${s.name.padEnd(34)} ${ev.variant} timing=${ev.timing} event ${evMs.toFixed(4)} ms  ncu ${ncMs.toFixed(4)} ms ` +
      `(${nc.perCall || '?'} kernel/call)  ratio ${row.ratio.toFixed(4)}  host-sync ${row.hostSyncMs.toFixed(4)} ms  ` +
      `sum(events)/wall ${(row.sumEventNs / ev.wallNs).toFixed(3)}  ${row.ok ? 'OK' : 'FAIL'}${nc.error ? ' ' + nc.error : ''}`);
  }
  res.pass = res.shapes.every((r) => r.ok);
  fs.writeFileSync(path.join(OUT, 'cuda-profile-ncu.json'), JSON.stringify(res, null, 1));
  const L = [
    `# Profiler event timing vs Nsight Compute — ${res.device}`,
    '',
    `${res.date}; ${res.ncu}. Produced by \`node benchmark/cuda/ncu_check.js\`.`,
    '',
    `- **event ms**: median \`durationNs\` of the \`attention\` records of one \`tessera.profile()\` session (timing \`device\`: CUDA events recorded on the backend stream around each launch by lib/backends/cuda/timer.ts), ${SHAPES[0].calls} calls per prefill shape and ${SHAPES[4].calls} for decode, queued back to back with no sync between them, after ${WARMUP} warm-up calls.`,
    `- **ncu ms**: median per call of \`gpu__time_duration.sum\` over the attention kernels (\`-k regex:attn_\`, summed per call), ${NCU_CALLS} calls after ${WARMUP} warm-ups, \`ncu --clock-control none --cache-control none --csv --print-units base\` (clocks left as the event pass had them, no cache flush between kernels).`,
    `- **host-sync ms**: the same calls timed the old way (host clock between two device syncs), for contrast.`,
    `- pass: |event/ncu − 1| ≤ ${TOL}, records timed \`device\`, and the sum of event durations ≤ the session's wall time.`,
    '',
    '| shape | kernel | event ms | ncu ms | ratio event/ncu | host-sync ms | sum(events)/wall | ok |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...res.shapes.map((r) => `| ${r.shape} | ${r.variant} | ${r.eventMs.toFixed(4)} | ${r.ncuMs.toFixed(4)} | ${r.ratio.toFixed(3)} | ${r.hostSyncMs.toFixed(4)} | ${(r.sumEventNs / r.wallNs).toFixed(3)} | ${r.ok ? 'yes' : 'NO'} |`),
    '',
    `Result: ${res.pass ? 'PASS' : 'FAIL'} — every shape within ${Math.round(TOL * 100)}%: ${res.pass ? 'yes' : 'no'}.`,
  ];
  fs.writeFileSync(path.join(OUT, 'cuda-profile-ncu.md'), L.join('\n') + '\n');
  console.log('\n' + L.join('\n'));
  process.exit(res.pass ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
