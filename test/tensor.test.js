'use strict';
// The Tensor front end through the public API (require('../dist')): creation and dtype inference, storage
// formats (raw float16 bits, packed int4), random generators, views (index math written here), dtype
// conversion against a float64 model of each format, printing, dispose/memory accounting, async reads,
// and a handful of ops checked against hand values and float64 formulas. NaN never passes a comparison.
const test = require('tape');
const t = require('../dist');

// ---- helpers ---------------------------------------------------------------------------------------

const numel = (shape) => shape.reduce((p, d) => p * d, 1);

/** Exact equality element by element (NaN equals NaN only where the expected value is NaN; -0 is not +0). */
function sameValues(a, got, want, msg) {
  const g = Array.from(got);
  const w = Array.from(want);
  let bad = g.length === w.length ? -1 : -2;
  for (let i = 0; bad === -1 && i < w.length; i++) if (!Object.is(g[i], w[i])) bad = i;
  a.ok(bad === -1, bad === -1 ? msg : `${msg}: ${bad === -2 ? `length ${g.length} vs ${w.length}` : `at ${bad} got ${g[bad]}, want ${w[bad]}`}`);
}

/** |got - want| <= atol + rtol·|want| everywhere; NaN anywhere fails (NaN comparisons are false). */
function close(a, got, want, msg, rtol = 1e-6, atol = 1e-6) {
  const g = Array.from(got);
  const w = Array.from(want);
  let bad = g.length === w.length ? -1 : -2;
  for (let i = 0; bad === -1 && i < w.length; i++) {
    if (!(Math.abs(g[i] - w[i]) <= atol + rtol * Math.abs(w[i]))) bad = i;
  }
  a.ok(bad === -1, bad === -1 ? msg : `${msg}: ${bad === -2 ? `length ${g.length} vs ${w.length}` : `at ${bad} got ${g[bad]}, want ${w[bad]}`}`);
}

