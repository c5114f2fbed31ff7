// The CPU benchmark's cases, family by family. A case is
//   { family, id, kernel, shape, unit, flops, effFlops?, bytes?, op, targets, setup(ctx) }
// bytes: what a memory-bound case must read at least per call (weights, KV cache); such rows get GB/s and
// a fraction of the DRAM read roof (T.memoryBandwidth) next to their rate.
// and setup resolves to { runners, cleanup(), notes?, nnz? }: runners[0] is tessera (its reference() is the
// output of its last timed call, for the peer check), the rest are peers { key, name, call | timed(n),
// output?(), release?(), tol }. ctx = { T, threads, numpy, peers, quick }.
// TARGETS holds the "CPU kernels at speed" goals in one place, as the issue states them: ratio = peer time /
// tessera time in the same run (2 threads). A case carries a list of them (empty: measured, no goal).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fillUniform, sparsify, swap12 } = require('./harness');

const TARGETS = {
  gemm: [{ peer: 'ort', ratio: 1.0 }, { peer: 'numpy', ratio: 1.0 }], // square 1024 and 2048 only
  attentionFull: [{ peer: 'ort', ratio: 1.0 }], // non-causal, S = 2048
  attentionCausal: [{ peer: 'ort', ratio: 1.8 }], // causal, S = 2048 (ORT skips no masked blocks)
  int8: [{ peer: 'ort', ratio: 1.0 }, { peer: 'ours-f32', ratio: 1.5 }], // 2048^3; ORT U8U8 on the same codes
  int4: [{ peer: 'ort', ratio: 3.0 }, { peer: 'ours-f32', ratio: 3.0 }], // GEMV 1x4096x4096 g32; ORT acc 0
  spmm: [{ peer: 'ours-dense', ratio: 5.0 }], // CSR at 95% sparsity vs our dense fp32 GEMM of the same matrix
  spmm24: [{ peer: 'ours-dense', ratio: 1.3 }],
  js: [{ peer: 'tfjs', ratio: 1.0 }],
};

// how close a peer's output must be to tessera's (‖peer − ours‖ / ‖ours‖) to count as the same computation
const TOL = { fp32: 1e-4, int8: 5e-2, int4: 1e-3, int4act8: 5e-2, fp8: 1.5e-1 };

const tensor = (T, data, shape) => T.tensor(data, { shape });
/**
 * The int4 GEMV cases' inputs: x [1, K], W [K, N] quantized to int4 groups of 32 (tw kept when keepFloat, for
 * the fp32 yardstick) and ORT MatMulNBits over the same codes, one node or `copies` nodes on the same input:
 * ort(accuracyLevel, tol, name) builds that runner.
 */
function int4Gemv(T, peers, K, N, threads, { keepFloat = false, copies = 1 } = {}) {
  const x = fillUniform(K, 1);
  const tx = tensor(T, x, [1, K]);
  const tw = tensor(T, fillUniform(K * N, 2), [K, N]);
  const qw = T.quantize(tw, { dtype: 'int4', groupSize: 32 });
  if (!keepFloat) tw.dispose();
  const nb = peers.int4ToNBits(qw.values.data(), qw.scales.toFloat32(), K, N, 32);
  const common = { M: 1, K, N, a: x, packed: nb.packed, scales: nb.scales, bits: 4, blockSize: 32, threads, copies };
  const ort = (key, accuracyLevel, tol, name) => ortRunner(key, name, peers.ortMatMulNBits({ ...common, accuracyLevel }), tol);
  return { tx, tw: keepFloat ? tw : null, qw, ort };
}

/** bytes of a K x N int4 weight with float32 scales per group of g rows (what the GEMV reads) */
const int4Bytes = (K, N, g) => (K * N) / 2 + 4 * ((K / g) * N + K + N);
const out = (t) => {
  const d = t.toFloat32();
  t.dispose();
  return d;
};

