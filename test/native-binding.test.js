'use strict';
// tessera_cpu, tested at its own N-API surface (no TS layer): matmulF32 / attentionF32 and their async
// forms against float64 references written here, bit-identical results for 1 vs 2 threads, the portable
// path (TESSERA_SIMD=generic, in a child process), garbage arguments (must throw, never crash) and the
// event loop ticking during async work. Tolerance (f32): ||out-ref||/||ref|| < 1e-5, max-abs error
// < 1e-4 of the output's largest magnitude, NaN/Infinity never pass, outputs are NaN-poisoned first.
//
// If the addon cannot load, the first test fails with the load error, unless TESSERA_EXPECT_NO_NATIVE=1.
// Child mode (TESSERA_NATIVE_CHILD=1, spawned by this file): runs the numeric checks and prints JSON.
const path = require('path');

const CHILD = process.env.TESSERA_NATIVE_CHILD === '1';

const H = require('./helpers');
const { nat, loadError } = H.loadCpuAddon();

// ---- helpers ------------------------------------------------------------------------------

const rng = (seed) => { const r = H.rng(seed); return () => r.next() * 2 - 1; }; // [-1, 1)
const { tailUntouched, sameBits } = H;
const compare = H.compareF32;


// A Float32Array of `length` NaNs, with `count` random values at each of `starts` (so any read of a
// gap between batch matrices shows up as NaN in the output).
function poisonedWith(length, starts, count, rand) {
  const f = new Float32Array(length).fill(NaN);
  for (const s of starts) for (let i = 0; i < count; i++) f[s + i] = rand();
  return f;
}

function batchStarts(batch, stride) {
  const s = [];
  for (let z = 0; z < batch; z++) s.push(z * stride);
  return [...new Set(s)];
}

function refMatmul(a, b, batch, M, N, K, sA, sB, tA, tB) {
  const o = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const a0 = z * sA;
    const b0 = z * sB;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) {
          const av = tA ? a[a0 + p * M + i] : a[a0 + i * K + p];
          const bv = tB ? b[b0 + j * K + p] : b[b0 + p * N + j];
          s += av * bv;
        }
        o[(z * M + i) * N + j] = s;
      }
    }
  }
  return o;
}

function refAttention(q, k, v, B, Hq, Hkv, Sq, Sk, D, Dv, scale, causal, off) {
  const o = new Float64Array(B * Hq * Sq * Dv);
  const g = Hq / Hkv;
  const s = new Float64Array(Sk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = b * Hkv + Math.floor(h / g);
      for (let i = 0; i < Sq; i++) {
        const qi = ((b * Hq + h) * Sq + i) * D;
        let m = -Infinity;
        for (let j = 0; j < Sk; j++) {
          if (causal && j > off + i) { s[j] = -Infinity; continue; }
          let d = 0;
          for (let x = 0; x < D; x++) d += q[qi + x] * k[(kh * Sk + j) * D + x];
          s[j] = d * scale;
          if (s[j] > m) m = s[j];
        }
        if (m === -Infinity) continue; // no visible key: the row stays zero
        let l = 0;
        for (let j = 0; j < Sk; j++) { s[j] = Math.exp(s[j] - m); l += s[j]; }
        const oi = ((b * Hq + h) * Sq + i) * Dv;
        for (let j = 0; j < Sk; j++) {
          if (s[j] === 0) continue;
          const vj = (kh * Sk + j) * Dv;
          for (let c = 0; c < Dv; c++) o[oi + c] += s[j] * v[vj + c];
        }
        for (let c = 0; c < Dv; c++) o[oi + c] /= l;
      }
    }
  }
  return o;
}

// { ok, rel, maxErr, nonFinite } of out[0, ref.length) vs ref.



// ---- cases --------------------------------------------------------------------------------

const SIZES = [1, 3, 7, 17, 33, 63, 127, 255];
// Every awkward size in every position, plus small-M (GEMV path), K > 256 (several K blocks), squares.
const MATMUL_SHAPES = SIZES.map((s, i) => [s, SIZES[(i + 2) % 8], SIZES[(i + 5) % 8]]).concat([
  [1, 1, 1], [2, 70, 300], [4, 33, 9], [5, 40, 513], [127, 127, 127],
]);
const MODES = ['dense', 'broadcastA', 'broadcastB', 'padded'];
const TRANS = [[false, false], [false, true], [true, false], [true, true]];

