'use strict';
// Fused attention on the GPU (cuda/attention*.cu) against float64 and against PyTorch's SDPA.
//  1. float64: small shapes through every kernel variant that takes them (mma, decode, sm90*),
//     bfloat16 and float16, GQA/MQA, causal with Sk > Sq and Sk < Sq (rows with no key -> zeros), Sq = 1,
//     partial tiles, explicit kvOffset and scale; oracle = the js backend's float64 kernel. Fresh random
//     inputs each run; the output is poisoned with NaN first, so an unwritten element fails.
//  2. torch (skipped with ATTN_QUICK=1 or without python3+torch): larger shapes written to files,
//     scripts/cuda-attn-ref.py returns torch SDPA's output on the same inputs and a float64 reference;
//     ours must be within 1e-2 of float64 and near torch's own error.
//  3. The public op: tessera.attention on cuda tensors runs on the cuda backend; a mask falls back.
// Without a GPU every test is skipped. ATTN_OUT=dir writes attention-correctness.json there.
// Run: node test/cuda-attention.test.js   (on a GPU machine: scripts/cuda.sh attention)
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const test = require('tape');
const native = require('../dist/backends/cuda/native.js');
const jsk = require('../dist/backends/js/attention.js');
const dtypes = require('../dist/dtype.js');
const { rng, compare } = require('./helpers');

const { binding: cuda, reason } = native.loadCudaBinding();
const QUICK = process.env.ATTN_QUICK === '1';
const OUTDIR = process.env.ATTN_OUT || null;
const TOL = { bfloat16: 1e-2, float16: 3e-3 };
const VARIANTS = (process.env.ATTN_TEST_VARIANTS || 'mma,decode,sm90,sm90pp,sm90s3,sm90w3').split(',');
const summary = [];

if (!cuda) {
  test('cuda attention: without a GPU the backend says why, and attention still runs (cpu/js)', (t) => {
    t.ok(typeof reason === 'string' && reason.length > 0, `cuda unavailable: ${reason}`);
    const T = require('../dist');
    t.notOk(T.backends().find((b) => b.name === 'cuda').available, 'backends() reports cuda unavailable');
    t.end();
  });
  return;
}

// ---------------------------------------------------------------- helpers

const R = rng((Date.now() ^ (process.pid << 8)) >>> 0); // fresh inputs every run

function randn(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(R.next(), 1e-12), w = 2 * Math.PI * R.next(), r = Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(w);
    if (i + 1 < n) a[i + 1] = r * Math.sin(w);
  }
  return a;
}

/** float32 -> half bits (round to nearest even); bfloat16 inline for speed on large tensors. */
function toBits(dt, f) {
  if (dt === 'float16') return dtypes.encode('float16', f);
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < u.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}
function fromBits(dt, h) {
  if (dt === 'float16') return dtypes.decodeF32('float16', h, h.length);
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}

function shapeOf(c) {
  const Hkv = c.Hkv ?? c.Hq;
  const Sk = c.Sk ?? c.Sq;
  return { ...c, Hkv, Sk, Dv: c.D, scale: c.scale ?? 1 / Math.sqrt(c.D), kvOffset: c.kvOffset ?? Sk - c.Sq, causal: !!c.causal };
}

function params(c, variant) {
  return {
    dtype: c.dtype, B: c.B, Hq: c.Hq, Hkv: c.Hkv, Sq: c.Sq, Sk: c.Sk, D: c.D, Dv: c.Dv,
    causal: c.causal, scale: c.scale, kvOffset: c.kvOffset, qOffset: 0, kOffset: 0, vOffset: 0, outOffset: 0, variant,
  };
}

function upload(bits) {
  const h = cuda.malloc(bits.byteLength);
  cuda.memcpyHtoD(h, 0, bits);
  return h;
}

/** Runs our kernel on uploaded inputs; returns the output as float32 (NaN-poisoned first). */
function runOurs(c, dev, variant) {
  const n = c.B * c.Hq * c.Sq * c.Dv;
  const out = cuda.malloc(n * 2);
  try {
    cuda.memcpyHtoD(out, 0, new Uint16Array(n).fill(c.dtype === 'float16' ? 0x7e00 : 0x7fc0));
    const ran = cuda.attention(dev.q, dev.k, dev.v, out, params(c, variant));
    const bits = new Uint16Array(n);
    cuda.memcpyDtoH(bits, out, 0);
    return { ran, out: fromBits(c.dtype, bits) };
  } finally {
    cuda.free(out);
  }
}

