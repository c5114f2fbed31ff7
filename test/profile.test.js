'use strict';
// The profiler: FLOP/byte declarations against hand counts for every op, records (backend, variant,
// shapes, times), the key-averages table, Chrome trace validity (Trace Event Format fields, monotonic and
// properly nested tracks), device-timer plumbing, the run hook's life cycle, calibration caching, and the
// CLI (`tessera profile script.js`, `tessera bench`).
const test = require('tape');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-profile-'));
process.env.XDG_CACHE_HOME = path.join(tmp, 'cache'); // never touch the user's real calibration cache
const T = require('../dist');
const registry = require('../dist/registry');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'bin', 'tessera.js');
const cpu = T.backends().find((b) => b.name === 'cpu');
const gemmBackend = cpu.available ? 'cpu' : 'js';

/** A fixed roofline so table and SVG numbers do not depend on this machine's mood. */
const FAKE_CAL = {
  version: 1, key: 'test', cpu: 'test cpu', cores: 2, simd: 'test', node: process.version, measuredAt: '2020-01-01T00:00:00.000Z', ms: 0,
  peaks: { float32: { gflops: 100, unit: 'flop', backend: 'cpu', variant: 'gemm_test', shape: [512, 512, 512] } },
  bandwidth: { gbps: 10, method: 'test', bytes: 1 },
};

/** Runs f under startProfiling/stopProfiling; the records of op (all of them). */
function recordsOf(op, f) {
  T.startProfiling();
  try {
    f();
  } finally {
    var rep = T.stopProfiling();
  }
  return rep.records.filter((r) => r.op === op);
}

/** Validates a Trace Event Format object; returns a list of problems (empty when valid). */
function traceProblems(trace) {
  const errs = [];
  if (!trace || !Array.isArray(trace.traceEvents)) return ['traceEvents is not an array'];
  const tracks = new Map();
  const named = new Set();
  trace.traceEvents.forEach((e, i) => {
    for (const k of ['ph', 'ts', 'pid', 'tid', 'name']) if (e[k] === undefined) errs.push(`event ${i} lacks ${k}`);
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) errs.push(`event ${i}: ts ${e.ts} is not a finite number`);
    if (e.ph === 'M' && e.name === 'thread_name') named.add(`${e.pid}/${e.tid}`);
    if (e.ph === 'X') {
      if (typeof e.dur !== 'number' || !(e.dur >= 0)) errs.push(`event ${i} (${e.name}): dur ${e.dur} is not >= 0`);
      const key = `${e.pid}/${e.tid}`;
      if (!tracks.has(key)) tracks.set(key, []);
      tracks.get(key).push(e);
    } else if (e.ph !== 'M') errs.push(`event ${i}: unexpected ph ${e.ph}`);
  });
  const eps = 1e-3; // µs: float rounding of ns / 1000
  for (const [key, evs] of tracks) {
    if (!named.has(key)) errs.push(`track ${key} has no thread_name metadata`);
    const stack = [];
    for (let i = 0; i < evs.length; i++) {
      const e = evs[i];
      if (i > 0 && e.ts < evs[i - 1].ts) errs.push(`track ${key}: ts not monotonic at ${e.name} (${e.ts} after ${evs[i - 1].ts})`);
      while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts + eps) stack.pop();
      const top = stack[stack.length - 1];
      if (top && e.ts + e.dur > top.ts + top.dur + eps) errs.push(`track ${key}: ${e.name}@${e.ts} partially overlaps ${top.name}@${top.ts}`);
      stack.push(e);
    }
  }
  return errs;
}

