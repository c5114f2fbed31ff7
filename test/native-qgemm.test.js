'use strict';
// tessera_cpu qgemm (int8 W8A8, int4 / uint4 / fp8 weight-only) at its N-API surface, against the js
// reference qmatmulRef (dist/backends/js/quant.js):
//   int8: bit-identical to Math.fround(reference), which computes the same integer sums and the same
//         float64 epilogue; NaN rows where x has a non-finite value.
//   int4 / uint4 / fp8: f32 accumulation, |out - ref| <= 2 (K + G + 8) 2^-24 sum_k |x w| + 1e-30 per
//         element (w the reference's float32 weights); fp8 NaN codes give NaN columns.
//   int4 / uint4 with int8 activations (W4A8): bit-identical to the reference (exact integer sums, the
//         same float32 epilogue); NaN rows where x has a non-finite value.
// Also: 1 vs 2 vs 3 threads bit-identical, async forms, the portable path (TESSERA_SIMD=generic, child
// process), garbage arguments (throw, never crash), and the 'qmatmul' kernel of the cpu backend (cached
// prepack, bf16 activations, async). Outputs are NaN-poisoned before every call.
const path = require('path');

const CHILD = process.env.TESSERA_QGEMM_CHILD === '1';
const H = require('./helpers');
const { nat, loadError } = H.loadCpuAddon();
const Q = require('../dist/backends/js/quant.js');
const D = require('../dist/dtype.js');

// ---- helpers ------------------------------------------------------------------------------

const { rng, sameBits } = H;



function kind(v) {
  if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return typeof v === 'symbol' ? 'a symbol' : String(v);
  return Object.getPrototypeOf(v) && v.constructor ? v.constructor.name : 'a null-prototype object';
}


const QDTYPES = ['int8', 'int4', 'uint4', 'float8_e4m3fn'];

/**
 * One case: quantized weights (from quantizeRef on random data, plus optional edits of the codes) and
 * activations. act 'bfloat16' / 'float16' passes raw bits to the kernel and their exact values to the reference.
 */
function makeCase({ qdtype, M, K, N, group, perTensor = false, act = 'float32', seed, edit, xEdit, a8 = false }) {
  const r = rng(seed);
  const w = new Float64Array(K * N);
  for (let i = 0; i < w.length; i++) w[i] = r.normal() * (qdtype === 'uint4' ? 1 : 0.5) + (qdtype === 'uint4' ? 0.3 : 0);
  const gs = perTensor ? null : group;
  const raw = Q.quantizeRef(w, K, N, { dtype: qdtype === 'uint4' ? 'int4' : qdtype, groupSize: gs, perTensor, symmetric: qdtype !== 'uint4' });
  if (edit) edit(raw, r);
  const xv = new Float32Array(M * K);
  for (let i = 0; i < xv.length; i++) xv[i] = r.normal();
  if (xEdit) xEdit(xv);
  let x = xv;
  if (act !== 'float32') {  // raw 16-bit bits for the kernel, their exact values for the reference
    x = D.encode(act, xv);
    D.decode(act, x, xv.length, xv);
  }
  return { qdtype, M, K, N, raw, x, xv, act, a8, label: `${qdtype}${a8 ? ' W4A8' : ''} M${M} K${K} N${N} ${perTensor ? 'per-tensor' : raw.groupSize >= K ? 'per-channel' : `g${raw.groupSize}`} ${act}` };
}

function prepack(c) {
  const q = c.raw;
  return nat.qgemmPrepack(c.qdtype, q.K, q.N, q.groupSize, q.perTensor, q.values, q.scales, q.zeros);
}

function run(c, packed) {
  const out = new Float32Array(c.M * c.N + 5).fill(NaN);
  nat.qgemm(packed || prepack(c), c.x, out, c.M, c.act, c.a8 ? 'int8' : 'float');
  return out;
}

