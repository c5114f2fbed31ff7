'use strict';
// Checks the profiler's CUDA event timer (lib/backends/cuda/timer.ts) against Nsight Compute on one or two
// representative shapes of every CUDA kernel family (lib/backends/cuda/ops.ts, cuda/ops_*.cu) and on the
// attention benchmark's shapes (benchmark/cuda/attention.js): per shape, the median device duration of one
// op call as tessera.profile() records it (timing 'device': CUDA events on the stream around each launch,
// calls queued back to back with no sync between them) against the median of ncu's gpu__time_duration.sum
// over that op's kernels in a call (summed when a call launches several, as split-KV decode does).
// Passes when every ratio event/ncu is within 1 ± TOL (default 0.10). Shapes are sized so that each kernel
// runs ≥ ~50 µs: shorter kernels than the host's per-op dispatch let the stream drain between calls.
//
//   node benchmark/cuda/ncu_check.js [OUTDIR]        on a GPU machine with ncu on PATH (or $NCU)
//   node benchmark/cuda/ncu_check.js --child I W N   (what runs under ncu: W + N plain calls of shape I)
//   NCU_ONLY=regex                                   only the shapes whose family or name matches
//
// ncu runs with --clock-control none (the GPU keeps the clocks it runs the event pass at; ncu's default
// would lock them to base), --cache-control none (no cache flush before each kernel: the event pass runs
// calls back to back on the same inputs, so it sees warm caches too), -k regex:<the shape's kernels> (names
// of cuda/ops_*.cu and cuda/attention*.cu, e.g. attn_ for attn_sm90_kernel / attn_mma_kernel /
// attn_combine_kernel, mm_tc_kernel, norm_kernel), --csv --print-units base. Only the last (W + N) · k
// matching launches count (k kernels per call), so a kernel that making the inputs launched is skipped.
// Writes OUTDIR/cuda-profile-ncu.md and .json (after every shape); exits 1 when a shape is off by more than TOL.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const T = require('../../dist');
const native = require('../../dist/backends/cuda/native.js');
const { getDeviceTimer } = require('../../dist/profile/profiler.js');

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** A cuda tensor of uniform noise: a chunk of ≤ 2^20 elements made on the host, tiled on the device. */
function noise(shape, dtype, seed) {
  const n = numel(shape);
  let chunk = 1;
  while (chunk < (1 << 20) && n % (chunk * 2) === 0) chunk *= 2;
  const host = T.rand([1, chunk], { seed, dtype });
  const dev = host.to({ device: 'cuda' });
  host.dispose();
  if (chunk === n) return dev.reshape(shape);
  const full = dev.expand([n / chunk, chunk]).contiguous();
  if (full !== dev) dev.dispose();
  return full.reshape(shape);
}