/** Row-major flat values of an index function over shape. */
function build(shape, f) {
  const out = [];
  const idx = new Array(shape.length).fill(0);
  const n = numel(shape);
  for (let k = 0; k < n; k++) {
    out.push(f(idx));
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

function roundHalfEven(v) {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * float64 model of a binary float format: mbits mantissa bits, smallest normal exponent emin, largest finite
 * value max; overflow gives ±inf (IEEE formats) or ±max (saturating e4m3fn). Rounds once, to nearest-even.
 */
const FORMATS = {
  float32: { mbits: 23, emin: -126, max: (2 - 2 ** -23) * 2 ** 127, sat: false },
  float16: { mbits: 10, emin: -14, max: 65504, sat: false },
  bfloat16: { mbits: 7, emin: -126, max: (2 - 2 ** -7) * 2 ** 127, sat: false },
  float8_e4m3fn: { mbits: 3, emin: -6, max: 448, sat: true },
  float8_e5m2: { mbits: 2, emin: -14, max: 57344, sat: false },
};
function roundTo(fmt, x) {
  const f = FORMATS[fmt];
  if (Number.isNaN(x)) return NaN;
  if (!Number.isFinite(x)) return f.sat ? Math.sign(x) * f.max : x;
  if (x === 0) return x;
  const s = Math.sign(x);
  const m = Math.abs(x);
  let e = Math.floor(Math.log2(m));
  if (2 ** e > m) e--; // log2 can be off by one next to powers of two
  if (2 ** (e + 1) <= m) e++;
  const ulp = 2 ** (Math.max(e, f.emin) - f.mbits);
  const r = roundHalfEven(m / ulp) * ulp; // exponent unbounded above: a carry past max shows up as r > max
  if (r > f.max) return f.sat ? s * f.max : s * Infinity;
  return r === 0 ? s * 0 : s * r;
}

/** Integer conversion rule of the library: truncate toward zero, saturate, NaN -> 0. */
function toIntRef(x, lo, hi) {
  if (Number.isNaN(x)) return 0;
  const v = Math.trunc(x);
  return Math.min(Math.max(v, lo), hi) + 0; // + 0 turns -0 into 0
}

/** erf by its Maclaurin series (float64, |x| <= 4 here), an independent check of gelu. */
function erf(x) {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
    if (Math.abs(term) < 1e-18) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** The backend TESSERA_BACKEND forced at import (null: none), so tests can put it back after setBackend. */
const ENV_BACKEND = (() => {
  const b = t.backends().find((x) => x.name === process.env.TESSERA_BACKEND && x.available);
  return b ? b.name : null;
})();
const restoreBackend = () => t.setBackend(ENV_BACKEND);

function f32(values) {
  return Array.from(values, Math.fround);
}

// ---- creation ------------------------------------------------------------------------------------

test('tensor(): numbers, nested arrays, booleans and typed arrays, with dtype inference', (a) => {
  const s = t.tensor(2.5);
  a.deepEqual([s.shape, s.dtype, s.ndim, s.size, s.item()], [[], 'float32', 0, 1, 2.5], 'a number gives a 0-d float32');
  const b = t.tensor(true);
  a.deepEqual([b.shape, b.dtype, b.toArray()], [[], 'bool', true], 'a boolean gives a 0-d bool');

  const n = t.tensor([[1, 2, 3], [4, 5, 6]]);
  a.deepEqual([n.shape, n.dtype], [[2, 3], 'float32'], 'nested numbers -> float32 [2, 3]');
  a.deepEqual(n.toArray(), [[1, 2, 3], [4, 5, 6]], 'nested values round-trip through toArray');
  sameValues(a, t.tensor([0.1, 1 / 3]).toFloat64(), f32([0.1, 1 / 3]), 'float32 storage rounds like Math.fround');

  const bools = t.tensor([[true, false], [false, true]]);
  a.equal(bools.dtype, 'bool', 'nested booleans -> bool');
  a.deepEqual(bools.toArray(), [[true, false], [false, true]], 'bool toArray gives booleans');
  sameValues(a, bools.data(), [1, 0, 0, 1], 'bool storage is one byte 0/1 per element');

  const cases = [
    [new Float32Array([1.5, -2]), 'float32'],
    [new Float64Array([1.5, -2]), 'float64'],
    [new Int32Array([7, -9]), 'int32'],
    [new Int8Array([7, -9]), 'int8'],
    [new Uint8Array([7, 9]), 'uint8'],
  ];
  for (const [arr, dtype] of cases) {
    const x = t.tensor(arr);
    a.deepEqual([x.dtype, x.shape], [dtype, [2]], `${arr.constructor.name} -> ${dtype}`);
    sameValues(a, x.toFloat64(), Array.from(arr), `${arr.constructor.name} values kept`);
  }
  const src = new Float32Array([1, 2, 3, 4, 5, 6]);
  const sh = t.tensor(src, { shape: [3, 2] });
  a.deepEqual(sh.toArray(), [[1, 2], [3, 4], [5, 6]], 'options.shape lays the flat data out row-major');
  src[0] = 100;
  a.equal(sh.toArray()[0][0], 1, 'tensor() copies its input (mutating the source later changes nothing)');
  const h = t.tensor([1 / 3, 70000, -1e-8], { dtype: 'float16' });
  sameValues(a, h.toFloat64(), [0.333251953125, Infinity, -0], 'options.dtype converts (float16: RNE, overflow -> inf, signed zero)');
  const e = t.tensor([]);
  a.deepEqual([e.shape, e.dtype, e.size], [[0], 'float32', 0], 'tensor([]) is an empty float32 [0]');
  a.deepEqual(t.tensor([[]]).shape, [1, 0], 'tensor([[]]) has shape [1, 0]');
  a.end();
});

test('fromTypedArray: raw float16/bfloat16/fp8 bits and packed int4 (low nibble first)', (a) => {
  const bits = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x7c00, 0x8000, 0x0400]);
  const h = t.fromTypedArray(bits, { dtype: 'float16' });
  a.deepEqual([h.dtype, h.shape], ['float16', [8]], 'Uint16Array + dtype float16');
  sameValues(a, h.toFloat64(), [1, -2, 0.333251953125, 65504, 2 ** -24, Infinity, -0, 2 ** -14], 'float16 bits decode by hand');
  sameValues(a, h.data(), bits, 'data() gives the same raw bits back');
  bits[0] = 0;
  a.equal(h.toFloat64()[0], 1, 'fromTypedArray copies its input');

  const bf = t.fromTypedArray(new Uint16Array([0x3f80, 0x4049, 0xbf00, 0x0001]), { dtype: 'bfloat16' });
  sameValues(a, bf.toFloat64(), [1, 3.140625, -0.5, 2 ** -133], 'bfloat16 bits decode by hand');
  const e4 = t.fromTypedArray(new Uint8Array([0x38, 0x7e, 0x01, 0xb8, 0x7f]), { dtype: 'float8_e4m3fn' });
  sameValues(a, e4.toFloat64(), [1, 448, 2 ** -9, -1, NaN], 'float8_e4m3fn bits decode by hand (0x7f is NaN)');

  const q = t.fromTypedArray(new Uint8Array([0xe1, 0x07]), { dtype: 'int4' });
  a.deepEqual(q.shape, [4], 'int4 without shape: two elements per byte');
  sameValues(a, q.toFloat64(), [1, -2, 7, 0], 'bytes E1 07 -> 1, -2, 7, 0 (low nibble first, two\'s complement)');
  const q3 = t.fromTypedArray(new Uint8Array([0xe1, 0x07]), { dtype: 'int4', shape: [3] });
  sameValues(a, q3.toFloat64(), [1, -2, 7], 'int4 with shape [3] uses 3 nibbles');
  const u = t.fromTypedArray(new Uint8Array([0xe1, 0x80]), { dtype: 'uint4', shape: [2, 2] });
  a.deepEqual(u.toArray(), [[1, 14], [0, 8]], 'uint4 nibbles are 0..15');
  const enc = t.tensor([1, -2, 7], { dtype: 'int4' });
  sameValues(a, enc.data(), [0xe1, 0x07], 'tensor(..., int4) packs 1, -2, 7 into E1 07 (high nibble of the odd tail is 0)');
  a.end();
});

test('zeros / ones / full / arange', (a) => {
  const z = t.zeros([2, 3]);
  a.deepEqual([z.shape, z.dtype, Array.from(z.toFloat64())], [[2, 3], 'float32', [0, 0, 0, 0, 0, 0]], 'zeros');
  const o = t.ones([3], { dtype: 'bfloat16' });
  a.deepEqual([o.dtype, Array.from(o.data())], ['bfloat16', [0x3f80, 0x3f80, 0x3f80]], 'ones bfloat16 stores 0x3f80');
  const f = t.full([3], -1, { dtype: 'int4' });
  sameValues(a, f.data(), [0xff, 0x0f], 'full int4 -1 x3 packs FF 0F');
  sameValues(a, f.toFloat64(), [-1, -1, -1], 'and reads back -1');
  a.equal(t.full([2], true).dtype, 'bool', 'full with a boolean gives bool');
  sameValues(a, t.full([2], 1 / 3, { dtype: 'float16' }).toFloat64(), [0.333251953125, 0.333251953125], 'full rounds the value to the dtype');
  a.deepEqual(t.zeros([]).shape, [], 'zeros([]) is 0-d');

  const r = t.arange(5);
  a.deepEqual([r.dtype, Array.from(r.toFloat64())], ['int32', [0, 1, 2, 3, 4]], 'arange(5): int32 0..4');
  sameValues(a, t.arange(2, 11, 3).toFloat64(), [2, 5, 8], 'arange(2, 11, 3)');
  const neg = t.arange(5, 0, -2);
  a.deepEqual([neg.dtype, Array.from(neg.toFloat64())], ['int32', [5, 3, 1]], 'arange(5, 0, -2): negative int step');
  const fl = t.arange(0, 1, 0.25);
  a.deepEqual([fl.dtype, Array.from(fl.toFloat64())], ['float32', [0, 0.25, 0.5, 0.75]], 'float step -> float32');
  sameValues(a, t.arange(1, 0, -0.3).toFloat64(), f32([1, 1 - 0.3, 1 - 0.6, 1 - 0.8999999999999999]), 'negative float step: start + i*step, rounded to f32');
  sameValues(a, t.arange(0, 0.3, 0.1).toFloat64(), f32([0, 0.1, 0.2]), 'length ceil((end-start)/step) = 3');
  a.equal(t.arange(3, 3).size, 0, 'empty range');
  a.equal(t.arange(0, 3, -1).size, 0, 'step pointing away from end gives an empty range');
  a.equal(t.arange(4, { dtype: 'float16' }).dtype, 'float16', 'arange(end, options)');
  a.end();
});

test('randn / rand / randint: seeded, reproducible, right statistics', (a) => {
  const x1 = t.randn([1000], { seed: 42 });
  const x2 = t.randn([1000], { seed: 42 });
  const x3 = t.randn([1000], { seed: 43 });
  sameValues(a, x1.data(), x2.data(), 'same seed -> identical values');
  const d1 = x1.toFloat64();
  const d3 = x3.toFloat64();
  let differ = 0;
  for (let i = 0; i < d1.length; i++) if (d1[i] !== d3[i]) differ++;
  a.ok(differ > 990, `different seed -> different values (${differ}/1000 differ)`);

  const big = t.randn([100000], { seed: 7, dtype: 'float64' }).toFloat64();
  let mean = 0;
  for (const v of big) mean += v;
  mean /= big.length;
  let v2 = 0;
  for (const v of big) v2 += (v - mean) ** 2;
  const std = Math.sqrt(v2 / big.length);
  a.ok(Math.abs(mean) < 0.02, `randn mean ${mean.toFixed(4)} within 0.02 of 0`);
  a.ok(Math.abs(std - 1) < 0.02, `randn std ${std.toFixed(4)} within 0.02 of 1`);
  a.ok(big.every(Number.isFinite), 'randn samples are finite');

  t.manualSeed(123);
  const g1 = t.randn([16]).toFloat64();
  t.manualSeed(123);
  const g2 = t.randn([16]).toFloat64();
  sameValues(a, g1, g2, 'manualSeed resets the default generator');

  const u = t.rand([100000], { seed: 3 }).toFloat64();
  let lo = Infinity;
  let hi = -Infinity;
  let um = 0;
  for (const v of u) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
    um += v;
  }
  um /= u.length;
  a.ok(lo >= 0 && hi < 1, `rand in [0, 1): min ${lo}, max ${hi}`);
  a.ok(Math.abs(um - 0.5) < 0.01, `rand mean ${um.toFixed(4)} ~ 0.5`);
  a.equal(t.rand([2], { dtype: 'float16' }).dtype, 'float16', 'rand honours a float dtype');

  const ri = t.randint(-3, 4, [20000], { seed: 1 });
  a.equal(ri.dtype, 'int32', 'randint gives int32');
  const counts = new Map();
  for (const v of ri.toFloat64()) counts.set(v, (counts.get(v) || 0) + 1);
  a.deepEqual([...counts.keys()].sort((p, q) => p - q), [-3, -2, -1, 0, 1, 2, 3], 'randint(-3, 4) hits exactly -3..3');
  a.ok([...counts.values()].every((c) => Math.abs(c - 20000 / 7) < 300), 'randint is roughly uniform');
  a.end();
});

// ---- properties, reading -------------------------------------------------------------------------

test('shape, dtype, device, strides, size, ndim; data() is a copy in storage format', (a) => {
  const x = t.arange(24).reshape(2, 3, 4);
  a.deepEqual([x.shape, x.strides, x.size, x.ndim, x.numel(), x.dtype, x.device, x.offset], [[2, 3, 4], [12, 4, 1], 24, 3, 24, 'int32', 'cpu', 0], 'properties');
  a.ok(x.data() instanceof Int32Array, 'int32 data() is an Int32Array');
  const d = x.data();
  d[0] = 99;
  a.equal(x.toFloat64()[0], 0, 'mutating data() does not change the tensor');
  const h = t.tensor([1, -2], { dtype: 'float16' });
  a.ok(h.data() instanceof Uint16Array, 'float16 data() is a Uint16Array of bits');
  sameValues(a, h.data(), [0x3c00, 0xc000], 'float16 bits of 1 and -2');
  a.ok(t.tensor([1], { dtype: 'float8_e5m2' }).data() instanceof Uint8Array, 'fp8 data() is a Uint8Array');
  const tr = t.tensor([[1, 2, 3], [4, 5, 6]]).transpose();
  sameValues(a, tr.data(), [1, 4, 2, 5, 3, 6], 'data() of a view is the contiguous copy in logical order');
  const f = t.tensor([1.5, 2], { dtype: 'float64' }).toFloat32();
  a.ok(f instanceof Float32Array, 'toFloat32 gives a Float32Array');
  a.deepEqual(t.tensor([[[1], [2]]]).toArray(), [[[1], [2]]], 'toArray nests like the shape');
  a.equal(t.tensor([[7]]).item(), 7, 'item of a one-element tensor');
  a.equal(t.tensor(2 ** 31 - 1, { dtype: 'int32' }).item(), 2147483647, 'item is exact for int32');
  a.end();
});

test('async reads: dataAsync / toFloat32Async', async (a) => {
  const x = t.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float16' });
  const d = await x.dataAsync();
  a.ok(d instanceof Uint16Array, 'dataAsync keeps the storage format');
  sameValues(a, d, x.data(), 'dataAsync equals data()');
  const v = x.transpose();
  sameValues(a, await v.toFloat32Async(), [1, 4, 2, 5, 3, 6], 'toFloat32Async of a view');
  a.end();
});

// ---- views ---------------------------------------------------------------------------------------

test('views: reshape, permute, transpose, slice, select, expand, squeeze, unsqueeze share storage', (a) => {
  const base = t.arange(24).to('float32');
  const x = base.reshape(2, 3, 4); // x[i][j][k] = 12i + 4j + k
  const val = (i, j, k) => 12 * i + 4 * j + k;
  const storages = t.memory().cpu.storages;
  const views = [];
  const check = (v, shape, f, msg) => {
    views.push(v);
    a.deepEqual(v.shape, shape, `${msg}: shape`);
    sameValues(a, v.toFloat64(), build(shape, f), `${msg}: values by index math`);
  };
  check(x.reshape(4, -1), [4, 6], ([r, c]) => 6 * r + c, 'reshape(4, -1)');
  check(x.reshape([-1]), [24], ([i]) => i, 'reshape([-1])');
  check(x.permute(2, 0, 1), [4, 2, 3], ([k, i, j]) => val(i, j, k), 'permute(2, 0, 1)');
  check(x.permute([1, -1, 0]), [3, 4, 2], ([j, k, i]) => val(i, j, k), 'permute([1, -1, 0])');
  check(x.transpose(0, 2), [4, 3, 2], ([k, j, i]) => val(i, j, k), 'transpose(0, 2)');
  check(x.transpose(), [2, 4, 3], ([i, k, j]) => val(i, j, k), 'transpose() swaps the last two');
  check(x.slice(2, 1, 3), [2, 3, 2], ([i, j, k]) => val(i, j, k + 1), 'slice(2, 1, 3)');
  check(x.slice(2, -3, 4, 2), [2, 3, 2], ([i, j, k]) => val(i, j, 1 + 2 * k), 'slice(2, -3, 4, 2): negative start, step 2');
  check(x.slice(1, -1), [2, 1, 4], ([i, , k]) => val(i, 2, k), 'slice(1, -1): the last row');
  check(x.slice(2, 0, 100, 3), [2, 3, 2], ([i, j, k]) => val(i, j, 3 * k), 'slice end past the size is clamped');
  check(x.slice(0, 5), [0, 3, 4], () => 0, 'slice start past the size is empty');
  check(x.select(1, -1), [2, 4], ([i, k]) => val(i, 2, k), 'select(1, -1)');
  check(x.select(0, 1).select(1, 2), [3], ([j]) => val(1, j, 2), 'select twice');
  check(x.permute(2, 0, 1).slice(0, 1, 4, 2).select(2, 1), [2, 2], ([k, i]) => val(i, 1, 1 + 2 * k), 'permute -> slice step -> select');
  check(x.slice(1, 0, 1).expand(2, 5, 4), [2, 5, 4], ([i, , k]) => val(i, 0, k), 'expand a size-1 dim');
  check(x.select(0, 0).select(0, 1).expand(3, -1), [3, 4], ([, k]) => val(0, 1, k), 'expand adds a leading dim; -1 keeps a dim');
  check(x.slice(1, 0, 1).squeeze(), [2, 4], ([i, k]) => val(i, 0, k), 'squeeze()');
  check(x.slice(1, 0, 1).squeeze(0), [2, 1, 4], ([i, , k]) => val(i, 0, k), 'squeeze(0) of a non-1 dim is a no-op');
  check(x.unsqueeze(1), [2, 1, 3, 4], ([i, , j, k]) => val(i, j, k), 'unsqueeze(1)');
  check(x.unsqueeze(-1), [2, 3, 4, 1], ([i, j, k]) => val(i, j, k), 'unsqueeze(-1)');
  check(x.transpose(0, 1).reshape(3, 8), [3, 8], ([j, c]) => val(Math.floor(c / 4), j, c % 4), 'reshape of a non-contiguous view copies correctly');
  a.equal(t.memory().cpu.storages, storages + 1, 'only the reshape of the non-contiguous view allocated storage');
  const ex = x.slice(1, 0, 1).expand(2, 5, 4);
  a.deepEqual(ex.strides, [12, 0, 1], 'expand gives stride 0 along the broadcast dim');
  a.ok(!x.transpose().isContiguous() && x.isContiguous(), 'isContiguous');
  views.forEach((v) => v.dispose());
  a.end();
});

test('contiguous() of a permuted view equals a manual transpose', (a) => {
  const m = t.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]);
  const c = m.transpose().contiguous();
  a.ok(c.isContiguous(), 'contiguous() result is contiguous');
  a.deepEqual(c.strides, [3, 1], 'with row-major strides');
  const rows = m.toArray();
  const manual = [];
  for (let j = 0; j < 4; j++) for (let i = 0; i < 3; i++) manual.push(rows[i][j]);
  sameValues(a, c.toFloat64(), manual, 'values equal the manual transpose');
  const h = t.tensor([[1, 2], [3, 4]], { dtype: 'bfloat16' }).permute(1, 0).contiguous();
  sameValues(a, h.data(), [0x3f80, 0x4040, 0x4000, 0x4080], 'bfloat16 contiguous copy is bit-exact (1, 3, 2, 4)');
  a.end();
});

