'use strict';
// The cuda backend end to end through the public API: the caching allocator (reuse, frees that never wait
// for the device, out of memory and recovery, dispose and GC), dataAsync off the event loop, and every
// device kernel against the js reference on awkward shapes (1, 7, 33, 127), non-contiguous and broadcast
// inputs and NaN edge cases, with outputs poisoned first (a block the allocator hands out again is filled
// with NaN, so an element a kernel forgets to write cannot pass).
// Without CUDA it checks that the backend says why it is unavailable, and stops.
// Run: node test/cuda-backend.test.js (on a GPU machine: scripts/cuda.sh test).
const v8 = require('v8');
const vm = require('vm');
const test = require('tape');
const T = require('../dist');
const native = require('../dist/backends/cuda/native.js');
const { rng, TOL, compare } = require('./helpers');

const info = T.backends().find((b) => b.name === 'cuda');

if (!info.available) {
  console.log(`# cuda unavailable: ${info.reason}`);
  test('cuda backend: unavailable, with a reason, and cuda tensors are refused cleanly', (t) => {
    t.equal(info.available, false, 'not available');
    t.ok(typeof info.reason === 'string' && info.reason.length > 0, `reason: ${info.reason}`);
    t.throws(() => T.zeros([2], { device: 'cuda' }), (e) => e instanceof T.TesseraError && e.code === 'E_DEVICE', 'E_DEVICE');
    t.throws(() => T.setBackend('cuda'), (e) => e.code === 'E_BACKEND', 'setBackend(cuda) is refused');
    t.end();
  });
  return;
}

const cuda = native.loadCudaBinding().binding; // the same addon instance the library loaded (require cache)
const stats = () => cuda.allocatorStats();
const tick = () => new Promise((resolve) => setImmediate(resolve));
const AWK = [1, 7, 33, 127];
const FLOATS = ['float32', 'float16', 'bfloat16'];

