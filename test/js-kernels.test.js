'use strict';
// Pure-JS reference kernels (lib/backends/js): hand-computed small cases, plus comparisons against
// independent brute-force formulations written here (coordinate loops, explicit probability matrices,
// complex rotation). These kernels are the oracle for every other backend, so they get checked twice.
const test = require('tape');
const js = require('../dist/backends/js/index.js');

// ---- helpers ---------------------------------------------------------------------------------------
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const numel = (shape) => shape.reduce((a, b) => a * b, 1);
function rand(shape, seed, f32 = false) {
  const r = rng(seed);
  const n = numel(shape);
  const d = f32 ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = r() * 4 - 2;
  return { data: d, shape };
}
const arr = (data, shape) => ({ data: Float64Array.from(data), shape });
function unravel(i, shape) {
  const c = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}
function ravel(c, shape) {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d] + c[d];
  return i;
}
// Index into `shape` for an output coordinate `c` under right-aligned broadcasting.
function bidx(c, shape) {
  const lead = c.length - shape.length;
  return ravel(shape.map((s, d) => (s === 1 ? 0 : c[lead + d])), shape);
}
function maxErr(got, want) {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]) !== Number.isNaN(want[i])) return Infinity;
    if (!Number.isNaN(want[i]) && got[i] !== want[i]) m = Math.max(m, Math.abs(got[i] - want[i]));
  }
  return m;
}
function close(t, out, want, wantShape, tol, msg) {
  t.deepEqual(out.shape, wantShape, `${msg}: shape [${wantShape}]`);
  t.ok(out.data instanceof Float64Array, `${msg}: float64 output`);
  t.equal(out.data.length, want.length, `${msg}: length`);
  const e = maxErr(out.data, want);
  t.ok(e <= tol, `${msg}: max err ${e} <= ${tol}`);
}

// ---- elementwise -----------------------------------------------------------------------------------
test('erf, erfc and gelu against known values', (t) => {
  const known = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-3, -0.9999779095030014],
    [0.1, 0.1124629160182849],
    [1.5, 0.9661051464753108],
    [-0.7, -0.6778011938374184],
    [4, 0.9999999845827421],
    [Infinity, 1],
    [-Infinity, -1],
  ];
  for (const [x, want] of known) t.ok(Math.abs(js.erf(x) - want) <= 1e-14, `erf(${x}) = ${js.erf(x)}`);
  t.ok(Number.isNaN(js.erf(NaN)), 'erf(NaN) = NaN');
  t.ok(Math.abs(js.erfc(5) / 1.5374597944280349e-12 - 1) < 1e-13, 'erfc(5) relative');
  t.ok(Math.abs(js.erfc(-1) - 1.8427007929497148) < 1e-15, 'erfc(-1)');
  // Odd symmetry and continuity across the series / continued-fraction split at 1.5.
  for (const x of [0.3, 1.4999999, 1.5, 1.5000001, 2.7]) t.equal(js.erf(-x), -js.erf(x), `erf odd at ${x}`);
  t.ok(Math.abs(js.erf(1.5 - 1e-12) - js.erf(1.5)) < 1e-12, 'erf continuous at the split');
  const g = js.unary('gelu', arr([1, 0, -1, 3, -10], [5])).data;
  t.ok(Math.abs(g[0] - 0.8413447460685429) <= 1e-15, `gelu(1) = ${g[0]}`);
  t.equal(g[1], 0, 'gelu(0)');
  t.ok(Math.abs(g[2] - -0.15865525393145705) <= 1e-15, 'gelu(-1)');
  t.ok(Math.abs(g[3] - 2.9959503059051097) <= 1e-15, 'gelu(3)');
  t.ok(Math.abs(g[4] / -7.619853024160526e-23 - 1) < 1e-12, 'gelu(-10) keeps relative accuracy');
  t.end();
});

test('broadcastShapes', (t) => {
  t.deepEqual(js.broadcastShapes([2, 3], [3]), [2, 3]);
  t.deepEqual(js.broadcastShapes([4, 1, 3], [2, 1]), [4, 2, 3]);
  t.deepEqual(js.broadcastShapes([], [2, 2]), [2, 2]);
  t.deepEqual(js.broadcastShapes([0, 1], [1, 5]), [0, 5]);
  t.deepEqual(js.broadcastShapes([1], [0]), [0]);
  t.equal(js.broadcastShapes([2, 3], [2]), null);
  t.equal(js.broadcastShapes([3, 0], [3, 2]), null);
  t.end();
});