/** bf16 cuda tensors q, k, v: one batch of uniform noise made on the host, repeated over B on the device. */
function attnInputs(s) {
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

const attn = (s) => ({
  family: 'attention', op: 'attention', kernels: 'attn_', calls: 20, ...s,
  make: () => attnInputs({ Hkv: s.Hq, Sk: s.Sq, ...s }),
  run: (x) => T.attention(x.q, x.k, x.v, { causal: !!s.causal }),
});
const BF = 'bfloat16';
const ALL_SHAPES = [
  // elementwise / broadcast (ew_kernel)
  { family: 'elementwise', name: 'add f32 [8192, 8192] + [8192] (broadcast)', op: 'add', kernels: 'ew_kernel',
    make: () => ({ a: noise([8192, 8192], 'float32', 1), b: noise([8192], 'float32', 2) }), run: (x) => T.add(x.a, x.b) },
  { family: 'elementwise', name: 'silu bf16 [16384, 11008]', op: 'silu', kernels: 'ew_kernel',
    make: () => ({ a: noise([16384, 11008], BF, 1) }), run: (x) => T.silu(x.a) },
  // reductions + softmax
  { family: 'reduction', name: 'sum dim -1 bf16 [8192, 4096]', op: 'sum', kernels: 'reduce_rows_kernel',
    make: () => ({ a: noise([8192, 4096], BF, 1) }), run: (x) => T.sum(x.a, { dim: -1 }) },
  { family: 'reduction', name: 'sum dim -1 bf16 [32768, 4096]', op: 'sum', kernels: 'reduce_rows_kernel',
    make: () => ({ a: noise([32768, 4096], BF, 1) }), run: (x) => T.sum(x.a, { dim: -1 }) },
  // (dim 0 runs reduce_rows_kernel too, reading the transposed view's strides)
  { family: 'reduction', name: 'sum dim 0 bf16 [8192, 4096]', op: 'sum', kernels: 'reduce_(rows|cols)_kernel',
    make: () => ({ a: noise([8192, 4096], BF, 1) }), run: (x) => T.sum(x.a, { dim: 0 }) },
  { family: 'reduction', name: 'softmax dim -1 bf16 [8192, 4096]', op: 'softmax', kernels: 'softmax_rows_kernel',
    make: () => ({ a: noise([8192, 4096], BF, 1) }), run: (x) => T.softmax(x.a, -1) },
  { family: 'reduction', name: 'softmax dim -1 bf16 [16384, 4096]', op: 'softmax', kernels: 'softmax_rows_kernel',
    make: () => ({ a: noise([16384, 4096], BF, 1) }), run: (x) => T.softmax(x.a, -1) },
  // norms / rope
  { family: 'norm/rope', name: 'rmsNorm bf16 [16384, 4096] w [4096]', op: 'rmsNorm', kernels: 'norm_kernel',
    make: () => ({ a: noise([16384, 4096], BF, 1), w: noise([4096], BF, 2) }), run: (x) => T.rmsNorm(x.a, x.w, 1e-6) },
  { family: 'norm/rope', name: 'rope bf16 [1, 32, 4096, 128]', op: 'rope', kernels: 'rope_kernel',
    make: () => ({ a: noise([1, 32, 4096, 128], BF, 1) }), run: (x) => T.rope(x.a) },
  // rope's tables stay on the device between calls with the same positions (cuda/ops_nn.cu), so a call is one
  // launch; B = 8 checks a kernel that outlasts the host side of the call by far
  { family: 'norm/rope', name: 'rope bf16 [8, 32, 4096, 128]', op: 'rope', kernels: 'rope_kernel',
    make: () => ({ a: noise([8, 32, 4096, 128], BF, 1) }), run: (x) => T.rope(x.a) },
  // matmul / linear
  { family: 'matmul', name: 'matmul bf16 4096³', op: 'matmul', kernels: 'mm_tc_kernel',
    make: () => ({ a: noise([4096, 4096], BF, 1), b: noise([4096, 4096], BF, 2) }), run: (x) => T.matmul(x.a, x.b) },
  { family: 'matmul', name: 'matmul f32 2048³', op: 'matmul', kernels: 'mm_f32_kernel',
    make: () => ({ a: noise([2048, 2048], 'float32', 1), b: noise([2048, 2048], 'float32', 2) }), run: (x) => T.matmul(x.a, x.b) },
  { family: 'matmul', name: 'linear bf16 [4096, 4096] x [11008, 4096]ᵀ', op: 'linear', kernels: 'mm_tc_kernel',
    make: () => ({ a: noise([4096, 4096], BF, 1), w: noise([11008, 4096], BF, 2) }), run: (x) => T.linear(x.a, x.w) },
  // attention (the shapes of benchmark/cuda/attention.js)
  attn({ name: 'B4 H16 S4096 D128', B: 4, Hq: 16, Sq: 4096, D: 128 }),
  attn({ name: 'B4 H16 S4096 D128 causal', B: 4, Hq: 16, Sq: 4096, D: 128, causal: true }),
  attn({ name: 'B8 H16 S2048 D64', B: 8, Hq: 16, Sq: 2048, D: 64 }),
  attn({ name: 'B8 H16 S2048 D64 causal', B: 8, Hq: 16, Sq: 2048, D: 64, causal: true }),
  attn({ name: 'decode B8 Hq32 Hkv8 Sk8192 D128', B: 8, Hq: 32, Hkv: 8, Sq: 1, Sk: 8192, D: 128, calls: 50 }),
].map((s) => ({ calls: 30, ...s }));
const ONLY = process.env.NCU_ONLY ? new RegExp(process.env.NCU_ONLY) : null;
const SHAPES = ONLY ? ALL_SHAPES.filter((s) => ONLY.test(s.family) || ONLY.test(s.name)) : ALL_SHAPES;
const WARMUP = 3;
const NCU_CALLS = 10;
const TOL = Number(process.env.NCU_TOL || 0.1);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function call(x, s) {
  const out = s.run(x);
  out.dispose();
}

const cuda = native.loadCudaBinding().binding;

if (process.argv[2] === '--child') {
  // under ncu: plain calls, no profiler
  const [i, w, n] = process.argv.slice(3).map(Number);
  const s = SHAPES[i];
  const x = s.make();
  cuda.synchronize();
  for (let c = 0; c < w + n; c++) call(x, s);
  cuda.synchronize();
  Object.values(x).forEach((t) => t.dispose());
  process.exit(0);
}

const REPORT = process.argv[2] === '--report';
const OUT = REPORT ? process.argv[4] || '.' : process.argv[2] || '.';
if (!REPORT && !cuda) {
  console.log(`cuda unavailable: ${native.loadCudaBinding().reason}`);
  process.exit(0);
}
const timer = REPORT ? null : getDeviceTimer('cuda');
if (!REPORT && !timer) {
  console.log('no device timer registered for cuda (addon without eventRecord?): nothing to check');
  process.exit(1);
}
const NCU = process.env.NCU || 'ncu';
const device = REPORT ? null : cuda.deviceInfo().devices[0];

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
  const x = s.make();
  for (let c = 0; c < WARMUP; c++) call(x, s);
  cuda.synchronize();
  const w0 = process.hrtime.bigint();
  const rep = await T.profile(() => {
    for (let c = 0; c < s.calls; c++) call(x, s);
  });
  const wallNs = Number(process.hrtime.bigint() - w0); // includes stopProfiling's wait for the last event
  const recs = rep.records.filter((r) => r.op === s.op);
  // the same calls host-timed between device syncs (what the profiler did before the event timer)
  T.setDeviceTimer('cuda', null);
  let hostSync;
  try {
    const rep2 = await T.profile(() => {
      for (let c = 0; c < s.calls; c++) call(x, s);
    });
    hostSync = rep2.records.filter((r) => r.op === s.op).map((r) => r.durationNs);
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
    otherOps: [...new Set(rep.records.filter((r) => r.op !== s.op).map((r) => r.op))],
    eventNs: recs.map((r) => r.durationNs),
    hostNs: recs.map((r) => r.endNs - r.startNs),
    hostSyncNs: hostSync,
    wallNs,
    deviceTrack: tracks.find((n) => n.startsWith('device: cuda')) || null,
  };
}