test('every op declares a cost; FLOPs and bytes match hand counts', (t) => {
  t.deepEqual(Object.keys(T.FLOP_COSTS).sort(), [...T.OP_NAMES].sort(), 'one cost function per op name');
  const seen = new Set();
  const check = (op, f, flops, bytes, what = op, unit = 'flop') => {
    const rs = recordsOf(op, f);
    seen.add(op);
    t.equal(rs.length, 1, `${what}: one record`);
    if (rs.length !== 1) return;
    t.equal(rs[0].flops, flops, `${what}: ${flops} FLOPs`);
    t.equal(rs[0].bytes, bytes, `${what}: ${bytes} bytes`);
    t.equal(rs[0].unit, unit, `${what}: unit ${unit}`);
  };
  const r = (shape, seed = 1, dtype = 'float32') => T.randn(shape, { seed, dtype });

  // linear algebra: 2·batch·M·N·K; bytes = inputs + output at 4 B (bf16 2 B)
  check('matmul', () => T.matmul(r([2, 3, 4]), r([4, 5])), 2 * 2 * 3 * 5 * 4, (24 + 20 + 30) * 4, 'matmul [2,3,4]@[4,5]');
  check('matmul', () => T.matmul(r([4]), r([4, 5])), 2 * 5 * 4, (4 + 20 + 5) * 4, 'matmul 1-D [4]@[4,5]');
  check('matmul', () => T.matmul(r([8, 16], 1, 'bfloat16'), r([16, 4], 2, 'bfloat16')), 1024, (128 + 64 + 32) * 2, 'matmul bf16');
  check('linear', () => T.linear(r([3, 4]), r([5, 4]), r([5])), 2 * 3 * 5 * 4 + 15, (12 + 20 + 5 + 15) * 4, 'linear with bias');
  // attention 2·B·Hq·pairs·(D + Dv): full, causal square (1+2+3+4 pairs), causal decode (4 + 5), negative offset (0+1+2)
  check('attention', () => T.attention(r([1, 2, 3, 4]), r([1, 1, 5, 4]), r([1, 1, 5, 4])), 2 * 2 * 15 * 8, (24 + 20 + 20 + 24) * 4, 'attention GQA full');
  check('attention', () => T.attention(r([1, 1, 4, 2]), r([1, 1, 4, 2]), r([1, 1, 4, 2]), { causal: true }), 2 * 10 * 4, 4 * 8 * 4, 'attention causal 4x4');
  check('attention', () => T.attention(r([1, 1, 2, 4]), r([1, 1, 5, 4]), r([1, 1, 5, 4]), { causal: true }), 2 * 9 * 8, (8 + 20 + 20 + 8) * 4, 'attention causal decode Sq2 Sk5');
  check('attention', () => T.attention(r([1, 1, 3, 2]), r([1, 1, 3, 2]), r([1, 1, 3, 2]), { causal: true, kvOffset: -1 }), 2 * 3 * 4, 4 * 6 * 4, 'attention causal kvOffset -1');
  t.equal(T.attentionPairs(4, 4, true, 0), 10, 'attentionPairs: square causal counts the visible pairs exactly');

  // low precision: int8 counts ops; packed int4 is half a byte
  const w8 = T.quantize(r([8, 4]), { dtype: 'int8' });
  check('qmatmul', () => T.qmatmul(r([2, 8]), w8), 2 * 2 * 4 * 8, 64 + 32 + 16 + 32, 'qmatmul int8 (W8A8 ops)', 'op');
  const w4 = T.quantize(r([64, 4]), { dtype: 'int4' });
  check('qmatmul', () => T.qmatmul(r([1, 64]), w4), 2 * 4 * 64, 256 + 128 + 32 + 16, 'qmatmul int4 (0.5 B per weight)');
  check('quantize', () => T.quantize(r([8, 4]), { dtype: 'int8' }), 3 * 32, 128 + 32 + 16);
  check('dequantize', () => T.dequantize(w8), 32, 32 + 16 + 128);

  // sparse: 2·nnz·N
  const dense = T.tensor([[1, 0, 0, 2], [0, 0, 3, 0], [4, 5, 0, 0]]);
  let csr;
  check('sparseFromDense', () => (csr = T.sparse.fromDense(dense, { format: 'csr' })), 12, 48 + 16 + 20 + 20);
  check('spmm', () => T.spmm(csr, r([4, 2])), 2 * 5 * 2, 16 + 20 + 20 + 32 + 24, 'spmm csr nnz 5');
  check('sparseToDense', () => csr.toDense(), 0, 16 + 20 + 20 + 48);
  const s24 = T.sparse.fromDense(r([2, 8]), { format: '2:4' });
  const metaBytes = s24.parts[1].size;
  check('spmm', () => T.spmm(s24, r([8, 3])), 2 * 8 * 3, 8 * 4 + metaBytes + 24 * 4 + 6 * 4, 'spmm 2:4 (M·K/2 kept)');

  // elementwise: 1 per output element
  for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum']) {
    check(op, () => T[op](r([2, 3]), r([3], 2)), 6, (6 + 3 + 6) * 4, `${op} [2,3] with [3]`);
  }
  check('add', () => T.add(r([4]), 2), 4, (4 + 1 + 4) * 4, 'add with a weak scalar (0-d)');
  for (const op of ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'square']) {
    check(op, () => T[op](r([2, 3])), 6, 48);
  }
  check('gelu_tanh', () => T.gelu(r([2, 3]), { approximate: 'tanh' }), 6, 48);
  check('where', () => T.where(T.tensor([1, 0, 1, 0], { dtype: 'bool' }), r([4]), r([4], 2)), 4, 4 + 16 + 16 + 16);

  // reductions: 1 per input element; softmax 5; norms 3 (+1 weight) and 6 (+1 weight +1 bias)
  for (const op of ['sum', 'mean', 'max', 'min']) check(op, () => T[op](r([3, 4]), { dim: 1 }), 12, 48 + 12);
  check('argmax', () => T.argmax(r([3, 4])), 12, 48 + 4);
  check('argmin', () => T.argmin(r([3, 4]), { dim: 1 }), 12, 48 + 12);
  check('cumsum', () => T.cumsum(r([3, 4]), 1), 12, 96);
  check('topk', () => T.topk(r([3, 4]), 2), 12, 48 + 24 + 24);
  check('softmax', () => T.softmax(r([2, 5])), 50, 80);
  check('logSoftmax', () => T.logSoftmax(r([2, 5])), 50, 80);
  check('rmsNorm', () => T.rmsNorm(r([2, 4]), r([4])), 4 * 8, (8 + 4 + 8) * 4, 'rmsNorm with weight');
  check('rmsNorm', () => T.rmsNorm(r([2, 4])), 3 * 8, 64, 'rmsNorm without weight');
  check('layerNorm', () => T.layerNorm(r([2, 4]), r([4]), r([4])), 8 * 8, (8 + 4 + 4 + 8) * 4, 'layerNorm with weight and bias');

  // layout and indexing: no FLOPs; rope 3 per rotated element; embedding reads only the gathered rows
  check('rope', () => T.rope(r([1, 3, 4])), 36, 96);
  check('rope', () => T.rope(r([1, 3, 4]), { rotaryDim: 2 }), 18, 96, 'rope rotaryDim 2 of 4');
  check('embedding', () => T.embedding(T.tensor([1, 7, 3], { dtype: 'int32' }), r([10, 4])), 0, 12 + 2 * 48);
  check('cat', () => T.cat([r([2, 3]), r([1, 3])]), 0, (6 + 3 + 9) * 4);
  check('tril', () => T.tril(r([3, 3])), 0, 72);
  check('triu', () => T.triu(r([3, 3])), 0, 72);

  t.deepEqual(T.OP_NAMES.filter((op) => !seen.has(op)), [], 'every op was checked against a hand count');
  t.end();
});

