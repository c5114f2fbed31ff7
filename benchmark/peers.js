// Peers the CPU benchmark runs side by side with tessera, in the same process (ORT, tfjs) or in one
// long-lived python3 worker (numpy/OpenBLAS, scipy):
//   onnxruntime-node  CPU EP (MLAS), one-node models written by onnx-proto.js, intra-op threads = ours
//   @tensorflow/tfjs  pure-JS CPU backend: the yardstick for tessera's JS fallback
//   numpy / scipy     fp32 GEMM (OpenBLAS sgemm) and CSR @ dense, via benchmark/numpy_peer.py
// Every ORT builder returns { session, feeds, run(), output() } with feeds created once and reused.
'use strict';
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const P = require('./onnx-proto');

let ort = null;
function loadOrt() {
  if (ort === null) {
    try {
      ort = require('onnxruntime-node');
    } catch (e) {
      ort = { unavailable: `onnxruntime-node not installed (${e.code || e.message})` };
    }
  }
  return ort;
}

const sessionOptions = (threads) => ({
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  // ORT's defaults otherwise (its pool threads spin between runs, which helps its back-to-back calls); the
  // harness idles between runners so that the spinning does not slow the runner timed next
});

async function session(modelBytes, feeds, threads, outName) {
  const o = loadOrt();
  const s = await o.InferenceSession.create(modelBytes, sessionOptions(threads));
  let last = null;
  return {
    session: s,
    run: async () => {
      last = await s.run(feeds);
    },
    output: () => last && last[outName].data,
    release: () => s.release && s.release(),
  };
}

const f32 = (data, dims) => new (loadOrt().Tensor)('float32', data, dims);

/**
 * Y[M,N] = A[M,K] @ B[K,N]. Each operand is a graph input (fed per run: the pure kernel, nothing prepacked)
 * or, with aConst / bConst, an initializer (a constant weight; ORT's MatMul prepacks a constant B once, at
 * session creation).
 */
function ortMatMul({ M, K, N, a, b, aConst = false, bConst = false, threads }) {
  const inputs = [];
  const initializers = [];
  const feeds = {};
  for (const [name, data, dims, isConst] of [['A', a, [M, K], aConst], ['B', b, [K, N], bConst]]) {
    if (isConst) initializers.push(P.tensor(name, P.DT.FLOAT, dims, data));
    else {
      inputs.push(P.valueInfo(name, P.DT.FLOAT, dims));
      feeds[name] = f32(data, dims);
    }
  }
  const bytes = P.model({ nodes: [P.node('MatMul', ['A', 'B'], ['Y'])], inputs, outputs: [P.valueInfo('Y', P.DT.FLOAT, [M, N])], initializers });
  return session(bytes, feeds, threads, 'Y');
}

/**
 * com.microsoft DynamicQuantizeMatMul: A fp32, quantized per tensor to uint8 at run time; B 8-bit [K,N]
 * with per-column b_scale [N]. B is uint8 with b_zero_point 128 (the U8U8 path): MLAS's U8S8 path on AVX2
 * (vpmaddubsw) saturates 16-bit pair sums with full-range int8 weights and was off by ~18% here; ORT's
 * quantizer avoids that with 7-bit weights (reduce_range), which quantizeInt7 gives for the second peer.
 */
function ortDynQuantMatMul({ M, K, N, a, wq, scales, signed7 = false, threads }) {
  const init = [P.tensor('b_scale', P.DT.FLOAT, [N], scales)];
  const names = ['A', 'B', 'b_scale'];
  if (signed7) init.push(P.tensor('B', P.DT.INT8, [K, N], wq));
  else {
    const wu = new Uint8Array(wq.length);
    for (let i = 0; i < wq.length; i++) wu[i] = wq[i] + 128;
    init.push(P.tensor('B', P.DT.UINT8, [K, N], wu), P.tensor('b_zero_point', P.DT.UINT8, [N], new Uint8Array(N).fill(128)));
    names.push('b_zero_point');
  }
  const bytes = P.model({
    nodes: [P.node('DynamicQuantizeMatMul', names, ['Y'], {}, 'com.microsoft')],
    inputs: [P.valueInfo('A', P.DT.FLOAT, [M, K])],
    outputs: [P.valueInfo('Y', P.DT.FLOAT, [M, N])],
    initializers: init,
  });
  return session(bytes, { A: f32(a, [M, K]) }, threads, 'Y');
}