/** 'void ew_kernel<AddF, 3, true>(EwArgs<3>, AddF)' -> 'ew_kernel<AddF, 3, true>' */
const shortKernel = (k) => k.replace(/^void /, '').replace(/unnamed>::|\(anonymous namespace\)::/g, '').replace(/\((?:[^()]|\([^()]*\))*\)$/, '');

function ncuPass(i, s) {
  const log = path.join(OUT, `ncu-${i}.csv`);
  const args = ['--metrics', 'gpu__time_duration.sum', '--csv', '--print-units', 'base', '--clock-control', 'none',
    '--cache-control', 'none', '-k', `regex:${s.kernels}`, '--log-file', log,
    process.execPath, __filename, '--child', String(i), String(WARMUP), String(NCU_CALLS)];
  const r = spawnSync(NCU, args, { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 90000 });
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : r.stdout || '';
  try { fs.unlinkSync(log); } catch (e) { /* keep $OUT small: the json holds the numbers */ }
  const all = parseNcuCsv(text);
  const calls = WARMUP + NCU_CALLS;
  const k = s.k || Math.max(1, Math.floor(all.length / calls)); // kernels per call (split-KV decode: 1 or 2)
  if (r.status !== 0 || all.length < calls * k) {
    return { error: `ncu exit ${r.status}, ${all.length} kernel rows for ${calls} calls × ${k}: ${(r.stderr || '').slice(-600)} ${text.slice(-600)}` };
  }
  const rows = all.slice(all.length - calls * k); // the calls' launches are the last ones
  const perCall = [];
  for (let c = WARMUP; c < calls; c++) perCall.push(rows.slice(c * k, (c + 1) * k).reduce((a, b) => a + b.ns, 0));
  return { kernels: [...new Set(rows.map((x) => shortKernel(x.kernel)))], perCall: k, skipped: all.length - rows.length, ns: perCall };
}

