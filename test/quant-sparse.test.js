'use strict';
// Reference kernels for quantized and sparse matmul (lib/backends/js/quant.ts, sparse.ts), checked
// against independent oracles written here: a nearest-value e4m3 search, nibble-by-nibble decoding,
// error bounds, hand-computed integer accumulations and densify-then-naive matmul.
const test = require('tape');
const path = require('path');
const Q = require('../dist/backends/js/quant.js');
const S = require('../dist/backends/js/sparse.js');

// ---- helpers ----

function rng(seed) {
  // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randn(r) {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Random [rows, cols] weights with awkward columns: all zero, all positive, all negative, an outlier. */
function randWeights(r, rows, cols) {
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = randn(r) * 0.1;
  for (let k = 0; k < rows; k++) {
    if (cols > 1) w[k * cols + 1] = 0;
    if (cols > 2) w[k * cols + 2] = Math.abs(w[k * cols + 2]) + 0.01;
    if (cols > 3) w[k * cols + 3] = -Math.abs(w[k * cols + 3]) - 0.01;
  }
  if (rows * cols > 0) w[Math.floor(r() * rows) * cols] = 3.5; // outlier in column 0
  return w;
}

function naiveMatmul(a, b, M, K, N) {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[k * N + n];
      out[m * N + n] = s;
    }
  }
  return out;
}

/** Index of the first element where got/want differ (=== semantics, NaN equal to NaN), or -1. */
function firstMismatch(got, want) {
  if (got.length !== want.length) return -2;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) return i;
  }
  return -1;
}

function throwsCode(t, fn, code, msg) {
  try {
    fn();
    t.fail(`${msg}: did not throw`);
  } catch (e) {
    t.equal(e && e.code, code, `${msg} (${e && e.message})`);
  }
}

const rne = (v) => {
  const f = Math.floor(v);
  const d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
};
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

// ---- independent float8 e4m3fn oracle ----

function e4m3Value(bits) {
  const s = bits & 0x80 ? -1 : 1;
  const e = (bits >> 3) & 15;
  const f = bits & 7;
  if (e === 15 && f === 7) return NaN;
  return e === 0 ? s * Math.pow(2, -6) * (f / 8) : s * Math.pow(2, e - 7) * (1 + f / 8);
}
const E4M3_POS = []; // [value, bits] for the 127 finite non-negative codes, increasing
for (let b = 0; b < 0x7f; b++) E4M3_POS.push([e4m3Value(b), b]);

/** Nearest finite code by exhaustive search, ties to the even code; saturating; NaN -> 0x7f. */
function e4m3Oracle(x) {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.min(Math.abs(x), 448);
  let best = 0;
  for (let i = 1; i < E4M3_POS.length; i++) {
    const d = Math.abs(E4M3_POS[i][0] - a);
    const db = Math.abs(E4M3_POS[best][0] - a);
    if (d < db || (d === db && (E4M3_POS[i][1] & 1) === 0)) best = i;
  }
  return sign | E4M3_POS[best][1];
}

/** Probe values: every code, every midpoint, values just off the midpoints, and random magnitudes. */
function e4m3Probes() {
  const r = rng(7);
  const out = [];
  for (let i = 0; i < E4M3_POS.length; i++) {
    const v = E4M3_POS[i][0];
    out.push(v, -v);
    if (i + 1 < E4M3_POS.length) {
      const mid = (v + E4M3_POS[i + 1][0]) / 2;
      out.push(mid, -mid, mid * (1 + 1e-9), mid * (1 - 1e-9));
    }
  }
  for (let i = 0; i < 500; i++) out.push((r() - 0.5) * Math.pow(2, Math.floor(r() * 24) - 14));
  out.push(1e-30, -1e-30, 2 ** -10, 2 ** -10 * 1.5, 447.99, 448);
  return out;
}

// ---- independent decoding of QuantRaw ----

const QMAX = { int8: 127, int4: 7, uint4: 15, float8_e4m3fn: 448 };

function codeAt(q, i) {
  if (q.dtype === 'int8') return q.values[i];
  if (q.dtype === 'float8_e4m3fn') return e4m3Value(q.values[i]);
  const nib = i % 2 === 0 ? q.values[(i - (i % 2)) / 2] & 15 : q.values[(i - 1) / 2] >>> 4;
  return q.dtype === 'int4' ? (nib ^ 8) - 8 : nib;
}

function scaleIdx(q, gs, k, n) {
  return q.perTensor ? 0 : Math.floor(k / gs) * q.N + n;
}

function oracleDequant(q, gs) {
  const out = new Float64Array(q.K * q.N);
  for (let k = 0; k < q.K; k++) {
    for (let n = 0; n < q.N; n++) {
      const si = scaleIdx(q, gs, k, n);
      out[k * q.N + n] = (codeAt(q, k * q.N + n) - (q.zeros ? q.zeros[si] : 0)) * q.scales[si];
    }
  }
  return out;
}