/** { ok, detail }: out (f32) against qmatmulRef with the dtype's rule. */
function check(c, out) {
  const ref = Q.qmatmulRef(c.xv, c.M, c.raw, c.a8);
  const { M, K, N } = c;
  for (let i = M * N; i < out.length; i++) if (!Number.isNaN(out[i])) return { ok: false, detail: `wrote past M*N at ${i}` };
  if (c.qdtype === 'int8' || c.a8) {
    for (let i = 0; i < M * N; i++) {
      const want = Math.fround(ref[i]);
      if (!(Object.is(out[i], want) || (Number.isNaN(want) && Number.isNaN(out[i])) || (want === 0 && out[i] === 0))) {
        return { ok: false, detail: `element ${i}: ${out[i]} vs ${want} (ref ${ref[i]})` };
      }
    }
    return { ok: true, detail: 'bit-identical' };
  }
  const wf = Q.dequantizeRef(c.raw).map(Math.fround);
  const G = c.raw.perTensor ? 1 : Math.ceil(K / c.raw.groupSize);
  const eps = 2 * (K + G + 8) * 2 ** -24;
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let mag = 0;
      for (let k = 0; k < K; k++) mag += Math.abs(c.xv[m * K + k] * wf[k * N + n]);
      const o = out[m * N + n];
      const r = ref[m * N + n];
      if (Number.isNaN(r) || !Number.isFinite(mag)) {
        if (Number.isNaN(r) !== Number.isNaN(o) || (!Number.isNaN(r) && o !== r)) return { ok: false, detail: `element ${m * N + n}: ${o} vs non-finite ref ${r}` };
        continue;
      }
      const err = Math.abs(o - r);
      const bound = eps * mag + 1e-30;
      if (!(err <= bound)) return { ok: false, detail: `element ${m * N + n}: ${o} vs ${r}, |err| ${err.toExponential(2)} > ${bound.toExponential(2)}` };
      if (mag > 0) worst = Math.max(worst, err / (eps * mag));
    }
  }
  return { ok: true, detail: `worst error ${(worst * 100).toFixed(1)}% of the bound` };
}

// ---- cases --------------------------------------------------------------------------------