/** fp32 w [K,N] -> symmetric 7-bit codes in int8 (|q| <= 63) with per-column scales: ORT's reduce_range. */
function quantizeInt7(w, K, N) {
  const scales = new Float32Array(N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) scales[n] = Math.max(scales[n], Math.abs(w[k * N + n]));
  for (let n = 0; n < N; n++) scales[n] = Math.fround(scales[n] / 63) || 1;
  const wq = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wq[k * N + n] = Math.max(-63, Math.min(63, Math.round(w[k * N + n] / scales[n])));
  return { wq, scales };
}

/**
 * com.microsoft MatMulNBits: B uint8 [N, K/block, block*bits/8] (K-contiguous codes, low nibble first),
 * scales [N, K/block], default zero point 2^(bits-1). accuracy_level 0 = fp32 math, 4 = int8 activations.
 */
function ortMatMulNBits({ M, K, N, a, packed, scales, bits, blockSize, accuracyLevel, threads, copies = 1 }) {
  const kb = K / blockSize;
  const attrs = { K, N, bits, block_size: blockSize, accuracy_level: accuracyLevel };
  // copies > 1: that many nodes on the same input, each with its own copy of the weights (Y_i all graph
  // outputs, so none is pruned); output() is the last one's
  const name = (s, i) => (copies === 1 ? s : `${s}_${i}`);
  const ids = [...Array(copies).keys()];
  const bytes = P.model({
    nodes: ids.map((i) => P.node('MatMulNBits', ['A', name('B', i), name('scales', i)], [name('Y', i)], attrs, 'com.microsoft', `MatMulNBits_${i}`)),
    inputs: [P.valueInfo('A', P.DT.FLOAT, [M, K])],
    outputs: ids.map((i) => P.valueInfo(name('Y', i), P.DT.FLOAT, [M, N])),
    initializers: ids.flatMap((i) => [P.tensor(name('B', i), P.DT.UINT8, [N, kb, (blockSize * bits) / 8], packed), P.tensor(name('scales', i), P.DT.FLOAT, [N, kb], scales)]),
  });
  return session(bytes, { A: f32(a, [M, K]) }, threads, name('Y', copies - 1));
}

/** tessera int4 (values packed row-major over [K,N], scales [K/g, N]) -> MatMulNBits layout, same codes. */
function int4ToNBits(values, scales, K, N, g) {
  const kb = K / g;
  const packed = new Uint8Array(N * kb * (g / 2));
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const e = k * N + n;
      let q = (values[e >> 1] >> ((e & 1) * 4)) & 15;
      q = (q ^ 8) - 8; // two's-complement nibble -> [-8, 7]
      const b = Math.floor(k / g);
      const j = k - b * g;
      packed[(n * kb + b) * (g / 2) + (j >> 1)] |= (q + 8) << ((j & 1) * 4);
    }
  }
  const sc = new Float32Array(N * kb);
  for (let b = 0; b < kb; b++) for (let n = 0; n < N; n++) sc[n * kb + b] = scales[b * N + n];
  return { packed, scales: sc };
}

/** fp32 w [K,N] -> 8-bit MatMulNBits blocks along K (symmetric, zero point 128). */
function quantizeNBits8(w, K, N, g) {
  const kb = K / g;
  const packed = new Uint8Array(N * K);
  const sc = new Float32Array(N * kb);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kb; b++) {
      let mx = 0;
      for (let j = 0; j < g; j++) mx = Math.max(mx, Math.abs(w[(b * g + j) * N + n]));
      const s = Math.fround(mx / 127) || 1;
      sc[n * kb + b] = s;
      for (let j = 0; j < g; j++) packed[n * K + b * g + j] = Math.max(-127, Math.min(127, Math.round(w[(b * g + j) * N + n] / s))) + 128;
    }
  }
  return { packed, scales: sc };
}