test('machinePeak / memoryBandwidth: the roofs, measured; bad options are TesseraErrors', (t) => {
  const peak = T.machinePeak({ seconds: 0.01 });
  const mem = T.memoryBandwidth({ bytes: 2 ** 21, seconds: 0.01 });
  if (cpu.available && cpu.detail.simd === 'avx2+fma') {
    for (const k of ['fp32', 'int8']) t.ok(peak[k].all > 0 && peak[k].perThread > 0 && typeof peak[k].loop === 'string', `${k}: ${peak[k].all.toFixed(1)} all, ${peak[k].perThread.toFixed(1)} one thread`);
  } else {
    t.equal(peak, null, 'no calibration loop without the AVX2 addon');
  }
  if (cpu.available) {
    t.ok(mem.all > 0 && mem.perThread > 0 && Number.isFinite(mem.all), `read bandwidth ${mem.all.toFixed(1)} GB/s all, ${mem.perThread.toFixed(1)} one thread`);
    t.equal(mem.bytes, 2 ** 21, 'bytes echoed');
    t.equal(mem.threads, cpu.detail.threads, 'threads: the pool the all figure ran on');
  } else {
    t.equal(mem, null, 'null without the native addon');
  }
  const bad = [
    () => T.memoryBandwidth(null), () => T.memoryBandwidth({ bytes: 1000 }), () => T.memoryBandwidth({ bytes: 2 ** 31 }),
    () => T.memoryBandwidth({ bytes: 1.5 * 2 ** 20 + 0.5 }), () => T.memoryBandwidth({ seconds: 0 }), () => T.memoryBandwidth({ seconds: '1' }),
    () => T.machinePeak(null), () => T.machinePeak({ seconds: 20 }),
  ];
  for (const f of bad) {
    try {
      f();
      t.fail(`${f} did not throw`);
    } catch (e) {
      t.ok(e instanceof T.TesseraError && /memoryBandwidth|machinePeak/.test(e.message), `${f}: ${e.message}`);
    }
  }
  t.end();
});

