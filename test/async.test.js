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