/** W8A8 written from the spec: quantize every row of x, integer matmul per K-group, then scale. */
function oracleW8A8(x, M, q, gs) {
  const { K, N } = q;
  const out = new Float64Array(M * N);
  const G = q.perTensor ? 1 : Math.ceil(K / gs);
  for (let m = 0; m < M; m++) {
    const row = Array.from(x.subarray(m * K, (m + 1) * K));
    const sx = Math.fround(Math.max(0, ...row.map(Math.abs)) / 127) || 1;
    const xq = row.map((v) => clamp(rne(v / sx), -127, 127));
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const kEnd = q.perTensor ? K : Math.min(K, (g + 1) * gs);
        let acc = 0;
        for (let k = q.perTensor ? 0 : g * gs; k < kEnd; k++) acc += xq[k] * q.values[k * N + n];
        if (!Number.isSafeInteger(acc)) throw new Error('integer accumulation overflowed');
        out[m * N + n] += acc * sx * q.scales[q.perTensor ? 0 : g * N + n];
      }
    }
  }
  return out;
}

// ---- quant tests ----

test('int4 packing: nibble order and sign extension', (t) => {
  t.deepEqual(Array.from(Q.packInt4([1, -2, 7], true)), [0xe1, 0x07], 'pack([1,-2,7]) -> [0xE1, 0x07]');
  t.deepEqual(Array.from(Q.packInt4([15, 0, 3, 12], false)), [0x0f, 0xc3], 'unsigned pack, low nibble first');
  t.deepEqual(Array.from(Q.packInt4([-8, 7], true)), [0x78], '-8 is 0x8 in the low nibble');
  t.deepEqual(Array.from(Q.unpackInt4(new Uint8Array([0xe1, 0x07]), 3, true)), [1, -2, 7], 'unpack signed');
  t.deepEqual(Array.from(Q.unpackInt4(new Uint8Array([0xe1, 0x07]), 3, false)), [1, 14, 7], 'unpack unsigned');
  const all = [];
  for (let v = -8; v < 8; v++) all.push(v);
  t.deepEqual(Array.from(Q.unpackInt4(Q.packInt4(all, true), 16, true)), all, 'signed round trip of all 16 values');
  const bits = Q.packInt4(all, true);
  let ok = true;
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 4; j++) {
      const bit = (bits[i >> 1] >> (4 * (i & 1) + j)) & 1;
      if (bit !== (((all[i] & 15) >> j) & 1)) ok = false;
    }
  }
  t.ok(ok, 'every bit of every nibble in place');
  throwsCode(t, () => Q.packInt4([8], true), 'E_ARG', 'signed 8 rejected');
  throwsCode(t, () => Q.packInt4([-1], false), 'E_ARG', 'unsigned -1 rejected');
  throwsCode(t, () => Q.packInt4([0.5], false), 'E_ARG', 'non-integer rejected');
  throwsCode(t, () => Q.unpackInt4(new Uint8Array(1), 3, true), 'E_SHAPE', 'short byte array rejected');
  t.end();
});

test('float8 e4m3fn: decode of all 256 codes and RNE encode vs nearest-value search', (t) => {
  const perTensor = { dtype: 'float8_e4m3fn', K: 256, N: 1, groupSize: 256, perTensor: true, zeros: null };
  const q = { ...perTensor, values: Uint8Array.from({ length: 256 }, (_, i) => i), scales: new Float32Array([1]) };
  const dq = Q.dequantizeRef(q);
  const want = Array.from({ length: 256 }, (_, i) => e4m3Value(i));
  t.equal(firstMismatch(dq, want), -1, 'dequantize (scale 1) decodes every code');
  t.ok(Object.is(dq[0x80], -0), '0x80 decodes to -0');
  t.equal(dq[0x7e], 448, '0x7e = 448');
  t.equal(dq[0x01], 2 ** -9, '0x01 = 2^-9 (smallest subnormal)');

  // Encode through quantizeRef: a 448 in the tensor makes the per-tensor scale exactly 1.
  const probes = e4m3Probes();
  const w = Float64Array.from([448, ...probes, -0]);
  const qe = Q.quantizeRef(w, w.length, 1, { dtype: 'float8_e4m3fn', groupSize: null, perTensor: true, symmetric: true });
  t.equal(qe.scales[0], 1, 'scale is 1');
  const wantBits = Array.from(w, e4m3Oracle);
  const bad = firstMismatch(qe.values, wantBits);
  t.equal(bad, -1, bad < 0 ? 'encode matches the oracle on all probes' : `probe ${w[bad]}: got ${qe.values[bad]}, want ${wantBits[bad]}`);
  t.equal(qe.values[w.length - 1], 0x80, '-0 keeps its sign');
  t.end();
});