test('packed int4 views: slice, select, transpose, expand give correct values', (a) => {
  const vals = [1, -2, 3, -4, 5, -6, 7, -8, 0];
  const q = t.tensor(vals, { dtype: 'int4' });
  sameValues(a, q.slice(0, 1, 8, 3).toFloat64(), [vals[1], vals[4], vals[7]], 'slice(0, 1, 8, 3)');
  const odd = q.slice(0, 1, 4);
  sameValues(a, odd.toFloat64(), [-2, 3, -4], 'slice at an odd offset');
  sameValues(a, odd.data(), [0x3e, 0x0c], 'its data() repacks from the odd nibble: 3E 0C');
  const m = q.reshape(3, 3);
  a.deepEqual(m.transpose().toArray(), [[1, -4, 7], [-2, 5, -8], [3, -6, 0]], 'transpose of int4 [3, 3]');
  a.deepEqual(m.select(1, 2).toArray(), [3, -6, 0], 'select column 2');
  a.deepEqual(t.tensor([1, -2], { dtype: 'int4' }).expand(3, 2).toArray(), [[1, -2], [1, -2], [1, -2]], 'expand');
  a.deepEqual(t.tensor([3, 12], { dtype: 'uint4' }).unsqueeze(0).toArray(), [[3, 12]], 'uint4 unsqueeze');
  a.end();
});