/** The last output is kept (and freed by the next call) so the peer check needs no extra, slow JS call. */
function tesseraRunner(T, name, op, f) {
  let last = null;
  let rec = null;
  return {
    key: 'tessera',
    name,
    op,
    call: () => {
      if (last) last.dispose();
      last = f();
      rec = T.lastRun(op); // this runner's kernel, whatever a yardstick runner of the same op ran later
    },
    record: () => rec,
    reference: () => (last ? last.toFloat32() : out(f())),
    release: () => last && last.dispose(),
  };
}

/** Another tessera kernel as a yardstick (the "x our fp32 GEMM" goals); its output is not compared. */
function oursRunner(T, key, name, f) {
  let last = null;
  return {
    key,
    name,
    call: () => {
      if (last) last.dispose();
      last = f();
    },
    release: () => last && last.dispose(),
  };
}

async function ortRunner(key, name, built, tol, toRef = (x) => x) {
  const s = await built;
  return { key, name, call: s.run, output: () => toRef(s.output()), release: s.release, tol };
}

async function numpyRunner(ctx, key, name, id, spec) {
  if (!ctx.numpy) return null;
  return { key, name, ...(await ctx.numpy.runner(id, spec)) };
}

// ---------------------------------------------------------------- fp32 GEMM
function gemmCases(quick) {
  const square = quick ? [256, 1024] : [256, 512, 1024, 2048];
  const llm = quick
    ? [[1, 4096, 4096], [128, 4096, 4096], [16, 4096, 11008]]
    : [1, 16, 128].flatMap((m) => [[m, 4096, 4096], [m, 4096, 11008]]);
  const shapes = [...square.map((n) => ({ M: n, K: n, N: n, weights: false })), ...llm.map(([M, K, N]) => ({ M, K, N, weights: true }))];
  return shapes.map(({ M, K, N, weights }) => ({
    family: 'gemm',
    id: `gemm-f32-${M}x${K}x${N}`,
    kernel: weights ? 'GEMM fp32 (linear)' : 'GEMM fp32',
    shape: `${M}x${K}x${N}`,
    unit: 'GFLOP/s',
    flops: 2 * M * K * N,
    bytes: M === 1 ? 4 * (K * N + K + N) : undefined, // GEMV: the weights stream from DRAM once per call
    op: 'matmul',
    targets: !weights && (M === 1024 || M === 2048) ? TARGETS.gemm : [],
    async setup(ctx) {
      const { T, threads, peers } = ctx;
      const a = fillUniform(M * K, 1);
      const b = fillUniform(K * N, 2);
      const ta = tensor(T, a, [M, K]);
      const tb = tensor(T, b, [K, N]);
      const runners = [tesseraRunner(T, 'tessera matmul', 'matmul', () => T.matmul(ta, tb))];
      // square: B is a graph input (pure kernel, nothing prepacked); LLM shapes: B is a constant weight
      // (initializer), which ORT prepacks once at session creation, as in a real model
      const ortName = weights ? 'ORT MatMul (B initializer, prepacked)' : 'ORT MatMul';
      runners.push(await ortRunner('ort', ortName, peers.ortMatMul({ M, K, N, a, b, bConst: weights, threads }), TOL.fp32));
      runners.push(await numpyRunner(ctx, 'numpy', 'numpy a @ b', this.id, { kind: 'gemm', M, K, N }));
      return { runners: runners.filter(Boolean), cleanup: () => (ta.dispose(), tb.dispose()) };
    },
  }));
}