const f4 = (v) => (Number.isFinite(v) ? v.toFixed(4) : 'n/a');
const f3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');

/** Lines under the table for shapes whose session left the stream idle (sum(events)/wall < 0.8). */
function notes(res) {
  const low = res.shapes.filter((r) => r.sumEventNs / r.wallNs < 0.8);
  const bad = low.filter((r) => !r.ok).map((r) => r.shape);
  const good = low.filter((r) => r.ok).map((r) => r.shape);
  const L = [];
  if (bad.length) {
    L.push(`${bad.join('; ')}: sum(events)/wall < 0.8 and event/ncu off: the stream sat idle between calls because the op's host side ` +
      `took longer than its kernel, so each call's first event was recorded on an idle stream and its duration also holds the host's ` +
      `work between that event and the launch (lib/backends/cuda/timer.ts notes this); ncu times the kernel alone.`, '');
  }
  if (good.length) {
    L.push(`${good.join('; ')}: sum(events)/wall < 0.8 with event/ncu in range: the session had idle time outside the calls' ` +
      `event windows (the wall time also spans profile() start and stop); the per-call durations do not hold it.`, '');
  }
  return L;
}

function writeReport(res, dir = OUT) {
  fs.writeFileSync(path.join(dir, 'cuda-profile-ncu.json'), JSON.stringify(res, null, 1));
  const L = [
    `# Profiler event timing vs Nsight Compute — ${res.device}`,
    '',
    `${res.date}; ${res.ncu}. Produced by \`node benchmark/cuda/ncu_check.js\`.`,
    '',
    `- **event ms**: median \`durationNs\` of the op's records (the op named in the shape) in one \`tessera.profile()\` session (timing \`device\`: CUDA events recorded on the backend stream around each launch by lib/backends/cuda/timer.ts), ${ALL_SHAPES[0].calls} calls per shape (attention prefill 20, decode 50), queued back to back with no sync between them, after ${WARMUP} warm-up calls. Inputs are uniform noise made on the host in chunks of ≤ 2^20 elements and tiled on the device.`,
    `- **ncu ms**: median per call of \`gpu__time_duration.sum\` over the shape's kernels (\`-k regex:<kernel>\`, the last ${WARMUP + NCU_CALLS} × kernels-per-call launches, summed per call), ${NCU_CALLS} calls after ${WARMUP} warm-ups, \`ncu --clock-control none --cache-control none --csv --print-units base\` (clocks left as the event pass had them, no cache flush between kernels).`,
    `- **host-sync ms**: the same calls timed the old way (host clock between two device syncs), for contrast.`,
    `- pass: |event/ncu − 1| ≤ ${TOL}, records timed \`device\`, and the sum of event durations ≤ the session's wall time.`,
    '',
    '| family | shape | kernel (ncu) | variant | event ms | ncu ms | ratio event/ncu | within 10%? | host-sync ms | sum(events)/wall |',
    '|---|---|---|---|---:|---:|---:|---|---:|---:|',
    ...res.shapes.map((r) => `| ${r.family} | ${r.shape} | ${r.ncu.kernels ? r.ncu.kernels.map((k) => `\`${k}\``).join(' + ') : 'ncu failed'} | ${r.variant} | ${f4(r.eventMs)} | ${f4(r.ncuMs)} | ${f3(r.ratio)} | ${r.ok ? 'yes' : 'NO'} | ${f4(r.hostSyncMs)} | ${f3(r.sumEventNs / r.wallNs)} |`),
    '',
    ...notes(res),
    `Result: ${res.pass ? 'PASS' : 'FAIL'} — every shape within ${Math.round(TOL * 100)}%: ${res.pass ? 'yes' : 'no'}` +
      `${res.shapes.length < SHAPES.length ? ` (${res.shapes.length} of ${SHAPES.length} shapes run)` : ''}.`,
  ];
  fs.writeFileSync(path.join(dir, 'cuda-profile-ncu.md'), L.join('\n') + '\n');
  return L;
}

if (process.argv[2] === '--report') {
  // node benchmark/cuda/ncu_check.js --report RESULTS.json OUT: rewrites the md from a run's json (no GPU needed)
  const res = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  for (const r of res.shapes) if (r.ncu && r.ncu.kernels) r.ncu.kernels = r.ncu.kernels.map(shortKernel);
  fs.mkdirSync(OUT, { recursive: true });
  writeReport(res, OUT);
  process.exit(res.pass ? 0 : 1);
}


(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const res = { device: device.name, date: new Date().toISOString(), tol: TOL, ncu: '', shapes: [] };
  const v = spawnSync(NCU, ['--version'], { encoding: 'utf8' });
  res.ncu = (v.stdout || '').trim().split('\n').pop() || `ncu not runnable: ${v.error || v.stderr}`;
  console.log(`${device.name}; ${res.ncu}`);
  for (const [i, s] of SHAPES.entries()) {
    const t0 = Date.now();
    let ev, nc;
    try {
      ev = await eventPass(s);
      nc = ncuPass(i, s);
    } catch (e) {
      console.log(`${s.name}: ${e && e.stack || e}`);
      res.shapes.push({ family: s.family, shape: s.name, error: String(e), ncu: {}, ok: false });
      res.pass = false;
      writeReport(res);
      continue;
    }
    const evMs = median(ev.eventNs) / 1e6;
    const ncMs = nc.ns ? median(nc.ns) / 1e6 : NaN;
    const row = {
      family: s.family, shape: s.name, ...ev, eventMs: evMs, hostSyncMs: median(ev.hostSyncNs) / 1e6, ncuMs: ncMs,
      eventMinMs: Math.min(...ev.eventNs) / 1e6, eventMaxMs: Math.max(...ev.eventNs) / 1e6,
      ratio: evMs / ncMs, ncu: nc, sumEventNs: ev.eventNs.reduce((a, b) => a + b, 0),
    };
    row.ok = Number.isFinite(row.ratio) && Math.abs(row.ratio - 1) <= TOL && row.sumEventNs <= ev.wallNs && ev.timing === 'device';
    res.shapes.push(row);
    res.pass = res.shapes.every((r) => r.ok);
    writeReport(res);
    console.log(`${s.name.padEnd(42)} ${ev.variant} timing=${ev.timing} event ${f4(evMs)} ms  ncu ${f4(ncMs)} ms ` +
      `(${nc.kernels ? nc.kernels.join('+') : '?'} ×${nc.perCall || '?'}, ${nc.skipped || 0} skipped)  ratio ${f3(row.ratio)}  host-sync ${f4(row.hostSyncMs)} ms  ` +
      `sum(events)/wall ${f3(row.sumEventNs / ev.wallNs)}  ${row.ok ? 'OK' : 'FAIL'}${nc.error ? ' ' + nc.error : ''}  [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  }
  res.pass = res.shapes.length === SHAPES.length && res.shapes.every((r) => r.ok);
  const L = writeReport(res);
  console.log('\n' + L.join('\n'));
  process.exit(res.pass ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