// ---- dtype conversion ----------------------------------------------------------------------------

test('to(dtype): every float format rounds like its float64 model', (a) => {
  // hand values first
  sameValues(a, t.tensor([1 / 3], { dtype: 'float64' }).to('float16').toFloat64(), [0.333251953125], 'float16(1/3) = 0.333251953125');
  sameValues(a, t.tensor([1 / 3], { dtype: 'float64' }).to('bfloat16').toFloat64(), [0.333984375], 'bfloat16(1/3) = 0.333984375');
  sameValues(a, t.tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 2 ** -25, 3 * 2 ** -26], { dtype: 'float64' }).to('float16').toFloat64(),
    [1, 1 + 2 ** -9, 65504, Infinity, 0, 2 ** -24], 'float16 ties to even, overflow at 65520, subnormal rounding');
  sameValues(a, t.tensor([500, -1e6, Infinity, NaN, 0.0078125 * 1.5], { dtype: 'float64' }).to('float8_e4m3fn').toFloat64(),
    [448, -448, 448, NaN, 0.01171875], 'e4m3fn saturates at ±448, NaN stays NaN');
  sameValues(a, t.tensor([61439, 61440, -0], { dtype: 'float64' }).to('float8_e5m2').toFloat64(), [57344, Infinity, -0], 'e5m2 overflows to inf at 61440');

  // then a sweep of doubles over the whole range of each format, including exact ties
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const xs = [0, -0, NaN, Infinity, -Infinity, 1, -1, 0.1, 1e-45, 3e38, 3.5e38, 65504, 65505, 2 ** -24, 448, 449, 464, 57344];
  for (let i = 0; i < 3000; i++) xs.push((next() < 0.5 ? -1 : 1) * 2 ** (next() * 300 - 150) * (1 + next()));
  for (let i = 0; i < 200; i++) {
    const e = Math.floor(next() * 40) - 20;
    xs.push((1 + (2 * Math.floor(next() * 64) + 1) / 2 ** 8) * 2 ** e); // ties for e4m3/e5m2 mantissas
    xs.push((1 + (2 * Math.floor(next() * 2048) + 1) / 2 ** 11) * 2 ** e); // ties for float16
  }
  const src = t.tensor(Float64Array.from(xs));
  for (const fmt of Object.keys(FORMATS)) {
    const got = src.to(fmt);
    a.equal(got.dtype, fmt, `to('${fmt}') dtype`);
    sameValues(a, got.toFloat64(), xs.map((x) => roundTo(fmt, x)), `float64 -> ${fmt} matches the float64 model on ${xs.length} values`);
  }
  sameValues(a, xs.map((x) => roundTo('float32', x)), xs.map(Math.fround), 'the model agrees with Math.fround for float32 (checks the model)');
  const f32src = src.to('float32');
  for (const fmt of ['float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2']) {
    const vals = f32src.toFloat64();
    sameValues(a, f32src.to(fmt).toFloat64(), Array.from(vals, (x) => roundTo(fmt, x)), `float32 -> ${fmt} rounds the f32 value once`);
  }
  sameValues(a, src.to('float16').to('float64').toFloat64(), xs.map((x) => roundTo('float16', x)), 'widening back is exact');
  a.end();
});