// ---------------------------------------------------------------- attention
function attentionCases(quick) {
  const [B, H, D] = [1, 16, 128];
  const list = [];
  const seqs = quick ? [[512, false], [512, true], [2048, true]] : [512, 2048, 8192].flatMap((s) => [[s, false], [s, true]]);
  for (const [S, causal] of seqs) list.push({ Sq: S, Skv: S, causal });
  list.push({ Sq: 1, Skv: 4096, causal: false, decode: true });
  return list.map(({ Sq, Skv, causal, decode }) => ({
    family: 'attention',
    id: `attn-${decode ? 'decode' : causal ? 'causal' : 'full'}-S${Sq}x${Skv}`,
    kernel: decode ? 'attention decode' : causal ? 'attention causal' : 'attention',
    shape: `B${B} H${H} D${D} Sq${Sq} Sk${Skv}`,
    unit: 'GFLOP/s',
    flops: (4 * B * H * Sq * Skv * D) / (causal ? 2 : 1),
    bytes: decode ? 4 * B * H * D * (2 * Skv + 2 * Sq) : undefined, // decode: the K/V cache, read once
    op: 'attention',
    targets: Sq === 2048 ? (causal ? TARGETS.attentionCausal : TARGETS.attentionFull) : [],
    async setup({ T, threads, peers }) {
      const q = fillUniform(B * H * Sq * D, 3);
      const k = fillUniform(B * H * Skv * D, 4);
      const v = fillUniform(B * H * Skv * D, 5);
      const [tq, tk, tv] = [[q, Sq], [k, Skv], [v, Skv]].map(([d, s]) => tensor(T, d, [B, H, s, D]));
      const runners = [tesseraRunner(T, 'tessera attention', 'attention', () => T.attention(tq, tk, tv, { causal }))];
      // MHA wants BSNH for prefill; for decode K/V go in as a BNSH KV cache (its past_key form)
      const toBSNH = (d, s) => swap12(d, [B, H, s, D]);
      const built = peers.ortMHA({ B, H, Sq, Skv, D, q: toBSNH(q, Sq), k: decode ? k : toBSNH(k, Skv), v: decode ? v : toBSNH(v, Skv), causal, kvBNSH: !!decode, threads });
      const name = `ORT MultiHeadAttention${causal ? ' unidirectional=1' : ''}${decode ? ' (BNSH KV)' : ''}`;
      runners.push(await ortRunner('ort', name, built, TOL.fp32, (o) => swap12(o, [B, Sq, H, D])));
      return { runners, cleanup: () => [tq, tk, tv].forEach((t) => t.dispose()) };
    },
  }));
}