test('records: backend, variant, shapes, dtypes, host times, rates', async (t) => {
  const a = T.randn([32, 48], { seed: 1 });
  const b = T.randn([48, 16], { seed: 2 });
  const rep = await T.profile(async () => {
    T.matmul(a, b);
    await T.matmulAsync(a, b);
  });
  t.equal(rep.records.length, 2, 'two records');
  const [s, as] = rep.records;
  t.equal(s.backend, gemmBackend, `matmul ran on ${gemmBackend}`);
  t.equal(s.variant, T.lastRun('matmul').variant, 'variant as lastRun reports it');
  t.deepEqual(s.inputs, [{ shape: [32, 48], dtype: 'float32' }, { shape: [48, 16], dtype: 'float32' }], 'input shapes and dtypes');
  t.deepEqual(s.outputs, [{ shape: [32, 16], dtype: 'float32' }], 'output shape and dtype');
  t.ok(s.startNs >= 0 && s.endNs >= s.startNs && s.durationNs === s.endNs - s.startNs, 'host interval');
  t.ok(as.startNs >= s.endNs, 'records in call order');
  t.equal(as.async, cpu.available, 'matmulAsync is an async (off-thread) record on the native backend');
  t.equal(s.timing, 'host', 'host timing');
  t.ok(Math.abs(s.gflops - s.flops / s.durationNs) < 1e-9 && Math.abs(s.gbps - s.bytes / s.durationNs) < 1e-9, 'GFLOP/s = FLOPs/ns, GB/s = bytes/ns');
  t.ok(rep.wallNs >= as.endNs, 'wall time covers the records');
  const j = JSON.parse(JSON.stringify(rep.toJSON()));
  t.equal(j.records.length, 2, 'toJSON carries the records');
  t.equal(j.records[0].flops, 2 * 32 * 48 * 16, 'toJSON record FLOPs');
});

test('table: call counts, grouping, sorting, roofline column', (t) => {
  const x = T.randn([16, 16], { seed: 3 });
  const y = T.randn([8, 16], { seed: 4 });
  T.startProfiling();
  for (let i = 0; i < 4; i++) T.matmul(x, x);
  for (let i = 0; i < 3; i++) T.matmul(y, x);
  for (let i = 0; i < 5; i++) T.add(x, x);
  T.softmax(x);
  T.softmax(y);
  const rep = T.stopProfiling();
  rep.calibration = FAKE_CAL;
  const byOp = rep.groups({ groupBy: 'op', sortBy: 'calls' });
  t.deepEqual(byOp.map((g) => [g.op, g.calls]), [['matmul', 7], ['add', 5], ['softmax', 2]], 'calls per op, sorted by calls');
  const byShape = rep.groups({ groupBy: 'shape', sortBy: 'calls' }).filter((g) => g.op === 'matmul');
  t.deepEqual(byShape.map((g) => g.calls), [4, 3], 'calls per (op, shapes)');
  const mm = byOp[0];
  t.equal(mm.flops, 4 * 2 * 16 * 16 * 16 + 3 * 2 * 8 * 16 * 16, 'group FLOPs add up');
  t.ok(mm.minNs <= mm.meanNs && mm.meanNs <= mm.maxNs, 'min <= mean <= max');
  t.ok(Math.abs(byOp.reduce((s, g) => s + g.percent, 0) - 100) < 1e-6, '% of time adds up to 100');
  const attainable = Math.min(100, mm.intensity * 10);
  t.ok(Math.abs(mm.attainable - attainable) < 1e-9, 'attainable = min(peak, AI · bandwidth)');
  t.ok(Math.abs(mm.roofline - (100 * mm.gflops) / attainable) < 1e-9, '% of roofline = achieved / attainable');
  const total = rep.groups({ sortBy: 'total' });
  t.ok(total.every((g, i) => i === 0 || total[i - 1].totalNs >= g.totalNs), 'sortBy total is descending');

  const text = rep.table({ groupBy: 'op', sortBy: 'calls' });
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('Name'));
  for (const col of ['Calls', 'Total', 'Mean', 'Min', 'Max', '% time', 'GFLOP/s', 'GB/s', '% roof']) t.ok(header.includes(col), `header has ${col}`);
  const row = (op) => lines.find((l) => l.startsWith(op + ' '));
  t.equal(row('matmul').trim().split(/\s{2,}/)[1], '7', 'table row: matmul 7 calls');
  t.equal(row('add').trim().split(/\s{2,}/)[1], '5', 'table row: add 5 calls');
  t.equal(row('softmax').trim().split(/\s{2,}/)[1], '2', 'table row: softmax 2 calls');
  t.ok(lines.indexOf(row('matmul')) < lines.indexOf(row('add')), 'rows follow sortBy');
  t.ok(text.includes('14 kernel calls'), 'totals line');
  const shapeText = rep.table({ groupBy: 'shape', roofline: false });
  t.ok(/matmul \S+ f32\[16, 16\], f32\[16, 16\]/.test(shapeText) && !shapeText.includes('% roof'), 'groupBy shape names shapes; roofline: false drops the column');
  t.throws(() => rep.table({ sortBy: 'nope' }), /sortBy/, 'unknown sortBy throws');
  t.end();
});