// Builds the arguments of one matmul case; out is NaN-poisoned with 7 slack elements.
function matmulCase(M, N, K, tA, tB, mode, batch, seed) {
  const rand = rng(seed);
  const sA = mode === 'broadcastA' ? 0 : mode === 'padded' ? M * K + 5 : M * K;
  const sB = mode === 'broadcastB' ? 0 : mode === 'padded' ? K * N + 3 : K * N;
  const a = poisonedWith((batch - 1) * sA + M * K, batchStarts(batch, sA), M * K, rand);
  const b = poisonedWith((batch - 1) * sB + K * N, batchStarts(batch, sB), K * N, rand);
  const out = new Float32Array(batch * M * N + 7).fill(NaN);
  return { args: [a, b, out, batch, M, N, K, sA, sB, tA, tB], out, n: batch * M * N, ref: () => refMatmul(a, b, batch, M, N, K, sA, sB, tA, tB) };
}

function* matmulCases() {
  let seed = 1;
  for (const [M, N, K] of MATMUL_SHAPES) {
    for (const [tA, tB] of TRANS) {
      for (const mode of MODES) {
        const batch = M * N * K > 300000 ? 1 : 3;
        yield { label: `matmul ${M}x${N}x${K} tA=${tA} tB=${tB} ${mode} batch=${batch}`, ...matmulCase(M, N, K, tA, tB, mode, batch, seed++) };
      }
    }
  }
  yield { label: 'matmul 255x255x255 dense', ...matmulCase(255, 255, 255, false, false, 'dense', 1, 99) };
}

const GQA = [[1, 1], [4, 1], [8, 1], [8, 2], [4, 4]];
const ATTN_DIMS = [[1, 1], [7, 13], [64, 64], [128, 128], [64, 32]];

function attentionCase(B, Hq, Hkv, Sq, Sk, D, Dv, causal, off, scale, seed) {
  const rand = rng(seed);
  const fill = (n) => { const f = new Float32Array(n); for (let i = 0; i < n; i++) f[i] = rand(); return f; };
  const q = fill(B * Hq * Sq * D);
  const k = fill(B * Hkv * Sk * D);
  const v = fill(B * Hkv * Sk * Dv);
  const out = new Float32Array(B * Hq * Sq * Dv + 5).fill(NaN);
  return {
    args: [q, k, v, out, B, Hq, Hkv, Sq, Sk, D, Dv, scale, causal, off],
    out,
    n: B * Hq * Sq * Dv,
    ref: () => refAttention(q, k, v, B, Hq, Hkv, Sq, Sk, D, Dv, scale, causal, off),
  };
}

function* attentionCases() {
  let seed = 1000;
  let r = 0;
  for (const [D, Dv] of ATTN_DIMS) {
    for (const S of [1, 7, 33, 127]) {
      for (const longer of [0, 9]) {
        const [Hq, Hkv] = GQA[r++ % GQA.length];
        const B = S <= 7 ? 2 : 1;
        const Sq = S;
        const Sk = S + longer;
        for (const causal of [false, true]) {
          const label = `attention B${B} Hq${Hq} Hkv${Hkv} Sq${Sq} Sk${Sk} D${D} Dv${Dv} causal=${causal}`;
          yield { label, ...attentionCase(B, Hq, Hkv, Sq, Sk, D, Dv, causal, Sk - Sq, 1 / Math.sqrt(D), seed++) };
        }
      }
    }
  }
  // Sharp softmax (large scale), a causal prefix (kvOffset 0 with Sk > Sq), and Sq > Sk: the first
  // Sq - Sk query rows see no key at all and must come out as zeros.
  yield { label: 'attention sharp softmax scale=8', ...attentionCase(1, 2, 1, 40, 70, 16, 16, false, 0, 8, seed++) };
  yield { label: 'attention causal kvOffset=0, Sk>Sq', ...attentionCase(1, 4, 2, 33, 80, 32, 32, true, 0, 0.2, seed++) };
  yield { label: 'attention decode MQA Hq64 Hkv1 (group > query block) causal', ...attentionCase(1, 64, 1, 1, 50, 24, 40, true, 49, 0.2, seed++) };
  yield { label: 'attention decode kvOffset=-1: no visible key -> zeros', ...attentionCase(2, 8, 2, 1, 10, 16, 16, true, -1, 0.25, seed++) };
  yield { label: 'attention causal Sq>Sk: leading rows empty -> zeros', ...attentionCase(1, 2, 2, 70, 20, 16, 8, true, 20 - 70, 0.25, seed++) };
  // split-KV decode (few tasks, long cache): MQA (one task, 4 chunks), Sq 3 causal per-head tasks whose last
  // chunk is partly hidden, and a causal offset that hides whole chunks from every row
  yield { label: 'attention split-KV decode MQA Hq8 Hkv1 Sk2500', ...attentionCase(1, 8, 1, 1, 2500, 64, 48, false, 0, 0.125, seed++) };
  yield { label: 'attention split-KV Sq3 causal H2 Sk2100', ...attentionCase(1, 2, 2, 3, 2100, 32, 32, true, 2097, 0.2, seed++) };
  yield { label: 'attention split-KV causal kvOffset 700 of Sk3000 (chunks 2+ hidden)', ...attentionCase(1, 4, 1, 1, 3000, 16, 16, true, 700, 0.25, seed++) };
}