test('float8 e4m3fn: cross-check against lib/dtype.ts', (t) => {
  let D = null;
  try {
    D = require(path.join(__dirname, '../dist/dtype.js'));
  } catch (e) {
    D = null;
  }
  if (!D || typeof D.toE4m3Bits !== 'function' || typeof D.e4m3BitsToNumber !== 'function') {
    t.comment('dtype.js not built, cross-check not run');
    t.end();
    return;
  }
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const q = { dtype: 'float8_e4m3fn', K: 256, N: 1, groupSize: 256, perTensor: true, values: codes, scales: new Float32Array([1]), zeros: null };
  const mine = Q.dequantizeRef(q);
  const theirs = Array.from(codes, (b) => D.e4m3BitsToNumber(b));
  t.equal(firstMismatch(mine, theirs), -1, 'decode agrees with dtype.e4m3BitsToNumber on all 256 codes');
  const w = Float64Array.from([448, ...e4m3Probes()]);
  const qe = Q.quantizeRef(w, w.length, 1, { dtype: 'float8_e4m3fn', groupSize: null, perTensor: true, symmetric: true });
  const wantBits = Array.from(w, (v) => D.toE4m3Bits(v));
  const bad = firstMismatch(qe.values, wantBits);
  t.equal(bad, -1, bad < 0 ? 'encode agrees with dtype.toE4m3Bits' : `probe ${w[bad]}: quant ${qe.values[bad]}, dtype ${wantBits[bad]}`);
  const extremes = [1e6, -1e6, Infinity, -Infinity, 464, 480];
  t.deepEqual(extremes.map((v) => D.toE4m3Bits(v)), extremes.map(e4m3Oracle), 'dtype saturates like the oracle');
  t.ok([0x7f, 0xff].includes(D.toE4m3Bits(NaN)), 'dtype NaN -> 0x7f/0xff');
  t.end();
});

test('int8 W8A8: exact integer accumulation on hand cases', (t) => {
  const opts = { dtype: 'int8', groupSize: null, symmetric: true };
  // Column maxabs 127 -> weight scale 1, codes = weights.
  const w = new Float32Array([1, -127, 2, 0, 3, 5, 127, 1]); // [K=4, N=2]
  const q = Q.quantizeRef(w, 4, 2, opts);
  t.deepEqual(Array.from(q.scales), [1, 1], 'scales 1');
  t.deepEqual(Array.from(q.values), [1, -127, 2, 0, 3, 5, 127, 1], 'codes are the weights');
  // x row maxabs 127 -> sx = 1.
  t.deepEqual(Array.from(Q.qmatmulRef(new Float32Array([127, -1, 2, 3]), 1, q)), [127 - 2 + 6 + 381, -16129 + 10 + 3], 'sx = 1');
  // maxabs 254 -> sx = 2: x/sx = [127, 1.5, -2.5, 0.5] rounds half-even to [127, 2, -2, 0].
  t.deepEqual(Array.from(Q.qmatmulRef(new Float32Array([254, 3, -5, 1]), 1, q)), [(127 + 4 - 6) * 2, (-16129 - 10) * 2], 'sx = 2, RNE activations');
  // Two K-groups with weight scales 1 and 2: out = (acc0 * 1 + acc1 * 2) * sx.
  const wg = new Float32Array([127, 1, 254, 4]); // [K=4, N=1], groupSize 2
  const qg = Q.quantizeRef(wg, 4, 1, { dtype: 'int8', groupSize: 2, symmetric: true });
  t.deepEqual(Array.from(qg.scales), [1, 2], 'group scales');
  t.deepEqual(Array.from(qg.values), [127, 1, 127, 2], 'group codes');
  t.deepEqual(Array.from(Q.qmatmulRef(new Float32Array([1, 2, 3, 127]), 1, qg)), [(127 + 2) + (381 + 254) * 2], 'per-group scales');
  // Large K: 127 * 127 * 4096 = 66,064,384, exact.
  const K = 4096;
  const big = Q.quantizeRef(new Float32Array(K).fill(127), K, 1, opts);
  t.deepEqual(Array.from(Q.qmatmulRef(new Float32Array(K).fill(-127), 1, big)), [-127 * 127 * K], 'long exact accumulation');
  // Zero rows, a -128 code (decoders must accept it), and a non-finite activation row.
  const q128 = { dtype: 'int8', K: 2, N: 1, groupSize: 2, perTensor: false, values: new Int8Array([-128, 1]), scales: new Float32Array([0.5]), zeros: null };
  t.deepEqual(Array.from(Q.dequantizeRef(q128)), [-64, 0.5], '-128 dequantizes');
  const out = Q.qmatmulRef(new Float64Array([0, 0, 127, 0, NaN, 1]), 3, q128);
  t.deepEqual(Array.from(out.subarray(0, 2)), [0, -128 * 127 * 0.5], 'zero row -> 0; -128 code accumulates');
  t.ok(Number.isNaN(out[2]), 'NaN activation row -> NaN');
  t.end();
});