function exposedGc() {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

function randT(r, shape, dtype = 'float32', scale = 1) {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = r.normal() * scale;
  return T.tensor(v, { shape, dtype });
}

/** Leaves NaN-filled blocks of `bytes`' size class at the top of the allocator's free list. */
function poison(bytes) {
  const n = Math.max(1, Math.ceil(bytes / 4));
  const ps = [0, 1, 2].map(() => T.full([n], NaN, { device: 'cuda' }));
  ps.forEach((p) => p.dispose());
}

const bytesOf = { float32: 4, float16: 2, bfloat16: 2, int32: 4 };

/**
 * Runs `run` on host inputs under the js backend (the reference) and on device copies of them (after
 * `prep`, which may make strided views), checks the cuda kernel served it and the values agree.
 */
function check(t, label, op, inputs, run, { prep = (x) => x, outBytes = 0, tol } = {}) {
  T.setBackend('js');
  const refOut = run(inputs.map(prep));
  T.setBackend(null);
  const refs = (Array.isArray(refOut) ? refOut : [refOut]).map((o) => ({ dtype: o.dtype, shape: o.shape.slice(), v: o.toFloat64() }));
  const base = inputs.map((x) => x.to('cuda'));
  const dev = base.map(prep);
  if (outBytes) poison(outBytes);
  let out;
  try {
    out = run(dev);
  } catch (e) {
    t.fail(`${label}: threw ${e.stack}`);
    return;
  }
  const outs = Array.isArray(out) ? out : [out];
  const ran = T.lastRun(op);
  let ok = ran && ran.backend === 'cuda';
  let msg = ` (ran ${ran ? `${ran.backend}:${ran.variant}` : '?'})`;
  refs.forEach((r, i) => {
    const o = outs[i];
    if (o.device !== 'cuda' || o.dtype !== r.dtype || o.shape.join() !== r.shape.join()) {
      ok = false;
      msg += ` out${i}: ${o.device} ${o.dtype}[${o.shape}] vs ${r.dtype}[${r.shape}]`;
      return;
    }
    const c = compare(o.toFloat64(), r.v, tol ?? TOL[r.dtype] ?? 0);
    ok = ok && c.ok;
    msg += ` ${c.msg}`;
  });
  t.ok(ok, label + msg);
  dev.forEach((x) => x.dispose());
  base.forEach((x) => x.dispose());
  outs.forEach((o) => o.dispose());
}

// ------------------------------------------------------------------------------------------ allocator

test('cuda allocator: a freed block is reused without growing reserved memory', (t) => {
  cuda.emptyCache();
  const s0 = stats();
  const x = T.zeros([1 << 20], { device: 'cuda' }); // 4 MiB
  const s1 = stats();
  t.equal(s1.allocated - s0.allocated, 4 << 20, 'allocated grew by the 4 MiB size class');
  t.equal(s1.deviceMallocs - s0.deviceMallocs, 1, 'one cudaMalloc');
  x.dispose();
  const s2 = stats();
  t.equal(s2.allocated, s0.allocated, 'dispose returns it to the allocator');
  t.equal(s2.cached - s0.cached, 4 << 20, '... which caches it');
  for (let i = 0; i < 50; i++) T.zeros([(1 << 20) - (i % 7)], { device: 'cuda' }).dispose();
  const s3 = stats();
  t.equal(s3.reserved, s1.reserved, `reserved unchanged after 50 more alloc/free (${s3.reserved} bytes)`);
  t.equal(s3.deviceMallocs, s1.deviceMallocs, 'no further cudaMalloc');
  t.ok(s3.cacheHits - s2.cacheHits >= 50, 'served from the cache');
  t.ok(s3.peakAllocated >= s1.allocated, 'peak recorded');
  cuda.emptyCache();
  const s4 = stats();
  t.equal(s4.cached, 0, 'emptyCache releases the cache');
  t.equal(s4.allocated, s0.allocated, 'and leaves live tensors alone');
  t.end();
});

test('cuda allocator: freeing never waits for queued kernels', (t) => {
  const r = rng(5);
  const a = randT(r, [3072, 3072]).to('cuda');
  // warm: module load, and three cached blocks of the output's size, so no cudaMalloc happens below
  [T.matmul(a, a), T.matmul(a, a), T.matmul(a, a)].forEach((x) => x.dispose());
  cuda.synchronize();
  const victim = T.zeros([1 << 20], { device: 'cuda' }); // before the queue: an upload waits for the stream
  const busy = [T.matmul(a, a), T.matmul(a, a), T.matmul(a, a)]; // ~0.2 TFLOP of float32 FFMA queued
  const t0 = process.hrtime.bigint();
  victim.dispose();
  busy[0].dispose();
  const freeMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const t1 = process.hrtime.bigint();
  cuda.synchronize();
  const syncMs = Number(process.hrtime.bigint() - t1) / 1e6;
  console.log(`# free with work queued: ${freeMs.toFixed(3)} ms; the queued work then took ${syncMs.toFixed(1)} ms`);
  t.ok(freeMs < Math.max(2, syncMs / 4), `dispose returned before the device finished (${freeMs.toFixed(3)} ms vs ${syncMs.toFixed(1)} ms)`);
  busy.slice(1).forEach((x) => x.dispose());
  a.dispose();
  t.end();
});

test('cuda allocator: out of memory is E_OOM, the cache is released on retry, and ops keep working', (t) => {
  const held = [];
  const held2 = [];
  let err = null;
  const before = stats();
  const ones = T.ones([1], { device: 'cuda' });
  const huge = ones.expand([2 ** 32 - 1]); // a view: no memory
  const half = ones.expand([2 ** 31]);
  try {
    for (let i = 0; i < 64 && !err; i++) {
      try {
        held.push(T.add(huge, ones)); // 16 GiB each
      } catch (e) {
        err = e;
      }
    }
    t.ok(err instanceof T.TesseraError && err.code === 'E_OOM', `E_OOM after ${held.length} x 16 GiB: ${err && err.message}`);
    t.ok(err && /CUDA out of memory/.test(err.message), 'message says CUDA out of memory');
    const view = held[held.length - 1].slice(0, 2 ** 32 - 3);
    const tail = T.neg(view); // a small device result: no 16 GiB download
    t.deepEqual(Array.from(tail.toFloat32()), [-2, -2], 'the tensors that fit hold the right values');
    [tail, view, ...held].forEach((x) => x.dispose());
    const mid = stats();
    t.ok(mid.cached >= held.length * 16 * 2 ** 30, `their blocks sit in the cache (${mid.cached} bytes)`);
    // A different size class now needs the memory the cache holds: the allocator must empty it and retry.
    for (let i = 0; i < held.length; i++) held2.push(T.mul(half, ones)); // 8 GiB each
    const s = stats();
    t.ok(s.oomRetries > mid.oomRetries, `the cache was released on a failed cudaMalloc (${s.oomRetries - mid.oomRetries} retries)`);
    t.equal(s.ooms, mid.ooms, 'no further out-of-memory errors');
    t.ok(s.ooms > before.ooms, 'the out-of-memory was counted');
  } catch (e) {
    t.fail(`threw ${e.stack}`);
  } finally {
    [...held, ...held2, huge, half, ones].forEach((x) => x.dispose());
    cuda.emptyCache();
  }
  const a = T.tensor([1, 2, 3], { device: 'cuda' });
  const b = T.add(a, a);
  t.deepEqual(Array.from(b.toFloat32()), [2, 4, 6], 'a normal op works afterwards');
  t.equal(T.lastRun('add').backend, 'cuda', 'on the cuda kernel');
  a.dispose();
  b.dispose();
  t.end();
});

test('cuda allocator: dispose and GC release device memory', async (t) => {
  const gc = exposedGc();
  for (let i = 0; i < 3; i++) {
    gc();
    await tick();
  }
  const s0 = stats();
  const mem0 = T.memory().cuda;
  const x = T.zeros([1000, 1000], { device: 'cuda' });
  t.ok(stats().allocated > s0.allocated, 'allocation counted');
  t.equal(T.memory().cuda.tensors, mem0.tensors + 1, 'one live cuda tensor');
  x.dispose();
  t.equal(stats().allocated, s0.allocated, 'dispose released it');
  (function forget() {
    for (let i = 0; i < 64; i++) T.zeros([256, 256], { device: 'cuda' }); // never disposed
  })();
  t.ok(stats().allocated > s0.allocated, 'forgotten tensors hold memory until collected');
  let released = false;
  for (let i = 0; i < 50 && !released; i++) {
    gc();
    await tick();
    released = stats().allocated === s0.allocated;
  }
  t.ok(released, `the GC released them (allocated ${stats().allocated} vs ${s0.allocated})`);
  t.equal(T.memory().cuda.tensors, mem0.tensors, 'tensor count back');
});

test('cuda: dataAsync waits off the event loop, after the queued work', async (t) => {
  const r = rng(9);
  const a = randT(r, [2048, 2048]).to('cuda');
  T.matmul(a, a).dispose();
  cuda.synchronize();
  const warm = T.matmul(a, a);
  await warm.dataAsync(); // the pinned staging block of this size is allocated once, then pooled
  warm.dispose();
  const c = T.matmul(T.matmul(a, a), a); // tens of ms queued
  let ticks = 0;
  let done = false;
  (function spin() {
    if (!done) {
      ticks++;
      setImmediate(spin);
    }
  })();
  const t0 = process.hrtime.bigint();
  const p = c.dataAsync();
  const callMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const vals = await p;
  done = true;
  console.log(`# dataAsync: call ${callMs.toFixed(2)} ms, ${ticks} loop ticks before it resolved`);
  t.ok(ticks > 1, `the event loop kept turning (${ticks} ticks)`);
  t.ok(callMs < 5, `the call itself returned at once (${callMs.toFixed(2)} ms)`);
  const sync = c.data();
  t.equal(vals.length, 2048 * 2048, 'all elements');
  t.ok(vals.every((v, i) => Object.is(v, sync[i])), 'the same values as data()');
  a.dispose();
  c.dispose();
});

// ------------------------------------------------------------------------------------------ ops vs js

test('cuda ops: elementwise, broadcast and strided, every float dtype and awkward size', (t) => {
  const r = rng(11);
  for (const d of FLOATS) {
    for (const n of AWK) {
      const m = r.pick(AWK);
      for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum']) {
        const a = op === 'pow' ? T.abs(randT(r, [n, m], d)) : randT(r, [n, m], d);
        check(t, `${op} ${d} [${n},${m}] x [1,${m}]`, op, [a, randT(r, [1, m], d)], ([x, y]) => T[op](x, y), { outBytes: n * m * bytesOf[d] });
        check(t, `${op} ${d} transposed [${m},${n}]ᵀ x [${n}]`, op, [randT(r, [m, n], d), randT(r, [m], d)],
          ([x, y]) => T[op](x.transpose(), y.unsqueeze(0).expand([n, m])), { outBytes: n * m * bytesOf[d] });
      }
      for (const op of ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'square']) {
        const x = randT(r, [n, m], d, 2);
        const pos = ['sqrt', 'rsqrt', 'log'].includes(op) ? T.add(T.abs(x), 0.1) : x;
        check(t, `${op} ${d} [${m},${n}]ᵀ`, op, [pos], ([a]) => T[op](a), { prep: (z) => z.transpose(), outBytes: n * m * bytesOf[d] });
      }
      check(t, `gelu ${d} [${n},${m}]`, 'gelu', [randT(r, [n, m], d, 3)], ([a]) => T.gelu(a));
      check(t, `gelu_tanh ${d} [${n},${m}]`, 'gelu_tanh', [randT(r, [n, m], d, 3)], ([a]) => T.gelu(a, { approximate: 'tanh' }));
      check(t, `where ${d} [${n},${m}] with a bool cond [${m}]`, 'where',
        [T.tensor(Array.from({ length: m }, () => (r.next() < 0.5 ? 1 : 0)), { dtype: 'bool' }), randT(r, [n, m], d), randT(r, [n, 1], d)],
        ([c, a, b]) => T.where(c, a, b));
      check(t, `where ${d} [${n},${m}] with a float cond`, 'where', [T.relu(randT(r, [n, m])), randT(r, [n, m], d), randT(r, [n, m], d)],
        ([c, a, b]) => T.where(c, a, b));
    }
  }
  // mixed dtypes promote; NaN propagates through maximum/minimum/relu like the reference
  check(t, 'add float16 + bfloat16 -> float32', 'add', [randT(r, [7, 33], 'float16'), randT(r, [7, 33], 'bfloat16')], ([a, b]) => T.add(a, b));
  const nan = T.tensor([NaN, 1, -2, NaN, 0, -0]);
  const other = T.tensor([1, NaN, 3, NaN, -0, 0]);
  for (const op of ['maximum', 'minimum']) check(t, `${op} with NaN`, op, [nan, other], ([a, b]) => T[op](a, b));
  check(t, 'relu with NaN', 'relu', [nan], ([a]) => T.relu(a));
  check(t, 'pow(1, NaN) = 1 and pow(-1, inf) = 1', 'pow', [T.tensor([1, -1, -1, 2]), T.tensor([NaN, Infinity, -Infinity, 0.5])], ([a, b]) => T.pow(a, b));
  t.end();
});