function makeInputs(c) {
  const nq = c.B * c.Hq * c.Sq * c.D, nk = c.B * c.Hkv * c.Sk * c.D;
  const bits = { q: toBits(c.dtype, randn(nq)), k: toBits(c.dtype, randn(nk)), v: toBits(c.dtype, randn(nk)) };
  return { bits, dev: { q: upload(bits.q), k: upload(bits.k), v: upload(bits.v) } };
}
function freeInputs(inp) {
  for (const h of Object.values(inp.dev)) cuda.free(h);
}

const label = (c) =>
  `${c.dtype} B${c.B} Hq${c.Hq} Hkv${c.Hkv} Sq${c.Sq} Sk${c.Sk} D${c.D}${c.causal ? ` causal(off ${c.kvOffset})` : ''}` +
  (c.scale !== 1 / Math.sqrt(c.D) ? ` scale ${c.scale}` : '');

// ---------------------------------------------------------------- 1. float64

const F64_CASES = [
  { dtype: 'bfloat16', B: 1, Hq: 1, Sq: 1, D: 64 },
  { dtype: 'bfloat16', B: 1, Hq: 4, Hkv: 1, Sq: 77, D: 128, causal: true },
  { dtype: 'bfloat16', B: 2, Hq: 4, Hkv: 2, Sq: 128, Sk: 300, D: 64, causal: true },
  { dtype: 'bfloat16', B: 1, Hq: 2, Sq: 200, Sk: 130, D: 128, causal: true }, // first 70 rows see nothing
  { dtype: 'bfloat16', B: 1, Hq: 2, Hkv: 1, Sq: 5, Sk: 1000, D: 128, causal: true },
  { dtype: 'bfloat16', B: 1, Hq: 8, Hkv: 2, Sq: 1, Sk: 2049, D: 64 },
  { dtype: 'bfloat16', B: 1, Hq: 2, Hkv: 1, Sq: 130, Sk: 257, D: 128, causal: true, kvOffset: 100, scale: 0.3 },
  { dtype: 'bfloat16', B: 2, Hq: 2, Sq: 129, Sk: 129, D: 64 },
  { dtype: 'bfloat16', B: 1, Hq: 2, Hkv: 1, Sq: 70, Sk: 90, D: 256, causal: true },
  { dtype: 'bfloat16', B: 1, Hq: 2, Sq: 40, Sk: 50, D: 64, scale: -0.2 }, // mma only (sm90 wants scale > 0)
  { dtype: 'float16', B: 1, Hq: 4, Hkv: 2, Sq: 150, Sk: 150, D: 128, causal: true },
  { dtype: 'float16', B: 2, Hq: 2, Hkv: 1, Sq: 3, Sk: 700, D: 64 },
  { dtype: 'float16', B: 1, Hq: 2, Sq: 64, Sk: 300, D: 64, causal: true, kvOffset: -10 },
  // decode: 32 and 18 packed rows (64-row split-KV CTAs, mostly empty)
  { dtype: 'bfloat16', B: 1, Hq: 8, Hkv: 2, Sq: 8, Sk: 1500, D: 128, causal: true },
  { dtype: 'float16', B: 1, Hq: 6, Hkv: 1, Sq: 3, Sk: 2100, D: 64 },
  // enough KV columns that a CTA gets >= 8 tiles (on an H100): the dynamic split-KV schedule (16-row form),
  // and the same for 32 packed rows (static splits of the 64-row form)
  { dtype: 'bfloat16', B: 5, Hq: 16, Hkv: 8, Sq: 1, Sk: 4096, D: 64 },
  { dtype: 'bfloat16', B: 5, Hq: 32, Hkv: 8, Sq: 8, Sk: 4096, D: 128, causal: true },
].map(shapeOf);

test('cuda attention: every variant against float64 (small shapes)', (t) => {
  for (const c of F64_CASES) {
    const inp = makeInputs(c);
    try {
      const arr = (bits, H, S) => ({ data: fromBits(c.dtype, bits), shape: [c.B, H, S, c.D] });
      const ref = jsk.attention(arr(inp.bits.q, c.Hq, c.Sq), arr(inp.bits.k, c.Hkv, c.Sk), arr(inp.bits.v, c.Hkv, c.Sk),
        { causal: c.causal, scale: c.scale, kvOffset: c.kvOffset, mask: null }).data;
      let ran = 0;
      for (const variant of VARIANTS) {
        const why = cuda.attentionUnsupported(params(c, variant));
        if (why !== '') continue;
        ran++;
        const r = runOurs(c, inp.dev, variant);
        const cmp = compare(r.out, ref, TOL[c.dtype]);
        summary.push({ check: 'float64', case: label(c), variant: r.ran, relRef: cmp.rel });
        t.ok(cmp.ok, `${label(c)} ${variant}: ${cmp.msg}`);
      }
      if (VARIANTS.includes('mma')) t.ok(ran > 0, `${label(c)}: at least one variant ran`);
    } finally {
      freeInputs(inp);
    }
  }
  t.end();
});