test('int4: -8 code decodes, symmetric quantization never produces it', (t) => {
  const q = { dtype: 'int4', K: 3, N: 1, groupSize: 3, perTensor: false, values: Q.packInt4([-8, 7, -1], true), scales: new Float32Array([0.25]), zeros: null };
  t.deepEqual(Array.from(Q.dequantizeRef(q)), [-2, 1.75, -0.25], 'dequant of [-8, 7, -1] * 0.25');
  t.deepEqual(Array.from(Q.qmatmulRef(new Float32Array([1, 1, 1]), 1, q)), [-0.5], 'weight-only matmul');
  const w = new Float32Array([-7, 7, -6.9999, 3.5, 2.5, -7.5 / 2]); // maxabs 7: scale 1
  const qs = Q.quantizeRef(w, 6, 1, { dtype: 'int4', groupSize: null, symmetric: true });
  t.equal(qs.scales[0], 1, 'scale 1');
  t.deepEqual(Array.from(Q.unpackInt4(qs.values, 6, true)), [-7, 7, -7, 4, 2, -4], 'codes in [-7, 7], ties to even');
  t.end();
});

test('uint4 asymmetric: hand case with half-way zero point', (t) => {
  // min -2.5, max 12.5: scale 15/15 = 1, zero = rne(2.5) = 2 (half to even), q = rne(w) + 2.
  const w = new Float32Array([-2.5, 12.5, 0, 1.5, -0.4, 3.5]);
  const q = Q.quantizeRef(w, 6, 1, { dtype: 'int4', groupSize: null, symmetric: false });
  t.equal(q.dtype, 'uint4', 'stored as uint4');
  t.deepEqual([q.scales[0], q.zeros[0]], [1, 2], 'scale 1, zero point 2');
  t.deepEqual(Array.from(Q.unpackInt4(q.values, 6, false)), [0, 14, 2, 4, 2, 6], 'codes');
  t.deepEqual(Array.from(Q.dequantizeRef(q)), [-2, 12, 0, 2, 0, 4], 'dequant = (q - zero) * scale');
  // All-positive column: the range is widened to include 0, so zero point 0.
  const qp = Q.quantizeRef(new Float32Array([15, 7.5, 30]), 3, 1, { dtype: 'uint4', groupSize: null, symmetric: false });
  t.deepEqual([qp.scales[0], qp.zeros[0], ...Q.unpackInt4(qp.values, 3, false)], [2, 0, 8, 4, 15], 'positive column (7.5 -> 8 half-even)');
  t.end();
});