// Cases whose bits must match between 1, 2 and 3 threads (large enough to use the pool).
function determinismCases() {
  return [
    { label: 'matmul 300x200x520 (2 K blocks)', ...matmulCase(300, 200, 520, false, false, 'dense', 1, 5) },
    { label: 'matmul 255x255x255 tA tB batch 2', ...matmulCase(255, 255, 255, true, true, 'dense', 2, 6) },
    { label: 'matmul broadcastB batch 8 (folded)', ...matmulCase(63, 130, 257, false, true, 'broadcastB', 8, 7) },
    { label: 'matmul 1x3000x700 (small M)', ...matmulCase(1, 3000, 700, false, false, 'dense', 1, 8) },
    { label: 'matmul 3x2000x300 tB (small M)', ...matmulCase(3, 2000, 300, false, true, 'dense', 2, 9) },
    { label: 'matmul 4x1100x2053 (small M, K 2053 in 5 fixed chunks)', ...matmulCase(4, 1100, 2053, false, false, 'dense', 1, 14) },
    { label: 'matmul 2x9000x600 (small M, K 600 in 2 chunks, column parts)', ...matmulCase(2, 9000, 600, false, false, 'dense', 1, 15) },
    { label: 'attention B1 H8/2 S200 D64 causal', ...attentionCase(1, 8, 2, 200, 200, 64, 64, true, 0, 0.125, 10) },
    { label: 'attention decode B2 H32/4 Sk3000 D64 causal', ...attentionCase(2, 32, 4, 1, 3000, 64, 64, true, 2999, 0.125, 12) },
    { label: 'attention B2 H4/4 Sq100 Sk300 D40 Dv24', ...attentionCase(2, 4, 4, 100, 300, 40, 24, false, 200, 0.15, 11) },
    { label: 'attention split-KV decode B1 H4/1 Sk5000 D128', ...attentionCase(1, 4, 1, 1, 5000, 128, 128, false, 0, 0.09, 13) },
  ];
}

function runSync(c) {
  if (c.args.length === 11) nat.matmulF32(...c.args);
  else nat.attentionF32(...c.args);
}

function runAsync(c) {
  return c.args.length === 11 ? nat.matmulF32Async(...c.args) : nat.attentionF32Async(...c.args);
}

// Numeric checks shared by the parent and the TESSERA_SIMD=generic child: [{ label, ok, detail }].
function numericChecks({ every = 1 } = {}) {
  const results = [];
  let i = 0;
  for (const c of [...matmulCases(), ...attentionCases()]) {
    if (i++ % every !== 0) continue;
    runSync(c);
    const r = compare(c.out, c.ref());
    const tail = tailUntouched(c.out, c.n);
    results.push({ label: c.label, ok: r.ok && tail, detail: `rel=${r.rel.toExponential(2)} maxErr=${r.maxErr.toExponential(2)} nonFinite=${r.nonFinite} tailUntouched=${tail}` });
  }
  const saved = nat.getNumThreads();
  for (const c of determinismCases()) {
    nat.setNumThreads(1);
    runSync(c);
    const one = c.out.slice(0, c.n);
    const r = compare(one, c.ref());
    for (const threads of [2, 3]) {
      nat.setNumThreads(threads);
      c.out.fill(NaN);
      runSync(c);
      results.push({ label: `${c.label}: 1 vs ${threads} threads bit-identical`, ok: sameBits(one, c.out.subarray(0, c.n)) && r.ok, detail: `rel=${r.rel.toExponential(2)}` });
    }
  }
  nat.setNumThreads(saved);
  return results;
}

// ---- child mode ---------------------------------------------------------------------------

if (CHILD) {
  H.reportChild(nat, loadError, () => numericChecks({ every: 3 }));
  return; // eslint-disable-line no-useless-return -- CommonJS top-level return: skip the tape tests
}

// ---- tape tests ---------------------------------------------------------------------------

const test = require('tape');

if (!nat) {
  H.addonMissingTest(test, loadError);
  return;
}