test('cuda ops: reductions, arg-reductions, softmax, cumsum', (t) => {
  const r = rng(12);
  for (const d of FLOATS) {
    for (const shape of [[1, 1, 1], [7, 33, 1], [33, 7, 127], [127, 1, 7]]) {
      for (const dim of [0, 1, -1, [0, 2], undefined]) {
        for (const op of ['sum', 'mean', 'max', 'min']) {
          const keepdim = r.next() < 0.5;
          check(t, `${op} ${d} [${shape}] dim ${JSON.stringify(dim)}${keepdim ? ' keepdim' : ''}`, op, [randT(r, shape, d)], ([x]) => T[op](x, { dim, keepdim }));
        }
      }
      check(t, `sum ${d} of a transposed view [${shape}]`, 'sum', [randT(r, shape, d)], ([x]) => T.sum(x, { dim: 1 }), { prep: (z) => z.transpose(0, 2) });
      for (const op of ['argmax', 'argmin']) {
        for (const dim of [0, -1, undefined]) {
          check(t, `${op} ${d} [${shape}] dim ${dim}`, op, [randT(r, shape, d)], ([x]) => T[op](x, { dim, keepdim: dim === 0 }));
        }
      }
    }
    for (const [R, C] of [[1, 1], [7, 33], [33, 127], [127, 7], [3, 4099]]) {
      for (const op of ['softmax', 'logSoftmax']) {
        for (const dim of [0, -1]) check(t, `${op} ${d} [${R},${C}] dim ${dim}`, op, [randT(r, [R, C], d, 3)], ([x]) => T[op](x, dim));
      }
      check(t, `softmax ${d} of a transposed view [${C},${R}]`, 'softmax', [randT(r, [R, C], d, 3)], ([x]) => T.softmax(x, -1), { prep: (z) => z.transpose() });
      for (const dim of [0, -1]) check(t, `cumsum ${d} [${R},${C}] dim ${dim}`, 'cumsum', [randT(r, [R, C], d)], ([x]) => T.cumsum(x, dim));
    }
  }
  const edge = T.tensor([[1, NaN, 3, NaN], [2, 2, -1, -1], [-Infinity, -Infinity, -Infinity, -Infinity]]);
  for (const op of ['max', 'min', 'sum']) check(t, `${op} with NaN / -inf rows`, op, [edge], ([x]) => T[op](x, { dim: -1 }));
  for (const op of ['argmax', 'argmin']) check(t, `${op}: first NaN wins, ties take the first index`, op, [edge], ([x]) => T[op](x, { dim: -1 }));
  check(t, 'softmax of an all -inf row is NaN', 'softmax', [edge], ([x]) => T.softmax(x, -1));
  check(t, 'mean over an empty dim is NaN', 'mean', [T.zeros([3, 0])], ([x]) => T.mean(x, { dim: 1 }));
  t.end();
});

