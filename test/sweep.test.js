'use strict';
// The table-driven sweep (STYLE.md habit 4): every op, on every available backend, for every dtype it
// takes, on seeded random shapes with awkward sizes (1, 7, 33, 127), against the js reference backend.
// Adding an op = adding a case. Where a backend registers a kernel for (op, dtype), the sweep also
// asserts that kernel really ran (no silent fallthrough to js hiding a broken native path).
const test = require('tape');
const T = require('../dist');
const { rng, TOL, compare } = require('./helpers');

const AWK = [1, 7, 33, 127];
const FLOATS = ['float32', 'float16', 'bfloat16'];
const BACKENDS = T.backends().filter((b) => b.available && b.name !== 'js').map((b) => b.name);

function randT(r, shape, dtype = 'float32', scale = 1) {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = r.normal() * scale;
  return T.tensor(v, { shape, dtype });
}
const sz = (r, max = 127) => r.pick(AWK.filter((s) => s <= max));

// Each case: op name, dtypes, gen(r, dtype) -> { inputs, run(inputs) -> Tensor | Tensor[] }
const CASES = [];
const add = (c) => CASES.push(c);

for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow']) {
  add({
    op, dtypes: FLOATS,
    gen(r, d) {
      const shape = [sz(r), sz(r, 33)];
      const bshape = r.next() < 0.5 ? [1, shape[1]] : shape;
      const a = op === 'pow' ? T.abs(randT(r, shape, d)) : randT(r, shape, d);
      return { inputs: [a, randT(r, bshape, d)], run: ([x, y]) => T[op](x, y) };
    },
  });
}
for (const op of ['neg', 'abs', 'exp', 'sqrt', 'rsqrt', 'log', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'square']) {
  add({
    op, dtypes: FLOATS,
    gen(r, d) {
      const x = randT(r, [sz(r), sz(r)], d);
      const pos = ['sqrt', 'rsqrt', 'log'].includes(op) ? T.add(T.abs(x), 0.1) : x;
      return { inputs: [pos], run: ([a]) => T[op](a) };
    },
  });
}
add({ op: 'gelu', dtypes: FLOATS, gen: (r, d) => ({ inputs: [randT(r, [sz(r), sz(r)], d)], run: ([a]) => T.gelu(a) }) });
add({ op: 'gelu_tanh', dtypes: FLOATS, gen: (r, d) => ({ inputs: [randT(r, [sz(r), sz(r)], d)], run: ([a]) => T.gelu(a, { approximate: 'tanh' }) }) });
add({
  op: 'where', dtypes: FLOATS,
  gen(r, d) {
    const s = [sz(r), sz(r)];
    return { inputs: [T.relu(randT(r, s)), randT(r, s, d), randT(r, s, d)], run: ([c, a, b]) => T.where(c, a, b) };
  },
});
for (const op of ['sum', 'mean', 'max', 'min']) {
  add({
    op, dtypes: FLOATS,
    gen(r, d) {
      const x = randT(r, [sz(r, 33), sz(r), sz(r, 7)], d);
      const dim = r.pick([0, 1, -1, [0, 2], undefined]);
      const keepdim = r.next() < 0.5;
      return { inputs: [x], run: ([a]) => T[op](a, { dim, keepdim }) };
    },
  });
}
for (const op of ['argmax', 'argmin']) {
  add({ op, dtypes: FLOATS, gen: (r, d) => ({ inputs: [randT(r, [sz(r), sz(r)], d)], run: ([a]) => T[op](a, { dim: -1 }) }) });
}
for (const op of ['softmax', 'logSoftmax']) {
  add({ op, dtypes: FLOATS, gen: (r, d) => { const dim = r.pick([0, -1]); return { inputs: [randT(r, [sz(r, 33), sz(r)], d, 3)], run: ([a]) => T[op](a, dim) }; } });
}
add({ op: 'cumsum', dtypes: FLOATS, gen: (r, d) => ({ inputs: [randT(r, [sz(r), sz(r, 33)], d)], run: ([a]) => T.cumsum(a, -1) }) });
add({
  op: 'topk', dtypes: ['float32'],
  gen(r, d) {
    const x = randT(r, [sz(r, 33), sz(r)], d);
    const k = r.int(1, x.shape[1]);
    return { inputs: [x], run: ([a]) => { const o = T.topk(a, k); return [o.values, o.indices]; } };
  },
});
add({
  op: 'rmsNorm', dtypes: FLOATS,
  gen(r, d) {
    const D = sz(r);
    return { inputs: [randT(r, [sz(r, 33), D], d), randT(r, [D], d)], run: ([x, w]) => T.rmsNorm(x, w, 1e-6) };
  },
});
add({
  op: 'layerNorm', dtypes: FLOATS,
  gen(r, d) {
    const D = sz(r);
    return { inputs: [randT(r, [sz(r, 33), D], d), randT(r, [D], d), randT(r, [D], d)], run: ([x, w, b]) => T.layerNorm(x, w, b, 1e-5) };
  },
});
add({
  op: 'embedding', dtypes: FLOATS,
  gen(r, d) {
    const V = sz(r);
    const ids = T.tensor(Int32Array.from({ length: sz(r, 33) }, () => r.int(0, V - 1)));
    return { inputs: [ids, randT(r, [V, sz(r, 33)], d)], run: ([i, w]) => T.embedding(i, w) };
  },
});
add({
  op: 'rope', dtypes: FLOATS,
  gen(r, d) {
    const D = 2 * r.int(1, 32);
    const offset = r.int(0, 100);
    return { inputs: [randT(r, [1, r.int(1, 4), sz(r, 33), D], d)], run: ([x]) => T.rope(x, { offset, theta: 10000 }) };
  },
});
add({
  op: 'cat', dtypes: FLOATS,
  gen(r, d) {
    const a = randT(r, [sz(r, 33), 7], d);
    return { inputs: [a, randT(r, [sz(r, 33), 7], d)], run: ([x, y]) => T.cat([x, y], 0) };
  },
});
add({ op: 'tril', dtypes: FLOATS, gen: (r, d) => { const k = r.int(-2, 2); return { inputs: [randT(r, [sz(r, 33), sz(r, 33)], d)], run: ([a]) => T.tril(a, k) }; } });
add({
  op: 'matmul', dtypes: FLOATS,
  gen(r, d) {
    const M = sz(r), K = sz(r), N = sz(r);
    const form = r.pick(['2d', 'batched', 'bcast', 'vec', 'transposed']);
    let a, b;
    if (form === '2d') [a, b] = [randT(r, [M, K], d), randT(r, [K, N], d)];
    else if (form === 'batched') [a, b] = [randT(r, [3, M, K], d), randT(r, [3, K, N], d)];
    else if (form === 'bcast') [a, b] = [randT(r, [2, 1, M, K], d), randT(r, [3, K, N], d)];
    else if (form === 'vec') [a, b] = [randT(r, [K], d), randT(r, [2, K, N], d)];
    else [a, b] = [randT(r, [K, M], d).transpose(), randT(r, [N, K], d).transpose()];
    return { inputs: [a, b], run: ([x, y]) => T.matmul(x, y), note: form };
  },
});
add({
  op: 'linear', dtypes: FLOATS,
  gen(r, d) {
    const K = sz(r), N = sz(r);
    return { inputs: [randT(r, [2, sz(r, 33), K], d), randT(r, [N, K], d), randT(r, [N], d)], run: ([x, w, b]) => T.linear(x, w, b) };
  },
});
add({
  op: 'attention', dtypes: FLOATS,
  gen(r, d) {
    const B = r.int(1, 2);
    const Hkv = r.pick([1, 2]);
    const Hq = Hkv * r.pick([1, 4, 8]);
    const Sq = sz(r);
    const causal = r.next() < 0.5;
    const Sk = causal && r.next() < 0.5 ? Sq + r.int(0, 40) : sz(r);
    const D = r.pick([8, 32, 64, 128]);
    const q = randT(r, [B, Hq, Sq, D], d);
    const k = randT(r, [B, Hkv, Sk, D], d);
    const v = randT(r, [B, Hkv, Sk, D], d);
    const kvOffset = causal && Sk < Sq ? Sq : undefined; // every row sees at least one key
    return { inputs: [q, k, v], run: ([a, b, c]) => T.attention(a, b, c, { causal, kvOffset }), note: `B${B} Hq${Hq} Hkv${Hkv} Sq${Sq} Sk${Sk} D${D}${causal ? ' causal' : ''}` };
  },
});
add({
  op: 'qmatmul', dtypes: ['float32', 'bfloat16'],
  gen(r, d) {
    const K = sz(r), N = sz(r, 33);
    const qd = r.pick(['int8', 'int4', 'float8_e4m3fn']);
    const qw = T.quantize(randT(r, [K, N]), { dtype: qd, groupSize: qd === 'int4' ? r.pick([32, 64]) : undefined });
    let qc = null; // the quantized weight lives on the input's device
    const on = (x) => (x.device === 'cuda' ? (qc = qc || qw.to('cuda')) : qw);
    return { inputs: [randT(r, [sz(r, 33), K], d)], run: ([x]) => T.qmatmul(x, on(x)), note: qd };
  },
});
add({
  op: 'spmm', dtypes: ['float32'],
  gen(r, d) {
    const M = sz(r), K = sz(r), N = sz(r, 33);
    const fmt = r.pick(['csr', '2:4']);
    const dense = T.mul(randT(r, [M, K], d), T.tensor(Float32Array.from({ length: M * K }, () => (r.next() < 0.2 ? 1 : 0)), { shape: [M, K] }));
    const sp = T.sparse.fromDense(dense, { format: fmt });
    let sc = null;
    const on = (x) => (x.device === 'cuda' ? (sc = sc || sp.to('cuda')) : sp);
    return { inputs: [randT(r, [K, N], d)], run: ([b]) => T.spmm(on(b), b), note: fmt };
  },
});

