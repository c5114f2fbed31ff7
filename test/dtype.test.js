'use strict';
// dtype.ts against an independent reference: float64 math straight from each format's definition
// (sign * 2^(e-bias) * (1 + m/2^mbits), subnormals, specials) and a brute-force nearest-value search in the
// sorted table of finite values. Nothing here uses the library's bit code to compute an expected answer.
const test = require('tape');
const D = require('../dist/dtype.js');

// ---------------------------------------------------------------------------------------------------------
// reference formats

const FMT = {
  float16: { ebits: 5, mbits: 10, ieee: true, nan: 0x7e00, enc: D.toF16Bits, dec: D.f16BitsToNumber, Arr: Uint16Array },
  bfloat16: { ebits: 8, mbits: 7, ieee: true, nan: 0x7fc0, enc: D.toBf16Bits, dec: D.bf16BitsToNumber, Arr: Uint16Array },
  float8_e4m3fn: { ebits: 4, mbits: 3, ieee: false, nan: 0x7f, enc: D.toE4m3Bits, dec: D.e4m3BitsToNumber, Arr: Uint8Array },
  float8_e5m2: { ebits: 5, mbits: 2, ieee: true, nan: 0x7e, enc: D.toE5m2Bits, dec: D.e5m2BitsToNumber, Arr: Uint8Array },
};
const MINI = Object.keys(FMT);
const FLOATS = ['float32', 'float64', ...MINI];

for (const name of MINI) {
  const f = FMT[name];
  f.bits = 1 + f.ebits + f.mbits;
  f.count = 2 ** f.bits;
  f.signBit = 2 ** (f.bits - 1);
  f.bias = 2 ** (f.ebits - 1) - 1;
  f.expMax = 2 ** f.ebits - 1;
  f.mantMax = 2 ** f.mbits - 1;
}

/** Value of code b, from the definition. */
function refDecode(f, b) {
  const neg = b >= f.signBit;
  const mag = neg ? b - f.signBit : b;
  const e = Math.floor(mag / 2 ** f.mbits);
  const m = mag % 2 ** f.mbits;
  let v;
  if (f.ieee && e === f.expMax) v = m === 0 ? Infinity : NaN;
  else if (!f.ieee && e === f.expMax && m === f.mantMax) v = NaN;
  else if (e === 0) v = Math.pow(2, 1 - f.bias) * (m / Math.pow(2, f.mbits));
  else v = Math.pow(2, e - f.bias) * (1 + m / Math.pow(2, f.mbits));
  return neg ? -v : v;
}

// Sorted finite non-negative values with their codes, plus one virtual entry past the max: the value the
// format would have next if its exponent were unbounded (its code is maxCode + 1, which fixes tie parity).
for (const name of MINI) {
  const f = FMT[name];
  const pairs = [];
  for (let b = 0; b < f.signBit; b++) {
    const v = refDecode(f, b);
    if (Number.isFinite(v)) pairs.push([v, b]);
  }
  pairs.sort((p, q) => p[0] - q[0]);
  f.vals = pairs.map((p) => p[0]);
  f.codes = pairs.map((p) => p[1]);
  f.maxCode = f.codes[f.codes.length - 1];
  f.max = f.vals[f.vals.length - 1];
  const ulpAtMax = f.max - f.vals[f.vals.length - 2];
  f.vals.push(f.max + ulpAtMax);
  f.codes.push(f.maxCode + 1);
  f.infCode = f.ieee ? (2 ** f.ebits - 1) * 2 ** f.mbits : null;
}

/** Brute force: nearest finite value, ties to the even code; past the top -> inf (IEEE) or max (e4m3fn). */
function refEncode(f, x) {
  if (Number.isNaN(x)) return f.nan;
  const sign = x < 0 || Object.is(x, -0) ? f.signBit : 0;
  const ax = Math.abs(x);
  const V = f.vals;
  const top = V.length - 1;
  let code;
  if (ax >= V[top]) code = f.codes[top];
  else {
    let lo = 0;
    let hi = top; // V[lo] <= ax < V[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (V[mid] <= ax) lo = mid;
      else hi = mid;
    }
    const midpoint = (V[lo] + V[hi]) / 2; // exact: both have few significant bits
    if (ax < midpoint) code = f.codes[lo];
    else if (ax > midpoint) code = f.codes[hi];
    else code = f.codes[lo] % 2 === 0 ? f.codes[lo] : f.codes[hi];
  }
  if (code > f.maxCode) code = f.ieee ? f.infCode : f.maxCode;
  return sign + code;
}