const GROUPS = [32, 64, 128, null, 'tensor'];
function* sweepCases() {
  let seed = 1;
  const Ks = [1, 3, 17, 63, 255];
  const Ns = [1, 3, 17, 63];
  let i = 0;
  for (const qdtype of QDTYPES) {
    for (const K of Ks) {
      for (const M of [1, 3, 17]) {
        const N = Ns[i % Ns.length];
        const g = GROUPS[(i >> 1) % GROUPS.length];
        const act = i % 3 === 2 ? 'bfloat16' : i % 5 === 4 ? 'float16' : 'float32';
        i++;
        yield makeCase({ qdtype, M, K, N, group: g === 'tensor' || g === null ? null : g, perTensor: g === 'tensor', act, seed: seed++ });
      }
    }
    // every group size at K 255 and N 63 with M 1 and 5 (register and panel paths)
    for (const g of GROUPS) {
      for (const M of [1, 5]) yield makeCase({ qdtype, M, K: 255, N: 63, group: g === 'tensor' || g === null ? null : g, perTensor: g === 'tensor', seed: seed++ });
    }
    // long K: one case at 4096, and the panel path over several K blocks and row tasks
    yield makeCase({ qdtype, M: 1, K: 4096, N: 17, group: qdtype === 'int8' ? null : 128, seed: seed++ });
    yield makeCase({ qdtype, M: 130, K: 600, N: 40, group: 64, act: 'bfloat16', seed: seed++ });
    yield makeCase({ qdtype, M: 4, K: 100, N: 33, group: 7, seed: seed++ }); // groups not a multiple of the unit
  }
  // W4A8 (int4 / uint4 weights, int8 activations): awkward shapes, every grouping, both tile widths,
  // long K, many rows, groups not a multiple of the unit, 16-bit activations, non-finite rows
  for (const qdtype of ['int4', 'uint4']) {
    let j = 0;
    for (const K of Ks) {
      for (const M of [1, 2, 3, 4, 5, 17]) {
        const g = GROUPS[j % GROUPS.length];
        const N = Ns[(j >> 1) % Ns.length];
        const act = j % 4 === 3 ? 'bfloat16' : j % 7 === 6 ? 'float16' : 'float32';
        j++;
        yield makeCase({ qdtype, M, K, N, group: g === 'tensor' || g === null ? null : g, perTensor: g === 'tensor', act, seed: seed++, a8: true });
      }
    }
    for (const g of GROUPS) yield makeCase({ qdtype, M: 2, K: 255, N: 63, group: g === 'tensor' || g === null ? null : g, perTensor: g === 'tensor', seed: seed++, a8: true });
    yield makeCase({ qdtype, M: 1, K: 4096, N: 70, group: 32, seed: seed++, a8: true });
    yield makeCase({ qdtype, M: 1, K: 3000, N: 40, group: null, seed: seed++, a8: true }); // one group of 3000
    yield makeCase({ qdtype, M: 130, K: 200, N: 40, group: 64, act: 'bfloat16', seed: seed++, a8: true });
    yield makeCase({ qdtype, M: 4, K: 100, N: 33, group: 7, seed: seed++, a8: true });
    yield Object.assign(makeCase({
      qdtype, M: 5, K: 70, N: 20, group: 32, seed: seed++, a8: true,
      xEdit: (x) => { x.fill(0, 0, 70); x[70 + 5] = NaN; x[140 + 69] = -Infinity; x.fill(-3.25, 210, 280); },
    }), { label: `${qdtype} W4A8 zero / NaN / -Infinity / constant rows` });
  }
  // M over 256 (two row chunks)
  yield makeCase({ qdtype: 'int8', M: 300, K: 40, N: 9, group: 16, seed: seed++ });
  yield makeCase({ qdtype: 'int4', M: 300, K: 40, N: 9, group: 32, seed: seed++ });
  // int8: -128 codes (accepted by the reference), a zero row, rows with NaN / Infinity
  yield Object.assign(makeCase({
    qdtype: 'int8', M: 5, K: 70, N: 20, group: 32, seed: seed++,
    edit: (q, r) => { for (let i = 0; i < q.values.length; i++) if (r.next() < 0.2) q.values[i] = -128; },
    xEdit: (x) => { x.fill(0, 0, 70); x[70 + 5] = NaN; x[140 + 69] = Infinity; x.fill(127.5, 210, 280); },
  }), { label: 'int8 -128 codes, zero / NaN / Infinity / constant rows' });
  // int4 with odd K*N (the last byte's high nibble is padding)
  yield makeCase({ qdtype: 'int4', M: 2, K: 7, N: 9, group: null, seed: seed++ });
  yield makeCase({ qdtype: 'uint4', M: 7, K: 9, N: 7, group: 8, seed: seed++ });
  // fp8: NaN codes, subnormal and extreme codes; an Infinity in x
  yield Object.assign(makeCase({
    qdtype: 'float8_e4m3fn', M: 3, K: 50, N: 30, group: null, seed: seed++,
    edit: (q) => { q.values[5 * 30 + 4] = 0x7f; q.values[9 * 30 + 11] = 0xff; for (let i = 0; i < 64; i++) q.values[100 + i] = i < 32 ? i : 0x80 + i; q.values[400] = 0x7e; q.values[401] = 0xfe; },
  }), { label: 'fp8 NaN codes (NaN columns), subnormals, +-448' });
  yield Object.assign(makeCase({ qdtype: 'float8_e4m3fn', M: 6, K: 40, N: 10, group: null, seed: seed++, xEdit: (x) => { x[3] = Infinity; } }), { label: 'fp8 x with Infinity, panel path' });
}

function determinismCases() {
  return [
    makeCase({ qdtype: 'int4', M: 1, K: 4096, N: 512, group: 32, seed: 501 }),
    makeCase({ qdtype: 'uint4', M: 3, K: 2048, N: 300, group: 64, seed: 502 }),
    makeCase({ qdtype: 'int8', M: 17, K: 1024, N: 256, group: null, seed: 503 }),
    makeCase({ qdtype: 'int8', M: 1, K: 4096, N: 520, group: 128, seed: 504 }),
    makeCase({ qdtype: 'float8_e4m3fn', M: 8, K: 512, N: 520, group: null, seed: 505 }),
    makeCase({ qdtype: 'float8_e4m3fn', M: 2, K: 1024, N: 1030, group: 256, act: 'bfloat16', seed: 506 }),
    makeCase({ qdtype: 'int4', M: 40, K: 640, N: 200, group: 128, seed: 507 }),
    makeCase({ qdtype: 'int4', M: 1, K: 4096, N: 520, group: 32, seed: 508, a8: true }),
    makeCase({ qdtype: 'uint4', M: 6, K: 1024, N: 300, group: 128, seed: 509, a8: true }),
  ];
}