test('cuda ops: norms, embedding, rope, cat, tril/triu', (t) => {
  const r = rng(13);
  for (const d of FLOATS) {
    for (const D of AWK) {
      const rows = r.pick(AWK);
      check(t, `rmsNorm ${d} [${rows},${D}]`, 'rmsNorm', [randT(r, [rows, D], d), randT(r, [D], d)], ([x, w]) => T.rmsNorm(x, w, 1e-6));
      check(t, `rmsNorm ${d} [${rows},${D}] no weight, strided x`, 'rmsNorm', [randT(r, [D, rows], d)], ([x]) => T.rmsNorm(x, null, 1e-5), { prep: (z) => z.transpose() });
      check(t, `layerNorm ${d} [${rows},${D}]`, 'layerNorm', [randT(r, [2, rows, D], d, 3), randT(r, [D], d), randT(r, [D], d)], ([x, w, b]) => T.layerNorm(x, w, b, 1e-5));
      check(t, `layerNorm ${d} [${rows},${D}] weight only`, 'layerNorm', [randT(r, [rows, D], d), randT(r, [D], d)], ([x, w]) => T.layerNorm(x, w, null));
      const V = r.pick(AWK);
      const ids = T.tensor(Int32Array.from({ length: rows * 2 }, () => r.int(0, V - 1)), { shape: [2, rows] });
      check(t, `embedding ${d} ids [2,${rows}] table [${V},${D}]`, 'embedding', [ids, randT(r, [V, D], d)], ([i, w]) => T.embedding(i, w));
      const S = r.pick(AWK);
      const Dr = 2 * r.int(1, 40);
      for (const interleaved of [false, true]) {
        const offset = r.int(0, 5000);
        check(t, `rope ${d} [2,3,${S},${Dr}] offset ${offset}${interleaved ? ' interleaved' : ''}`, 'rope', [randT(r, [2, 3, S, Dr], d)],
          ([x]) => T.rope(x, { offset, interleaved }));
      }
      const rd = 2 * r.int(0, Dr / 2);
      const positions = Array.from({ length: S }, () => r.int(0, 30000));
      check(t, `rope ${d} rotaryDim ${rd} of ${Dr}, positions up to 30000`, 'rope', [randT(r, [1, S, Dr], d)], ([x]) => T.rope(x, { positions, rotaryDim: rd, theta: 500000 }));
      check(t, `cat ${d} dim 1`, 'cat', [randT(r, [rows, D], d), randT(r, [rows, 7], d), randT(r, [rows, 1], d)], ([a, b, c]) => T.cat([a, b, c], 1));
      check(t, `cat ${d} dim 0 with a transposed input`, 'cat', [randT(r, [rows, D], d), randT(r, [D, 7], d)], ([a, b]) => T.cat([a, b.transpose()], 0));
      for (const k of [-2, 0, 1, 200]) {
        check(t, `tril ${d} [3,${rows},${D}] k ${k}`, 'tril', [randT(r, [3, rows, D], d)], ([x]) => T.tril(x, k));
        check(t, `triu ${d} [${rows},${D}] k ${k}`, 'triu', [randT(r, [rows, D], d)], ([x]) => T.triu(x, k));
      }
    }
  }
  check(t, 'cat int32 (bit copy)', 'cat', [T.tensor(Int32Array.of(1, 2 ** 30 + 1)), T.tensor(Int32Array.of(-7))], ([a, b]) => T.cat([a, b]));
  check(t, 'cat float16 + float32 -> float32', 'cat', [randT(r, [7, 3], 'float16'), randT(r, [7, 3])], ([a, b]) => T.cat([a, b], 1));
  t.end();
});