// ---------------------------------------------------------------- low precision
function qgemmCases(quick) {
  const int8 = quick ? [[16, 4096, 4096]] : [[2048, 2048, 2048], [1, 4096, 4096], [16, 4096, 4096], [128, 4096, 4096]];
  const cases = int8.map(([M, K, N]) => ({
    family: 'qgemm',
    id: `int8-${M}x${K}x${N}`,
    kernel: 'GEMM int8 (W8A8)',
    shape: `${M}x${K}x${N}`,
    unit: 'GOP/s',
    flops: 2 * M * K * N,
    bytes: M === 1 ? K * N + 4 * (N + K + N) : undefined, // int8 weights + per-channel scales
    op: 'qmatmul',
    targets: M === 2048 ? TARGETS.int8 : [],
    async setup({ T, threads, peers }) {
      const x = fillUniform(M * K, 1);
      const w = fillUniform(K * N, 2);
      const tx = tensor(T, x, [M, K]);
      const tw = tensor(T, w, [K, N]);
      const qw = T.quantize(tw, { dtype: 'int8' }); // per output channel
      const runners = [tesseraRunner(T, 'tessera qmatmul int8', 'qmatmul', () => T.qmatmul(tx, qw))];
      const built = peers.ortDynQuantMatMul({ M, K, N, a: x, wq: qw.values.data(), scales: qw.scales.toFloat32(), threads });
      runners.push(await ortRunner('ort', 'ORT DynamicQuantizeMatMul U8U8 (same int8 codes, zp 128)', built, TOL.int8));
      const q7 = peers.quantizeInt7(w, K, N);
      const built7 = peers.ortDynQuantMatMul({ M, K, N, a: x, wq: q7.wq, scales: q7.scales, signed7: true, threads });
      runners.push(await ortRunner('ort-s7', 'ORT DynamicQuantizeMatMul U8S8, 7-bit W (reduce_range)', built7, TOL.int8));
      if (M === 2048) runners.push(oursRunner(T, 'ours-f32', 'tessera fp32 matmul, same shape', () => T.matmul(tx, tw)));
      return { runners, cleanup: () => (tx.dispose(), tw.dispose(), qw.dispose()) };
    },
  }));
  const K = 4096;
  const N = 4096;
  cases.push({
    family: 'qgemm',
    id: `int4-gemv-1x${K}x${N}-g32`,
    kernel: 'GEMV int4 (weight-only, g32)',
    shape: `1x${K}x${N}`,
    unit: 'GFLOP/s',
    flops: 2 * K * N,
    bytes: int4Bytes(K, N, 32), // 10 MB: stays in this machine's 32 MB L3 between calls (the cold case below does not)
    op: 'qmatmul',
    targets: TARGETS.int4,
    async setup({ T, threads, peers }) {
      const { tx, tw, qw, ort } = int4Gemv(T, peers, K, N, threads, { keepFloat: true });
      const runners = [tesseraRunner(T, 'tessera qmatmul int4', 'qmatmul', () => T.qmatmul(tx, qw))];
      runners.push(await ort('ort', 0, TOL.int4, 'ORT MatMulNBits bits=4 bs=32 acc=0 (same codes)'));
      runners.push(await ort('ort-a8', 4, TOL.int4act8, 'ORT MatMulNBits bits=4 bs=32 acc=4 (int8 act.)'));
      runners.push(oursRunner(T, 'ours-f32', 'tessera fp32 GEMV, same weights unquantized', () => T.matmul(tx, tw)));
      return { runners, cleanup: () => (tx.dispose(), tw.dispose(), qw.dispose()) };
    },
  });
  // W4A8: the same weights with activations rounded to int8 per group (qmatmul options.activations 'int8'),
  // against ORT's int8-activation MatMulNBits (accuracy_level 4) and our float-activation kernel
  cases.push({
    family: 'qgemm',
    id: `int4-a8-gemv-1x${K}x${N}-g32`,
    kernel: 'GEMV int4 W4A8 (int8 activations, g32)',
    shape: `1x${K}x${N}`,
    unit: 'GFLOP/s',
    flops: 2 * K * N,
    bytes: int4Bytes(K, N, 32),
    op: 'qmatmul',
    targets: [],
    async setup({ T, threads, peers }) {
      const { tx, qw, ort } = int4Gemv(T, peers, K, N, threads);
      const runners = [tesseraRunner(T, 'tessera qmatmul int4, activations int8', 'qmatmul', () => T.qmatmul(tx, qw, { activations: 'int8' }))];
      runners.push(await ort('ort-a8', 4, TOL.int4act8, 'ORT MatMulNBits bits=4 bs=32 acc=4 (int8 act.)'));
      runners.push(await ort('ort', 0, TOL.int4act8, 'ORT MatMulNBits bits=4 bs=32 acc=0 (float act.)'));
      runners.push(oursRunner(T, 'ours-wo', 'tessera int4 weight-only, float activations', () => T.qmatmul(tx, qw)));
      return { runners, cleanup: () => (tx.dispose(), qw.dispose()) };
    },
  });
  // The decode GEMV as a model runs it: every call reads another layer's weights, so nothing stays in L3.
  // Each call here runs the GEMV over COPIES weight matrices in turn (COPIES x 10 MB, well past the 32 MB
  // L3), for tessera and for ORT (one graph of COPIES MatMulNBits nodes on the same input, one run per
  // call): the DRAM-bound case. Copies share codes (quantized once) but not memory.
  const COPIES = quick ? 4 : 12;
  for (const a8 of [false, true]) cases.push({
    family: 'qgemm',
    id: `int4${a8 ? '-a8' : ''}-gemv-cold-${COPIES}x1x${K}x${N}-g32`,
    kernel: `GEMV int4 ${a8 ? 'W4A8 (int8 activations, g32)' : '(weight-only, g32)'}, weights cycled past L3`,
    shape: `${COPIES} x 1x${K}x${N}`,
    unit: 'GFLOP/s',
    flops: COPIES * 2 * K * N,
    bytes: COPIES * int4Bytes(K, N, 32),
    op: 'qmatmul',
    targets: [],
    async setup({ T, threads, peers }) {
      const { tx, qw: q0, ort } = int4Gemv(T, peers, K, N, threads, { copies: COPIES });
      const raw = { dtype: q0.dtype, K, N, groupSize: q0.groupSize, perTensor: q0.perTensor };
      const qs = [q0];
      for (let i = 1; i < COPIES; i++) qs.push(new T.QuantizedTensor(raw, q0.values.clone(), q0.scales.clone(), null));
      const all = () => {
        let y = null;
        for (const q of qs) {
          if (y) y.dispose();
          y = T.qmatmul(tx, q, a8 ? { activations: 'int8' } : undefined);
        }
        return y;
      };
      const runners = [tesseraRunner(T, `tessera qmatmul int4${a8 ? ', activations int8' : ''}, ${COPIES} weight matrices in turn`, 'qmatmul', all)];
      runners.push(await ort('ort', 0, a8 ? TOL.int4act8 : TOL.int4, `ORT MatMulNBits bits=4 bs=32 acc=0, ${COPIES} nodes`));
      runners.push(await ort('ort-a8', 4, TOL.int4act8, `ORT MatMulNBits bits=4 bs=32 acc=4 (int8 act.), ${COPIES} nodes`));
      return { runners, cleanup: () => (tx.dispose(), qs.forEach((q) => q.dispose())) };
    },
  });
  // fp8 quantize and the JS fp8 kernel cost ~0.5 µs/element: --quick uses 1024^2 to stay short
  const F = quick ? 1024 : 4096;
  cases.push({
    family: 'qgemm',
    id: `fp8-gemv-1x${F}x${F}`,
    kernel: 'GEMV fp8 e4m3 (weight-only)',
    shape: `1x${F}x${F}`,
    unit: 'GFLOP/s',
    flops: 2 * F * F,
    bytes: F * F + 4 * (F + F + F), // fp8 weights + per-channel scales
    op: 'qmatmul',
    targets: [], // the issue sets no fp8 goal; ORT's CPU EP has no fp8 kernel
    async setup({ T, threads, peers }) {
      const x = fillUniform(F, 1);
      const w = fillUniform(F * F, 2);
      const tx = tensor(T, x, [1, F]);
      const tw = tensor(T, w, [F, F]);
      const qw = T.quantize(tw, { dtype: 'float8_e4m3fn' });
      tw.dispose();
      const runners = [tesseraRunner(T, 'tessera qmatmul fp8', 'qmatmul', () => T.qmatmul(tx, qw))];
      runners.push(await ortRunner('ort', 'ORT MatMul fp32 (B initializer; ORT CPU has no fp8 op)', peers.ortMatMul({ M: 1, K: F, N: F, a: x, b: w, bConst: true, threads }), TOL.fp8));
      const nb = peers.quantizeNBits8(w, F, F, 32);
      const built = peers.ortMatMulNBits({ M: 1, K: F, N: F, a: x, packed: nb.packed, scales: nb.scales, bits: 8, blockSize: 32, accuracyLevel: 0, threads });
      runners.push(await ortRunner('ort-nb8', 'ORT MatMulNBits bits=8 bs=32 acc=0 (8-bit weights)', built, TOL.fp8));
      return { runners, cleanup: () => (tx.dispose(), qw.dispose()) };
    },
  });
  return cases;
}