test('info / threads', (t) => {
  const info = nat.info();
  t.equal(info.version, '0.1.0', 'version');
  t.ok(['avx2+fma', 'generic'].includes(info.simd), `simd = ${info.simd}`);
  t.ok(Number.isInteger(info.threads) && info.threads >= 1, `threads = ${info.threads}`);
  t.ok(info.napiVersion >= 8, `napiVersion = ${info.napiVersion}`);
  t.equal(typeof info.compiler, 'string', `compiler = ${info.compiler}`);
  t.deepEqual(Object.keys(nat).sort(), ['allocF32', 'attentionF32', 'attentionF32Async', 'getNumThreads', 'info', 'matmulF32', 'matmulF32Async', 'matmulMixed', 'matmulMixedAsync', 'peakRate', 'poolCachedBytes', 'qgemm', 'qgemmAsync', 'qgemmPrepack', 'readBandwidth', 'releaseF32', 'setNumThreads', 'spmm24F32', 'spmm24F32Async', 'spmmCsrF32', 'spmmCsrF32Async'], 'narrow export surface');
  const saved = nat.getNumThreads();
  nat.setNumThreads(3);
  t.equal(nat.getNumThreads(), 3, 'setNumThreads(3)');
  t.equal(nat.info().threads, 3, 'info().threads follows');
  nat.setNumThreads(saved);
  t.equal(nat.getNumThreads(), saved, 'restored');
  t.end();
});

