'use strict';
// The async forms run off the main thread on the native backend: the event loop keeps ticking while a
// large op runs, and the result equals the synchronous one.
const test = require('tape');
const T = require('../dist');

const cpu = T.backends().find((b) => b.name === 'cpu');

test('matmulAsync / attentionAsync keep the event loop ticking (cpu backend)', async (t) => {
  if (!cpu.available) {
    t.ok(process.env.TESSERA_EXPECT_NO_NATIVE === '1', `cpu backend unavailable (${cpu.reason}) and TESSERA_EXPECT_NO_NATIVE is not set`);
    return;
  }
  const a = T.randn([1024, 1024], { seed: 1 });
  const b = T.randn([1024, 1024], { seed: 2 });
  let ticks = 0;
  const iv = setInterval(() => ticks++, 1);
  const t0 = Date.now();
  const p = T.matmulAsync(a, b);
  t.equal(ticks, 0, 'matmulAsync returned before any tick');
  const c = await p;
  const ms = Date.now() - t0;
  clearInterval(iv);
  t.equal(T.lastRun('matmul').backend, 'cpu', 'ran on the cpu backend');
  t.ok(ticks >= 2, `event loop ticked ${ticks} times during a ${ms} ms matmul`);
  const sync = T.matmul(a, b);
  t.deepEqual(Array.from(c.toFloat32().subarray(0, 4096)), Array.from(sync.toFloat32().subarray(0, 4096)), 'async result equals sync result');

  const q = T.randn([1, 8, 1024, 64], { seed: 3 });
  const k = T.randn([1, 2, 1024, 64], { seed: 4 });
  const v = T.randn([1, 2, 1024, 64], { seed: 5 });
  ticks = 0;
  const iv2 = setInterval(() => ticks++, 1);
  const o = await T.attentionAsync(q, k, v, { causal: true });
  clearInterval(iv2);
  t.ok(ticks >= 1, `event loop ticked ${ticks} times during attentionAsync`);
  const os = T.attention(q, k, v, { causal: true });
  const x = o.toFloat32();
  const y = os.toFloat32();
  let same = x.length === y.length;
  for (let i = 0; same && i < x.length; i++) same = x[i] === y[i];
  t.ok(same, 'attentionAsync equals attention bit for bit');
});

test('async forms of qmatmul and spmm resolve to the sync result', async (t) => {
  const w = T.randn([64, 32], { seed: 9 });
  const x = T.randn([5, 64], { seed: 10 });
  const qw = T.quantize(w, { dtype: 'int8' });
  t.deepEqual((await T.qmatmulAsync(x, qw)).toArray(), T.qmatmul(x, qw).toArray(), 'qmatmulAsync');
  const sp = T.sparse.fromDense(w.transpose(), { format: 'csr' });
  const b = T.randn([64, 3], { seed: 11 });
  t.deepEqual((await T.spmmAsync(sp, b)).toArray(), T.spmm(sp, b).toArray(), 'spmmAsync');
});

// ---- pooled outputs: dispose() returns them at once; async ops hold their inputs until they settle ----

function poolAddon() {
  if (!cpu.available) return null;
  const nat = require('./helpers').loadCpuAddon().nat;
  return nat && typeof nat.releaseF32 === 'function' ? nat : null;
}

test('dispose() of the last tensor on a large cpu output hands its block back to the pool at once', (t) => {
  const nat = poolAddon();
  if (!nat) {
    t.ok(process.env.TESSERA_EXPECT_NO_NATIVE === '1', 'cpu backend with an output pool expected');
    t.end();
    return;
  }
  const a = T.randn([256, 512], { seed: 3 });
  const b = T.randn([512, 512], { seed: 4 });
  const bytes = 256 * 512 * 4; // 512 KB: above the pool's 256 KB minimum
  const ref = T.matmul(a, b).toFloat64();

  const out = T.matmul(a, b);
  const idle = nat.poolCachedBytes();
  out.dispose();
  t.equal(nat.poolCachedBytes(), idle + bytes, 'disposed: the block is idle in the pool (no garbage collection needed)');
  const again = T.matmul(a, b);
  t.equal(nat.poolCachedBytes(), idle, 'the next output of that size takes it');
  t.deepEqual(Array.from(again.toFloat64()), Array.from(ref), 'and is computed in full (every element written)');

  // a view keeps the storage: nothing goes back until the last tensor on it is disposed
  const view = again.reshape([512, 256]);
  again.dispose();
  t.equal(nat.poolCachedBytes(), idle, 'a live view holds the block');
  t.deepEqual(Array.from(view.toFloat64()), Array.from(ref), 'the view still reads the right values');
  view.dispose();
  t.equal(nat.poolCachedBytes(), idle + bytes, 'the last dispose returns it');
  t.throws(() => view.toFloat32(), (e) => e instanceof T.TesseraError && e.code === 'E_DISPOSED', 'a disposed tensor cannot be read');

  // a bfloat16 result is rounded out of a float32 kernel output: that temporary goes back at once
  const ah = a.to('bfloat16');
  const bh = b.to('bfloat16');
  const before = nat.poolCachedBytes();
  const h = T.matmul(ah, bh, { outDtype: 'bfloat16' });
  t.equal(h.dtype, 'bfloat16', 'bfloat16 result');
  t.equal(nat.poolCachedBytes(), before, 'its float32 temporary was taken from and returned to the pool');
  for (const x of [a, b, ah, bh, h]) x.dispose();
  t.end();
});

test('an async op holds its inputs: disposing one mid-flight frees it only when the op has settled', async (t) => {
  const nat = poolAddon();
  if (!nat) {
    t.ok(process.env.TESSERA_EXPECT_NO_NATIVE === '1', 'cpu backend with an output pool expected');
    return;
  }
  const M = 768;
  const K = 512;
  const N = 768;
  const a = T.randn([M, 256], { seed: 5 });
  const w = T.randn([256, K], { seed: 6 });
  const c = T.randn([K, N], { seed: 7 });
  const w2 = T.randn([256, K], { seed: 8 });
  // let blocks of earlier tests' undisposed outputs come back first (collection, then a few turns)
  require('v8').setFlagsFromString('--expose-gc');
  const gc = require('vm').runInNewContext('gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
  }
  for (let round = 0; round < 3; round++) {
    const x = T.matmul(a, w); // [M, K]: a pooled output, 1.5 MB
    const xCopy = T.tensor(x.toFloat32(), { shape: [M, K] }); // ordinary memory, same values
    const wantT = T.matmul(xCopy, c);
    const want = wantT.toFloat64();
    wantT.dispose();
    const p = T.matmulAsync(x, c);
    const idle = nat.poolCachedBytes(); // (the op has taken its output already)
    x.dispose(); // while the worker may still be packing x
    t.equal(nat.poolCachedBytes(), idle, `round ${round}: x's block is not returned while the op runs`);
    // outputs of x's size made now, on this thread, while the op runs: they must not get x's block
    const others = [T.matmul(a, w2), T.matmul(a, w2)]; // other values
    const mid = nat.poolCachedBytes();
    const y = await p;
    const got = y.toFloat64();
    let same = true;
    for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) { same = false; break; }
    t.ok(same, `round ${round}: the async result equals the sync one on an untouched copy, bit for bit`);
    t.ok(nat.poolCachedBytes() >= mid + M * K * 4, `round ${round}: x's block is returned once the op has settled`);
    t.throws(() => x.toFloat32(), /E_DISPOSED|dispose/, 'x itself is disposed');
    for (const o of [...others, y, xCopy]) o.dispose();
  }
  for (const u of [a, w, w2, c]) u.dispose();
});