// ---------------------------------------------------------------- sparse
function spmmCases(quick) {
  const [M, K, N] = [4096, 4096, 64];
  const formats = [...(quick ? [0.95, 0.99] : [0.8, 0.9, 0.95, 0.99]).map((s) => ({ fmt: 'csr', s })), { fmt: '2:4', s: 0.5 }];
  return formats.map(({ fmt, s }) => ({
    family: 'spmm',
    id: fmt === 'csr' ? `spmm-csr-${Math.round(s * 100)}` : 'spmm-2to4',
    kernel: fmt === 'csr' ? `SpMM CSR ${Math.round(s * 100)}%` : 'SpMM 2:4',
    shape: `${M}x${K} @ ${K}x${N}`,
    unit: 'GFLOP/s',
    flops: 0, // 2 * nnz * N, known after set-up
    effFlops: 2 * M * K * N,
    sparsity: s,
    op: 'spmm',
    targets: fmt === 'csr' ? (s === 0.95 ? TARGETS.spmm : []) : TARGETS.spmm24,
    async setup(ctx) {
      const { T, threads, peers } = ctx;
      const dense = fillUniform(M * K, 9);
      if (fmt === 'csr') sparsify(dense, s);
      const td = tensor(T, dense, [M, K]);
      const sp = T.sparse.fromDense(td, { format: fmt });
      this.flops = 2 * sp.nnz * N;
      const pruned = fmt === 'csr' ? dense : out(T.sparse.toDense(sp));
      const b = fillUniform(K * N, 2);
      const tb = tensor(T, b, [K, N]);
      const runners = [tesseraRunner(T, `tessera spmm ${fmt}`, 'spmm', () => T.spmm(sp, tb))];
      // ORT: the same (pruned) matrix as a dense constant A, Y = A @ B: "is sparse worth it here?"
      runners.push(await ortRunner('ort', 'ORT MatMul dense (same matrix as A initializer)', peers.ortMatMul({ M, K, N, a: pruned, b, aConst: true, threads }), TOL.fp32));
      // our dense fp32 GEMM on the same (pruned) matrix: the "sparse beats our dense" yardstick
      const tp = fmt === 'csr' ? td : tensor(T, pruned, [M, K]);
      if (tp !== td) td.dispose();
      runners.push(oursRunner(T, 'ours-dense', 'tessera dense fp32 matmul, same matrix', () => T.matmul(tp, tb)));
      // scipy CSR @ dense on exactly our matrix (CSR arrays handed over through temp files)
      let files = null;
      if (ctx.numpy && fmt === 'csr') {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-'));
        files = { rowPtr: path.join(dir, 'rowptr.i32'), colIdx: path.join(dir, 'colidx.i32'), values: path.join(dir, 'values.f32'), dir };
        sp.parts.forEach((p, i) => fs.writeFileSync(Object.values(files)[i], p.data()));
        runners.push(await numpyRunner(ctx, 'scipy', 'scipy.sparse CSR @ dense (1 thread)', this.id, { kind: 'csr', M, K, N, files }));
      }
      const cleanup = () => {
        tb.dispose();
        tp.dispose();
        sp.dispose();
        if (files) fs.rmSync(files.dir, { recursive: true, force: true });
      };
      return { runners, cleanup, nnz: sp.nnz };
    },
  }));
}