function numericChecks({ every = 1 } = {}) {
  const results = [];
  let i = 0;
  for (const c of sweepCases()) {
    if (i++ % every !== 0) continue;
    const r = check(c, run(c));
    results.push({ label: c.label, ok: r.ok, detail: r.detail });
  }
  const saved = nat.getNumThreads();
  for (const c of determinismCases()) {
    const packed = prepack(c);
    nat.setNumThreads(1);
    const one = run(c, packed);
    const r = check(c, one);
    for (const threads of [2, 3]) {
      nat.setNumThreads(threads);
      results.push({ label: `${c.label}: 1 vs ${threads} threads bit-identical`, ok: r.ok && sameBits(one, run(c, packed)), detail: r.detail });
    }
  }
  nat.setNumThreads(saved);
  return results;
}

// ---- child mode (TESSERA_SIMD=generic) ---------------------------------------------------------

if (CHILD) {
  H.reportChild(nat, loadError, () => numericChecks({ every: 2 }));
  return; // eslint-disable-line no-useless-return -- CommonJS top-level return: skip the tape tests
}

// ---- tape tests ---------------------------------------------------------------------------

const test = require('tape');

if (!nat) {
  H.addonMissingTest(test, loadError);
  return;
}

test('qgemm vs qmatmulRef (int8 and W4A8 bit-exact, weight-only within f32 bounds); 1 vs 2 vs 3 threads bit-identical', (t) => {
  t.comment(`simd ${nat.info().simd}, ${nat.getNumThreads()} threads`);
  for (const r of numericChecks()) t.ok(r.ok, `${r.label} (${r.detail})`);
  t.end();
});

test('qgemmAsync matches the sync form (several in flight, packed weights shared)', async (t) => {
  const cases = [...determinismCases(), ...[...sweepCases()].filter((_, i) => i % 7 === 0)];
  const outs = cases.map((c) => new Float32Array(c.M * c.N + 5).fill(NaN));
  const packs = cases.map(prepack);
  const promises = cases.map((c, i) => nat.qgemmAsync(packs[i], c.x, outs[i], c.M, c.act, c.a8 ? 'int8' : 'float'));
  t.ok(promises.every((p) => p instanceof Promise), 'every async call returns a Promise');
  const settled = await Promise.allSettled(promises);
  cases.forEach((c, i) => {
    t.equal(settled[i].status, 'fulfilled', `${c.label}: resolved`);
    t.ok(sameBits(outs[i], run(c, packs[i])), `${c.label}: async bits = sync bits`);
  });
});

test('portable path (TESSERA_SIMD=generic, child process)', (t) => H.checkGenericChild(t, __filename, { TESSERA_QGEMM_CHILD: '1' }, { timeout: 300000 }));