test('allocF32: large outputs come from a pool and go back to it once collected', async (t) => {
  t.equal(nat.allocF32(1000), null, 'below the pool minimum: null (the caller allocates)');
  const n = 1 << 20;
  let a = nat.allocF32(n);
  t.ok(a instanceof Float32Array && a.length === n && a.byteOffset === 0, 'a Float32Array of n elements');
  a.fill(2.5);
  t.equal(a[0] + a[n - 1], 5, 'writable end to end');
  const before = nat.poolCachedBytes();
  a = null;
  require('v8').setFlagsFromString('--expose-gc');
  const gc = require('vm').runInNewContext('gc');
  // node runs the finalizer on the JS thread after the collection: give it a few turns
  for (let i = 0; i < 20 && nat.poolCachedBytes() < before + n * 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(nat.poolCachedBytes() >= before + n * 4, `the block went back to the pool (${nat.poolCachedBytes()} idle bytes)`);
  const idle = nat.poolCachedBytes();
  const b = nat.allocF32(n);
  t.equal(nat.poolCachedBytes(), idle - n * 4, 'the next allocation of that size reuses it');
  b.fill(1);
  t.equal(b[n - 1], 1, 'reused block is writable');
  for (const bad of [0, -1, 2 ** 31, 1.5, '4', null, undefined, NaN]) {
    t.throws(() => nat.allocF32(bad), /allocF32/, `allocF32(${String(bad)}) throws`);
  }
  t.end();
});

test('releaseF32: a pooled block goes back at once, its ArrayBuffer detached; anything else is refused', (t) => {
  const n = 1 << 19;
  const a = nat.allocF32(n);
  a.fill(7);
  const view = new Float32Array(a.buffer, 1024, 16); // another JS view of the same block
  const before = nat.poolCachedBytes();
  t.equal(nat.releaseF32(a), true, 'released');
  t.equal(nat.poolCachedBytes(), before + n * 4, 'the block is idle in the pool now, no collection needed');
  t.equal(a.length, 0, 'the array reads as empty (detached)');
  t.equal(view.length, 0, 'every other view of the block is detached too');
  t.equal(view[0], undefined, 'a stale view reads nothing of the block');
  t.equal(nat.releaseF32(a), false, 'a second release is refused');
  const b = nat.allocF32(n);
  t.equal(nat.poolCachedBytes(), before, 'the next allocation of that size reuses the block');
  b.fill(1);
  t.equal(a.length + view.length, 0, 'the old views stay empty while the block has a new owner');
  // not ours, or not the whole block: refused, nothing detached
  const plain = new Float32Array(n);
  t.equal(nat.releaseF32(plain), false, 'an ordinary Float32Array');
  t.equal(plain.length, n, '... stays attached');
  t.equal(nat.releaseF32(b.subarray(4)), false, 'a sub-view of a pooled block');
  t.equal(nat.releaseF32(new Float32Array(b.buffer, 0, 8)), false, 'a shorter view of a pooled block');
  t.equal(nat.releaseF32(new Int32Array(b.buffer)), false, 'another element type over a pooled block');
  t.equal(b.length, n, '... the pooled array is untouched');
  for (const bad of [null, undefined, 3, 'x', {}, [1, 2]]) t.equal(nat.releaseF32(bad), false, `releaseF32(${JSON.stringify(bad)}) refused`);
  t.throws(() => nat.releaseF32(), /releaseF32/, 'missing argument throws');
  t.equal(nat.releaseF32(b), true, 'the reused block can be released in turn');
  t.end();
});

test('readBandwidth: reads a buffer and reports bytes/s; bad arguments throw', (t) => {
  for (const parallel of [false, true]) {
    const r = nat.readBandwidth(2 ** 20, 0.005, parallel);
    t.ok(Number.isFinite(r) && r > 1e8, `1 MiB, parallel ${parallel}: ${(r / 1e9).toFixed(1)} GB/s`);
  }
  for (const args of [[2 ** 20 - 1, 0.01, false], [2 ** 30 + 1, 0.01, false], [NaN, 0.01, false], ['1048576', 0.01, false],
    [2 ** 20, 0, false], [2 ** 20, 11, false], [2 ** 20, 0.01, 'yes'], [2 ** 20, 0.01]]) {
    t.throws(() => nat.readBandwidth(...args), /readBandwidth/, `readBandwidth(${args.map(String).join(', ')}) throws`);
  }
  t.end();
});

test('peakRate: calibration loops run and report a rate; bad arguments throw', (t) => {
  const simd = nat.info().simd;
  for (const kind of [0, 1]) {
    for (const parallel of [false, true]) {
      const r = nat.peakRate(kind, 0.01, parallel);
      if (simd === 'avx2+fma') t.ok(Number.isFinite(r) && r > 1e8, `kind ${kind} parallel ${parallel}: ${(r / 1e9).toFixed(1)} G ops/s`);
      else t.equal(r, 0, `kind ${kind}: 0 without an AVX2 loop`);
    }
  }
  for (const args of [[2, 0.01, false], [-1, 0.01, false], [0.5, 0.01, false], [0, 0, false], [0, 11, false], [0, NaN, false], [0, '1', false], [0, 0.01]]) {
    t.throws(() => nat.peakRate(...args), /peakRate/, `peakRate(${args.map(String).join(', ')}) throws`);
  }
  t.end();
});

test('matmulF32 / attentionF32 vs float64 reference; 1 vs 2 vs 3 threads bit-identical', (t) => {
  for (const r of numericChecks()) t.ok(r.ok, `${r.label} (${r.detail})`);
  t.end();
});

test('matmulMixed: float16 / bfloat16 operands widened while packed, vs float64 of the widened values', async (t) => {
  const { encode, decode } = require('../dist/dtype');
  // half operands: random values rounded to the dtype; the reference multiplies their exact float32 values
  const halfOf = (dt, f32) => ({ bits: encode(dt, f32), wide: Float32Array.from(decode(dt, encode(dt, f32), f32.length)) });
  const cases = [
    // [M, N, K, tA, tB, batch, sA mode, aDtype, bDtype]
    [1, 300, 257, false, false, 1, 'bfloat16', 'float32'],
    [7, 65, 130, false, true, 2, 'float32', 'bfloat16'],
    [33, 40, 300, true, false, 3, 'float16', 'float16'],
    [200, 129, 70, false, false, 1, 'bfloat16', 'bfloat16'],
    [64, 17, 513, true, true, 2, 'float16', 'float32'],
    // float32 x with bfloat16 weights [N, K] at M <= 4: the unpacked GEMV path (K tails, N not a multiple of 8)
    [1, 1000, 4100, false, true, 1, 'float32', 'bfloat16'],
    [3, 70, 259, false, true, 2, 'float32', 'bfloat16'],
    [4, 9, 7, false, true, 3, 'float32', 'bfloat16'],
    [1, 513, 1030, false, true, 1, 'float32', 'float16'],
    [2, 33, 15, false, true, 2, 'float32', 'float16'],
  ];
  let seed = 4000;
  for (const [M, N, K, tA, tB, batch, da, db] of cases) {
    const rand = rng(seed++);
    const fa = Float32Array.from({ length: batch * M * K }, () => rand());
    const fb = Float32Array.from({ length: batch * K * N }, () => rand());
    const A = da === 'float32' ? { bits: fa, wide: fa } : halfOf(da, fa);
    const B = db === 'float32' ? { bits: fb, wide: fb } : halfOf(db, fb);
    const out = new Float32Array(batch * M * N + 4).fill(NaN);
    const args = [A.bits, B.bits, out, batch, M, N, K, M * K, K * N, tA, tB, da, db];
    nat.matmulMixed(...args);
    const r = compare(out, refMatmul(A.wide, B.wide, batch, M, N, K, M * K, K * N, tA, tB));
    const label = `${M}x${N}x${K} tA=${tA} tB=${tB} batch ${batch} ${da} x ${db}`;
    t.ok(r.ok && tailUntouched(out, batch * M * N), `${label} (rel=${r.rel.toExponential(2)})`);
    // the float32 path on the widened values, packed the same way: close (order may differ for small M)
    const f = new Float32Array(batch * M * N);
    nat.matmulF32(A.wide, B.wide, f, batch, M, N, K, M * K, K * N, tA, tB);
    t.ok(compare(out, refMatmul(A.wide, B.wide, batch, M, N, K, M * K, K * N, tA, tB)).ok && compare(f, refMatmul(A.wide, B.wide, batch, M, N, K, M * K, K * N, tA, tB)).ok, `${label}: agrees with matmulF32 on the widened values`);
    const outAsync = new Float32Array(batch * M * N + 4).fill(NaN);
    await nat.matmulMixedAsync(A.bits, B.bits, outAsync, ...args.slice(3));
    t.ok(outAsync.subarray(0, batch * M * N).every((v, i) => Object.is(v, out[i])), `${label}: async gives the same bits`);
  }
  // bad input: dtype names, array types, lengths, overlap
  const h = new Uint16Array(12), f = new Float32Array(12), o = new Float32Array(9);
  const base = [h, f, o, 1, 3, 3, 4, 0, 0, false, false, 'bfloat16', 'float32'];
  const bad = (i, v, what, type = RangeError) => {
    const a = base.slice();
    a[i] = v;
    t.throws(() => nat.matmulMixed(...a), type, what);
  };
  nat.matmulMixed(...base);
  t.pass('a well-formed call runs');
  bad(11, 'int8', 'aDtype int8');
  bad(12, 7, 'bDtype not a string', TypeError);
  bad(0, f, 'bfloat16 a given as a Float32Array', TypeError);
  bad(1, h, 'float32 b given as a Uint16Array', TypeError);
  bad(0, new Uint16Array(11), 'a too short');
  bad(2, new Float32Array(8), 'out too short');
  const shared = new ArrayBuffer(36);
  t.throws(() => nat.matmulMixed(new Uint16Array(shared, 0, 12), f, new Float32Array(shared, 0, 9), ...base.slice(3)), RangeError, 'out overlapping a half operand');
  t.throws(() => nat.matmulMixed(...base.slice(0, 12)), TypeError, 'wrong argument count');
  t.end();
});

test('split-KV decode: a NaN key poisons only the rows that see it', (t) => {
  // MQA over 3000 keys (split into chunks): a NaN in K at key 2900 reaches every row; with causal
  // kvOffset 1000 it is hidden from every row, which must stay finite and match the reference.
  for (const causal of [false, true]) {
    const c = attentionCase(1, 4, 1, 1, 3000, 16, 16, causal, 1000, 0.25, 77);
    c.args[1][2900 * 16 + 3] = NaN;
    runSync(c);
    const out = c.out.subarray(0, c.n);
    if (causal) {
      const r = compare(c.out, c.ref());
      t.ok(r.ok && out.every(Number.isFinite), `causal: the hidden NaN changes nothing (rel=${r.rel.toExponential(2)})`);
    } else {
      t.ok(out.every(Number.isNaN), 'non-causal: every row that sees the NaN key is NaN');
    }
  }
  t.end();
});

test('async forms match the reference (several in flight at once)', async (t) => {
  const cases = [];
  let i = 0;
  for (const c of [...matmulCases(), ...attentionCases()]) if (i++ % 3 === 0) cases.push(c);
  for (const c of determinismCases()) cases.push(c);
  const promises = cases.map((c) => runAsync(c));
  t.ok(promises.every((p) => p instanceof Promise), 'every async call returns a Promise');
  const settled = await Promise.allSettled(promises);
  cases.forEach((c, k) => {
    t.equal(settled[k].status, 'fulfilled', `${c.label}: resolved`);
    t.equal(settled[k].value, undefined, `${c.label}: resolves to undefined`);
    const r = compare(c.out, c.ref());
    t.ok(r.ok && tailUntouched(c.out, c.n), `${c.label} async (rel=${r.rel.toExponential(2)})`);
  });
});

test('portable path (TESSERA_SIMD=generic, child process)', (t) => H.checkGenericChild(t, __filename, { TESSERA_NATIVE_CHILD: '1' }, { timeout: 120000 }));

test('garbage arguments throw, never crash', (t) => {
  const f32 = (n) => new Float32Array(n);
  const detached = () => { const f = f32(64); const ab = f.buffer; structuredClone(ab, { transfer: [ab] }); return f; };
  const notF32 = [undefined, null, 'a', 42, true, {}, [1, 2, 3], new Float64Array(64), new Int32Array(64),
    new Uint8Array(256), new DataView(new ArrayBuffer(256)), new ArrayBuffer(256), () => 1, Symbol('s'), 10n];
  const badDim = [undefined, null, 'a', '4', {}, [], [4], true, 10n, NaN, Infinity, -Infinity, -1, 0, 1.5, -3, 2 ** 31, 2 ** 40, Number.MAX_VALUE];
  const badStride = [undefined, null, 'a', {}, NaN, Infinity, -1, 1.5, 2 ** 60, 2 ** 40];
  const badBool = [undefined, null, 0, 1, 'true', {}, [], 10n];

  // matmul: batch 2 so that a huge stride cannot hide behind (batch - 1) = 0
  const M = 3; const N = 5; const K = 4;
  const mm = () => [f32(2 * M * K), f32(2 * K * N), f32(2 * M * N), 2, M, N, K, M * K, K * N, false, false];
  const at = () => [f32(2 * 4 * 3 * 8), f32(2 * 2 * 5 * 8), f32(2 * 2 * 5 * 6), f32(2 * 4 * 3 * 6), 2, 4, 2, 3, 5, 8, 6, 0.3, true, 2];
  const families = [
    { names: ['matmulF32', 'matmulF32Async'], good: mm, bufs: [0, 1, 2], dims: [3, 4, 5, 6], strides: [7, 8], bools: [9, 10] },
    { names: ['attentionF32', 'attentionF32Async'], good: at, bufs: [0, 1, 2, 3], dims: [4, 5, 6, 7, 8, 9, 10], strides: [], bools: [12] },
  ];
  let threw = 0;
  // Each bad call must throw synchronously (the async forms too), as a TypeError/RangeError from the addon.
  const mustThrow = (fn, args, what, type) => {
    const kind = type ? type.name : '(?:TypeError|RangeError)';
    t.throws(() => fn(...args), new RegExp(`^${kind}: tessera_cpu\\.`), what);
    threw++;
  };

  for (const fam of families) {
    for (const name of fam.names) {
      const fn = nat[name];
      const good = fam.good();
      // sanity: the template itself is valid
      if (name.endsWith('Async')) fn(...fam.good()).catch(() => t.fail(`${name}: good template rejected`));
      else t.doesNotThrow(() => fn(...fam.good()), `${name}: valid template runs`);
      mustThrow(fn, [], `${name}()`, TypeError);
      mustThrow(fn, good.slice(0, good.length - 1), `${name}: too few args`, TypeError);
      mustThrow(fn, [...good, 1], `${name}: too many args`, TypeError);
      mustThrow(fn, [null], `${name}(null)`, TypeError);
      mustThrow(fn, ['a', 'b', 'c'], `${name}(strings)`, TypeError);
      mustThrow(fn, good.map(() => ({})), `${name}(objects)`, TypeError);
      mustThrow(fn, good.map(() => undefined), `${name}(undefined x n)`, TypeError);
      for (const i of fam.bufs) {
        for (const bad of notF32) { const a = fam.good(); a[i] = bad; mustThrow(fn, a, `${name}: arg ${i} = ${String(bad && bad.constructor ? bad.constructor.name : bad)}`, TypeError); }
        const d = fam.good(); d[i] = detached(); mustThrow(fn, d, `${name}: arg ${i} detached`, TypeError);
        const s = fam.good(); s[i] = s[i].subarray(1); mustThrow(fn, s, `${name}: arg ${i} one element short`, RangeError);
      }
      for (const i of fam.dims) for (const bad of badDim) { const a = fam.good(); a[i] = bad; mustThrow(fn, a, `${name}: dim arg ${i} = ${String(bad)}`); }
      for (const i of fam.strides) for (const bad of badStride) { const a = fam.good(); a[i] = bad; mustThrow(fn, a, `${name}: stride arg ${i} = ${String(bad)}`); }
      for (const i of fam.bools) for (const bad of badBool) { const a = fam.good(); a[i] = bad; mustThrow(fn, a, `${name}: bool arg ${i} = ${String(bad)}`, TypeError); }
    }
  }

  // matmul specifics: overlap, overflow, exact message
  const big = f32(200);
  mustThrow(nat.matmulF32, [big, f32(40), big, 1, 3, 5, 4, 0, 0, false, false], 'matmul out === a', RangeError);
  mustThrow(nat.matmulF32, [f32(12), big.subarray(0, 20), big.subarray(10, 25), 1, 3, 5, 4, 0, 0, false, false], 'matmul out overlaps b', RangeError);
  mustThrow(nat.matmulF32Async, [big.subarray(100, 112), f32(20), big.subarray(95, 110), 1, 3, 5, 4, 0, 0, false, false], 'matmulAsync out overlaps a', RangeError);
  t.doesNotThrow(() => nat.matmulF32(big.subarray(0, 12), big.subarray(12, 32), big.subarray(32, 47), 1, 3, 5, 4, 0, 0, false, false), 'adjacent views of one buffer are fine');
  mustThrow(nat.matmulF32, [f32(4), f32(4), f32(4), 1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 0, 0, false, false], 'matmul dims product > 2^53', RangeError);
  mustThrow(nat.matmulF32, [f32(4), f32(4), f32(4), 2 ** 31 - 1, 1, 1, 1, 2 ** 53 - 1, 0, false, false], 'matmul (batch-1)*stride > 2^53', RangeError);
  t.throws(() => nat.matmulF32(f32(12), f32(20), f32(15), 1, -3, 5, 4, 0, 0, false, false),
    /^RangeError: tessera_cpu\.matmulF32: argument 4 \(M\) must be an integer in \[1, 2\^31-1\], got -3$/, 'message names the argument, the range and the value');
  t.throws(() => nat.matmulF32(new Float64Array(12), f32(20), f32(15), 1, 3, 5, 4, 0, 0, false, false),
    /TypeError: tessera_cpu\.matmulF32: argument 0 \(a\) must be a Float32Array, got Float64Array/, 'type message');

  // attention specifics
  const q = f32(2 * 3 * 8);
  mustThrow(nat.attentionF32, [q, f32(2 * 5 * 8), f32(2 * 5 * 8), f32(2 * 3 * 8), 1, 2, 3, 3, 5, 8, 8, 0.3, false, 2], 'Hq % Hkv != 0', RangeError);
  mustThrow(nat.attentionF32Async, [q, f32(80), f32(80), f32(48), 1, 6, 4, 1, 5, 8, 8, 0.3, false, 2], 'async Hq % Hkv != 0', RangeError);
  mustThrow(nat.attentionF32, [q, f32(80), f32(80), q, 1, 2, 2, 3, 5, 8, 8, 0.3, false, 2], 'attention out === q', RangeError);
  const kv = f32(160);
  mustThrow(nat.attentionF32, [q, kv.subarray(0, 80), kv.subarray(80), kv.subarray(100, 148), 1, 2, 2, 3, 5, 8, 8, 0.3, false, 2], 'attention out overlaps v', RangeError);
  for (const bad of [NaN, Infinity, -Infinity, 'a', null, undefined, 1e39]) mustThrow(nat.attentionF32, [q, f32(80), f32(80), f32(48), 1, 2, 2, 3, 5, 8, 8, bad, false, 2], `scale = ${String(bad)}`);
  for (const bad of [NaN, Infinity, 1.5, 'a', null, 2 ** 60]) mustThrow(nat.attentionF32, [q, f32(80), f32(80), f32(48), 1, 2, 2, 3, 5, 8, 8, 0.3, true, bad], `kvOffset = ${String(bad)}`);

  // zero-argument exports reject arguments; setNumThreads validates
  mustThrow(nat.info, [1], 'info(1)', TypeError);
  mustThrow(nat.getNumThreads, [null], 'getNumThreads(null)', TypeError);
  for (const bad of [undefined, null, 'a', {}, NaN, Infinity, 0, -1, 1.5, 257, 2 ** 40]) mustThrow(nat.setNumThreads, [bad], `setNumThreads(${String(bad)})`);
  mustThrow(nat.setNumThreads, [], 'setNumThreads()', TypeError);
  mustThrow(nat.setNumThreads, [1, 2], 'setNumThreads(1, 2)', TypeError);
  t.ok(threw > 500, `${threw} bad calls threw`);

  // views on a SharedArrayBuffer and at a byte offset are valid inputs
  const sab = new Float32Array(new SharedArrayBuffer(4 * 100));
  t.doesNotThrow(() => nat.matmulF32(sab.subarray(1, 13), sab.subarray(13, 33), f32(15), 1, 3, 5, 4, 0, 0, false, false), 'SharedArrayBuffer views are accepted');

  // still alive and correct
  const c = matmulCase(17, 9, 33, false, true, 'dense', 2, 123);
  nat.matmulF32(...c.args);
  t.ok(compare(c.out, c.ref()).ok, 'sanity matmul after the garbage');
  t.end();
});

test('async: the event loop keeps ticking during a 1024^3 matmulF32Async', async (t) => {
  const n = 1024;
  const rand = rng(77);
  const a = new Float32Array(n * n).map(rand);
  const b = new Float32Array(n * n).map(rand);
  const out = new Float32Array(n * n).fill(NaN);
  const sync = new Float32Array(n * n);
  nat.matmulF32(a, b, sync, 1, n, n, n, 0, 0, false, false);
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 1);
  const t0 = Date.now();
  let calls = 0;
  // Keep at least ~60 ms of async work in flight so fast machines still give the timer a chance.
  do {
    const p = nat.matmulF32Async(a, b, out, 1, n, n, n, 0, 0, false, false);
    if (calls === 0) t.equal(ticks, 0, 'matmulF32Async returned before any timer tick');
    await p;
    calls++;
  } while (Date.now() - t0 < 60);
  clearInterval(iv);
  t.ok(ticks >= 3, `timer ticked ${ticks} times during ${calls} async matmul(s) over ${Date.now() - t0} ms`);
  t.ok(sameBits(out, sync), 'async result is bit-identical to the sync one');
});