test('to(dtype): integers truncate toward zero and saturate; bool is nonzero', (a) => {
  const xs = [2.9, -2.9, 300, -300, NaN, Infinity, -Infinity, 0.5, -0.5, 7.99, 3e9, -3e9, 0];
  const src = t.tensor(Float64Array.from(xs));
  const ranges = { int8: [-128, 127], uint8: [0, 255], int32: [-2147483648, 2147483647], int4: [-8, 7], uint4: [0, 15] };
  for (const [d, [lo, hi]] of Object.entries(ranges)) {
    sameValues(a, src.to(d).toFloat64(), xs.map((x) => toIntRef(x, lo, hi)), `float64 -> ${d}`);
  }
  sameValues(a, src.to('bool').toFloat64(), xs.map((x) => (x !== 0 ? 1 : 0)), 'float64 -> bool (NaN is true)');
  sameValues(a, t.tensor([-7, 100], { dtype: 'int32' }).to('int4').toFloat64(), [-7, 7], 'int32 -> int4 saturates');
  sameValues(a, t.tensor([2 ** 24 + 1], { dtype: 'int32' }).to('float32').toFloat64(), [2 ** 24], 'int32 -> float32 rounds to nearest-even');
  const same = t.tensor([1, 2]);
  a.notEqual(same.to('float32'), same, 'to(same dtype) returns a new handle');
  a.end();
});

// ---- printing ------------------------------------------------------------------------------------

test('toString: PyTorch-style, elided when large', (a) => {
  a.equal(String(t.tensor([[1, 2], [3, 4]])), 'tensor([[1., 2.],\n        [3., 4.]])', '2-D float32 of integers');
  a.equal(String(t.tensor([1.5, -2.25])), 'tensor([ 1.5000, -2.2500])', 'fixed 4 decimals, padded to one width');
  a.equal(String(t.arange(3)), 'tensor([0, 1, 2])', 'int32 prints no dtype');
  a.equal(String(t.tensor([true, false])), 'tensor([ True, False])', 'bool');
  a.equal(String(t.tensor([1 / 3], { dtype: 'float16' })), 'tensor([0.3333], dtype=float16)', 'non-default dtype is named');
  a.equal(String(t.tensor([1, 2], { dtype: 'int8' })), 'tensor([1, 2], dtype=int8)', 'int8');
  a.equal(String(t.tensor(3)), 'tensor(3.)', '0-d');
  a.equal(String(t.tensor([1e-5, 1])), 'tensor([1.0000e-05, 1.0000e+00])', 'scientific with a two-digit exponent, as torch');
  a.equal(String(t.arange(8).to('float32').reshape(2, 2, 2)),
    'tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])', '3-D with a blank line between blocks');
  a.equal(String(t.tensor([0.5, NaN, -Infinity])), 'tensor([0.5000,    nan,   -inf])', 'nan and inf');
  a.equal(String(t.zeros([2, 0])), 'tensor([], size=[2, 0])', 'empty');
  a.equal(String(t.arange(2000)), 'tensor([   0,    1,    2, ..., 1997, 1998, 1999])', 'more than 1000 elements: first and last 3');
  const big = String(t.arange(2000).reshape(40, 50));
  a.equal(big.split('\n').length, 7, 'elided 2-D prints 3 + ... + 3 rows');
  a.ok(big.startsWith('tensor([[   0,    1,    2, ...,   47,   48,   49],') && big.includes('        ...,\n'), 'elided rows and columns');
  a.end();
});

// ---- dispose and memory --------------------------------------------------------------------------