test('qgemm garbage arguments throw, never crash', (t) => {
  const c = makeCase({ qdtype: 'uint4', M: 2, K: 10, N: 6, group: 4, seed: 9 });
  const q = c.raw;
  const goodPre = () => ['uint4', 10, 6, 4, false, q.values.slice(), q.scales.slice(), q.zeros.slice()];
  const good8 = makeCase({ qdtype: 'int8', M: 2, K: 10, N: 6, group: null, seed: 10 }).raw;
  const packed = nat.qgemmPrepack(...goodPre());
  const goodRun = () => [packed, new Float32Array(20), new Float32Array(12), 2, 'float32', 'float'];
  const detached = (a) => { structuredClone(a.buffer, { transfer: [a.buffer] }); return a; };
  let threw = 0;
  const mustThrow = (fn, args, what, type) => {
    const kind = type ? type.name : '(?:TypeError|RangeError)';
    t.throws(() => fn(...args), new RegExp(`^${kind}: tessera_cpu\\.`), what);
    threw++;
  };
  const junk = [undefined, null, 'a', 42, true, {}, [1], () => 1, Symbol('s'), 10n, new ArrayBuffer(8), new DataView(new ArrayBuffer(8))];
  const badDim = [undefined, null, 'a', {}, NaN, Infinity, -1, 0, 1.5, 2 ** 31, 2 ** 53];

  t.doesNotThrow(() => nat.qgemm(...goodRun()), 'valid template runs');
  // qgemmPrepack
  mustThrow(nat.qgemmPrepack, [], 'qgemmPrepack()', TypeError);
  mustThrow(nat.qgemmPrepack, goodPre().slice(0, 7), 'too few args', TypeError);
  mustThrow(nat.qgemmPrepack, [...goodPre(), 1], 'too many args', TypeError);
  for (const bad of [undefined, null, 1, {}, 'int2', 'INT8', 'float8_e5m2', 'bfloat16']) {
    const a = goodPre(); a[0] = bad; mustThrow(nat.qgemmPrepack, a, `qdtype ${kind(bad)}`);
  }
  for (const i of [1, 2, 3]) for (const bad of badDim) { const a = goodPre(); a[i] = bad; mustThrow(nat.qgemmPrepack, a, `prepack dim ${i} = ${kind(bad)}`); }
  for (const bad of [undefined, null, 0, 'true']) { const a = goodPre(); a[4] = bad; mustThrow(nat.qgemmPrepack, a, `perTensor ${kind(bad)}`, TypeError); }
  for (const i of [5, 6, 7]) {
    for (const bad of [...junk, new Float64Array(60), new Int8Array(60), new Uint16Array(60)]) {
      if (bad === null && i === 7) continue;
      const a = goodPre(); a[i] = bad; mustThrow(nat.qgemmPrepack, a, `prepack arg ${i} = ${kind(bad)}`, TypeError);
    }
    { const a = goodPre(); a[i] = detached(a[i]); mustThrow(nat.qgemmPrepack, a, `prepack arg ${i} detached`, TypeError); }
    { const a = goodPre(); a[i] = a[i].subarray(1); mustThrow(nat.qgemmPrepack, a, `prepack arg ${i} one element short`, RangeError); }
    { const a = goodPre(); const b = new a[i].constructor(a[i].length + 1); b.set(a[i]); a[i] = b; mustThrow(nat.qgemmPrepack, a, `prepack arg ${i} one element long`, RangeError); }
  }
  mustThrow(nat.qgemmPrepack, ['uint4', 10, 6, 11, false, q.values, q.scales, q.zeros], 'groupSize > K', RangeError);
  mustThrow(nat.qgemmPrepack, ['uint4', 10, 6, 4, true, q.values, q.scales, q.zeros], 'perTensor with groupSize < K', RangeError);
  mustThrow(nat.qgemmPrepack, ['int4', 10, 6, 4, false, q.values, q.scales, q.zeros], 'int4 with zeros', TypeError);
  mustThrow(nat.qgemmPrepack, ['uint4', 10, 6, 4, false, q.values, q.scales, null], 'uint4 without zeros', TypeError);
  mustThrow(nat.qgemmPrepack, ['int8', 10, 6, 10, false, new Uint8Array(60), good8.scales, null], 'int8 values as Uint8Array', TypeError);
  mustThrow(nat.qgemmPrepack, ['int4', 10, 6, 10, false, new Int8Array(30), new Float32Array(6), null], 'int4 values as Int8Array', TypeError);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const s = q.scales.slice(); s[7] = bad; mustThrow(nat.qgemmPrepack, ['uint4', 10, 6, 4, false, q.values, s, q.zeros], `scale ${bad}`, RangeError);
  }
  for (const bad of [-1, 16, 0.5, NaN, Infinity]) {
    const z = q.zeros.slice(); z[3] = bad; mustThrow(nat.qgemmPrepack, ['uint4', 10, 6, 4, false, q.values, q.scales, z], `zero point ${bad}`, RangeError);
  }
  mustThrow(nat.qgemmPrepack, ['int8', 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, false, new Int8Array(4), new Float32Array(4), null], 'K*N overflow', RangeError);
  t.throws(() => nat.qgemmPrepack('int8', 10, 6, 10, false, good8.values, good8.scales.subarray(1), null),
    /^RangeError: tessera_cpu\.qgemmPrepack: argument 6 \(scales\) is too short: has 5 elements, needs 6/, 'message names the argument and the lengths');
  // qgemm / qgemmAsync
  for (const name of ['qgemm', 'qgemmAsync']) {
    const fn = nat[name];
    mustThrow(fn, [], `${name}()`, TypeError);
    mustThrow(fn, goodRun().slice(0, 4), `${name}: too few args`, TypeError);
    mustThrow(fn, [...goodRun(), 1], `${name}: too many args`, TypeError);
    for (const bad of [...junk, new Float32Array(8), new Uint8Array(64), Object.create(null)]) {
      const a = goodRun(); a[0] = bad; mustThrow(fn, a, `${name}: packed = ${kind(bad)}`, TypeError);
    }
    for (const i of [1, 2]) {
      for (const bad of [...junk, new Float64Array(20), new Int32Array(20), new Uint16Array(20)]) {
        const a = goodRun(); a[i] = bad; mustThrow(fn, a, `${name}: arg ${i} = ${kind(bad)}`, TypeError);
      }
      { const a = goodRun(); a[i] = detached(a[i]); mustThrow(fn, a, `${name}: arg ${i} detached`, TypeError); }
      { const a = goodRun(); a[i] = a[i].subarray(1); mustThrow(fn, a, `${name}: arg ${i} one element short`, RangeError); }
    }
    for (const bad of badDim) { const a = goodRun(); a[3] = bad; mustThrow(fn, a, `${name}: M = ${kind(bad)}`); }
    { const a = goodRun(); a[3] = 3; mustThrow(fn, a, `${name}: M too large for x`, RangeError); }
    for (const bad of [undefined, null, 1, 'float64', 'int8', 'Float32']) { const a = goodRun(); a[4] = bad; mustThrow(fn, a, `${name}: xDtype ${kind(bad)}`); }
    { const a = goodRun(); a[4] = 'bfloat16'; mustThrow(fn, a, `${name}: bfloat16 with a Float32Array`, TypeError); }
    for (const bad of [undefined, null, 1, true, 'INT8', 'int4', 'float32', '']) { const a = goodRun(); a[5] = bad; mustThrow(fn, a, `${name}: activations ${kind(bad)}`); }
    for (const w of [good8, makeCase({ qdtype: 'float8_e4m3fn', M: 2, K: 10, N: 6, group: null, seed: 11 }).raw]) {
      const pk = nat.qgemmPrepack(w.dtype, 10, 6, w.groupSize, w.perTensor, w.values, w.scales, null);
      mustThrow(fn, [pk, new Float32Array(20), new Float32Array(12), 2, 'float32', 'int8'], `${name}: activations int8 with ${w.dtype} weights`, RangeError);
    }
    const buf = new Float32Array(40);
    mustThrow(fn, [packed, buf.subarray(0, 20), buf.subarray(15, 27), 2, 'float32', 'float'], `${name}: out overlaps x`, RangeError);
    const u16 = new Uint16Array(new ArrayBuffer(160));
    mustThrow(fn, [packed, u16.subarray(0, 20), new Float32Array(u16.buffer, 36, 12), 2, 'bfloat16', 'int8'], `${name}: out overlaps bf16 x`, RangeError);
  }
  t.doesNotThrow(() => nat.qgemm(packed, new Float32Array(new SharedArrayBuffer(80)), new Float32Array(12), 2, 'float32', 'float'), 'SharedArrayBuffer x is accepted');
  t.ok(threw > 150, `${threw} bad calls threw`);
  const out = run(c);
  t.ok(check(c, out).ok, 'still correct after the garbage');
  t.end();
});