test('binary ops: hand cases and broadcasting vs coordinate loop', (t) => {
  const a = arr([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = arr([10, 20, 30], [3]);
  close(t, js.binary('add', a, b), [11, 22, 33, 14, 25, 36], [2, 3], 0, 'add row broadcast');
  close(t, js.binary('sub', b, a), [9, 18, 27, 6, 15, 24], [2, 3], 0, 'sub');
  close(t, js.binary('div', a, arr([2], [])), [0.5, 1, 1.5, 2, 2.5, 3], [2, 3], 0, 'div by scalar');
  close(t, js.binary('pow', arr([2, -8, 1, -1, NaN, 4], [6]), arr([10, 1 / 3, NaN, Infinity, 0, 0.5], [6])),
    [1024, NaN, 1, 1, 1, 2], [6], 0, 'pow follows C pow special cases');
  close(t, js.binary('maximum', arr([1, NaN, 3], [3]), arr([2, 0, NaN], [3])), [2, NaN, NaN], [3], 0, 'maximum NaN');
  close(t, js.binary('minimum', arr([1, NaN, 3], [3]), arr([2, 0, -Infinity], [3])), [1, NaN, -Infinity], [3], 0, 'minimum');
  const fns = {
    add: (x, y) => x + y, sub: (x, y) => x - y, mul: (x, y) => x * y, div: (x, y) => x / y,
    pow: (x, y) => Math.pow(Math.abs(x), y), maximum: Math.max, minimum: Math.min,
  };
  const cases = [[[4, 1, 3], [2, 1]], [[1], [3, 5]], [[2, 3, 1, 4], [3, 7, 1]], [[], [3]], [[5], []], [[0, 3], [1, 3]]];
  let seed = 1;
  for (const [sa, sb] of cases) {
    for (const op of Object.keys(fns)) {
      const x = rand(sa, seed++, true);
      const y = rand(sb, seed++);
      if (op === 'pow') x.data = x.data.map(Math.abs);
      const shape = js.broadcastShapes(sa, sb);
      const want = new Float64Array(numel(shape));
      for (let i = 0; i < want.length; i++) {
        const c = unravel(i, shape);
        want[i] = fns[op](x.data[bidx(c, sa)], y.data[bidx(c, sb)]);
      }
      close(t, js.binary(op, x, y), want, shape, 0, `${op} [${sa}] x [${sb}]`);
    }
  }
  t.end();
});

test('scalarOp and where', (t) => {
  const a = arr([1, 2, 4], [3]);
  close(t, js.scalarOp('sub', a, 1), [0, 1, 3], [3], 0, 'a - 1');
  close(t, js.scalarOp('sub', a, 1, true), [0, -1, -3], [3], 0, '1 - a');
  close(t, js.scalarOp('div', a, 8, true), [8, 4, 2], [3], 0, '8 / a');
  close(t, js.scalarOp('pow', a, 2), [1, 4, 16], [3], 0, 'a ** 2');
  const cond = arr([1, 0, NaN], [3, 1]);
  const x = arr([1, 2], [2]);
  const y = arr([-5], []);
  close(t, js.where(cond, x, y), [1, 2, -5, -5, 1, 2], [3, 2], 0, 'where broadcasts all three');
  const input = { data: Float64Array.from([3, 4]), shape: [2] };
  js.where(arr([0, 1], [2]), input, y);
  t.deepEqual(Array.from(input.data), [3, 4], 'inputs untouched');
  t.end();
});

test('unary ops vs formulas', (t) => {
  const xs = [-30, -3.5, -1, -0.25, 0, 0.3, 1, 2.5, 40];
  const sig = (v) => 1 / (1 + Math.exp(-v));
  const f = {
    neg: (v) => -v, abs: Math.abs, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (v) => 1 / Math.sqrt(v),
    sin: Math.sin, cos: Math.cos, tanh: Math.tanh, sigmoid: sig, relu: (v) => (v > 0 ? v : 0),
    silu: (v) => v * sig(v), square: (v) => v * v,
    gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    gelu: (v) => 0.5 * v * (1 + js.erf(v / Math.SQRT2)),
  };
  for (const op of Object.keys(f)) {
    const x = { data: Float32Array.from(xs), shape: [3, 3] };
    const want = Array.from(x.data, f[op]);
    close(t, js.unary(op, x), want, [3, 3], 1e-15, `${op}`);
  }
  const r = js.unary('relu', arr([NaN, -2], [2])).data;
  t.ok(Number.isNaN(r[0]) && r[1] === 0, 'relu passes NaN, zeroes negatives');
  const s = js.unary('sigmoid', arr([-800, 800], [2])).data;
  t.deepEqual(Array.from(s), [0, 1], 'sigmoid saturates without NaN');
  t.ok(Math.abs(js.unary('gelu_tanh', arr([1], [])).data[0] - 0.8411919906082768) < 1e-15, 'gelu_tanh(1)');
  close(t, js.unary('exp', arr([0], [])), [1], [], 0, 'scalar shape kept');
  t.end();
});

// ---- reductions ------------------------------------------------------------------------------------
function bruteReduce(op, a, dims, keepdim) {
  const outShapeK = a.shape.map((s, d) => (dims.includes(d) ? 1 : s));
  const n = numel(outShapeK);
  const acc = new Array(n).fill(null).map(() => []);
  for (let i = 0; i < a.data.length; i++) {
    const c = unravel(i, a.shape).map((v, d) => (dims.includes(d) ? 0 : v));
    acc[ravel(c, outShapeK)].push(a.data[i]);
  }
  const f = {
    sum: (v) => v.reduce((p, q) => p + q, 0), mean: (v) => v.reduce((p, q) => p + q, 0) / v.length,
    prod: (v) => v.reduce((p, q) => p * q, 1), max: (v) => Math.max(...v), min: (v) => Math.min(...v),
  }[op];
  return { data: acc.map(f), shape: keepdim ? outShapeK : a.shape.filter((_, d) => !dims.includes(d)) };
}

test('reduce: hand cases and vs brute force', (t) => {
  const a = arr([1, 2, 3, 4, 5, 6], [2, 3]);
  close(t, js.reduce('sum', a, [1], false), [6, 15], [2], 0, 'sum rows');
  close(t, js.reduce('sum', a, [0], true), [5, 7, 9], [1, 3], 0, 'sum cols keepdim');
  close(t, js.reduce('mean', a, [0, 1], false), [3.5], [], 0, 'mean all -> scalar');
  close(t, js.reduce('prod', a, [0, 1], true), [720], [1, 1], 0, 'prod all keepdim');
  close(t, js.reduce('max', arr([1, NaN, 3, 7], [2, 2]), [1], false), [NaN, 7], [2], 0, 'max propagates NaN');
  close(t, js.reduce('min', arr([NaN, 1, 3, -7], [2, 2]), [1], false), [NaN, -7], [2], 0, 'min propagates NaN');
  close(t, js.reduce('sum', arr([5], []), [], false), [5], [], 0, 'scalar input');
  close(t, js.reduce('sum', { data: new Float64Array(0), shape: [2, 0] }, [1], false), [0, 0], [2], 0, 'empty sum');
  const x = rand([3, 4, 5, 2], 7, true);
  const dimSets = [[0], [1], [3], [0, 2], [1, 3], [0, 1, 2, 3], [2, 1]];
  for (const op of ['sum', 'mean', 'max', 'min', 'prod']) {
    for (const dims of dimSets) {
      for (const keepdim of [false, true]) {
        const w = bruteReduce(op, x, dims, keepdim);
        close(t, js.reduce(op, x, dims, keepdim), w.data, w.shape, 1e-12, `${op} dims [${dims}] keepdim ${keepdim}`);
      }
    }
  }
  t.end();
});

test('argmax / argmin', (t) => {
  const a = arr([1, 5, 5, 2, 0, 0, 9, 9], [2, 4]);
  close(t, js.argmax(a, 1, false), [1, 2], [2], 0, 'argmax first of ties');
  close(t, js.argmin(a, 1, true), [0, 0], [2, 1], 0, 'argmin keepdim');
  close(t, js.argmax(a, 0, false), [0, 0, 1, 1], [4], 0, 'argmax dim 0');
  close(t, js.argmax(a, null, false), [6], [], 0, 'argmax flattened');
  close(t, js.argmax(a, null, true), [6], [1, 1], 0, 'argmax flattened keepdim');
  close(t, js.argmin(a, null, false), [4], [], 0, 'argmin flattened');
  close(t, js.argmax(arr([1, NaN, 3, NaN], [4]), 0, false), [1], [], 0, 'argmax: first NaN wins');
  close(t, js.argmin(arr([1, -4, NaN], [3]), 0, false), [2], [], 0, 'argmin: NaN wins');
  close(t, js.argmax(arr([NaN, 3], [2]), 0, false), [0], [], 0, 'argmax: NaN at 0');
  t.end();
});

test('softmax / logSoftmax', (t) => {
  const s = js.softmax(arr([0, Math.log(3), 1000, 1000], [2, 2]), 1).data;
  t.ok(Math.abs(s[0] - 0.25) < 1e-16 && Math.abs(s[1] - 0.75) < 1e-15, 'softmax [0, ln 3] = [1/4, 3/4]');
  t.deepEqual(Array.from(s.slice(2)), [0.5, 0.5], 'large logits are stable');
  const x = rand([3, 5, 4], 11, true);
  for (const dim of [0, 1, 2]) {
    const sm = js.softmax(x, dim);
    const lsm = js.logSoftmax(x, dim);
    const want = new Float64Array(x.data.length);
    const sums = new Float64Array(x.data.length);
    for (let i = 0; i < want.length; i++) {
      const c = unravel(i, x.shape);
      let z = 0;
      for (let k = 0; k < x.shape[dim]; k++) {
        const c2 = c.slice();
        c2[dim] = k;
        z += Math.exp(x.data[ravel(c2, x.shape)]);
      }
      want[i] = Math.exp(x.data[i]) / z;
    }
    for (let i = 0; i < want.length; i++) {
      const c = unravel(i, x.shape);
      c[dim] = 0;
      sums[ravel(c, x.shape)] += sm.data[i];
    }
    close(t, sm, want, x.shape, 1e-15, `softmax dim ${dim}`);
    close(t, lsm, want.map(Math.log), x.shape, 1e-14, `logSoftmax dim ${dim}`);
    let worst = 0;
    for (let i = 0; i < sums.length; i++) if (sums[i] !== 0) worst = Math.max(worst, Math.abs(sums[i] - 1));
    t.ok(worst < 1e-15, `softmax dim ${dim} slices sum to 1 (err ${worst})`);
  }
  const ls = js.logSoftmax(arr([-1000, 0], [2]), 0).data;
  t.equal(ls[1], 0, 'logSoftmax keeps precision for the dominant entry');
  t.equal(ls[0], -1000, 'logSoftmax of a tiny entry is finite');
  t.end();
});

test('cumsum', (t) => {
  const a = arr([1, 2, 3, 4, 5, 6], [2, 3]);
  close(t, js.cumsum(a, 1), [1, 3, 6, 4, 9, 15], [2, 3], 0, 'cumsum dim 1');
  close(t, js.cumsum(a, 0), [1, 2, 3, 5, 7, 9], [2, 3], 0, 'cumsum dim 0');
  t.end();
});

test('topk', (t) => {
  const a = arr([3, 1, 3, 2, NaN, 1], [6]);
  let r = js.topk(a, 3, 0, true);
  close(t, r.values, [NaN, 3, 3], [3], 0, 'largest: NaN first then ties');
  close(t, r.indices, [4, 0, 2], [3], 0, 'largest: ties by lower index');
  r = js.topk(a, 4, 0, false);
  close(t, r.values, [1, 1, 2, 3], [4], 0, 'smallest values');
  close(t, r.indices, [1, 5, 3, 0], [4], 0, 'smallest indices');
  r = js.topk(a, 6, 0, false);
  close(t, r.indices, [1, 5, 3, 0, 2, 4], [6], 0, 'smallest: NaN last');
  const x = rand([4, 7, 3], 5);
  for (const dim of [0, 1, 2]) {
    for (const largest of [true, false]) {
      const k = Math.min(2, x.shape[dim]);
      const res = js.topk(x, k, dim, largest);
      const shape = x.shape.map((s, d) => (d === dim ? k : s));
      const wv = new Float64Array(numel(shape));
      const wi = new Float64Array(numel(shape));
      for (let i = 0; i < wv.length; i++) {
        const c = unravel(i, shape);
        const cands = [];
        for (let j = 0; j < x.shape[dim]; j++) {
          const c2 = c.slice();
          c2[dim] = j;
          cands.push([x.data[ravel(c2, x.shape)], j]);
        }
        cands.sort((p, q) => (largest ? q[0] - p[0] : p[0] - q[0]) || p[1] - q[1]);
        wv[i] = cands[c[dim]][0];
        wi[i] = cands[c[dim]][1];
      }
      close(t, res.values, wv, shape, 0, `topk values dim ${dim} largest ${largest}`);
      close(t, res.indices, wi, shape, 0, `topk indices dim ${dim} largest ${largest}`);
    }
  }
  t.end();
});

// ---- norms -----------------------------------------------------------------------------------------
test('rmsNorm / layerNorm', (t) => {
  const x = arr([3, 4, 0, 0], [2, 2]);
  const r = js.rmsNorm(x, arr([1, 2], [2]), 0).data;
  const inv = 1 / Math.sqrt(12.5);
  t.ok(Math.abs(r[0] - 3 * inv) < 1e-15 && Math.abs(r[1] - 8 * inv) < 1e-15, 'rmsNorm hand row');
  t.ok(Number.isNaN(r[2]), 'rmsNorm zero row with eps 0 is 0 * Inf = NaN (as in torch)');
  t.deepEqual(Array.from(js.rmsNorm(arr([0, 0], [2]), null, 1e-6).data), [0, 0], 'rmsNorm zero row with eps > 0');
  const l = js.layerNorm(arr([1, 2, 3, 4], [4]), null, arr([1, 1, 1, 1], [4]), 0).data;
  const sd = Math.sqrt(1.25);
  close(t, { data: l, shape: [4] }, [-1.5 / sd + 1, -0.5 / sd + 1, 0.5 / sd + 1, 1.5 / sd + 1], [4], 1e-15, 'layerNorm hand');
  const X = rand([3, 2, 7], 21, true);
  const W = rand([7], 22);
  const B = rand([7], 23);
  const eps = 1e-5;
  const wr = new Float64Array(X.data.length);
  const wl = new Float64Array(X.data.length);
  for (let row = 0; row < 6; row++) {
    const v = Array.from(X.data.slice(row * 7, row * 7 + 7));
    const ms = v.reduce((p, q) => p + q * q, 0) / 7;
    const mu = v.reduce((p, q) => p + q, 0) / 7;
    const va = v.reduce((p, q) => p + (q - mu) ** 2, 0) / 7;
    for (let i = 0; i < 7; i++) {
      wr[row * 7 + i] = (v[i] / Math.sqrt(ms + eps)) * W.data[i];
      wl[row * 7 + i] = ((v[i] - mu) / Math.sqrt(va + eps)) * W.data[i] + B.data[i];
    }
  }
  close(t, js.rmsNorm(X, W, eps), wr, [3, 2, 7], 1e-14, 'rmsNorm vs brute');
  close(t, js.layerNorm(X, W, B, eps), wl, [3, 2, 7], 1e-14, 'layerNorm vs brute');
  t.end();
});

// ---- indexing --------------------------------------------------------------------------------------
test('embedding, cat, stack, gather, tril/triu', (t) => {
  const table = arr([0, 1, 10, 11, 20, 21], [3, 2]);
  close(t, js.embedding(arr([2, 0, 2, 1], [2, 2]), table), [20, 21, 0, 1, 20, 21, 10, 11], [2, 2, 2], 0, 'embedding');
  close(t, js.embedding(arr([1], []), table), [10, 11], [2], 0, 'embedding scalar id');
  const a = arr([1, 2, 3, 4], [2, 2]);
  const b = arr([5, 6], [1, 2]);
  const c = arr([7, 8, 9, 10, 11, 12], [2, 3]);
  close(t, js.cat([a, b], 0), [1, 2, 3, 4, 5, 6], [3, 2], 0, 'cat dim 0');
  close(t, js.cat([a, c], 1), [1, 2, 7, 8, 9, 3, 4, 10, 11, 12], [2, 5], 0, 'cat dim 1');
  close(t, js.cat([a, { data: new Float64Array(0), shape: [2, 0] }, a], 1), [1, 2, 1, 2, 3, 4, 3, 4], [2, 4], 0, 'cat with empty');
  close(t, js.stack([a, a], 0), [1, 2, 3, 4, 1, 2, 3, 4], [2, 2, 2], 0, 'stack dim 0');
  close(t, js.stack([a, arr([5, 6, 7, 8], [2, 2])], 2), [1, 5, 2, 6, 3, 7, 4, 8], [2, 2, 2], 0, 'stack last');
  const g = js.gather(arr([1, 2, 3, 4, 5, 6], [2, 3]), 1, arr([2, 0, 1, 1], [2, 2]));
  close(t, g, [3, 1, 5, 5], [2, 2], 0, 'gather dim 1');
  close(t, js.gather(arr([1, 2, 3, 4, 5, 6], [2, 3]), 0, arr([1, 0, 1], [1, 3])), [4, 2, 6], [1, 3], 0, 'gather dim 0');
  const m = arr([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [3, 4]);
  close(t, js.tril(m, 0), [1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0], [3, 4], 0, 'tril');
  close(t, js.tril(m, -1), [0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0], [3, 4], 0, 'tril -1');
  close(t, js.triu(m, 1), [0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12], [3, 4], 0, 'triu 1');
  const batch = js.triu(arr([1, 1, 1, 1, 2, 2, 2, 2], [2, 2, 2]), 0);
  close(t, batch, [1, 1, 0, 1, 2, 2, 0, 2], [2, 2, 2], 0, 'triu batched');
  t.end();
});

// ---- rope ------------------------------------------------------------------------------------------
test('rope vs complex rotation', (t) => {
  const inv = js.ropeInvFreq(8, 10000);
  close(t, { data: inv, shape: [4] }, [1, 0.1, 0.01, 0.001], [4], 1e-18, 'ropeInvFreq(8, 1e4)');
  const cmul = (re, im, ang) => [re * Math.cos(ang) - im * Math.sin(ang), re * Math.sin(ang) + im * Math.cos(ang)];
  for (const interleaved of [false, true]) {
    const [B, H, S, D, R] = [2, 3, 5, 10, 8];
    const x = rand([B, H, S, D], interleaved ? 31 : 32, true);
    const positions = [7, 8, 9, 10, 11];
    const invFreq = js.ropeInvFreq(R, 500);
    const out = js.rope(x, { positions, invFreq, rotaryDim: R, interleaved });
    const want = Float64Array.from(x.data);
    for (let row = 0; row < B * H * S; row++) {
      const pos = positions[row % S];
      for (let i = 0; i < R / 2; i++) {
        const [p0, p1] = interleaved ? [2 * i, 2 * i + 1] : [i, i + R / 2];
        const [re, im] = cmul(x.data[row * D + p0], x.data[row * D + p1], pos * invFreq[i]);
        want[row * D + p0] = re;
        want[row * D + p1] = im;
      }
    }
    close(t, out, want, [B, H, S, D], 1e-15, `rope interleaved=${interleaved}`);
    t.deepEqual(Array.from(out.data.slice(R, D)), Array.from(x.data.slice(R, D)), 'dims >= rotaryDim pass through');
  }
  const hand = js.rope(arr([1, 0, 0, 1], [1, 4]), { positions: [1], invFreq: [Math.PI / 2, 0], rotaryDim: 4 }).data;
  t.ok(Math.abs(hand[0]) < 1e-16 && hand[1] === 0 && hand[2] === 1 && hand[3] === 1, 'quarter turn of pair (x0, x2)');
  t.end();
});

// ---- matmul ----------------------------------------------------------------------------------------
// Naive torch.matmul: promote 1-D operands, broadcast batch by coordinates, triple loop, squeeze.
function bruteMatmul(a, b) {
  const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const bs = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
  const [M, K, N] = [as[as.length - 2], as[as.length - 1], bs[bs.length - 1]];
  const batch = js.broadcastShapes(as.slice(0, -2), bs.slice(0, -2));
  const out = new Float64Array(numel(batch) * M * N);
  for (let t = 0; t < numel(batch); t++) {
    const c = unravel(t, batch);
    const ia = bidx(c, as.slice(0, -2));
    const ib = bidx(c, bs.slice(0, -2));
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[ia * M * K + i * K + k] * b.data[ib * K * N + k * N + j];
        out[t * M * N + i * N + j] = s;
      }
    }
  }
  const shape = [...batch];
  if (a.shape.length > 1) shape.push(M);
  if (b.shape.length > 1) shape.push(N);
  return { data: out, shape };
}

test('matmul: shapes, hand cases, brute force', (t) => {
  t.deepEqual(js.matmulShape([3], [3]), [], 'dot -> scalar');
  t.deepEqual(js.matmulShape([3], [3, 4]), [4]);
  t.deepEqual(js.matmulShape([2, 5, 3], [3]), [2, 5]);
  t.deepEqual(js.matmulShape([7, 1, 2, 3], [5, 3, 4]), [7, 5, 2, 4]);
  t.deepEqual(js.matmulShape([3], [6, 3, 4]), [6, 4]);
  t.equal(js.matmulShape([3], [4]), null, 'dot size mismatch');
  t.equal(js.matmulShape([2, 3], [4, 5]), null, 'K mismatch');
  t.equal(js.matmulShape([2, 2, 3], [3, 3, 4]), null, 'batch mismatch');
  t.equal(js.matmulShape([], [3]), null, '0-d rejected');
  close(t, js.matmul(arr([1, 2, 3, 4], [2, 2]), arr([5, 6, 7, 8], [2, 2])), [19, 22, 43, 50], [2, 2], 0, '2x2');
  close(t, js.matmul(arr([1, 2, 3], [3]), arr([4, 5, 6], [3])), [32], [], 0, 'dot');
  close(t, js.matmul(arr([0], [1]), arr([Infinity], [1])), [NaN], [], 0, '0 * Inf = NaN is not skipped');
  const cases = [
    [[3], [3]], [[4], [4, 5]], [[2, 3], [3]], [[5, 4], [4, 3]], [[2, 5, 4], [4]], [[4], [3, 4, 2]],
    [[3, 2, 5], [5, 6]], [[7, 1, 2, 3], [5, 3, 4]], [[1, 3, 4], [2, 4, 1]], [[2, 1, 3, 4], [1, 5, 4, 2]],
    [[0, 2, 3], [3, 4]], [[2, 0], [0, 3]], [[1, 1], [1, 1]],
  ];
  let seed = 100;
  for (const [sa, sb] of cases) {
    const a = rand(sa, seed++, seed % 2 === 0);
    const b = rand(sb, seed++);
    const w = bruteMatmul(a, b);
    close(t, js.matmul(a, b), w.data, w.shape, 1e-13, `matmul [${sa}] @ [${sb}]`);
  }
  const big = rand([512, 512], 1);
  const big2 = rand([512, 512], 2, true);
  // speed is measured in benchmark/, not asserted here
  const o = js.matmul(big, big2);
  let s = 0;
  for (let k = 0; k < 512; k++) s += big.data[100 * 512 + k] * big2.data[k * 512 + 300];
  t.ok(Math.abs(o.data[100 * 512 + 300] - s) < 1e-12, '512x512 spot check');
  t.end();
});

test('linear', (t) => {
  close(t, js.linear(arr([1, 2], [1, 2]), arr([1, 0, 0, 1, 1, 1], [3, 2]), arr([10, 20, 30], [3])),
    [11, 22, 33], [1, 3], 0, 'hand');
  const x = rand([2, 3, 5], 41, true);
  const w = rand([4, 5], 42, true);
  const bias = rand([4], 43);
  const wT = new Float64Array(20);
  for (let n = 0; n < 4; n++) for (let k = 0; k < 5; k++) wT[k * 4 + n] = w.data[n * 5 + k];
  const mm = bruteMatmul(x, { data: wT, shape: [5, 4] });
  close(t, js.linear(x, w, null), mm.data, [2, 3, 4], 1e-14, 'linear no bias = x @ w^T');
  close(t, js.linear(x, w, bias), mm.data.map((v, i) => v + bias.data[i % 4]), [2, 3, 4], 1e-14, 'linear + bias');
  close(t, js.linear(arr([1, 2, 3, 4, 5], [5]), w, null), bruteMatmul(arr([1, 2, 3, 4, 5], [5]), { data: wT, shape: [5, 4] }).data, [4], 1e-14, 'linear 1-D x');
  t.end();
});

// ---- attention -------------------------------------------------------------------------------------
// Brute force: per (b, h) build the full Sq x Sk score matrix with explicit masking, exponentiate
// against the row max, normalize by the row sum, then multiply P @ V.
function bruteAttention(q, k, v, { causal, scale, kvOffset, mask }) {
  const [B, Hq, Sq, D] = q.shape;
  const [, Hkv, Sk] = k.shape;
  const Dv = v.shape[3];
  const out = new Float64Array(B * Hq * Sq * Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor((h * Hkv) / Hq);
      const P = [];
      for (let i = 0; i < Sq; i++) {
        const row = [];
        for (let j = 0; j < Sk; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q.data[ravel([b, h, i, d], q.shape)] * k.data[ravel([b, hk, j, d], k.shape)];
          s *= scale;
          if (mask) s += mask.data[bidx([b, h, i, j], mask.shape)];
          if (causal && j > kvOffset + i) s = -Infinity;
          row.push(s);
        }
        const mx = Math.max(...row);
        const e = row.map((s) => (mx === -Infinity ? 0 : Math.exp(s - mx)));
        const z = e.reduce((p, c) => p + c, 0);
        P.push(e.map((x) => (z === 0 ? 0 : x / z)));
      }
      for (let i = 0; i < Sq; i++) {
        for (let d = 0; d < Dv; d++) {
          let s = 0;
          for (let j = 0; j < Sk; j++) s += P[i][j] * v.data[ravel([b, hk, j, d], v.shape)];
          out[ravel([b, h, i, d], [B, Hq, Sq, Dv])] = s;
        }
      }
    }
  }
  return out;
}