/**
 * com.microsoft MultiHeadAttention, fp32. query [B, Sq, H*D]; key/value [B, Skv, H*D] (BSNH, prefill) or
 * [B, H, Skv, D] (BNSH, a KV cache: decode); unidirectional=1 for causal (ORT >= 1.2x honours it on CPU).
 */
function ortMHA({ B, H, Sq, Skv, D, q, k, v, causal, kvBNSH, threads }) {
  const kvDims = kvBNSH ? [B, H, Skv, D] : [B, Skv, H * D];
  const attrs = { num_heads: H };
  if (causal) attrs.unidirectional = 1;
  const bytes = P.model({
    nodes: [P.node('MultiHeadAttention', ['query', 'key', 'value'], ['out'], attrs, 'com.microsoft')],
    inputs: [P.valueInfo('query', P.DT.FLOAT, [B, Sq, H * D]), P.valueInfo('key', P.DT.FLOAT, kvDims), P.valueInfo('value', P.DT.FLOAT, kvDims)],
    outputs: [P.valueInfo('out', P.DT.FLOAT, [B, Sq, H * D])],
  });
  return session(bytes, { query: f32(q, [B, Sq, H * D]), key: f32(k, kvDims), value: f32(v, kvDims) }, threads, 'out');
}

let tf = null;
/** @tensorflow/tfjs on its pure-JS 'cpu' backend (its "install tfjs-node" hint is silenced). */
async function loadTfjs() {
  if (tf) return tf;
  const warn = console.warn;
  const log = console.log;
  console.warn = console.log = () => {};
  try {
    const t = require('@tensorflow/tfjs');
    await t.setBackend('cpu');
    await t.ready();
    t.matMul(t.ones([2, 2]), t.ones([2, 2])).dispose(); // the first op prints the hint: keep it silenced
    tf = t;
  } catch (e) {
    tf = { unavailable: `@tensorflow/tfjs not usable (${e.code || e.message})` };
  } finally {
    console.warn = warn;
    console.log = log;
  }
  return tf;
}

/** env for the numpy subprocess: our thread count; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed there only. */
function numpyEnv(threads) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/**
 * The numpy/scipy peer: one long-lived python3 worker (numpy_peer.py), one JSON line per request, so its
 * calls can be interleaved with tessera's. create() resolves to null (with .reason) when python3 or
 * numpy is missing.
 */
class NumpyWorker {
  static async create(threads) {
    const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      NumpyWorker.reason = `python3 with numpy not found (${String(probe.stderr || probe.error || '').trim().split('\n').pop()})`;
      return null;
    }
    const w = new NumpyWorker(threads);
    w.info = await w.request({ op: 'info' });
    return w;
  }
  constructor(threads) {
    this.proc = spawn('python3', [path.join(__dirname, 'numpy_peer.py')], { env: numpyEnv(threads), stdio: ['pipe', 'pipe', 'inherit'] });
    this.queue = [];
    this.buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      this.buf += chunk;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const p = this.queue.shift();
        if (p) p.resolve(JSON.parse(line));
      }
    });
    this.proc.on('exit', (code) => {
      for (const p of this.queue.splice(0)) p.reject(new Error(`numpy worker exited (${code})`));
    });
  }
  request(msg) {
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.proc.stdin.write(JSON.stringify(msg) + '\n');
    });
  }
  /** A self-timed runner for measureInterleaved; spec is a numpy_peer.py setup request minus op/id. */
  async runner(id, spec) {
    const r = await this.request({ op: 'setup', id, ...spec });
    if (r.error) throw new Error(r.error);
    return {
      setupInfo: r,
      timed: async (n) => {
        const t = await this.request({ op: 'run', id, n });
        if (t.error) throw new Error(t.error);
        return t.t;
      },
      release: () => this.request({ op: 'drop', id }),
    };
  }
  close() {
    this.proc.stdin.end();
  }
}

module.exports = {
  loadOrt,
  ortMatMul,
  ortDynQuantMatMul,
  quantizeInt7,
  ortMatMulNBits,
  int4ToNBits,
  quantizeNBits8,
  ortMHA,
  loadTfjs,
  NumpyWorker,
};