test('quantize/dequantize/qmatmul sweep: K x groupSize x dtype, per-tensor', (t) => {
  const r = rng(1);
  const N = 5;
  const variants = [
    { name: 'int8', opts: { dtype: 'int8', symmetric: true }, stored: 'int8', codes: [-127, 127] },
    { name: 'int4', opts: { dtype: 'int4', symmetric: true }, stored: 'int4', codes: [-7, 7] },
    { name: 'int4 asym', opts: { dtype: 'int4', symmetric: false }, stored: 'uint4', codes: [0, 15] },
    { name: 'uint4', opts: { dtype: 'uint4', symmetric: false }, stored: 'uint4', codes: [0, 15] },
    { name: 'fp8', opts: { dtype: 'float8_e4m3fn', symmetric: true }, stored: 'float8_e4m3fn', codes: null },
  ];
  let configs = 0;
  for (const K of [1, 3, 17, 64, 255]) {
    const w = randWeights(r, K, N);
    for (const v of variants) {
      for (const gsOpt of [32, 64, 128, K, null, 'tensor']) {
        const perTensor = gsOpt === 'tensor';
        const opts = { ...v.opts, groupSize: perTensor ? null : gsOpt, perTensor };
        const tag = `${v.name} K=${K} groupSize=${gsOpt}`;
        const q = Q.quantizeRef(w, K, N, opts);
        const gs = perTensor || gsOpt === null ? K : Math.min(gsOpt, K);
        const G = perTensor ? 1 : Math.ceil(K / gs);
        const errs = [];
        const expect = (cond, what) => {
          if (!cond && errs.length < 3) errs.push(what);
        };
        expect(q.dtype === v.stored && q.K === K && q.N === N && q.groupSize === gs && q.perTensor === perTensor, 'header fields');
        expect(q.scales instanceof Float32Array && q.scales.length === (perTensor ? 1 : G * N), 'scales shape');
        expect((q.zeros !== null) === (v.stored === 'uint4'), 'zeros presence');
        expect(Q.validateQuantRaw(q) === null, `validateQuantRaw: ${Q.validateQuantRaw(q)}`);

        // Scales (and zero points) recomputed from the spec.
        const cols = perTensor ? 1 : N;
        for (let g = 0; g < G; g++) {
          for (let c = 0; c < cols; c++) {
            const vals = [];
            for (let k = perTensor ? 0 : g * gs; k < (perTensor ? K : Math.min(K, (g + 1) * gs)); k++) {
              for (let n = perTensor ? 0 : c; n < (perTensor ? N : c + 1); n++) vals.push(w[k * N + n]);
            }
            const lo = Math.min(0, ...vals);
            const hi = Math.max(0, ...vals);
            const span = v.stored === 'uint4' ? hi - lo : Math.max(hi, -lo);
            const s = Math.fround(span / QMAX[v.stored]) || 1;
            expect(q.scales[g * cols + c] === s, `scale (${g}, ${c}) = ${q.scales[g * cols + c]}, want ${s}`);
            if (q.zeros) expect(q.zeros[g * cols + c] === clamp(rne(-lo / s), 0, 15), `zero point (${g}, ${c})`);
          }
        }

        // Codes in range, dequant vs the independent decoder, error bounds.
        const dq = Q.dequantizeRef(q);
        const dqo = oracleDequant(q, gs);
        expect(firstMismatch(dq, dqo) === -1, `dequant differs from oracle at ${firstMismatch(dq, dqo)}`);
        for (let k = 0; k < K; k++) {
          for (let n = 0; n < N; n++) {
            const i = k * N + n;
            const s = q.scales[scaleIdx(q, gs, k, n)];
            const code = codeAt(q, i);
            if (v.codes) expect(Number.isInteger(code) && code >= v.codes[0] && code <= v.codes[1], `code ${code} at ${i}`);
            const err = Math.abs(w[i] - dq[i]);
            const bound = v.codes ? (s / 2) * (1 + 2 ** -20) : Math.max(2 ** -4 * Math.abs(w[i]), 2 ** -10 * s) * (1 + 2 ** -20);
            expect(err <= bound, `|w - dequant| = ${err} > ${bound} at (${k}, ${n})`);
          }
        }

        // qmatmul vs x @ dequant(w), and vs the independent emulation.
        for (const M of [1, 3]) {
          const x = M === 1 ? new Float32Array(K) : new Float64Array(M * K); // f64: kernels see fround(x)
          for (let i = 0; i < x.length; i++) x[i] = randn(r);
          if (M === 3) x.fill(0, K, 2 * K); // an all-zero row
          const out = Q.qmatmulRef(x, M, q);
          const exact = naiveMatmul(x, dq, M, K, N);
          for (let m = 0; m < M; m++) {
            const xrow = x.subarray(m * K, (m + 1) * K);
            const sx = Math.fround(Math.max(0, ...Array.from(xrow, Math.abs)) / 127) || 1;
            for (let n = 0; n < N; n++) {
              let absdot = 0;
              let absw = 0;
              for (let k = 0; k < K; k++) {
                absdot += Math.abs(xrow[k] * dq[k * N + n]);
                absw += Math.abs(dq[k * N + n]);
              }
              // W8A8: activation rounding |x - xq*sx| <= sx/2; weight-only: two float32 roundings.
              const bound = v.stored === 'int8' ? (sx / 2) * absw * (1 + 1e-9) + 1e-12 * absdot : 3 * 2 ** -24 * absdot;
              const e = Math.abs(out[m * N + n] - exact[m * N + n]);
              expect(e <= bound, `M=${M} (${m}, ${n}): |qmatmul - x@dequant| = ${e} > ${bound}`);
            }
          }
          let emu;
          if (v.stored === 'int8') {
            emu = oracleW8A8(x, M, q, gs);
          } else {
            const xf = Float64Array.from(x, Math.fround);
            emu = naiveMatmul(xf, dqo.map(Math.fround), M, K, N);
          }
          let worst = 0;
          for (let i = 0; i < emu.length; i++) worst = Math.max(worst, Math.abs(out[i] - emu[i]) / (Math.abs(emu[i]) + 1e-300));
          expect(worst <= 1e-12, `M=${M}: relative difference to the emulation oracle ${worst}`);
        }
        configs++;
        t.deepEqual(errs, [], tag);
      }
    }
  }
  t.equal(configs, 5 * 5 * 6, 'all configurations ran');
  t.end();
});