test('cuda attention: argument checks', (t) => {
  const c = shapeOf({ dtype: 'bfloat16', B: 1, Hq: 2, Sq: 8, D: 64 });
  const inp = makeInputs(c);
  const out = cuda.malloc(c.B * c.Hq * c.Sq * c.D * 2);
  try {
    t.throws(() => cuda.attention(inp.dev.q, inp.dev.k, inp.dev.v, out, { ...params(c), Sq: 9 }), /exceeds/, 'q view past its buffer');
    t.throws(() => cuda.attention(inp.dev.q, inp.dev.k, inp.dev.v, out, { ...params(c), D: 96, Dv: 96 }), /head dim/, 'unsupported D');
    t.throws(() => cuda.attention(inp.dev.q, inp.dev.k, inp.dev.v, out, { ...params(c), Hkv: 3 }), /multiple/, 'Hq % Hkv');
    t.throws(() => cuda.attention(inp.dev.q, inp.dev.k, inp.dev.v, out, { ...params(c), dtype: 'float32' }), /dtype/, 'dtype');
    t.throws(() => cuda.attention(inp.dev.q, inp.dev.k, inp.dev.v, {}, params(c)), /handle/, 'not a buffer');
  } finally {
    cuda.free(out);
    freeInputs(inp);
  }
  t.end();
});

// ---------------------------------------------------------------- 2. torch SDPA

const TORCH_CASES = [
  { dtype: 'bfloat16', B: 1, Hq: 1, Sq: 1, D: 64 },
  { dtype: 'bfloat16', B: 4, Hq: 16, Hkv: 4, Sq: 77, D: 128, causal: true },
  { dtype: 'bfloat16', B: 1, Hq: 16, Sq: 128, D: 64 },
  { dtype: 'bfloat16', B: 4, Hq: 16, Hkv: 1, Sq: 1000, D: 128, causal: true },
  { dtype: 'bfloat16', B: 1, Hq: 16, Hkv: 16, Sq: 1000, D: 64 },
  { dtype: 'bfloat16', B: 1, Hq: 16, Hkv: 4, Sq: 4096, D: 128, causal: true },
  { dtype: 'bfloat16', B: 4, Hq: 16, Sq: 4096, D: 128 },
  { dtype: 'bfloat16', B: 1, Hq: 1, Sq: 4096, D: 64, causal: true },
  { dtype: 'bfloat16', B: 4, Hq: 16, Hkv: 4, Sq: 1, Sk: 4096, D: 128 },
  { dtype: 'bfloat16', B: 1, Hq: 16, Hkv: 1, Sq: 8, Sk: 4096, D: 64, causal: true },
  { dtype: 'float16', B: 4, Hq: 16, Hkv: 4, Sq: 1000, D: 64, causal: true },
].map(shapeOf);

function havePythonTorch() {
  const r = spawnSync('python3', ['-c', 'import torch; assert torch.cuda.is_available()'], { encoding: 'utf8' });
  return r.status === 0;
}