/** Reference value of x after storing it as dtype d (number in, number out). */
function refRound(d, x) {
  if (FMT[d]) return refDecode(FMT[d], refEncode(FMT[d], x));
  switch (d) {
    case 'float64': return x;
    case 'float32': return Math.fround(x);
    case 'bool': return x === 0 ? 0 : 1;
    default: {
      const [lo, hi] = { int8: [-128, 127], uint8: [0, 255], int32: [-2147483648, 2147483647], int4: [-8, 7], uint4: [0, 15] }[d];
      if (Number.isNaN(x)) return 0;
      const t = Math.trunc(x);
      return t < lo ? lo : t > hi ? hi : t === 0 ? 0 : t;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// helpers

const same = (a, b) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
const hex = (b) => '0x' + b.toString(16);

function nextUp64(x) { // x > 0
  const a = new Float64Array([x]);
  const u = new BigUint64Array(a.buffer);
  u[0] += 1n;
  return a[0];
}
function nextDown64(x) { // x > 0
  const a = new Float64Array([x]);
  const u = new BigUint64Array(a.buffer);
  u[0] -= 1n;
  return a[0];
}
function f32Neighbor(x, dir) { // x > 0 and exactly an f32
  const a = new Float32Array([x]);
  const u = new Uint32Array(a.buffer);
  u[0] += dir;
  return a[0];
}

/** Collect mismatches; report the count plus the first few. */
function checker(t, label) {
  const bad = [];
  return {
    eq(got, want, what) {
      if (!same(got, want)) bad.push(`${what}: got ${got}, want ${want}`);
    },
    done() {
      t.equal(bad.length, 0, `${label}: ${bad.length} mismatches${bad.length ? ' e.g. ' + bad.slice(0, 5).join('; ') : ''}`);
    },
  };
}

// seeded PRNG (xorshift32 seeded through a splitmix-style mix): deterministic across runs
function rng(seed) {
  let s = (seed ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

// ---------------------------------------------------------------------------------------------------------

test('dtype table, storage sizes, errors', (t) => {
  t.equal(D.DTYPES.length, 12);
  for (const d of D.DTYPES) t.ok(D.isDType(d), d);
  t.notOk(D.isDType('float128'));
  t.notOk(D.isDType('toString'));
  t.notOk(D.isDType(3));
  const f16 = D.dtypeInfo('float16');
  t.deepEqual([f16.bits, f16.isFloat, f16.isInt, f16.isPacked, f16.min, f16.max, f16.storage], [16, true, false, false, -65504, 65504, 'Uint16Array']);
  t.equal(D.dtypeInfo('bfloat16').max, FMT.bfloat16.max);
  t.equal(D.dtypeInfo('float8_e4m3fn').max, 448);
  t.equal(D.dtypeInfo('float8_e5m2').max, 57344);
  t.equal(D.dtypeInfo('float32').max, 3.4028234663852886e38);
  const i4 = D.dtypeInfo('int4');
  t.deepEqual([i4.bits, i4.isInt, i4.isPacked, i4.min, i4.max], [4, true, true, -8, 7]);
  t.deepEqual([D.dtypeInfo('uint4').min, D.dtypeInfo('uint4').max], [0, 15]);
  t.deepEqual([D.dtypeInfo('bool').min, D.dtypeInfo('bool').max, D.dtypeInfo('bool').isInt], [0, 1, false]);
  t.deepEqual([D.storageLength('int4', 5), D.storageLength('uint4', 4), D.storageLength('int4', 0), D.storageLength('float16', 5)], [3, 2, 0, 5]);
  t.deepEqual([D.storageBytes('float16', 3), D.storageBytes('int4', 3), D.storageBytes('float64', 2), D.storageBytes('int32', 3)], [6, 2, 16, 12]);
  const ctor = { float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array, float8_e4m3fn: Uint8Array, float8_e5m2: Uint8Array, int8: Int8Array, uint8: Uint8Array, int32: Int32Array, int4: Uint8Array, uint4: Uint8Array, bool: Uint8Array };
  for (const d of D.DTYPES) {
    const s = D.allocStorage(d, 7);
    t.ok(s instanceof ctor[d] && s.length === D.storageLength(d, 7) && s.every((v) => v === 0), `allocStorage ${d}`);
    t.equal(D.dtypeInfo(d).storage, ctor[d].name);
  }
  t.throws(() => D.dtypeInfo('float128'), (e) => e.code === 'E_DTYPE');
  t.throws(() => D.storageLength('float16', -1), (e) => e.code === 'E_ARG');
  t.throws(() => D.decode('float16', new Uint8Array(4), 4), (e) => e.code === 'E_DTYPE');
  t.throws(() => D.decode('float16', new Uint16Array(3), 4), (e) => e.code === 'E_ARG');
  t.throws(() => D.encode('int8', [1, 2], 3), (e) => e.code === 'E_ARG');
  t.end();
});

for (const name of MINI) {
  test(`${name}: every bit pattern decodes to the reference and re-encodes to itself`, (t) => {
    const f = FMT[name];
    const c = checker(t, `${name} all ${f.count} patterns`);
    const all = new f.Arr(f.count);
    for (let b = 0; b < f.count; b++) all[b] = b;
    const dec64 = D.decode(name, all, f.count);
    const dec32 = D.decodeF32(name, all, f.count);
    const ref = new Float64Array(f.count);
    for (let b = 0; b < f.count; b++) {
      const want = refDecode(f, b);
      ref[b] = want;
      c.eq(f.dec(b), want, `scalar decode ${hex(b)}`);
      c.eq(dec64[b], want, `decode ${hex(b)}`);
      c.eq(dec32[b], want, `decodeF32 ${hex(b)}`);
      c.eq(D.getElement(name, all, b), want, `getElement ${hex(b)}`);
    }
    const viaF64 = D.encode(name, ref);
    const viaF32 = D.encode(name, new Float32Array(ref)); // every value is exact in f32
    const viaArr = D.encode(name, Array.from(ref));
    const viaSet = new f.Arr(f.count);
    let nans = 0;
    for (let b = 0; b < f.count; b++) {
      const want = Number.isNaN(ref[b]) ? f.nan : b;
      if (Number.isNaN(ref[b])) nans++;
      D.setElement(name, viaSet, b, ref[b]);
      c.eq(f.enc(ref[b]), want, `scalar encode ${ref[b]} (${hex(b)})`);
      c.eq(viaF64[b], want, `encode f64 ${ref[b]} (${hex(b)})`);
      c.eq(viaF32[b], want, `encode f32 ${ref[b]} (${hex(b)})`);
      c.eq(viaArr[b], want, `encode array ${ref[b]} (${hex(b)})`);
      c.eq(viaSet[b], want, `setElement ${ref[b]} (${hex(b)})`);
    }
    c.done();
    const expectNans = { float16: 2046, bfloat16: 254, float8_e4m3fn: 2, float8_e5m2: 6 }[name];
    t.equal(nans, expectNans, `${nans} NaN patterns`);
    t.end();
  });
}

for (const name of MINI) {
  test(`${name}: midpoints tie to even, neighbours of a midpoint go to the nearer value, overflow`, (t) => {
    const f = FMT[name];
    const c = checker(t, `${name} rounding at ${f.vals.length - 1} midpoints`);
    const xs = [];
    const want = [];
    const xs32 = [];
    const want32 = [];
    const push = (x, code) => { xs.push(x, -x); want.push(code, code + f.signBit); };
    const push32 = (x, code) => { xs32.push(x, -x); want32.push(code, code + f.signBit); };
    const clampCode = (code) => (code > f.maxCode ? (f.ieee ? f.infCode : f.maxCode) : code);
    for (let i = 0; i + 1 < f.vals.length; i++) {
      const lo = f.vals[i];
      const hi = f.vals[i + 1];
      const loC = f.codes[i];
      const hiC = clampCode(f.codes[i + 1]);
      const mid = (lo + hi) / 2;
      const evenC = clampCode(f.codes[i] % 2 === 0 ? f.codes[i] : f.codes[i + 1]);
      push(mid, evenC);
      push(nextDown64(mid), loC);
      push(nextUp64(mid), hiC);
      push32(mid, evenC);
      push32(f32Neighbor(mid, -1), loC);
      push32(f32Neighbor(mid, +1), hiC);
    }
    const viaF64 = D.encode(name, new Float64Array(xs));
    const viaArr = D.encode(name, xs);
    for (let i = 0; i < xs.length; i++) {
      c.eq(f.enc(xs[i]), want[i], `scalar ${xs[i]}`);
      c.eq(viaF64[i], want[i], `f64 ${xs[i]}`);
      c.eq(viaArr[i], want[i], `array ${xs[i]}`);
    }
    const viaF32 = D.encode(name, new Float32Array(xs32));
    for (let i = 0; i < xs32.length; i++) c.eq(viaF32[i], want32[i], `f32 ${xs32[i]}`);
    c.done();
    t.end();
  });
}

test('overflow thresholds and specials', (t) => {
  const cases = [
    // [dtype, x, expected code]
    ['float16', 65504, 0x7bff], ['float16', 65519.99, 0x7bff], ['float16', 65520, 0x7c00], ['float16', -65520, 0xfc00],
    ['float16', 1e6, 0x7c00], ['float16', Infinity, 0x7c00], ['float16', -Infinity, 0xfc00], ['float16', NaN, 0x7e00],
    ['float16', -0, 0x8000], ['float16', 0, 0], ['float16', 2 ** -25, 0], ['float16', -(2 ** -25), 0x8000],
    ['float16', nextUp64(2 ** -25), 1], ['float16', 2 ** -24, 1], ['float16', 1e-300, 0], ['float16', 5e-324, 0], ['float16', -5e-324, 0x8000],
    ['bfloat16', 3.3895313892515355e38, 0x7f7f], ['bfloat16', (2 - 2 ** -8) * 2 ** 127, 0x7f80],
    ['bfloat16', nextDown64((2 - 2 ** -8) * 2 ** 127), 0x7f7f], ['bfloat16', 1e300, 0x7f80], ['bfloat16', NaN, 0x7fc0],
    ['bfloat16', 2 ** -133, 1], ['bfloat16', 2 ** -134, 0], ['bfloat16', nextUp64(2 ** -134), 1],
    // 1 + 2^-8 + 2^-30: rounding through f32 first would give the tie 1 + 2^-8 and then 1.0 (even)
    ['bfloat16', 1 + 2 ** -8 + 2 ** -30, 0x3f81], ['float16', 1 + 2 ** -11 + 2 ** -40, 0x3c01],
    ['float8_e4m3fn', 448, 0x7e], ['float8_e4m3fn', 464, 0x7e], ['float8_e4m3fn', 465, 0x7e], ['float8_e4m3fn', 480, 0x7e],
    ['float8_e4m3fn', 1e10, 0x7e], ['float8_e4m3fn', -1e10, 0xfe], ['float8_e4m3fn', Infinity, 0x7e], ['float8_e4m3fn', -Infinity, 0xfe],
    ['float8_e4m3fn', NaN, 0x7f], ['float8_e4m3fn', -0, 0x80], ['float8_e4m3fn', 2 ** -9, 1], ['float8_e4m3fn', 2 ** -10, 0],
    ['float8_e4m3fn', 416, 0x7d], ['float8_e4m3fn', 432, 0x7e] /* tie 416|448 -> 448 (even) */,
    ['float8_e5m2', 57344, 0x7b], ['float8_e5m2', 61439.99, 0x7b], ['float8_e5m2', 61440, 0x7c], ['float8_e5m2', -61440, 0xfc],
    ['float8_e5m2', Infinity, 0x7c], ['float8_e5m2', NaN, 0x7e], ['float8_e5m2', 2 ** -16, 1], ['float8_e5m2', 2 ** -17, 0],
  ];
  const c = checker(t, `${cases.length} threshold cases x 4 paths`);
  for (const [d, x, code] of cases) {
    c.eq(FMT[d].enc(x), code, `${d} scalar ${x}`);
    c.eq(D.encode(d, new Float64Array([x]))[0], code, `${d} f64 ${x}`);
    c.eq(D.encode(d, [x])[0], code, `${d} array ${x}`);
    if (Math.fround(x) === x || Number.isNaN(x)) c.eq(D.encode(d, new Float32Array([x]))[0], code, `${d} f32 ${x}`);
    c.eq(refEncode(FMT[d], x), code, `${d} reference itself ${x}`);
  }
  c.done();
  t.end();
});

test('100k random doubles and 100k random floats per format vs brute-force reference', (t) => {
  const next = rng(12345);
  const N = 100000;
  for (const name of MINI) {
    const f = FMT[name];
    const eLo = 1 - f.bias - f.mbits - 3;
    const eHi = f.expMax - f.bias + 2;
    const xs = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      const r = next();
      let x;
      if (r % 64 === 0) x = [0, -0, Infinity, -Infinity, NaN, 1e300, -1e-300, 5e-324][next() % 8];
      else {
        const e = eLo + (next() % (eHi - eLo + 1));
        // random 52-bit mantissa; with 1/4 chance keep only a few bits so exact ties and near-ties are common
        let m = (next() % 2 ** 20) * 2 ** -20 + next() * 2 ** -52;
        if (r % 4 === 1) m = Math.floor(m * 2 ** (f.mbits + 1)) / 2 ** (f.mbits + 1);
        x = (1 + m) * 2 ** e * (r % 2 ? -1 : 1);
      }
      xs[i] = x;
    }
    const xs32 = new Float32Array(xs);
    const got64 = D.encode(name, xs);
    const got32 = D.encode(name, xs32);
    const gotArr = D.encode(name, Array.from(xs.subarray(0, 10000)));
    const c = checker(t, `${name} ${N} doubles + ${N} floats`);
    for (let i = 0; i < N; i++) {
      c.eq(got64[i], refEncode(f, xs[i]), `double ${xs[i]}`);
      c.eq(got32[i], refEncode(f, xs32[i]), `float ${xs32[i]}`);
      if (i < 10000) c.eq(gotArr[i], got64[i], `array ${xs[i]}`);
    }
    c.done();
  }
  t.end();
});

test('integer dtypes: truncation toward zero, saturation, NaN -> 0; bool', (t) => {
  const xs = [0, -0, 0.9, -0.9, 2.7, -2.7, 7.5, -8.5, 15.99, 16, 127.9, 128, -128.9, -129, 255.5, 256, 1e10, -1e10, 2147483647.5, -2147483648.5, Infinity, -Infinity, NaN, 3];
  const c = checker(t, 'integer encodes');
  for (const d of ['int8', 'uint8', 'int32', 'int4', 'uint4', 'bool']) {
    const s = D.encode(d, xs);
    const s32 = D.encode(d, new Float32Array(xs));
    const back = D.decode(d, s, xs.length);
    const one = D.allocStorage(d, xs.length);
    for (let i = 0; i < xs.length; i++) {
      const want = refRound(d, xs[i]);
      c.eq(back[i], want, `${d} ${xs[i]}`);
      c.eq(D.getElement(d, s, i), want, `${d} getElement ${xs[i]}`);
      c.eq(D.getElement(d, s32, i), refRound(d, Math.fround(xs[i])), `${d} f32 ${xs[i]}`);
      D.setElement(d, one, i, xs[i]);
      c.eq(D.getElement(d, one, i), want, `${d} setElement ${xs[i]}`);
    }
    t.deepEqual(Array.from(one), Array.from(s), `${d}: setElement storage equals encode storage`);
  }
  c.done();
  t.deepEqual(Array.from(D.encode('int8', [300, -300, 5.9, -5.9, NaN])), [127, -128, 5, -5, 0]);
  t.deepEqual(Array.from(D.encode('uint8', [-5, 256.5, 3.99, NaN])), [0, 255, 3, 0]);
  t.deepEqual(Array.from(D.encode('int32', [1e10, -1e10, -7.9])), [2147483647, -2147483648, -7]);
  t.deepEqual(Array.from(D.encode('bool', [0, -0, 1, NaN, -3, 0.1])), [0, 0, 1, 1, 1, 1]);
  t.deepEqual(Array.from(D.decode('bool', new Uint8Array([0, 1, 2, 255]), 4)), [0, 1, 1, 1], 'any nonzero byte decodes to 1');
  t.end();
});

test('int4/uint4 packing: element 2i low nibble, 2i+1 high nibble', (t) => {
  t.deepEqual(Array.from(D.encode('int4', [1, -2, 7])), [0xe1, 0x07], 'int4 [1,-2,7] -> [0xE1, 0x07]');
  t.deepEqual(Array.from(D.encode('uint4', [1, 2, 3, 15, 0])), [0x21, 0xf3, 0x00]);
  t.deepEqual(Array.from(D.encode('int4', [-8, 7, -1, 0])), [0x78, 0x0f]);
  t.deepEqual(Array.from(D.encode('int4', [9, -9.9])), [0x87], 'saturates to 7, -8');
  t.deepEqual(Array.from(D.encode('uint4', [16, -1, 2.9])), [0x0f, 0x02]);
  const c = checker(t, 'all 256 nibble pairs');
  for (const [d, lo] of [['int4', -8], ['uint4', 0]]) {
    for (let a = lo; a < lo + 16; a++) {
      for (let b = lo; b < lo + 16; b++) {
        const s = D.encode(d, [a, b]);
        c.eq(s.length, 1, `${d} length`);
        c.eq(s[0], (a & 15) | ((b & 15) << 4), `${d} byte of [${a}, ${b}]`);
        c.eq(D.getElement(d, s, 0), a, `${d} get 0 of [${a}, ${b}]`);
        c.eq(D.getElement(d, s, 1), b, `${d} get 1 of [${a}, ${b}]`);
        const back = D.decode(d, s, 2);
        c.eq(back[0], a, `${d} decode 0`);
        c.eq(back[1], b, `${d} decode 1`);
      }
    }
  }
  c.done();
  // setElement changes one nibble only
  const s = D.encode('int4', [1, 2, 3, 4, 5]);
  D.setElement('int4', s, 3, -3);
  D.setElement('int4', s, 4, -8);
  t.deepEqual(Array.from(s), [0x21, 0xd3, 0x08]);
  t.deepEqual(Array.from(D.decode('int4', s, 5)), [1, 2, 3, -3, -8]);
  t.deepEqual(Array.from(D.decodeF32('uint4', new Uint8Array([0xf0, 0x1e]), 3)), [0, 15, 14]);
  t.end();
});

test('castStorage: every pair of dtypes on a sample, exact single rounding, round trips', (t) => {
  const next = rng(777);
  const sample = [0, -0, 1, -1, 0.5, 1 / 3, -2.75, 65504, 65520, 448, 464, 1e10, -1e-10, Infinity, -Infinity, NaN, 127.5, -8.5, 300];
  sample.push(2 ** 24 + 2 ** 16 + 1, -(2 ** 24 + 2 ** 16 + 1)); // int32 -> bfloat16 via f32 would round twice
  for (let b = 0; b < 256; b++) sample.push(refDecode(FMT.float8_e4m3fn, b), refDecode(FMT.float8_e5m2, b));
  for (let i = 0; i < 400; i++) sample.push(refDecode(FMT.float16, next() % 65536), refDecode(FMT.bfloat16, next() % 65536));
  for (let i = 0; i < 1000; i++) sample.push((next() / 2 ** 32 - 0.5) * 2 ** ((next() % 40) - 20));
  const n = sample.length; // > 1024: the byte-table path; the first 100 elements take the other path
  const valuesOf = (d, s, m) => Array.from(D.decode(d, s, m));
  const c = checker(t, `${D.DTYPES.length}x${D.DTYPES.length} casts of ${n} elements`);
  for (const from of D.DTYPES) {
    const src = D.encode(from, sample);
    const srcVals = valuesOf(from, src, n);
    for (const to of D.DTYPES) {
      for (const m of [n, 100]) {
        const out = D.castStorage(from, to, src, m);
        c.eq(out instanceof D.allocStorage(to, 0).constructor, true, `${from}->${to} storage type`);
        const got = valuesOf(to, out, m);
        for (let i = 0; i < m; i++) c.eq(got[i], refRound(to, srcVals[i]), `${from}->${to} [${i}] ${srcVals[i]}`);
        if (m === n && FMT[to]) {
          for (let i = 0; i < n; i++) c.eq(out[i], refEncode(FMT[to], srcVals[i]), `${from}->${to} code [${i}] ${srcVals[i]}`);
        }
      }
    }
  }
  c.done();
  const orig = D.encode('float16', [1, 2]);
  const copy = D.castStorage('float16', 'float16', orig, 2);
  copy[0] = 0;
  t.equal(orig[0], 0x3c00, 'same-dtype cast does not alias');

  // round trips between the float dtypes: widening then narrowing returns the original bits
  const widening = [
    ['float16', 'float32'], ['float16', 'float64'], ['bfloat16', 'float32'], ['bfloat16', 'float64'], ['float32', 'float64'],
    ['float8_e4m3fn', 'float16'], ['float8_e4m3fn', 'bfloat16'], ['float8_e4m3fn', 'float32'], ['float8_e4m3fn', 'float64'],
    ['float8_e5m2', 'float16'], ['float8_e5m2', 'bfloat16'], ['float8_e5m2', 'float32'], ['float8_e5m2', 'float64'],
  ];
  const r = checker(t, 'float round trips');
  for (const from of FLOATS) {
    const src = D.encode(from, sample);
    const srcVals = valuesOf(from, src, n);
    for (const to of FLOATS) {
      const back = D.castStorage(to, from, D.castStorage(from, to, src, n), n);
      const backVals = valuesOf(from, back, n);
      const exact = from === to || widening.some(([a, b]) => a === from && b === to);
      for (let i = 0; i < n; i++) {
        const want = exact ? srcVals[i] : refRound(from, refRound(to, srcVals[i]));
        r.eq(backVals[i], want, `${from}->${to}->${from} ${srcVals[i]}`);
        if (exact && !Number.isNaN(srcVals[i]) && FMT[from]) r.eq(back[i], src[i], `${from}->${to}->${from} bits ${srcVals[i]}`);
      }
    }
  }
  r.done();
  t.end();
});

test('decode into a caller-supplied Float32Array / Float64Array; float64 and int32 round to f32', (t) => {
  const o32 = new Float32Array(3);
  t.equal(D.decode('float64', new Float64Array([0.1, 1 + 2 ** -30, 1e300]), 3, o32), o32);
  t.deepEqual(Array.from(o32), [Math.fround(0.1), 1, Infinity]);
  t.deepEqual(Array.from(D.decodeF32('int32', new Int32Array([16777217, -16777219]), 2)), [16777216, -16777220]);
  const o64 = new Float64Array(4).fill(9);
  D.decode('bfloat16', new Uint16Array([0x3f80, 0xc000, 0x0001]), 3, o64);
  t.deepEqual(Array.from(o64), [1, -2, 2 ** -133, 9]);
  t.deepEqual(Array.from(D.decodeF32('bfloat16', new Uint16Array([0x3f80, 0xc000, 0x0001]), 3)), [1, -2, 2 ** -133]);
  t.ok(Number.isNaN(D.decodeF32('bfloat16', new Uint16Array([0x7fc1]), 1)[0]));
  t.deepEqual(Array.from(D.encode('float16', new Float32Array([1, 2, 3]), 2)), [0x3c00, 0x4000], 'n < src.length');
  t.deepEqual(Array.from(D.encode('float32', [0.1, 2], 1)), [Math.fround(0.1)]);
  t.equal(D.castScalar('float16', 1 / 3), 0.333251953125);
  t.equal(D.castScalar('float8_e4m3fn', 1000), 448);
  t.equal(D.castScalar('int4', -100), -8);
  t.end();
});