test('cuda ops: matmul and linear (tensor cores for float16/bfloat16, FFMA for float32)', (t) => {
  const r = rng(14);
  for (const d of FLOATS) {
    for (let rep = 0; rep < 6; rep++) {
      const [M, K, N] = [r.pick(AWK), r.pick(AWK), r.pick(AWK)];
      check(t, `matmul ${d} ${M}x${K}x${N}`, 'matmul', [randT(r, [M, K], d), randT(r, [K, N], d)], ([a, b]) => T.matmul(a, b), { outBytes: M * N * bytesOf[d] });
      check(t, `matmul ${d} batched broadcast [2,1,${M},${K}] @ [3,${K},${N}]`, 'matmul', [randT(r, [2, 1, M, K], d), randT(r, [3, K, N], d)], ([a, b]) => T.matmul(a, b));
      check(t, `matmul ${d} transposed views ${M}x${K}x${N}`, 'matmul', [randT(r, [K, M], d), randT(r, [N, K], d)], ([a, b]) => T.matmul(a.transpose(), b.transpose()));
      check(t, `matmul ${d} vec [${K}] @ [2,${K},${N}]`, 'matmul', [randT(r, [K], d), randT(r, [2, K, N], d)], ([a, b]) => T.matmul(a, b));
      check(t, `matmul ${d} [${M},${K}] @ vec [${K}]`, 'matmul', [randT(r, [M, K], d), randT(r, [K], d)], ([a, b]) => T.matmul(a, b));
      check(t, `matmul ${d} sliced a [${M},${K}] of [${M},${K + 5}]`, 'matmul', [randT(r, [M, K + 5], d), randT(r, [K, N], d)], ([a, b]) => T.matmul(a.slice(1, 2, K + 2), b));
      check(t, `linear ${d} [2,${M},${K}] w [${N},${K}] + bias`, 'linear', [randT(r, [2, M, K], d), randT(r, [N, K], d), randT(r, [N], d)], ([x, w, b]) => T.linear(x, w, b));
      check(t, `linear ${d} no bias, transposed w`, 'linear', [randT(r, [M, K], d), randT(r, [K, N], d)], ([x, w]) => T.linear(x, w.transpose()));
    }
    check(t, `matmul ${d} 130x257x70 (partial tiles)`, 'matmul', [randT(r, [130, 257], d), randT(r, [257, 70], d)], ([a, b]) => T.matmul(a, b));
    check(t, `matmul ${d} 1x1x1`, 'matmul', [randT(r, [1, 1], d), randT(r, [1, 1], d)], ([a, b]) => T.matmul(a, b));
  }
  check(t, 'matmul float16 @ bfloat16 -> float32 (FFMA path)', 'matmul', [randT(r, [33, 7], 'float16'), randT(r, [7, 127], 'bfloat16')], ([a, b]) => T.matmul(a, b));
  check(t, 'matmul with K = 0 gives zeros', 'matmul', [T.zeros([3, 0]), T.zeros([0, 5])], ([a, b]) => T.matmul(a, b));
  // float32 accuracy over a long K: FFMA, no TF32
  const a = randT(r, [64, 4096]);
  const b = randT(r, [4096, 48]);
  const av = a.toFloat64();
  const bv = b.toFloat64();
  const ref = new Float64Array(64 * 48);
  for (let i = 0; i < 64; i++) for (let k = 0; k < 4096; k++) { const x = av[i * 4096 + k]; for (let j = 0; j < 48; j++) ref[i * 48 + j] += x * bv[k * 48 + j]; }
  const out = T.matmul(a.to('cuda'), b.to('cuda'));
  const c = compare(out.toFloat64(), ref, 1e-5);
  t.ok(c.ok, `float32 matmul K=4096 vs float64: ${c.msg}`);
  t.end();
});

test('cuda ops: what has no device kernel still works through the host round trip', (t) => {
  const r = rng(15);
  const x = randT(r, [7, 33]);
  const ref = T.topk(x, 5);
  const dx = x.to('cuda');
  const got = T.topk(dx, 5);
  t.notEqual(T.lastRun('topk').backend, 'cuda', `topk ran on ${T.lastRun('topk').backend} (documented host round trip)`);
  t.equal(got.values.device, 'cuda', 'results come back on the device');
  t.deepEqual(Array.from(got.indices.toFloat64()), Array.from(ref.indices.toFloat64()), 'same indices');
  const x64 = randT(r, [7, 7], 'float64').to('cuda');
  const s = T.exp(x64);
  t.equal(s.dtype, 'float64', 'float64 on cuda falls back, keeping its dtype');
  t.notEqual(T.lastRun('exp').backend, 'cuda', 'float64 exp is not a cuda kernel');
  const ints = T.tensor(Int32Array.of(1, 2, 3)).to('cuda');
  const si = T.add(ints, ints);
  t.deepEqual(Array.from(si.toFloat64()), [2, 4, 6], 'int32 add falls back and is exact');
  t.end();
});