test('attention: hand cases', (t) => {
  // One key: output is that key's value whatever the scores.
  const q = arr([1, 2], [1, 1, 1, 2]);
  const k = arr([3, -1], [1, 1, 1, 2]);
  const v = arr([7, 8, 9], [1, 1, 1, 3]);
  close(t, js.attention(q, k, v, { causal: false, scale: 0.5, kvOffset: 0 }), [7, 8, 9], [1, 1, 1, 3], 0, 'single key');
  // Equal scores average the values.
  const k2 = arr([1, 0, 1, 0], [1, 1, 2, 2]);
  const v2 = arr([0, 10], [1, 1, 2, 1]);
  const q2 = arr([0, 1], [1, 1, 1, 2]);
  close(t, js.attention(q2, k2, v2, { causal: false, scale: 1, kvOffset: 1 }), [5], [1, 1, 1, 1], 0, 'uniform average');
  close(t, js.attention(q2, k2, v2, { causal: true, scale: 1, kvOffset: 0 }), [0], [1, 1, 1, 1], 0, 'causal sees key 0 only');
  close(t, js.attention(q2, k2, v2, { causal: true, scale: 1, kvOffset: -1 }), [0], [1, 1, 1, 1], 0, 'no visible key -> zeros');
  const allMasked = arr([-Infinity, -Infinity], [2]);
  const z = js.attention(q2, k2, arr([3, 4], [1, 1, 2, 1]), { causal: false, scale: 1, kvOffset: 1, mask: allMasked });
  close(t, z, [0], [1, 1, 1, 1], 0, 'fully masked row -> zeros (torch: NaN)');
  // Scores 0 and ln 3 -> weights 1/4, 3/4.
  const k3 = arr([0, Math.log(3)], [1, 1, 2, 1]);
  const q3 = arr([1], [1, 1, 1, 1]);
  const o3 = js.attention(q3, k3, arr([4, 8], [1, 1, 2, 1]), { causal: false, scale: 1, kvOffset: 1 }).data[0];
  t.ok(Math.abs(o3 - 7) < 1e-14, `weights 1/4, 3/4 -> 7 (${o3})`);
  t.end();
});