function valuesOf(out) {
  return (Array.isArray(out) ? out : [out]).map((o) => ({ dtype: o.dtype, shape: o.shape.slice(), v: o.toFloat64() }));
}

test('sweep: every op on every backend vs the js reference', (t) => {
  t.comment(`backends under test: ${['js', ...BACKENDS].join(', ')}`);
  const coverage = {};
  let seed = 1234;
  for (const c of CASES) {
    for (const dtype of c.dtypes) {
      for (let rep = 0; rep < 3; rep++) {
        const r = rng(seed++);
        const g = c.gen(r, dtype);
        T.setBackend('js');
        const ref = valuesOf(g.run(g.inputs));
        T.setBackend(null);
        for (const b of BACKENDS) {
          const inputs = b === 'cuda' ? g.inputs.map((x) => x.to('cuda')) : g.inputs;
          T.setBackend(b);
          let out;
          try {
            out = valuesOf(g.run(inputs));
          } catch (e) {
            t.fail(`${c.op} ${dtype} on ${b}: threw ${e.message}`);
            continue;
          } finally {
            T.setBackend(null);
          }
          const ran = T.lastRun(c.op === 'gelu_tanh' ? 'gelu_tanh' : c.op);
          const key = `${c.op}/${b}`;
          coverage[key] = coverage[key] || new Set();
          if (ran) coverage[key].add(ran.backend);
          const label = `${c.op} ${dtype} ${g.note || ''} ${ref.map((o) => `[${o.shape}]`).join(' ')} on ${b} (ran ${ran ? ran.variant : '?'})`;
          let ok = true;
          let msg = '';
          ref.forEach((o, i) => {
            const res = compare(out[i].v, o.v, TOL[o.dtype] || 0);
            const shapeOk = out[i].shape.join() === o.shape.join() && out[i].dtype === o.dtype;
            if (!res.ok || !shapeOk) {
              ok = false;
              msg += ` out${i}: ${shapeOk ? res.msg : `shape/dtype ${out[i].dtype}[${out[i].shape}] vs ${o.dtype}[${o.shape}]`}`;
            }
          });
          t.ok(ok, label + msg);
          if (b === 'cuda') inputs.forEach((x) => x.dispose());
        }
      }
    }
  }
  // ops a native backend registers must actually run there for the dtypes the sweep uses
  for (const key of Object.keys(coverage)) {
    const [op, b] = key.split('/');
    if (['matmul', 'linear', 'attention', 'spmm', 'qmatmul'].includes(op) && b === 'cpu') {
      t.ok(coverage[key].has('cpu'), `${op} ran on the native cpu kernel during the sweep`);
    }
  }
  t.comment(`coverage: ${Object.entries(coverage).filter(([, s]) => [...s].some((x) => x !== 'js')).map(([k, s]) => `${k}->${[...s].join('|')}`).join(', ')}`);
  t.end();
});