test('Chrome trace: Trace Event Format, monotonic, properly nested tracks', async (t) => {
  const a = T.randn([96, 96], { seed: 5 });
  const rep = await T.profile(async () => {
    T.matmul(a, a);
    await Promise.all([T.matmulAsync(a, a), T.matmulAsync(a, a), T.matmulAsync(a, a)]);
    T.softmax(a);
    await T.matmulAsync(a, a);
    T.add(a, a);
  });
  const file = path.join(tmp, 'trace.json');
  rep.toChromeTrace(file);
  const trace = JSON.parse(fs.readFileSync(file, 'utf8'));
  t.deepEqual(traceProblems(trace), [], 'valid: required fields, dur >= 0, monotonic ts per track, no partial overlap');
  const xs = trace.traceEvents.filter((e) => e.ph === 'X');
  t.equal(xs.length, rep.records.length, 'one X event per record (host ops)');
  const mm = xs.find((e) => e.name === 'matmul');
  t.deepEqual(mm.args.shapes, [[96, 96], [96, 96]], 'args carry shapes');
  t.deepEqual(mm.args.dtypes, ['float32', 'float32'], 'args carry dtypes');
  t.equal(mm.args.flops, 2 * 96 ** 3, 'args carry FLOPs');
  t.equal(mm.args.variant, T.lastRun('matmul').variant, 'args carry the variant');
  t.ok(typeof mm.cat === 'string' && mm.cat.includes(mm.args.backend), 'cat names the backend');
  const names = trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args.name);
  t.ok(names.some((n) => n.startsWith('host: main thread')), 'main-thread track named');
  if (cpu.available) {
    const asyncTids = new Set(xs.filter((e) => e.cat.includes('async')).map((e) => e.tid));
    t.ok(asyncTids.size >= 2, `concurrent async kernels are spread over ${asyncTids.size} async tracks`);
    t.ok(!asyncTids.has(mm.tid), 'async kernels are not on the main-thread track');
  }
  // a hand-made trace with a partial overlap must be caught by the validator
  const bad = { traceEvents: [
    { name: 'thread_name', ph: 'M', ts: 0, pid: 1, tid: 1, args: { name: 'x' } },
    { name: 'a', ph: 'X', ts: 0, dur: 10, pid: 1, tid: 1 }, { name: 'b', ph: 'X', ts: 5, dur: 10, pid: 1, tid: 1 }] };
  t.equal(traceProblems(bad).length, 1, 'validator rejects partially overlapping events');
});