test('quantize: argument validation', (t) => {
  const w = new Float32Array(6);
  throwsCode(t, () => Q.quantizeRef(w, 2, 2, { dtype: 'int8', groupSize: null, symmetric: true }), 'E_SHAPE', 'length mismatch');
  throwsCode(t, () => Q.quantizeRef(w, 0, 6, { dtype: 'int8', groupSize: null, symmetric: true }), 'E_ARG', 'K = 0');
  throwsCode(t, () => Q.quantizeRef(w, 3, 2, { dtype: 'int8', groupSize: 0, symmetric: true }), 'E_ARG', 'groupSize 0');
  throwsCode(t, () => Q.quantizeRef(w, 3, 2, { dtype: 'int8', groupSize: null, symmetric: false }), 'E_ARG', 'asymmetric int8');
  throwsCode(t, () => Q.quantizeRef(w, 3, 2, { dtype: 'uint4', groupSize: null, symmetric: true }), 'E_ARG', 'symmetric uint4');
  throwsCode(t, () => Q.quantizeRef(w, 3, 2, { dtype: 'int2', groupSize: null, symmetric: true }), 'E_DTYPE', 'unknown dtype');
  throwsCode(t, () => Q.quantizeRef(w, 3, 2, { dtype: 'int8', groupSize: 2, perTensor: true, symmetric: true }), 'E_ARG', 'perTensor with groupSize < K');
  throwsCode(t, () => Q.quantizeRef(new Float32Array([1, NaN]), 2, 1, { dtype: 'int8', groupSize: null, symmetric: true }), 'E_ARG', 'NaN weight');
  const q = Q.quantizeRef(new Float32Array([1, 2, 3]), 3, 1, { dtype: 'int4', groupSize: 2, symmetric: true });
  throwsCode(t, () => Q.qmatmulRef(new Float32Array(2), 1, q), 'E_SHAPE', 'x length mismatch');
  t.match(Q.validateQuantRaw({ ...q, scales: new Float32Array(1) }), /scales/, 'wrong scales length reported');
  t.match(Q.validateQuantRaw({ ...q, values: new Uint8Array([0, 0x70]) }), /padding/, 'dirty padding nibble reported');
  t.match(Q.validateQuantRaw({ ...q, groupSize: 5 }), /groupSize/, 'groupSize > K reported');
  throwsCode(t, () => Q.dequantizeRef({ ...q, zeros: new Float32Array(2) }), 'E_ARG', 'zeros on a symmetric format');
  t.end();
});

// ---- sparse tests ----

function randSparse(r, M, K, density, emptyRows) {
  const a = new Float64Array(M * K);
  for (let i = 0; i < a.length; i++) if (r() < density) a[i] = randn(r);
  if (emptyRows) for (let m = 1; m < M; m += 3) a.fill(0, m * K, (m + 1) * K);
  return a;
}

function randDense(r, n) {
  return Float64Array.from({ length: n }, () => randn(r));
}

test('CSR: hand case, -0 and NaN, validation', (t) => {
  const a = new Float64Array([0, 1, -0, NaN, 0, 0, 0, 0, 2, 0, 0, 3]);
  const c = S.csrFromDense(a, 3, 4);
  t.deepEqual(Array.from(c.rowPtr), [0, 2, 2, 4], 'rowPtr (empty middle row)');
  t.deepEqual(Array.from(c.colIdx), [1, 3, 0, 3], 'colIdx: -0 dropped, NaN kept');
  t.ok(c.values instanceof Float64Array && c.values[0] === 1 && Number.isNaN(c.values[1]), 'values');
  t.ok(S.csrFromDense(new Float32Array(a), 3, 4).values instanceof Float32Array, 'Float32Array in, Float32Array values');
  t.equal(S.validateCsr(c), null, 'valid');
  const bad = (patch) => S.validateCsr({ ...c, ...patch });
  t.match(bad({ rowPtr: new Int32Array([1, 2, 2, 4]) }), /rowPtr\[0\]/, 'rowPtr[0] != 0');
  t.match(bad({ rowPtr: new Int32Array([0, 3, 2, 4]) }), /decreases/, 'non-monotone rowPtr');
  t.match(bad({ rowPtr: new Int32Array([0, 2, 2, 3]) }), /rowPtr\[M\]/, 'rowPtr[M] != nnz');
  t.match(bad({ colIdx: new Int32Array([1, 4, 0, 3]) }), /outside/, 'column >= K');
  t.match(bad({ colIdx: new Int32Array([1, -1, 0, 3]) }), /outside/, 'negative column');
  t.match(bad({ colIdx: new Int32Array([3, 1, 0, 3]) }), /strictly increasing/, 'unsorted columns');
  t.match(bad({ colIdx: new Int32Array([1, 1, 0, 3]) }), /strictly increasing/, 'duplicate column');
  t.match(bad({ rowPtr: new Int32Array([0, 2, 4]) }), /rowPtr must be/, 'rowPtr length');
  t.match(bad({ values: [1, 2, 3, 4] }), /values/, 'plain array values');
  throwsCode(t, () => S.spmmCsrRef({ ...c, colIdx: new Int32Array([3, 1, 0, 3]) }, new Float64Array(8), 2), 'E_ARG', 'spmm rejects an invalid CSR');
  throwsCode(t, () => S.spmmCsrRef(c, new Float64Array(7), 2), 'E_SHAPE', 'spmm rejects a short B');
  t.end();
});