test('attention vs brute force (GQA, causal, decode offsets, masks)', (t) => {
  const configs = [
    { B: 1, Hq: 1, Hkv: 1, Sq: 4, Sk: 4, D: 8, Dv: 8, causal: false },
    { B: 2, Hq: 4, Hkv: 2, Sq: 5, Sk: 5, D: 6, Dv: 3, causal: true },
    { B: 1, Hq: 6, Hkv: 1, Sq: 1, Sk: 9, D: 4, Dv: 4, causal: true }, // MQA decode
    { B: 2, Hq: 4, Hkv: 4, Sq: 3, Sk: 7, D: 5, Dv: 5, causal: true }, // chunked prefill against a cache
    { B: 1, Hq: 2, Hkv: 1, Sq: 6, Sk: 4, D: 3, Dv: 2, causal: true }, // Sq > Sk: first rows see nothing
    { B: 2, Hq: 2, Hkv: 2, Sq: 3, Sk: 5, D: 4, Dv: 4, causal: false, mask: [3, 5] },
    { B: 2, Hq: 4, Hkv: 2, Sq: 3, Sk: 5, D: 4, Dv: 4, causal: true, mask: [2, 1, 1, 5] },
    { B: 2, Hq: 2, Hkv: 1, Sq: 4, Sk: 4, D: 4, Dv: 4, causal: false, mask: [2, 2, 4, 4], negInf: true },
  ];
  let seed = 500;
  for (const c of configs) {
    const q = rand([c.B, c.Hq, c.Sq, c.D], seed++, true);
    const k = rand([c.B, c.Hkv, c.Sk, c.D], seed++, true);
    const v = rand([c.B, c.Hkv, c.Sk, c.Dv], seed++);
    let mask = null;
    if (c.mask) {
      mask = rand(c.mask, seed++);
      if (c.negInf) for (let i = 0; i < mask.data.length; i += 3) mask.data[i] = -Infinity;
    }
    const opts = { causal: c.causal, scale: 1 / Math.sqrt(c.D), kvOffset: c.Sk - c.Sq, mask };
    const want = bruteAttention(q, k, v, opts);
    const name = `B${c.B} Hq${c.Hq} Hkv${c.Hkv} Sq${c.Sq} Sk${c.Sk} causal=${c.causal} mask=[${c.mask || ''}]`;
    close(t, js.attention(q, k, v, opts), want, [c.B, c.Hq, c.Sq, c.Dv], 1e-14, name);
  }
  const q = rand([1, 2, 3, 4], 1, true);
  const before = Float32Array.from(q.data);
  js.attention(q, q, q, { causal: true, scale: 0.5, kvOffset: 0 });
  t.deepEqual(Array.from(q.data), Array.from(before), 'inputs untouched');
  t.end();
});