// Float64 checks of the js reference itself, against naive float64 code written here.
function naiveMatmul(a, b, M, K, N) {
  const o = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
    o[i * N + j] = s;
  }
  return o;
}

test('float64: js reference matmul, softmax and attention vs naive float64', (t) => {
  T.setBackend('js');
  const r = rng(7);
  for (const [M, K, N] of [[1, 1, 1], [7, 33, 5], [33, 127, 7], [127, 7, 33]]) {
    const a = randT(r, [M, K], 'float64');
    const b = randT(r, [K, N], 'float64');
    const res = compare(T.matmul(a, b).toFloat64(), naiveMatmul(a.toFloat64(), b.toFloat64(), M, K, N), 1e-14);
    t.ok(res.ok, `matmul ${M}x${K}x${N} float64: ${res.msg}`);
  }
  for (const [R, C] of [[1, 1], [7, 33], [33, 127]]) {
    const x = randT(r, [R, C], 'float64', 10);
    const xv = x.toFloat64();
    const ref = new Float64Array(R * C);
    for (let i = 0; i < R; i++) {
      let s = 0;
      for (let j = 0; j < C; j++) s += Math.exp(xv[i * C + j]);
      for (let j = 0; j < C; j++) ref[i * C + j] = Math.exp(xv[i * C + j]) / s;
    }
    const res = compare(T.softmax(x, -1).toFloat64(), ref, 1e-14);
    t.ok(res.ok, `softmax ${R}x${C} float64: ${res.msg}`);
  }
  for (const [Hq, Hkv, Sq, Sk, D, causal] of [[1, 1, 1, 1, 1, false], [4, 1, 7, 33, 16, true], [8, 2, 33, 33, 64, true], [2, 2, 5, 127, 8, false]]) {
    const q = randT(r, [1, Hq, Sq, D], 'float64');
    const k = randT(r, [1, Hkv, Sk, D], 'float64');
    const v = randT(r, [1, Hkv, Sk, D], 'float64');
    const [qv, kv, vv] = [q, k, v].map((x) => x.toFloat64());
    const ref = new Float64Array(Hq * Sq * D);
    const scale = 1 / Math.sqrt(D);
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hkv));
      for (let i = 0; i < Sq; i++) {
        const p = [];
        for (let j = 0; j < Sk; j++) {
          if (causal && j > Sk - Sq + i) { p.push(0); continue; }
          let s = 0;
          for (let d = 0; d < D; d++) s += qv[(h * Sq + i) * D + d] * kv[(hk * Sk + j) * D + d];
          p.push(Math.exp(s * scale));
        }
        const z = p.reduce((x, y) => x + y, 0);
        for (let d = 0; d < D; d++) {
          let o = 0;
          for (let j = 0; j < Sk; j++) o += (p[j] / z) * vv[(hk * Sk + j) * D + d];
          ref[(h * Sq + i) * D + d] = o;
        }
      }
    }
    const res = compare(T.attention(q, k, v, { causal }).toFloat64(), ref, 1e-13);
    t.ok(res.ok, `attention Hq${Hq} Hkv${Hkv} Sq${Sq} Sk${Sk} D${D}${causal ? ' causal' : ''} float64: ${res.msg}`);
  }
  T.setBackend(null);
  t.end();
});