test('cpu backend: qmatmul runs natively (prepack cached per weight), f32 / bf16 / async vs js', async (t) => {
  const T = require('..');
  const cpu = T.backends().find((b) => b.name === 'cpu');
  if (!cpu || !cpu.available) {
    t.fail(`cpu backend unavailable: ${cpu && cpu.reason}`);
    t.end();
    return;
  }
  // count prepacks: the backend calls the same exports object this file loaded
  let prepacks = 0;
  const realPrepack = nat.qgemmPrepack;
  nat.qgemmPrepack = (...args) => (prepacks++, realPrepack(...args));
  const r = rng(77);
  const randT = (shape, dtype = 'float32') => T.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal()), { shape, dtype });
  for (const dtype of QDTYPES) {
    const opts = dtype === 'uint4' ? { dtype: 'int4', symmetric: false, groupSize: 32 } : { dtype, groupSize: dtype === 'int4' ? 64 : undefined };
    const qw = T.quantize(randT([96, 40]), opts);
    for (const [xshape, xd] of [[[96], 'float32'], [[2, 3, 96], 'float32'], [[7, 96], 'bfloat16'], [[1, 96], 'float16']]) {
      const x = randT(xshape, xd);
      T.setBackend('js');
      const ref = T.qmatmul(x, qw).toFloat64();
      T.setBackend(null);
      const out = T.qmatmul(x, qw);
      const ran = T.lastRun('qmatmul');
      t.equal(ran.backend, 'cpu', `${dtype} x${xd}[${xshape}]: ran on cpu (${ran.variant})`);
      t.deepEqual(out.shape, [...xshape.slice(0, -1), 40], 'output shape');
      t.equal(out.dtype, xd, 'output dtype follows x');
      const o = out.toFloat64();
      let e2 = 0;
      let r2 = 0;
      for (let i = 0; i < ref.length; i++) { e2 += (o[i] - ref[i]) ** 2; r2 += ref[i] ** 2; }
      const tol = xd === 'float32' ? 2e-6 : 1e-2;
      t.ok(Math.sqrt(e2 / r2) <= tol, `matches the js backend (rel ${Math.sqrt(e2 / r2).toExponential(2)})`);
      const outA = await T.qmatmulAsync(x, qw);
      t.equal(T.lastRun('qmatmul').backend, 'cpu', 'async ran on cpu');
      t.ok(sameBits(outA.toFloat32(), out.toFloat32()), 'async bits = sync bits');
    }
    t.equal(prepacks, 1, `${dtype}: packed once for 8 calls`);
    const alias = qw.to('cpu');
    T.qmatmul(randT([2, 96]), alias).dispose();
    t.equal(prepacks, 1, `${dtype}: an alias from .to('cpu') shares the packed weights`);
    // writing a part in place (copy_) must not leave stale packed weights behind
    const x2 = randT([3, 96]);
    const parts = dtype === 'int8' || dtype === 'float8_e4m3fn' ? ['scales', 'values'] : ['scales'];
    for (const part of parts) {
      // scales times -1.5, or two codes of every three zeroed
      const old = qw[part].toFloat32();
      const src = T.tensor(old.map((v, i) => (part === 'scales' ? v * -1.5 : i % 3 === 0 ? v : 0)), { shape: qw[part].shape, dtype: qw[part].dtype });
      qw[part].copy_(src);
      src.dispose();
      T.setBackend('js');
      const ref2 = T.qmatmul(x2, qw).toFloat64();
      T.setBackend(null);
      const o2 = T.qmatmul(x2, qw).toFloat64();
      let e2 = 0;
      let r2 = 0;
      for (let i = 0; i < ref2.length; i++) { e2 += (o2[i] - ref2[i]) ** 2; r2 += ref2[i] ** 2; }
      t.ok(r2 > 0 && Math.sqrt(e2 / r2) <= 2e-6, `${dtype}: after ${part}.copy_ the result follows the new ${part} (rel ${Math.sqrt(e2 / r2).toExponential(2)})`);
    }
    t.equal(prepacks, 1 + parts.length, `${dtype}: each in-place write repacked once`);
    prepacks = 0;
  }
  // a bad scale reaches the native check as an E_NATIVE error, never a crash
  const qbad = T.quantize(randT([8, 4]), { dtype: 'int8' });
  const badScales = T.tensor(Float32Array.from([1, NaN, 1, 1]), { shape: [1, 4] });
  const forged = new qbad.constructor({ dtype: 'int8', K: 8, N: 4, groupSize: 8, perTensor: false }, qbad.values, badScales, null);
  t.throws(() => T.qmatmul(randT([1, 8]), forged), /scale 1 is not finite/, 'non-finite scale rejected');
  nat.qgemmPrepack = realPrepack;
  t.end();
});