test('dispose(): memory() counts return; views keep storage alive; Symbol.dispose', (a) => {
  const before = t.memory();
  const x = t.zeros([10]);
  let m = t.memory().cpu;
  a.deepEqual([m.tensors, m.storages, m.bytes], [before.cpu.tensors + 1, before.cpu.storages + 1, before.cpu.bytes + 40], 'a float32 [10] adds one tensor, one storage, 40 bytes');
  const v = x.reshape(2, 5);
  const w = x.slice(0, 2, 4);
  m = t.memory().cpu;
  a.deepEqual([m.tensors, m.storages, m.bytes], [before.cpu.tensors + 3, before.cpu.storages + 1, before.cpu.bytes + 40], 'views add tensors, not bytes');
  x.dispose();
  a.ok(x.disposed && !v.disposed, 'disposed flags');
  m = t.memory().cpu;
  a.deepEqual([m.tensors, m.bytes], [before.cpu.tensors + 2, before.cpu.bytes + 40], 'disposing the base keeps the storage while views live');
  sameValues(a, v.toFloat64(), new Array(10).fill(0), 'a view still reads after its base is disposed');
  v.dispose();
  v.dispose(); // twice is a no-op
  a.equal(t.memory().cpu.bytes, before.cpu.bytes + 40, 'still alive through the last view');
  w[Symbol.dispose]();
  a.ok(w.disposed, 'Symbol.dispose disposes (what `using` calls)');
  a.deepEqual(t.memory(), before, 'all counts back to where they were, per device');

  const h = t.zeros([3], { dtype: 'float16' });
  const q = t.zeros([3], { dtype: 'int4' });
  a.equal(t.memory().cpu.bytes - before.cpu.bytes, 6 + 2, 'float16 [3] is 6 bytes, int4 [3] is 2 bytes');
  h.dispose();
  q.dispose();
  a.equal(String(x), 'tensor(<disposed>, dtype=float32, shape=[10])', 'toString of a disposed tensor does not throw');
  a.deepEqual(t.memory(), before, 'clean again');
  a.end();
});

// ---- ops through the public API ------------------------------------------------------------------

test('elementwise: broadcasting, number scalars, dtype promotion', (a) => {
  const x = t.tensor([[1, 2, 3], [4, 5, 6]]);
  sameValues(a, t.add(x, t.tensor([10, 20, 30])).toFloat64(), [11, 22, 33, 14, 25, 36], 'add [2, 3] + [3]');
  const outer = t.mul(t.tensor([[1], [2]]), t.tensor([[3, 4, 5]]));
  a.deepEqual([outer.shape, outer.toArray()], [[2, 3], [[3, 4, 5], [6, 8, 10]]], 'mul [2, 1] * [1, 3] broadcasts both');
  sameValues(a, t.sub(10, x).toFloat64(), [9, 8, 7, 6, 5, 4], 'number on the left');
  sameValues(a, t.div(x, 3).toFloat64(), f32([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2]), 'div by a number, f32-rounded');
  const i = t.tensor([1, 2], { dtype: 'int32' });
  const f = t.add(i, 1.5);
  a.deepEqual([f.dtype, Array.from(f.toFloat64())], ['float32', [2.5, 3.5]], 'int32 tensor + 1.5 -> float32');
  const k = t.add(i, 2);
  a.deepEqual([k.dtype, Array.from(k.toFloat64())], ['int32', [3, 4]], 'int32 tensor + 2 stays int32');
  const q = t.div(i, t.tensor([2, 3], { dtype: 'int32' }));
  a.deepEqual([q.dtype, Array.from(q.toFloat64())], ['float32', [0.5, Math.fround(2 / 3)]], 'int / int is true division in float32');
  const h = t.tensor([1.5], { dtype: 'float16' });
  const promo = [
    [h, t.tensor([2.5], { dtype: 'bfloat16' }), 'float32', 4],
    [t.tensor([3], { dtype: 'int32' }), h, 'float16', 4.5],
    [t.tensor([3], { dtype: 'int8' }), t.tensor([250], { dtype: 'uint8' }), 'int32', 253],
    [t.tensor([true]), t.tensor([5], { dtype: 'int8' }), 'int8', 6],
    [t.tensor([1]), t.tensor([0.25], { dtype: 'float64' }), 'float64', 1.25],
    [h, 0.1, 'float16', roundTo('float16', 1.5 + roundTo('float16', 0.1))],
  ];
  for (const [p, r, dtype, value] of promo) {
    const out = t.add(p, r);
    const rd = typeof r === 'number' ? 'number' : r.dtype;
    a.deepEqual([out.dtype, out.toFloat64()[0]], [dtype, value], `${p.dtype} + ${rd} -> ${dtype}`);
  }
  const c = t.where(t.tensor([[true], [false]]), t.tensor([1, 2, 3]), -1);
  a.deepEqual(c.toArray(), [[1, 2, 3], [-1, -1, -1]], 'where broadcasts cond [2, 1], a [3] and a scalar');
  a.end();
});

test('reductions: sum / mean / max with dim lists and keepdim; argmax takes the first max', (a) => {
  const x = t.arange(24).to('float32').reshape(2, 3, 4); // x[i][j][k] = 12i + 4j + k
  const s = t.sum(x, { dim: [0, 2] });
  a.deepEqual(s.shape, [3], 'sum over [0, 2] -> [3]');
  sameValues(a, s.toFloat64(), [0, 1, 2].map((j) => { let v = 0; for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) v += 12 * i + 4 * j + k; return v; }), 'sum values');
  const sk = t.sum(x, { dim: [0, -1], keepdim: true });
  a.deepEqual(sk.shape, [1, 3, 1], 'keepdim keeps size-1 dims');
  const all = t.sum(x);
  a.deepEqual([all.shape, all.item()], [[], 276], 'sum of everything is 0-d: 0 + ... + 23 = 276');
  const mean = t.mean(x, { dim: -1 });
  sameValues(a, mean.toFloat64(), build([2, 3], ([i, j]) => 12 * i + 4 * j + 1.5), 'mean over the last dim');
  const mx = t.max(x, { dim: 1, keepdim: true });
  a.deepEqual([mx.shape, Array.from(mx.toFloat64())], [[2, 1, 4], [8, 9, 10, 11, 20, 21, 22, 23]], 'max over dim 1, keepdim');
  const am = t.argmax(t.tensor([[1, 3, 3], [5, 5, 0], [-1, -2, -1]]), { dim: 1 });
  a.deepEqual([am.dtype, Array.from(am.toFloat64())], ['int32', [1, 0, 0]], 'argmax returns the first of equal maxima, int32');
  a.equal(t.argmax(t.tensor([[1, 7], [7, 0]])).item(), 1, 'argmax without dim indexes the flattened tensor');
  const m8 = t.mean(t.tensor([1, 2], { dtype: 'int32' }));
  a.deepEqual([m8.dtype, m8.item()], ['float32', 1.5], 'mean of int32 is float32');
  a.end();
});