test('CSR: round trip and spmm vs densify-then-matmul sweep', (t) => {
  const r = rng(2);
  const sizes = [1, 3, 17, 63];
  let n = 0;
  const errs = [];
  for (const M of sizes) {
    for (const K of sizes) {
      for (const N of sizes) {
        for (const density of [0, 0.05, 0.3, 1]) {
          const a = randSparse(r, M, K, density, density > 0.1);
          const c = S.csrFromDense(a, M, K);
          const b = randDense(r, K * N);
          const tag = `M=${M} K=${K} N=${N} density=${density}`;
          let nnz = 0;
          for (const v of a) if (v !== 0) nnz++;
          if (c.colIdx.length !== nnz || S.validateCsr(c) !== null) errs.push(`${tag}: structure`);
          if (firstMismatch(S.csrToDense(c), a) !== -1) errs.push(`${tag}: round trip`);
          // Same summation order (k ascending), so equal bit for bit.
          const i = firstMismatch(S.spmmCsrRef(c, b, N), naiveMatmul(a, b, M, K, N));
          if (i !== -1) errs.push(`${tag}: spmm differs at ${i}`);
          n++;
        }
      }
    }
  }
  t.deepEqual(errs.slice(0, 5), [], `${n} cases: valid structure, exact round trip, spmm == dense matmul`);
  const f32 = new Float32Array(randSparse(r, 17, 17, 0.3, true));
  const b32 = new Float32Array(randDense(r, 17 * 3));
  t.equal(firstMismatch(S.spmmCsrRef(S.csrFromDense(f32, 17, 17), b32, 3), naiveMatmul(f32, b32, 17, 17, 3)), -1, 'float32 inputs');
  t.deepEqual(Array.from(S.spmmCsrRef(S.csrFromDense(new Float64Array(0), 0, 5), new Float64Array(10), 2)), [], 'M = 0');
  t.end();
});

/** Independent 2:4 oracle: sort the group's positions by (rank desc, index asc), keep the first 2. */
function oracle24(a, M, K) {
  const G = Math.ceil(K / 4);
  const kept = []; // per (m, g): [i0, i1]
  const pruned = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let g = 0; g < G; g++) {
      const val = (i) => (g * 4 + i < K ? a[m * K + g * 4 + i] : 0);
      const rank = (i) => (Number.isNaN(val(i)) ? Infinity : Math.abs(val(i)));
      const order = [0, 1, 2, 3].sort((p, q) => rank(q) - rank(p) || p - q);
      const pair = order.slice(0, 2).sort((p, q) => p - q);
      kept.push(pair);
      for (const i of pair) if (g * 4 + i < K) pruned[m * K + g * 4 + i] = val(i);
    }
  }
  return { kept, pruned };
}