// ---------------------------------------------------------------- pure-JS fallback
function jsCases() {
  const n = 512;
  return [
    {
      family: 'js',
      id: `js-matmul-${n}`,
      kernel: 'GEMM fp32, JS backend',
      shape: `${n}x${n}x${n}`,
      unit: 'GFLOP/s',
      flops: 2 * n ** 3,
      op: 'matmul',
      targets: TARGETS.js,
      async setup({ T, peers }) {
        const a = fillUniform(n * n, 1);
        const b = fillUniform(n * n, 2);
        const ta = tensor(T, a, [n, n]);
        const tb = tensor(T, b, [n, n]);
        const js = (f) => () => {
          T.setBackend('js');
          try {
            return f();
          } finally {
            T.setBackend(null);
          }
        };
        const runners = [tesseraRunner(T, 'tessera matmul (backend js)', 'matmul', js(() => T.matmul(ta, tb)))];
        const tf = await peers.loadTfjs();
        if (!tf.unavailable) {
          const [fa, fb] = [tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])];
          let last = null;
          runners.push({
            key: 'tfjs',
            name: `tfjs ${tf.version_core} matMul (cpu backend)`,
            call: () => {
              const c = tf.matMul(fa, fb);
              last = c.dataSync();
              c.dispose();
            },
            output: () => last,
            release: () => (fa.dispose(), fb.dispose()),
            tol: TOL.fp32,
          });
        }
        return { runners, cleanup: () => (ta.dispose(), tb.dispose()), notes: tf.unavailable ? [tf.unavailable] : [] };
      },
    },
  ];
}

const FAMILIES = ['gemm', 'attention', 'qgemm', 'spmm', 'js'];

function buildCases({ quick, only }) {
  const all = { gemm: gemmCases(quick), attention: attentionCases(quick), qgemm: qgemmCases(quick), spmm: spmmCases(quick), js: jsCases() };
  return FAMILIES.filter((f) => !only || only.includes(f)).flatMap((f) => all[f]);
}

module.exports = { buildCases, FAMILIES, TARGETS };