test('softmax, cat, embedding, topk, tril/triu', (a) => {
  const x = t.tensor([[1, 2, 3], [-1, 0, 1000], [0, 0, 0]]);
  const sm = t.softmax(x);
  const rows = x.toArray();
  const ref = [];
  for (const r of rows) {
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const z = e.reduce((p, q) => p + q, 0);
    ref.push(...e.map((v) => v / z));
  }
  close(a, sm.toFloat64(), ref, 'softmax vs exp(x - max) / sum, float64', 1e-6, 1e-7);
  const sums = t.sum(sm, { dim: -1 }).toFloat64();
  close(a, sums, [1, 1, 1], 'rows sum to 1', 0, 1e-6);
  const s0 = t.softmax(x, 0).toFloat64();
  close(a, [s0[0] + s0[3] + s0[6], s0[2] + s0[5] + s0[8]], [1, 1], 'softmax(dim 0) columns sum to 1', 0, 1e-6);
  a.equal(t.softmax(t.tensor(3)).item(), 1, 'softmax of a 0-d tensor is 1, as in torch');

  const c0 = t.cat([t.tensor([[1, 2]]), t.tensor([[3, 4], [5, 6]])]);
  a.deepEqual(c0.toArray(), [[1, 2], [3, 4], [5, 6]], 'cat along dim 0');
  const c1 = t.cat([t.tensor([[1], [2]]), t.tensor([[3, 4], [5, 6]], { dtype: 'float16' })], -1);
  a.deepEqual([c1.dtype, c1.toArray()], ['float32', [[1, 3, 4], [2, 5, 6]]], 'cat along -1 with dtype promotion');

  const table = t.tensor([[0, 0.5, 1], [10, 11, 12], [20, 21, 22], [30, 31, 32]]);
  const e = t.embedding(t.tensor([[3, 0], [1, 1]], { dtype: 'int32' }), table);
  a.deepEqual(e.shape, [2, 2, 3], 'embedding [2, 2] ids -> [2, 2, 3]');
  a.deepEqual(e.toArray(), [[[30, 31, 32], [0, 0.5, 1]], [[10, 11, 12], [10, 11, 12]]], 'rows picked by id');
  a.deepEqual(t.embedding(t.tensor([2], { dtype: 'uint8' }), table).toArray(), [[20, 21, 22]], 'uint8 ids');

  const tk = t.topk(t.tensor([3, 1, 4, 1, 5, 9, 2, 6]), 3);
  a.deepEqual([Array.from(tk.values.toFloat64()), Array.from(tk.indices.toFloat64()), tk.indices.dtype], [[9, 6, 5], [5, 7, 4], 'int32'], 'topk 3 largest, sorted, with indices');
  const tm = t.topk(t.tensor([[3, 1, 4], [1, 5, 9]]), 2, { largest: false });
  a.deepEqual([tm.values.toArray(), tm.indices.toArray()], [[[1, 3], [1, 5]], [[1, 0], [0, 1]]], 'topk smallest along the last dim');

  const ones = t.ones([3, 4]);
  a.deepEqual(t.tril(ones).toArray(), [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], 'tril');
  a.deepEqual(t.triu(ones, 1).toArray(), [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]], 'triu(diagonal 1)');
  a.deepEqual(t.tril(ones, -1).toArray(), [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]], 'tril(diagonal -1)');
  a.end();
});

test('rmsNorm / layerNorm vs their formulas; linear with bias', (a) => {
  const xs = [[1, 2, 3, 4], [-0.5, 0.25, 8, -3]];
  const wv = [1, 0.5, 2, -1];
  const bv = [0.1, 0, -0.2, 3];
  const x = t.tensor(xs);
  const w = t.tensor(wv);
  const b = t.tensor(bv);
  const rmsRef = [];
  const lnRef = [];
  for (const r of xs) {
    const ms = r.reduce((p, v) => p + v * v, 0) / r.length;
    r.forEach((v, i) => rmsRef.push((v / Math.sqrt(ms + 1e-6)) * wv[i]));
    const mu = r.reduce((p, v) => p + v, 0) / r.length;
    const va = r.reduce((p, v) => p + (v - mu) ** 2, 0) / r.length; // biased, like torch
    r.forEach((v, i) => lnRef.push(((v - mu) / Math.sqrt(va + 1e-5)) * wv[i] + bv[i]));
  }
  close(a, t.rmsNorm(x, w).toFloat64(), rmsRef, 'rmsNorm = x / sqrt(mean(x²) + eps) · w', 2e-6, 1e-6);
  close(a, t.layerNorm(x, w, b).toFloat64(), lnRef, 'layerNorm = (x - μ) / sqrt(var + eps) · w + b', 2e-6, 1e-6);
  const plain = t.layerNorm(x).toFloat64();
  close(a, [plain[0] + plain[1] + plain[2] + plain[3]], [0], 'layerNorm without affine has zero row mean', 0, 1e-6);

  const lx = t.tensor([[1, 2, 3], [0, -1, 0.5]]);
  const lw = t.tensor([[1, 0, 0], [0, 1, 1], [2, -1, 3], [0.5, 0.5, 0.5]]);
  const lb = t.tensor([1, 2, 3, 4]);
  a.deepEqual(t.linear(lx, lw, lb).toArray(), [[2, 7, 12, 7], [1, 1.5, 5.5, 3.75]], 'linear: x @ wᵀ + b by hand');
  a.deepEqual(t.linear(lx, lw).shape, [2, 4], 'linear without bias');
  a.end();
});

