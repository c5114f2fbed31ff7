'use strict';
// tessera_cpu spmm kernels at their own N-API surface: spmmCsrF32 / spmm24F32 and the async forms against
// the js references spmmCsrRef / spmm24Ref (float64), at sparsities 0/50/90/99/100 % with empty rows,
// M/K/N in {1, 3, 17, 63, 255} (K not a multiple of 4 for 2:4); bit-identical results for 1, 2 and 3
// threads and sync vs async; the portable path (TESSERA_SIMD=generic, child process); malformed sparse
// structures and garbage arguments must throw (or reject), never read out of bounds or crash.
// Tolerance (f32 accumulation vs float64): ||out-ref||/||ref|| < 1e-5, max-abs error < 1e-4 of the largest
// |ref|; outputs are NaN-poisoned first with a slack tail that must stay untouched.
//
// Child mode (TESSERA_NATIVE_CHILD=1, spawned by this file): runs the numeric checks and prints JSON.
const path = require('path');

const CHILD = process.env.TESSERA_NATIVE_CHILD === '1';
const { csrFromDense, sparse24FromDense, spmmCsrRef, spmm24Ref } = require('../dist/backends/js/sparse.js');

const H = require('./helpers');
const { nat, loadError } = H.loadCpuAddon();

// ---- helpers ------------------------------------------------------------------------------

const rng = (seed) => H.rng(seed).next; // [0, 1)
const { tailUntouched, sameBits } = H;
const compare = H.compareF32;


// Dense A [M, K] with about `sparsity` zeros; every 4th row (from row 1) is empty when M > 1.
function sparseDense(M, K, sparsity, rand) {
  const a = new Float32Array(M * K);
  for (let m = 0; m < M; m++) {
    if (M > 1 && m % 4 === 1) continue;
    for (let k = 0; k < K; k++) if (rand() >= sparsity) a[m * K + k] = rand() * 2 - 1;
  }
  return a;
}

function randomF32(n, rand) {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rand() * 2 - 1;
  return f;
}




const SLACK = 5;

// One case: args of the sync call (out NaN-poisoned with SLACK extra elements) and its reference.
function csrCase(M, K, N, sparsity, seed) {
  const rand = rng(seed);
  const c = csrFromDense(sparseDense(M, K, sparsity, rand), M, K);
  const b = randomF32(K * N, rand);
  const out = new Float32Array(M * N + SLACK).fill(NaN);
  return {
    label: `csr M${M} K${K} N${N} ${Math.round(sparsity * 100)}% nnz=${c.colIdx.length}`,
    fn: 'spmmCsrF32',
    args: [c.rowPtr, c.colIdx, c.values, b, out, M, K, N, c.colIdx.length],
    out,
    n: M * N,
    ref: () => spmmCsrRef(c, b, N),
  };
}

function s24Case(M, K, N, sparsity, seed) {
  const rand = rng(seed);
  const s = sparse24FromDense(sparseDense(M, K, sparsity, rand), M, K);
  const b = randomF32(K * N, rand);
  const out = new Float32Array(M * N + SLACK).fill(NaN);
  return {
    label: `2:4 M${M} K${K} N${N} ${Math.round(sparsity * 100)}%`,
    fn: 'spmm24F32',
    args: [s.values, s.meta, b, out, M, K, N],
    out,
    n: M * N,
    ref: () => spmm24Ref(s, b, N),
  };
}

const DIMS = [1, 3, 17, 63, 255];
const SPARSITY = [0, 0.5, 0.9, 0.99, 1];

function* numericCases() {
  let seed = 1;
  for (const M of DIMS) {
    for (const K of DIMS) {
      for (const N of DIMS) {
        const sp = SPARSITY[seed % SPARSITY.length];
        yield csrCase(M, K, N, sp, seed++);
        yield s24Case(M, K, N, sp, seed++);
      }
    }
  }
  // every sparsity on a shape with several 64-column tiles and K % 4 = 3
  for (const sp of SPARSITY) {
    yield csrCase(63, 255, 130, sp, seed++);
    yield s24Case(63, 255, 130, sp, seed++);
  }
}