test('device timer: device kernels get device times on their own track', (t) => {
  let n = 0;
  const released = [];
  T.setDeviceTimer('js', { mark: () => ++n, elapsedNs: (a, b) => (b - a) * 1000, synchronize() {}, release: (m) => released.push(...m) });
  try {
    T.startProfiling();
    T.softmax(T.randn([4, 4], { seed: 1, dtype: 'float64' }));
    T.exp(T.randn([4, 4], { seed: 2, dtype: 'float64' }));
    const rep = T.stopProfiling();
    const [s, e] = rep.records;
    t.equal(s.timing, 'device', 'timed by the device timer');
    t.equal(s.durationNs, 1000, 'duration from elapsedNs between its two markers');
    t.ok(e.deviceStartNs - s.deviceStartNs === 2000, 'device times placed on the host timeline through the anchor');
    const trace = rep.toChromeTrace();
    t.deepEqual(traceProblems(trace), [], 'trace stays valid');
    const dev = trace.traceEvents.filter((ev) => ev.ph === 'X' && ev.cat.includes('device'));
    t.equal(dev.length, 2, 'device kernels on a device track');
    const tname = trace.traceEvents.find((ev) => ev.ph === 'M' && ev.name === 'thread_name' && ev.tid === dev[0].tid);
    t.ok(tname && /device: js/.test(tname.args.name), `device track named (${tname && tname.args.name})`);
    t.ok(dev.every((ev) => !trace.traceEvents.some((h) => h.ph === 'X' && !h.cat.includes('device') && h.tid === ev.tid)), 'host and device events on separate tracks');
    t.deepEqual(released.sort((a, b) => a - b), [1, 2, 3, 4, 5], 'markers (anchor included) released after the session');
  } finally {
    T.setDeviceTimer('js', null);
  }
  t.end();
});

test('run hook: null when not profiling, installed exactly while a session is open', (t) => {
  const real = registry.setRunHook;
  const calls = [];
  registry.setRunHook = (h) => {
    calls.push(h);
    real(h);
  };
  try {
    t.equal(T.isProfiling(), false, 'not profiling at rest');
    T.startProfiling();
    t.equal(typeof calls[calls.length - 1], 'function', 'startProfiling installs a hook');
    T.startProfiling();
    T.matmul(T.randn([2, 2]), T.randn([2, 2]));
    const inner = T.stopProfiling();
    t.equal(T.isProfiling(), true, 'the outer session keeps the hook');
    t.equal(typeof calls[calls.length - 1], 'function', 'hook still installed');
    const outer = T.stopProfiling();
    t.equal(calls[calls.length - 1], null, 'the last stopProfiling sets the hook to null');
    t.equal(T.isProfiling(), false, 'not profiling after stop');
    t.equal(inner.records.length, 1, 'inner session saw the matmul');
    t.equal(outer.records.length, 1, 'outer session saw it too');
    const n = calls.length;
    T.matmul(T.randn([2, 2]), T.randn([2, 2]));
    t.equal(calls.length, n, 'ops outside a session do not touch the hook');
    t.throws(() => T.stopProfiling(), /not active/, 'stopProfiling without a session throws');
  } finally {
    registry.setRunHook = real;
  }
  t.end();
});

test('profile() rethrows and stops when fn throws', async (t) => {
  try {
    await T.profile(() => {
      throw new Error('boom');
    });
    t.fail('should throw');
  } catch (e) {
    t.equal(e.message, 'boom', 'error propagates');
  }
  t.equal(T.isProfiling(), false, 'profiling stopped');
});

test('calibrate(): measured once, cached per machine, force re-measures', (t) => {
  const file = T.calibrationCachePath();
  t.equal(file, path.join(process.env.XDG_CACHE_HOME, 'tessera', 'calibration.json'), 'cache under XDG_CACHE_HOME/tessera');
  const c1 = T.calibrate({ bandwidthBytes: 32 * 2 ** 20 });
  t.ok(fs.existsSync(file), 'cache file written');
  t.ok(c1.peaks.float32.gflops > 0 && c1.bandwidth.gbps > 0, `peak f32 ${c1.peaks.float32.gflops.toFixed(1)} GFLOP/s, ${c1.bandwidth.gbps.toFixed(1)} GB/s`);
  t.equal(c1.peaks.float32.backend, gemmBackend, `f32 peak from the ${gemmBackend} matmul`);
  const key = Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).entries)[0];
  for (const part of [os.cpus()[0].model.trim(), `${os.cpus().length} cores`, process.version]) t.ok(key.includes(part), `cache key has ${part}`);
  const c2 = T.calibrate();
  t.equal(c2.measuredAt, c1.measuredAt, 'second call reads the cache');
  const c3 = T.calibrate({ force: true, bandwidthBytes: 32 * 2 ** 20 });
  t.notEqual(c3.measuredAt, c1.measuredAt, 'force: true measures again');
  t.equal(T.cachedCalibration().measuredAt, c3.measuredAt, 'and updates the cache');
  t.end();
});