test('rope: offset equals explicit positions and matches the rotate-half formula', (a) => {
  const S = 3;
  const D = 8;
  const x = t.randn([2, 2, S, D], { seed: 5 });
  const byOffset = t.rope(x, { offset: 5 });
  const byPos = t.rope(x, { positions: [5, 6, 7] });
  sameValues(a, byOffset.toFloat64(), byPos.toFloat64(), 'rope({ offset: 5 }) === rope({ positions: [5, 6, 7] })');
  const xv = x.toFloat64();
  const half = D / 2;
  const ref = new Float64Array(xv.length);
  for (let r = 0; r < xv.length / D; r++) {
    const pos = 5 + (r % S);
    for (let i = 0; i < half; i++) {
      const ang = pos / 10000 ** ((2 * i) / D);
      const x0 = xv[r * D + i];
      const x1 = xv[r * D + i + half];
      ref[r * D + i] = x0 * Math.cos(ang) - x1 * Math.sin(ang);
      ref[r * D + i + half] = x1 * Math.cos(ang) + x0 * Math.sin(ang);
    }
  }
  close(a, byOffset.toFloat64(), ref, 'rotate-half with θ = 10000', 1e-5, 1e-6);
  close(a, t.rope(x).toFloat64(), t.rope(x, { positions: [0, 1, 2] }).toFloat64(), 'default offset is 0', 0, 0);
  const d = byOffset.toFloat64();
  a.ok(d.some((v, i) => v !== xv[i]), 'rope changes the values (the check above is not vacuous)');
  a.end();
});

test('gelu exact (erf) vs tanh approximation', (a) => {
  const xs = [-3, -1, -0.5, 0, 0.5, 1, 2, 3.5];
  const x = t.tensor(xs, { dtype: 'float64' });
  const exact = xs.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
  const approx = xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
  close(a, t.gelu(x).toFloat64(), exact, 'gelu = 0.5·x·(1 + erf(x/√2))', 1e-12, 1e-14);
  close(a, t.gelu(x, { approximate: 'tanh' }).toFloat64(), approx, "gelu(approximate: 'tanh')", 1e-12, 1e-14);
  a.ok(Math.abs(exact[1] - approx[1]) > 1e-4, 'the two forms differ at x = -1 (so the checks tell them apart)');
  close(a, t.gelu(t.tensor(xs)).toFloat64(), exact, 'float32 gelu', 1e-6, 1e-7);
  a.end();
});

test('matmul: hand values; js and cpu backends agree', (a) => {
  const x = t.tensor([[1, 2, 3], [4, 5, 6]]);
  const y = t.tensor([[1, 0], [0, 1], [2, -1]]);
  a.deepEqual(t.matmul(x, y).toArray(), [[7, -1], [16, -1]], 'matmul [2, 3] @ [3, 2] by hand');
  a.equal(t.matmul(t.tensor([1, 2, 3]), t.tensor([4, 5, 6])).item(), 32, '1-D @ 1-D is a dot product');
  const p = t.randn([33, 17], { seed: 1 });
  const q = t.randn([17, 9], { seed: 2 });
  const pv = p.toFloat64();
  const qv = q.toFloat64();
  const ref = build([33, 9], ([m, n]) => { let s = 0; for (let k = 0; k < 17; k++) s += pv[m * 17 + k] * qv[k * 9 + n]; return s; });
  close(a, t.matmul(p, q).toFloat64(), ref, 'matmul [33, 17] @ [17, 9] vs float64 loops', 1e-5, 1e-5);
  t.setBackend('js');
  try {
    close(a, t.matmul(p, q).toFloat64(), ref, 'same on the js backend', 1e-5, 1e-5);
    a.equal(t.lastRun('matmul').backend, 'js', 'setBackend(js) routes matmul to js');
  } finally {
    restoreBackend();
  }
  a.end();
});

test('backends(), setBackend, getBackend, lastRun', (a) => {
  const bs = t.backends();
  a.deepEqual(bs.map((b) => b.name), ['cuda', 'cpu', 'js'], 'three backends in priority order');
  a.ok(bs.every((b) => typeof b.available === 'boolean' && typeof b.reason === 'string' && typeof b.device === 'string'), 'each has available, reason and device');
  a.ok(bs.every((b) => (b.available ? b.reason === '' : b.reason.length > 0)), 'reason is empty exactly when available');
  const js = bs.find((b) => b.name === 'js');
  a.ok(js.available && js.device === 'cpu', 'js is always available, on the cpu device');
  const cpu = bs.find((b) => b.name === 'cpu');
  const def = cpu.available ? 'cpu' : 'js'; // the first available backend on the host
  a.equal(t.getBackend(), ENV_BACKEND || def, `backend at start-up is ${ENV_BACKEND || def}`);
  t.setBackend('js');
  a.equal(t.getBackend(), 'js', "getBackend() after setBackend('js')");
  t.add(t.ones([2]), 1);
  const rec = t.lastRun('add');
  a.deepEqual([rec.op, rec.backend, typeof rec.variant], ['add', 'js', 'string'], 'lastRun(op) names op, backend and variant');
  t.setBackend(null);
  a.equal(t.getBackend(), def, 'setBackend(null) restores the default');
  t.matmul(t.ones([4, 4]), t.ones([4, 4]));
  a.equal(t.lastRun('matmul').backend, def, 'matmul runs on the default backend again');
  restoreBackend();
  bs[0].detail.injected = 1;
  a.equal(t.backends()[0].detail.injected, undefined, 'backends() returns copies');
  a.end();
});

test('copy_ writes into a view in place (converting dtype); errors name the mismatch', (a) => {
  const dst = t.zeros([2, 4, 3]);
  const rows = dst.slice(1, 1, 3); // [2, 2, 3], strided: the KV-cache write pattern
  rows.copy_(t.tensor([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], { dtype: 'bfloat16' }).transpose(0, 1).transpose(0, 1));
  rows.dispose();
  a.deepEqual(Array.from(dst.toFloat32()), [0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0, 0], 'rows 1..2 of each block written, the rest kept');
  const col = dst.slice(2, 0, 1);
  col.copy_(t.ones([2, 4, 1]).transpose(1, 2).transpose(1, 2));
  a.deepEqual(Array.from(dst.toFloat32()).filter((_, i) => i % 3 === 0), new Array(8).fill(1), 'strided destination (a column)');
  a.throws(() => col.copy_(t.ones([2, 4])), /E_SHAPE|does not match/, 'shape mismatch');
  col.dispose();
  dst.dispose();
  a.end();
});