test('2:4: hand cases, meta nibbles, padding', (t) => {
  // Row 0: groups [1,-3,2,0.5] -> keep 1,2 (nibble 1|2<<2 = 9); [1,1,1,1] -> keep 0,1 (4).
  // Row 1: [0,0,0,5] -> keep 0,3 (12); [0,0,0,0] -> keep 0,1 (4).
  const a = new Float64Array([1, -3, 2, 0.5, 1, 1, 1, 1, 0, 0, 0, 5, 0, 0, 0, 0]);
  const s = S.sparse24FromDense(a, 2, 8);
  t.deepEqual(Array.from(s.meta), [0x49, 0x4c], 'meta bytes, group 0 in the low nibble');
  t.deepEqual(Array.from(s.values), [-3, 2, 1, 1, 0, 5, 0, 0], 'kept values in index order');
  t.deepEqual(Array.from(S.sparse24ToDense(s)), [0, -3, 2, 0, 1, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0], 'to dense');
  // K = 9: G = 3, two meta bytes per row, last group [7, pad, pad, pad] keeps 0 and 1 (a padded slot).
  const s9 = S.sparse24FromDense(new Float64Array([0, 0, 0, 0, 4, 0, -4, 1, 7]), 1, 9);
  t.deepEqual(Array.from(s9.meta), [0x84, 0x04], 'ties to the lower index; odd G leaves the high nibble 0');
  t.deepEqual(Array.from(s9.values), [0, 0, 4, -4, 7, 0], 'padded slot holds 0');
  t.deepEqual(Array.from(S.spmm24Ref(s9, Float64Array.from({ length: 9 }, (_, k) => k + 1), 1)), [4 * 5 - 4 * 7 + 7 * 9], 'spmm skips padding');
  const nan = S.sparse24FromDense(new Float64Array([1, NaN, -5, 2]), 1, 4);
  t.deepEqual([nan.meta[0], Number.isNaN(nan.values[0]), nan.values[1]], [1 | (2 << 2), true, -5], 'NaN is kept, not silently dropped');
  t.equal(S.validateSparse24(s), null, 'valid');
  const bad = (patch) => S.validateSparse24({ ...s, ...patch });
  t.match(bad({ meta: new Uint8Array([0x41, 0x4c]) }), /not increasing/, 'i0 == i1');
  t.match(bad({ meta: new Uint8Array([0x46, 0x4c]) }), /not increasing/, 'i0 > i1');
  t.match(bad({ meta: new Uint8Array([0x49]) }), /meta must be/, 'meta length');
  t.match(bad({ values: new Float64Array(7) }), /values must be/, 'values length');
  t.match(S.validateSparse24({ ...s9, meta: new Uint8Array([0x84, 0x44]) }), /unused meta nibble/, 'dirty unused nibble');
  t.match(S.validateSparse24({ ...s9, values: new Float64Array([0, 0, 4, -4, 7, 1]) }), /padded position/, 'nonzero padding value');
  throwsCode(t, () => S.spmm24Ref({ ...s, meta: new Uint8Array([0x41, 0x4c]) }, new Float64Array(8), 1), 'E_ARG', 'spmm rejects invalid meta');
  t.end();
});

test('2:4: selection vs oracle, round trips and spmm vs dense sweep', (t) => {
  const r = rng(3);
  const sizes = [1, 3, 17, 63];
  const errs = [];
  let n = 0;
  for (const M of sizes) {
    for (const K of sizes) {
      for (const N of sizes) {
        for (const density of [0, 0.3, 1]) {
          const a = randSparse(r, M, K, density, density > 0);
          if (density === 1 && K > 3) a[1] = a[0]; // a tie
          const tag = `M=${M} K=${K} N=${N} density=${density}`;
          const s = S.sparse24FromDense(a, M, K);
          const G = Math.ceil(K / 4);
          const { kept, pruned } = oracle24(a, M, K);
          if (S.validateSparse24(s) !== null) errs.push(`${tag}: ${S.validateSparse24(s)}`);
          for (let m = 0; m < M; m++) {
            for (let g = 0; g < G; g++) {
              const nib = (s.meta[m * Math.ceil(G / 2) + (g >> 1)] >> (4 * (g & 1))) & 15;
              const [i0, i1] = kept[m * G + g];
              if (nib !== (i0 | (i1 << 2))) errs.push(`${tag}: meta of row ${m} group ${g}`);
            }
          }
          const dense = S.sparse24ToDense(s);
          if (firstMismatch(dense, pruned) !== -1) errs.push(`${tag}: to dense != pruned oracle`);
          // Already 2:4, so a second round trip is the identity.
          if (firstMismatch(S.sparse24ToDense(S.sparse24FromDense(dense, M, K)), dense) !== -1) errs.push(`${tag}: idempotence`);
          const b = randDense(r, K * N);
          const i = firstMismatch(S.spmm24Ref(s, b, N), naiveMatmul(pruned, b, M, K, N));
          if (i !== -1) errs.push(`${tag}: spmm differs at ${i}`);
          n++;
        }
      }
    }
  }
  t.deepEqual(errs.slice(0, 5), [], `${n} cases: oracle selection, exact round trips, spmm == dense matmul`);
  // The kept pair dominates the dropped pair in |v| in every group.
  const a = randSparse(r, 63, 63, 1, false);
  const s = S.sparse24FromDense(a, 63, 63);
  const d = S.sparse24ToDense(s);
  let ok = true;
  for (let m = 0; m < 63; m++) {
    for (let g = 0; g < 63; g += 4) {
      const grp = [];
      for (let k = g; k < Math.min(63, g + 4); k++) grp.push([Math.abs(a[m * 63 + k]), d[m * 63 + k] !== 0]);
      const minKept = Math.min(...grp.filter((e) => e[1]).map((e) => e[0]));
      const maxDropped = Math.max(-1, ...grp.filter((e) => !e[1]).map((e) => e[0]));
      if (maxDropped > minKept) ok = false;
    }
  }
  t.ok(ok, 'kept |v| >= dropped |v| in every group');
  t.ok(S.sparse24FromDense(new Float32Array(8), 1, 8).values instanceof Float32Array, 'Float32Array in, Float32Array values');
  t.end();
});