test('qmatmul options.activations: W4A8 on cpu = js bit for bit (sync, async, bf16 x); bad values are TesseraErrors', async (t) => {
  const T = require('..');
  const r = rng(91);
  const randT = (shape, dtype = 'float32') => T.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal()), { shape, dtype });
  for (const opts of [{ dtype: 'int4', groupSize: 32 }, { dtype: 'int4', symmetric: false, groupSize: 64 }, { dtype: 'int4', axis: null }]) {
    const qw = T.quantize(randT([200, 72]), opts);
    for (const [xshape, xd] of [[[200], 'float32'], [[3, 2, 200], 'float32'], [[6, 200], 'bfloat16']]) {
      const x = randT(xshape, xd);
      T.setBackend('js');
      const ref = T.qmatmul(x, qw, { activations: 'int8' });
      t.equal(T.lastRun('qmatmul').variant, `qgemm_${qw.dtype}_a8_js`, 'js variant');
      const refF = T.qmatmul(x, qw);
      T.setBackend(null);
      const out = T.qmatmul(x, qw, { activations: 'int8' });
      const ran = T.lastRun('qmatmul');
      t.equal(ran.backend, 'cpu', `${qw.dtype} x ${xd}[${xshape}]: ran on cpu (${ran.variant})`);
      t.ok(ran.variant.startsWith(`qgemm_${qw.dtype}_a8_`), 'W4A8 variant');
      t.ok(sameBits(out.toFloat32(), ref.toFloat32()), 'bit-identical to the js backend');
      const outA = await T.qmatmulAsync(x, qw, { activations: 'int8' });
      t.ok(sameBits(outA.toFloat32(), out.toFloat32()), 'async bits = sync bits');
      // 8-bit activations: close to, not equal to, the float-activation product
      const a = out.toFloat64();
      const b = refF.toFloat64();
      let e2 = 0;
      let r2 = 0;
      for (let i = 0; i < a.length; i++) { e2 += (a[i] - b[i]) ** 2; r2 += b[i] ** 2; }
      const rel = Math.sqrt(e2 / r2);
      t.ok(rel > 0 && rel < 2e-2, `within 8-bit activation rounding of the float-activation result (rel ${rel.toExponential(2)})`);
      t.ok(sameBits(T.qmatmul(x, qw, { activations: 'float' }).toFloat32(), T.qmatmul(x, qw).toFloat32()), "'float' is the default for int4");
    }
  }
  const x = randT([2, 16]);
  const q8 = T.quantize(randT([16, 8]), { dtype: 'int8' });
  const qf8 = T.quantize(randT([16, 8]), { dtype: 'float8_e4m3fn' });
  const q4 = T.quantize(randT([16, 8]), { dtype: 'int4', groupSize: 8 });
  t.ok(sameBits(T.qmatmul(x, q8, { activations: 'int8' }).toFloat32(), T.qmatmul(x, q8).toFloat32()), "int8 weights: 'int8' is their default");
  const bad = [
    [() => T.qmatmul(x, q8, { activations: 'float' }), /int8 weights/],
    [() => T.qmatmul(x, qf8, { activations: 'int8' }), /int4 or uint4/],
    [() => T.qmatmul(x, q4, { activations: 'int4' }), /'float' or 'int8'/],
    [() => T.qmatmul(x, q4, { activations: null }), /'float' or 'int8'/],
    [() => T.qmatmul(x, q4, 'int8'), /options object/],
  ];
  for (const [f, re] of bad) {
    try {
      f();
      t.fail(`${f} did not throw`);
    } catch (e) {
      t.ok(e instanceof T.TesseraError && e.op === 'qmatmul' && re.test(e.message), `${f}: ${e.message}`);
    }
  }
  let asyncErr = null;
  try {
    await T.qmatmulAsync(x, qf8, { activations: 'int8' });
  } catch (e) {
    asyncErr = e;
  }
  t.ok(asyncErr instanceof T.TesseraError && /int4 or uint4/.test(asyncErr.message), 'the async form validates too');
  t.end();
});