test('profile() of a script doing matmuls, and `tessera profile script.js`', async (t) => {
  const script = path.join(tmp, 'three-matmuls.js');
  fs.writeFileSync(script, `
const T = require('tessera');
const a = T.randn([64, 64], { seed: 1 });
for (let i = 0; i < 3; i++) T.matmul(a, a);
module.exports = (async () => { await new Promise((r) => setTimeout(r, 10)); await T.matmulAsync(a, a); })();
`);
  // in-process: 'tessera' must resolve to this build for the hook to see the kernels
  const req = script.replace('three-matmuls', 'in-process');
  fs.writeFileSync(req, fs.readFileSync(script, 'utf8').replace("require('tessera')", `require(${JSON.stringify(path.join(root, 'dist'))})`));
  const rep = await T.profile(async () => {
    await require(req);
  });
  const mm = rep.records.filter((r) => r.op === 'matmul');
  t.equal(mm.length, 4, 'four matmuls recorded (3 sync + 1 awaited async)');
  t.ok(mm.every((r) => r.backend === gemmBackend), `all on ${gemmBackend}`);

  const out = path.join(tmp, 'prof-out');
  const r = spawnSync(process.execPath, [cli, 'profile', '--out', out, script, '--', 'x'], { encoding: 'utf8', env: process.env, timeout: 120000 });
  t.equal(r.status, 0, `exit 0${r.status ? ': ' + r.stderr.slice(-800) : ''}`);
  const row = r.stdout.split('\n').find((l) => l.startsWith('matmul '));
  t.ok(row && row.includes(`matmul ${gemmBackend}:`) && row.trim().split(/\s{2,}/)[1] === '4', `table row: 4 matmuls on ${gemmBackend} (${row})`);
  const trace = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8'));
  t.deepEqual(traceProblems(trace), [], 'trace.json is valid');
  t.equal(trace.traceEvents.filter((e) => e.ph === 'X' && e.name === 'matmul').length, 4, 'trace has the four matmuls');
  const svg = fs.readFileSync(path.join(out, 'roofline.svg'), 'utf8');
  t.ok(svg.startsWith('<svg') && (svg.match(/<circle class="point"/g) || []).length === 1, 'roofline.svg has one point (one kernel group)');
  t.ok(fs.existsSync(path.join(out, 'profile.json')), 'profile.json written');

  const bad = spawnSync(process.execPath, [cli, 'profile', path.join(tmp, 'missing.js')], { encoding: 'utf8' });
  t.equal(bad.status, 1, 'a missing script is a usage error');
});

test('`tessera bench`: grid, JSON, plain progress lines off a TTY, argument errors', (t) => {
  const r = spawnSync(process.execPath, [cli, 'bench', '--op', 'matmul', '--min-ms', '0', '--json'], { encoding: 'utf8', env: process.env, timeout: 300000 });
  t.equal(r.status, 0, `exit 0${r.status ? ': ' + r.stderr.slice(-800) : ''}`);
  const j = JSON.parse(r.stdout);
  const groups = j.groups.filter((g) => g.op === 'matmul');
  t.equal(j.records.length, 10, 'five matmul shapes, two timed calls each (warm-up untimed)');
  t.ok(groups.every((g) => g.backend === gemmBackend), `matmul on ${gemmBackend}`);
  t.ok(/bench 1\/5 matmul/.test(r.stderr) && /bench done: 5 cases/.test(r.stderr), 'plain progress lines on a pipe');
  const js = spawnSync(process.execPath, [cli, 'bench', '--op', 'spmm', '--backend', 'js', '--min-ms', '0'], { encoding: 'utf8', env: process.env, timeout: 300000 });
  t.equal(js.status, 0, 'spmm on js');
  t.ok(/spmm js:spmm_csr_js/.test(js.stdout) && /spmm js:spmm_2to4_js/.test(js.stdout), 'table lists the csr and 2:4 kernels');
  const bad = spawnSync(process.execPath, [cli, 'bench', '--op', 'matmul', '--dtype', 'int8'], { encoding: 'utf8' });
  t.equal(bad.status, 1, '--dtype int8 with --op matmul is refused');
  t.ok(/qmatmul only/.test(bad.stderr), 'and says why');
  const bad2 = spawnSync(process.execPath, [cli, 'bench', '--op', 'conv'], { encoding: 'utf8' });
  t.equal(bad2.status, 1, 'unknown --op is refused');
  t.end();
});

test.onFinish(() => fs.rmSync(tmp, { recursive: true, force: true }));