test('cuda attention: against torch SDPA and float64 (larger shapes)', { skip: QUICK || !havePythonTorch() }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-attn-'));
  const manifest = [];
  const inputs = [];
  try {
    TORCH_CASES.forEach((c, i) => {
      const inp = makeInputs(c);
      const f = (s) => path.join(dir, `c${i}.${s}`);
      fs.writeFileSync(f('q'), inp.bits.q);
      fs.writeFileSync(f('k'), inp.bits.k);
      fs.writeFileSync(f('v'), inp.bits.v);
      inp.bits = null; // keep host memory low: the device copies stay
      inputs.push(inp);
      manifest.push({ ...c, name: label(c), q: f('q'), k: f('k'), v: f('v'), torch_out: f('torch'), ref_out: f('ref') });
    });
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    const py = spawnSync('python3', [path.join(__dirname, '..', 'scripts', 'cuda-attn-ref.py'), path.join(dir, 'manifest.json')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    t.equal(py.status, 0, `cuda-attn-ref.py ran${py.status ? `: ${py.stderr.slice(-2000)}` : ''}`);
    if (py.status !== 0) return;
    manifest.forEach((m, i) => {
      const c = TORCH_CASES[i];
      const readF32 = (file) => { const b = fs.readFileSync(file); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
      const ref = readF32(m.ref_out);
      const tb = fs.readFileSync(m.torch_out);
      const torchOut = fromBits(c.dtype, new Uint16Array(tb.buffer.slice(tb.byteOffset, tb.byteOffset + tb.byteLength)));
      const torchRel = compare(torchOut, ref, 1).rel;
      for (const variant of ['auto', ...VARIANTS]) {
        if (cuda.attentionUnsupported(params(c, variant)) !== '') continue;
        if (variant === 'mma' && c.Sq * c.Sk * c.B * c.Hq > 3e8) continue; // the slow portable path: small shapes only
        const r = runOurs(c, inputs[i].dev, variant);
        const vsRef = compare(r.out, ref, TOL[c.dtype]);
        const vsTorch = compare(r.out, torchOut, 1);
        summary.push({ check: 'torch', case: m.name, variant: `${variant}:${r.ran}`, relRef: vsRef.rel, relTorch: vsTorch.rel, torchRelRef: torchRel });
        t.ok(vsRef.ok && vsRef.rel <= 2 * torchRel + 1e-3,
          `${m.name} ${variant}(${r.ran}): vs f64 ${vsRef.rel.toExponential(2)} (torch ${torchRel.toExponential(2)}), vs torch ${vsTorch.rel.toExponential(2)}`);
      }
    });
  } finally {
    inputs.forEach(freeInputs);
    fs.rmSync(dir, { recursive: true, force: true });
    t.end();
  }
});

// ---------------------------------------------------------------- 3. the public op

test('cuda attention: tessera.attention dispatches to the cuda kernel', (t) => {
  const T = require('../dist');
  const c = shapeOf({ dtype: 'bfloat16', B: 2, Hq: 4, Hkv: 2, Sq: 33, Sk: 65, D: 64, causal: true });
  const q = T.randn([c.B, c.Hq, c.Sq, c.D], { dtype: 'bfloat16', device: 'cuda' });
  const k = T.randn([c.B, c.Hkv, c.Sk, c.D], { dtype: 'bfloat16', device: 'cuda' });
  const v = T.randn([c.B, c.Hkv, c.Sk, c.D], { dtype: 'bfloat16', device: 'cuda' });
  const out = T.attention(q, k, v, { causal: true });
  const ran = T.lastRun('attention');
  t.equal(ran && ran.backend, 'cuda', `ran on cuda (${ran && ran.variant})`);
  t.deepEqual(out.shape, [c.B, c.Hq, c.Sq, c.D]);
  t.equal(out.dtype, 'bfloat16');
  const arr = (x) => ({ data: x.toFloat64(), shape: x.shape });
  const ref = jsk.attention(arr(q), arr(k), arr(v), { causal: true, scale: c.scale, kvOffset: c.kvOffset, mask: null }).data;
  const cmp = compare(out.toFloat32(), ref, TOL.bfloat16);
  t.ok(cmp.ok, `matches float64: ${cmp.msg}`);
  const mask = T.zeros([1, 1, c.Sq, c.Sk], { dtype: 'bfloat16', device: 'cuda' });
  const masked = T.attention(q, k, v, { mask });
  t.notEqual(T.lastRun('attention').backend, 'cuda', `a mask falls back (${T.lastRun('attention').backend})`);
  t.deepEqual(masked.shape, out.shape);
  [q, k, v, out, mask, masked].forEach((x) => x.dispose());
  t.end();
});

test('cuda attention: summary', (t) => {
  const rows = summary.map((s) => `${s.check.padEnd(7)} ${s.case.padEnd(58)} ${s.variant.padEnd(44)} f64 ${s.relRef.toExponential(2)}` +
    (s.relTorch !== undefined ? `  torch ${s.relTorch.toExponential(2)}  torch-f64 ${s.torchRelRef.toExponential(2)}` : ''));
  console.log(rows.map((r) => `# ${r}`).join('\n'));
  if (OUTDIR) fs.writeFileSync(path.join(OUTDIR, 'attention-correctness.json'), JSON.stringify(summary, null, 1));
  t.pass(`${summary.length} comparisons`);
  t.end();
});