// Big enough for the pool: uneven rows, several column tiles, 2:4 K blocks.
function determinismCases() {
  return [
    csrCase(700, 900, 64, 0.9, 501),
    csrCase(1, 5000, 1000, 0.5, 502), // one row: column tiles split over tasks
    csrCase(300, 300, 200, 0.5, 503),
    s24Case(300, 1001, 70, 0, 504),
    s24Case(3, 2000, 513, 0.5, 505),
    s24Case(513, 255, 17, 0.9, 506),
  ];
}

// [{ label, ok, detail }] of the numeric checks, shared by the parent and the generic child.
function numericChecks({ every = 1 } = {}) {
  const results = [];
  let i = 0;
  for (const c of numericCases()) {
    if (i++ % every !== 0) continue;
    nat[c.fn](...c.args);
    const r = compare(c.out, c.ref());
    const tail = tailUntouched(c.out, c.n);
    results.push({ label: c.label, ok: r.ok && tail, detail: `${r.detail} tailUntouched=${tail}` });
  }
  const saved = nat.getNumThreads();
  for (const c of determinismCases()) {
    nat.setNumThreads(1);
    nat[c.fn](...c.args);
    const one = c.out.slice(0, c.n);
    const r = compare(one, c.ref());
    results.push({ label: `${c.label} vs reference`, ok: r.ok && tailUntouched(c.out, c.n), detail: r.detail });
    for (const threads of [2, 3]) {
      nat.setNumThreads(threads);
      c.out.fill(NaN);
      nat[c.fn](...c.args);
      results.push({ label: `${c.label}: 1 vs ${threads} threads bit-identical`, ok: sameBits(one, c.out.subarray(0, c.n)), detail: '' });
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

test('spmmCsrF32 / spmm24F32 vs the js references; 1 vs 2 vs 3 threads bit-identical', (t) => {
  const results = numericChecks();
  for (const r of results) t.ok(r.ok, `${r.label} (${r.detail})`);
  t.ok(results.length > 250, `${results.length} checks`);
  t.end();
});

// B rows at every 16-byte alignment (B is a view at element offset 0..7 of one buffer): CSR copies a
// misaligned B (N % 8 == 0) into aligned memory and 2:4 stages B blocks; neither may change a bit.
test('B at any alignment: same bits as the aligned call, and the reference', (t) => {
  const shapes = [
    { fn: 'csr', M: 200, K: 700, N: 64, sp: 0.9 },
    { fn: 'csr', M: 50, K: 300, N: 136, sp: 0.5 },
    { fn: 'csr', M: 40, K: 100, N: 20, sp: 0.5 }, // N % 8 != 0: used in place
    { fn: '2:4', M: 200, K: 1001, N: 64, sp: 0 },
    { fn: '2:4', M: 33, K: 255, N: 72, sp: 0.5 },
  ];
  let seed = 900;
  for (const { fn, M, K, N, sp } of shapes) {
    const c = fn === 'csr' ? csrCase(M, K, N, sp, seed++) : s24Case(M, K, N, sp, seed++);
    const bIndex = fn === 'csr' ? 3 : 2;
    const b = c.args[bIndex];
    const host = new Float32Array(b.length + 8);
    let first = null;
    for (let off = 0; off < 8; off++) {
      const view = host.subarray(off, off + b.length);
      view.set(b);
      const args = c.args.slice();
      args[bIndex] = view;
      c.out.fill(NaN);
      nat[c.fn](...args);
      const got = c.out.slice(0, c.n);
      if (first === null) {
        const r = compare(got, c.ref());
        t.ok(r.ok && tailUntouched(c.out, c.n), `${c.label}, B at element offset 0: vs reference (${r.detail})`);
        first = got;
      } else if (!sameBits(got, first)) {
        t.fail(`${c.label}, B at element offset ${off}: differs from offset 0`);
        first = null;
        break;
      }
    }
    if (first !== null) t.pass(`${c.label}: B at element offsets 1..7 gives the same bits`);
  }
  t.end();
});

test('structural zeros are never multiplied: Inf/NaN rows of B that A does not use stay out', (t) => {
  const rand = rng(77);
  const M = 20;
  const K = 22;
  const N = 19;
  const a = randomF32(M * K, rand);
  for (let m = 0; m < M; m++) a[m * K + 5] = 0; // column 5 empty: never stored (CSR), never kept (2:4)
  const b = randomF32(K * N, rand);
  for (let j = 0; j < N; j++) b[5 * N + j] = j % 2 ? Infinity : NaN;
  const c = csrFromDense(a, M, K);
  const s = sparse24FromDense(a, M, K);
  const out1 = new Float32Array(M * N).fill(NaN);
  const out2 = new Float32Array(M * N).fill(NaN);
  nat.spmmCsrF32(c.rowPtr, c.colIdx, c.values, b, out1, M, K, N, c.colIdx.length);
  nat.spmm24F32(s.values, s.meta, b, out2, M, K, N);
  t.ok(out1.every(Number.isFinite) && compare(out1, spmmCsrRef(c, b, N)).ok, 'csr: finite and equal to the reference');
  t.ok(out2.every(Number.isFinite) && compare(out2, spmm24Ref(s, b, N)).ok, '2:4: finite and equal to the reference');
  // a stored entry meeting NaN does give NaN, as in the reference
  b[7 * N] = NaN;
  nat.spmmCsrF32(c.rowPtr, c.colIdx, c.values, b, out1, M, K, N, c.colIdx.length);
  t.ok(Number.isNaN(out1[0]) && compare(out1, spmmCsrRef(c, b, N)).ok, 'csr: NaN in a used row of B propagates like the reference');
  t.end();
});

test('async forms: match the reference and the sync bits (several in flight)', async (t) => {
  const cases = [];
  let i = 0;
  for (const c of numericCases()) if (i++ % 7 === 0) cases.push(c);
  cases.push(...determinismCases());
  const sync = cases.map((c) => {
    nat[c.fn](...c.args);
    const o = c.out.slice(0, c.n);
    c.out.fill(NaN);
    return o;
  });
  const promises = cases.map((c) => nat[`${c.fn}Async`](...c.args));
  t.ok(promises.every((p) => p instanceof Promise), 'every async call returns a Promise');
  const settled = await Promise.allSettled(promises);
  cases.forEach((c, k) => {
    t.ok(settled[k].status === 'fulfilled' && settled[k].value === undefined, `${c.label}: resolved to undefined`);
    t.ok(sameBits(sync[k], c.out.subarray(0, c.n)) && tailUntouched(c.out, c.n), `${c.label}: async bits === sync bits`);
  });
});

test('portable path (TESSERA_SIMD=generic, child process)', (t) => H.checkGenericChild(t, __filename, { TESSERA_NATIVE_CHILD: '1' }, { timeout: 180000 }));

// A valid small CSR (M=4, K=6, N=3) as fresh arrays each call, for mutation.
function smallCsr() {
  const a = new Float32Array([1, 0, 2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 5, 6, 0, 7, 0, 0, 0, 0, 8]);
  const c = csrFromDense(a, 4, 6);
  return { rowPtr: c.rowPtr, colIdx: c.colIdx, values: c.values, b: randomF32(18, rng(3)), out: new Float32Array(12), M: 4, K: 6, N: 3 };
}
const csrArgs = (c, nnz = c.colIdx.length) => [c.rowPtr, c.colIdx, c.values, c.b, c.out, c.M, c.K, c.N, nnz];

function small24() {
  const M = 3;
  const K = 10; // G = 3 groups, the last padded (k = 8, 9 real; 10, 11 padding), odd G: one unused nibble per row
  const s = sparse24FromDense(randomF32(M * K, rng(4)), M, K);
  return { values: s.values, meta: s.meta, b: randomF32(K * 4, rng(5)), out: new Float32Array(M * 4), M, K, N: 4 };
}
const s24Args = (s) => [s.values, s.meta, s.b, s.out, s.M, s.K, s.N];

test('malformed sparse structures throw (sync) or reject (async), never read out of bounds', async (t) => {
  const csrBad = [
    ['rowPtr[0] != 0', (c) => { c.rowPtr[0] = 1; }, /argument 0 \(rowPtr\) is not a CSR row pointer: rowPtr\[0\] = 1/],
    ['decreasing rowPtr', (c) => { c.rowPtr[2] = c.rowPtr[3] + 1; }, /rowPtr decreases at row/],
    ['negative rowPtr', (c) => { c.rowPtr[1] = -4; }, /rowPtr decreases at row 0/],
    ['rowPtr[M] > nnz', (c) => { c.rowPtr[4] += 1; }, /rowPtr\[M\] = rowPtr\[4\] = 9, expected nnz = 8/],
    ['rowPtr[M] != nnz argument', null, /rowPtr\[M\] = rowPtr\[4\] = 8, expected nnz = 7/, 7],
    ['huge rowPtr', (c) => { c.rowPtr[3] = 2 ** 31 - 1; c.rowPtr[4] = 2 ** 31 - 1; }, /expected nnz/],
  ];
  for (const [what, mutate, re, nnz] of csrBad) {
    const c = smallCsr();
    if (mutate) mutate(c);
    t.throws(() => nat.spmmCsrF32(...csrArgs(c, nnz)), new RegExp(`^RangeError: tessera_cpu\\.spmmCsrF32: .*${re.source}`), `csr ${what}: throws`);
    t.throws(() => nat.spmmCsrF32Async(...csrArgs(c, nnz)), /^RangeError: tessera_cpu\.spmmCsrF32Async: /, `csr ${what}: async throws synchronously`);
  }
  // column checks run inside the kernel: sync throws a RangeError, async rejects
  const colBad = [
    ['col >= K', (c) => { c.colIdx[3] = 6; }, /colIdx\[3\] = 6 is outside \[0, K = 6\) \(row 2\)/],
    ['col = 2^31-1', (c) => { c.colIdx[7] = 2 ** 31 - 1; }, /colIdx\[7\] = 2147483647 is outside/],
    ['negative col', (c) => { c.colIdx[0] = -1; }, /colIdx\[0\] = -1 is outside/],
    ['negative col (int32 min)', (c) => { c.colIdx[5] = -(2 ** 31); }, /colIdx\[5\] = -2147483648 is outside/],
    ['repeated col', (c) => { c.colIdx[1] = c.colIdx[0]; }, /columns of row 0 are not strictly increasing/],
    ['decreasing cols', (c) => { [c.colIdx[5], c.colIdx[6]] = [c.colIdx[6], c.colIdx[5]]; }, /not strictly increasing/],
  ];
  for (const [what, mutate, re] of colBad) {
    const c = smallCsr();
    mutate(c);
    t.throws(() => nat.spmmCsrF32(...csrArgs(c)), new RegExp(`^RangeError: tessera_cpu\\.spmmCsrF32: invalid CSR: .*${re.source}`), `csr ${what}: throws`);
    try {
      await nat.spmmCsrF32Async(...csrArgs(c));
      t.fail(`csr ${what}: async resolved`);
    } catch (e) {
      t.ok(e instanceof Error && /spmmCsrF32Async: invalid CSR: /.test(e.message) && re.test(e.message), `csr ${what}: async rejects (${e.message})`);
    }
  }
  const bad24 = [
    ['i0 == i1', (s) => { s.meta[1] = (s.meta[1] & 0xf0) | 5; }, /meta\[1\] = \d+: row 0 group 2 has positions 1, 1/],
    ['i0 > i1', (s) => { s.meta[2] = (s.meta[2] & 0x0f) | (0x6 << 4); }, /meta\[2\] = \d+: row 1 group 1 has positions 2, 1/],
    ['unused high nibble set', (s) => { s.meta[5] |= 0x40; }, /unused high nibble of row 2 is not 0/],
    ['nonzero at a padded position', (s) => { s.meta[3] = 0xc; s.values[2 * 3 + 2 * 2 + 1] = 1.5; }, /values\[11\] = 1\.5 sits at padded position 11 >= K = 10 \(row 1\)/],
  ];
  for (const [what, mutate, re] of bad24) {
    const s = small24();
    mutate(s);
    t.throws(() => nat.spmm24F32(...s24Args(s)), new RegExp(`^RangeError: tessera_cpu\\.spmm24F32: invalid 2:4 matrix: .*${re.source}`), `2:4 ${what}: throws`);
    try {
      await nat.spmm24F32Async(...s24Args(s));
      t.fail(`2:4 ${what}: async resolved`);
    } catch (e) {
      t.ok(/spmm24F32Async: invalid 2:4 matrix: /.test(e.message) && re.test(e.message), `2:4 ${what}: async rejects (${e.message})`);
    }
  }
  // a zero at a padded position (what sparse24FromDense writes) is fine, and skipped
  const ok = small24();
  t.doesNotThrow(() => nat.spmm24F32(...s24Args(ok)), 'valid padded 2:4 runs');
  // JS scribbling over colIdx / meta while async work runs: resolves or rejects, never crashes
  const big = csrCase(2000, 3000, 64, 0.9, 9);
  const pending = [];
  for (let r = 0; r < 4; r++) {
    const p = nat.spmmCsrF32Async(...big.args);
    const cols = big.args[1];
    for (let i = r; i < cols.length; i += 97) cols[i] = (i * 2654435761) | 0;
    pending.push(p.then(() => 'resolved', () => 'rejected'));
  }
  const outcomes = await Promise.all(pending);
  t.ok(outcomes.every((o) => o === 'resolved' || o === 'rejected'), `colIdx scribbled during async calls: ${outcomes.join(', ')}, no crash`);
  const b24 = s24Case(500, 2000, 64, 0, 10);
  const p24 = nat.spmm24F32Async(...b24.args);
  b24.args[1].fill(0xff);
  t.ok(['resolved', 'rejected'].includes(await p24.then(() => 'resolved', () => 'rejected')), 'meta scribbled during an async call: no crash');
});

test('garbage arguments throw, never crash', (t) => {
  const f32 = (n) => new Float32Array(n);
  const detach = (a) => { structuredClone(a.buffer, { transfer: [a.buffer] }); return a; };
  const others = [undefined, null, 'a', 42, true, {}, [1, 2, 3], () => 1, Symbol('s'), 10n, new ArrayBuffer(64),
    new DataView(new ArrayBuffer(64)), new Float64Array(64), new Int8Array(64), new Uint8ClampedArray(64), new Uint32Array(64),
    new Int16Array(64)];
  const badDim = [undefined, null, 'a', '4', {}, [], [4], true, 10n, NaN, Infinity, -Infinity, -1, 0, 1.5, -3, 2 ** 31, 2 ** 40, Number.MAX_VALUE];
  const badNnz = [undefined, null, 'a', {}, NaN, Infinity, -1, 1.5, 2 ** 31, 2 ** 53];
  let threw = 0;
  const mustThrow = (fn, args, what, type) => {
    const kind = type ? type.name : '(?:TypeError|RangeError)';
    t.throws(() => fn(...args), new RegExp(`^${kind}: tessera_cpu\\.`), what);
    threw++;
  };
  const families = [
    { names: ['spmmCsrF32', 'spmmCsrF32Async'], good: () => csrArgs(smallCsr()), arrays: { 0: Int32Array, 1: Int32Array, 2: Float32Array, 3: Float32Array, 4: Float32Array }, dims: [5, 6, 7], nnz: 8 },
    { names: ['spmm24F32', 'spmm24F32Async'], good: () => s24Args(small24()), arrays: { 0: Float32Array, 1: Uint8Array, 2: Float32Array, 3: Float32Array }, dims: [4, 5, 6] },
  ];
  for (const fam of families) {
    for (const name of fam.names) {
      const fn = nat[name];
      if (name.endsWith('Async')) fn(...fam.good()).catch(() => t.fail(`${name}: good template rejected`));
      else t.doesNotThrow(() => fn(...fam.good()), `${name}: valid template runs`);
      const good = fam.good();
      mustThrow(fn, [], `${name}()`, TypeError);
      mustThrow(fn, good.slice(0, -1), `${name}: too few args`, TypeError);
      mustThrow(fn, [...good, 1], `${name}: too many args`, TypeError);
      mustThrow(fn, good.map(() => ({})), `${name}(objects)`, TypeError);
      mustThrow(fn, good.map(() => undefined), `${name}(undefined x n)`, TypeError);
      for (const [i, Type] of Object.entries(fam.arrays)) {
        const wrong = [...others, Type === Float32Array ? new Int32Array(64) : new Float32Array(64)];
        if (Type !== Uint8Array) wrong.push(new Uint8Array(256));
        for (const bad of wrong) {
          const a = fam.good();
          a[i] = bad;
          mustThrow(fn, a, `${name}: arg ${i} = ${bad && bad.constructor ? bad.constructor.name : String(bad)}`, TypeError);
        }
        const d = fam.good();
        d[i] = detach(d[i]);
        mustThrow(fn, d, `${name}: arg ${i} detached`, TypeError);
        const s = fam.good();
        if (s[i].length > 0) {
          s[i] = s[i].subarray(1);
          mustThrow(fn, s, `${name}: arg ${i} one element short`, RangeError);
        }
      }
      for (const i of fam.dims) for (const bad of badDim) { const a = fam.good(); a[i] = bad; mustThrow(fn, a, `${name}: dim arg ${i} = ${String(bad)}`); }
      if (fam.nnz) for (const bad of badNnz) { const a = fam.good(); a[fam.nnz] = bad; mustThrow(fn, a, `${name}: nnz = ${String(bad)}`); }
    }
  }
  // overflow: dims whose products pass 2^53 can never pass a length check
  const c = smallCsr();
  mustThrow(nat.spmmCsrF32, [c.rowPtr, c.colIdx, c.values, c.b, c.out, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 8], 'csr dims product > 2^53', RangeError);
  const s = small24();
  mustThrow(nat.spmm24F32, [s.values, s.meta, s.b, s.out, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], '2:4 dims product > 2^53', RangeError);
  mustThrow(nat.spmm24F32, [s.values, s.meta, s.b, s.out, 3, 2 ** 31 - 1, 4], '2:4 huge K: values too short', RangeError);
  // the output may share no byte with any input, index arrays included
  const shared = new ArrayBuffer(4096);
  const cs = smallCsr();
  const outAt = (byte) => new Float32Array(shared, byte, 12);
  const rp = new Int32Array(shared, 0, 5);
  rp.set(cs.rowPtr);
  mustThrow(nat.spmmCsrF32, [rp, cs.colIdx, cs.values, cs.b, outAt(16), 4, 6, 3, 8], 'csr out overlaps rowPtr', RangeError);
  t.doesNotThrow(() => nat.spmmCsrF32(rp, cs.colIdx, cs.values, cs.b, outAt(20), 4, 6, 3, 8), 'csr out right after rowPtr is fine');
  const ci = new Int32Array(shared, 1024, 8);
  ci.set(cs.colIdx);
  mustThrow(nat.spmmCsrF32, [cs.rowPtr, ci, cs.values, cs.b, outAt(1000), 4, 6, 3, 8], 'csr out overlaps colIdx', RangeError);
  mustThrow(nat.spmmCsrF32Async, [cs.rowPtr, cs.colIdx, cs.values, cs.b, cs.b.subarray(6), 4, 6, 3, 8], 'csr async out overlaps b', RangeError);
  mustThrow(nat.spmmCsrF32, [cs.rowPtr, cs.colIdx, cs.out, cs.b, cs.out, 4, 6, 3, 8], 'csr out === values', RangeError);
  const s2 = small24();
  const meta = new Uint8Array(shared, 2049, s2.meta.length);
  meta.set(s2.meta);
  mustThrow(nat.spmm24F32, [s2.values, meta, s2.b, outAt(2048), 3, 10, 4], '2:4 out overlaps meta (odd byte offset)', RangeError);
  t.doesNotThrow(() => nat.spmm24F32(s2.values, meta, s2.b, new Float32Array(shared, 2056, 12), 3, 10, 4), '2:4 out right after meta is fine');
  mustThrow(nat.spmm24F32Async, [s2.values, s2.meta, s2.b, s2.b.subarray(20, 32), 3, 10, 4], '2:4 async out overlaps b', RangeError);
  mustThrow(nat.spmm24F32, [s2.values, s2.meta, s2.b, s2.values.subarray(6), 3, 10, 4], '2:4 out overlaps values', RangeError);
  // exact messages
  t.throws(() => nat.spmmCsrF32(new Float32Array(5), c.colIdx, c.values, c.b, c.out, 4, 6, 3, 8),
    /^TypeError: tessera_cpu\.spmmCsrF32: argument 0 \(rowPtr\) must be an Int32Array, got Float32Array$/, 'type message names the argument');
  t.throws(() => nat.spmm24F32(s.values, s.meta, s.b, s.out, 3, 10, -4),
    /^RangeError: tessera_cpu\.spmm24F32: argument 6 \(N\) must be an integer in \[1, 2\^31-1\], got -4$/, 'range message');
  t.throws(() => nat.spmmCsrF32(c.rowPtr.subarray(0, 4), c.colIdx, c.values, c.b, c.out, 4, 6, 3, 8),
    /argument 0 \(rowPtr\) is too short: has 4 elements, needs 5 \(M\+1\)/, 'length message');
  t.ok(threw > 300, `${threw} bad calls threw`);
  // empty CSR (nnz 0, zero-length arrays) is valid and gives zeros
  const z = new Float32Array(6).fill(NaN);
  nat.spmmCsrF32(new Int32Array(3), new Int32Array(0), new Float32Array(0), f32(12), z, 2, 4, 3, 0);
  t.ok(z.every((x) => x === 0), 'nnz = 0: all zeros');
  // still alive and correct
  const k = csrCase(17, 33, 9, 0.5, 123);
  nat.spmmCsrF32(...k.args);
  t.ok(compare(k.out, k.ref()).ok, 'sanity spmm after the garbage');
  t.end();
});

test('through the op layer: cpu kernel for float32/float16/bfloat16, sync and async', async (t) => {
  const T = require('../dist');
  if (!T.backends().find((b) => b.name === 'cpu' && b.available)) {
    t.pass('cpu backend unavailable: skipped');
    return;
  }
  const rand = rng(42);
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    for (const format of ['csr', '2:4']) {
      const M = 33;
      const K = 70;
      const N = 17;
      const a = T.tensor(Float64Array.from(sparseDense(M, K, 0.7, rand)), { shape: [M, K], dtype });
      const b = T.tensor(Float64Array.from(randomF32(K * N, rand)), { shape: [K, N], dtype });
      const sp = T.sparse.fromDense(a, { format });
      T.setBackend('js');
      const ref = T.spmm(sp, b).toFloat64();
      T.setBackend(null);
      const out = T.spmm(sp, b);
      const ran = T.lastRun('spmm');
      t.equal(ran.backend, 'cpu', `${format} ${dtype}: ran ${ran.variant}`);
      t.equal(out.dtype, dtype, `${format} ${dtype}: output dtype`);
      const tol = dtype === 'float32' ? 1e-5 : dtype === 'float16' ? 2e-3 : 1.6e-2;
      const r = compare(out.toFloat64(), ref, tol);
      t.ok(r.ok, `${format} ${dtype} vs js (${r.detail})`);
      const outA = await T.spmmAsync(sp, b);
      t.ok(sameBits(new Float64Array(outA.toFloat64()), new Float64Array(out.toFloat64())), `${format} ${dtype}: spmmAsync === spmm`);
      for (const x of [a, b, out, outA]) x.dispose();
      sp.dispose();
    }
  }
});
