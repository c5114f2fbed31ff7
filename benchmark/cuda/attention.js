'use strict';
// Flash-attention forward on the GPU: tessera's kernels vs PyTorch SDPA (flash, cuDNN) in the same run.
//   node benchmark/cuda/attention.js [OUTDIR]      (on a GPU machine: scripts/cuda.sh bench)
// Prefill: TFLOP/s with FLOPs = 4*B*H*Sq*Sk*D, halved for causal. Decode: GB/s of the bytes that must move
// (q, k, v read once, out written once). Our times: CUDA events around each launch, median of the runs
// (attentionTime); torch's: the same, in benchmark/cuda/attention_torch.py. Random bf16 inputs (never zeros).
// Writes OUTDIR/cuda-attention.json and OUTDIR/cuda-attention.md (a table naming the device).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const native = require('../../dist/backends/cuda/native.js');

const OUT = process.argv[2] || '.';
const { binding: cuda, reason } = native.loadCudaBinding();
if (!cuda) {
  console.log(`cuda unavailable: ${reason}`);
  process.exit(0);
}

const SHAPES = [
  { name: 'B4 H16 S4096 D128', B: 4, Hq: 16, Sq: 4096, D: 128 },
  { name: 'B4 H16 S4096 D128 causal', B: 4, Hq: 16, Sq: 4096, D: 128, causal: true },
  { name: 'B8 H16 S2048 D64', B: 8, Hq: 16, Sq: 2048, D: 64 },
  { name: 'B8 H16 S2048 D64 causal', B: 8, Hq: 16, Sq: 2048, D: 64, causal: true },
  { name: 'B1 H32 S16384 D128 causal', B: 1, Hq: 32, Sq: 16384, D: 128, causal: true, iters: 15 },
  { name: 'decode B8 Hq32 Hkv8 Sk8192 D128', B: 8, Hq: 32, Hkv: 8, Sq: 1, Sk: 8192, D: 128, decode: true, iters: 100 },
  { name: 'decode B1 Hq32 Hkv8 Sk32768 D128', B: 1, Hq: 32, Hkv: 8, Sq: 1, Sk: 32768, D: 128, decode: true, iters: 100 },
  { name: 'decode B16 Hq32 Hkv32 Sk4096 D128', B: 16, Hq: 32, Hkv: 32, Sq: 1, Sk: 4096, D: 128, decode: true, iters: 100 },
  { name: 'decode B4 Hq32 Hkv8 Sq8 Sk16384 D128 causal', B: 4, Hq: 32, Hkv: 8, Sq: 8, Sk: 16384, D: 128, causal: true, decode: true, iters: 100 },
].map((s) => ({ Hkv: s.Hq, Sk: s.Sq, causal: false, decode: false, iters: 30, ...s }));

const VARIANTS = (process.env.ATTN_VARIANTS || 'auto,sm90s3,sm90w3,sm90pp,sm90,mma,decode').split(',');

// Uniform values in [-2, 2) as bf16 bits from a xorshift generator: fast for 10^8 elements.
let seed = 0x9e3779b9 ^ Date.now();
function randomBf16(n) {
  const f = new Float32Array(n);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    f[i] = ((seed >>> 0) / 4294967296) * 4 - 2;
  }
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}
function upload(n) {
  const h = cuda.malloc(n * 2);
  cuda.memcpyHtoD(h, 0, randomBf16(n));
  return h;
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const flops = (s) => (4 * s.B * s.Hq * s.Sq * s.Sk * s.D) / (s.causal && !s.decode ? 2 : 1);
const bytes = (s) => 2 * (2 * s.B * s.Hq * s.Sq * s.D + 2 * s.B * s.Hkv * s.Sk * s.D);
const rate = (s, ms) => (s.decode ? bytes(s) / (ms * 1e-3) / 1e9 : flops(s) / (ms * 1e-3) / 1e12);

const info = cuda.deviceInfo().devices[0];
const results = { device: info.name, date: new Date().toISOString(), shapes: [] };
const ONLY = process.env.ATTN_ONLY ? new Set(process.env.ATTN_ONLY.split(',').map(Number)) : null; // shape indices (profiling)
const picked = SHAPES.filter((_, i) => !ONLY || ONLY.has(i));

// torch first (a subprocess; same shapes, same GPU, same run)
let torchRes = null;
if (process.env.ATTN_NO_TORCH !== '1') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-attn-bench-'));
  fs.writeFileSync(path.join(dir, 'shapes.json'), JSON.stringify(picked));
  const py = spawnSync('python3', [path.join(__dirname, 'attention_torch.py'), path.join(dir, 'shapes.json'), path.join(dir, 'torch.json')],
    { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] });
  if (py.status === 0) {
    torchRes = JSON.parse(fs.readFileSync(path.join(dir, 'torch.json'), 'utf8'));
    results.torch = { version: torchRes.torch, device: torchRes.device, ceilings: torchRes.ceilings };
  } else {
    console.log(`torch benchmark failed (exit ${py.status}): ${(py.stderr || '').slice(-1000)}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

const fmt = (s, ms) => (ms === undefined ? '—' : `${rate(s, ms).toFixed(s.decode ? 0 : 1)} (${ms.toFixed(3)} ms)`);
function report() {
  const lines = [
    `# Flash attention forward, bf16 — ${results.device}`,
    '',
    `${results.date}; torch ${torchRes ? torchRes.torch : 'n/a'}. Prefill: TFLOP/s (4·B·H·Sq·Sk·D, halved for causal); decode: GB/s of q+k+v read and out written.`,
    `Medians of CUDA-event-timed launches, same run, random inputs. Ceilings measured in the run: ${torchRes ? `${torchRes.ceilings.matmul_bf16_TFLOPs.toFixed(0)} TFLOP/s bf16 matmul (8192³), ${torchRes.ceilings.copy_TBps.toFixed(2)} TB/s device copy` : 'n/a'}.`,
    'Columns: tessera auto (what attention() picks) and each kernel variant (cuda/attention.cuh); torch SDPA with the flash and cuDNN backends forced.',
    '',
    `| shape | ${VARIANTS.map((v) => `tessera ${v}`).join(' | ')} | torch flash | torch cuDNN | torch other |`,
    `|---|${VARIANTS.map(() => '---|').join('')}---|---|---|`,
  ];
  for (const s of results.shapes) {
    const o = (v) => fmt(s, s.ours[v] && s.ours[v].ms);
    const t = s.torch ? s.torch.times_ms : {};
    const other = ['efficient', 'default'].filter((b) => t[b] !== undefined).map((b) => `${b} ${fmt(s, t[b])}`).join(', ') || '—';
    lines.push(`| ${s.name} | ${VARIANTS.map(o).join(' | ')} | ${fmt(s, t.flash)} | ${fmt(s, t.cudnn)} | ${other} |`);
  }
  const md = lines.join('\n') + '\n';
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'cuda-attention.json'), JSON.stringify(results, null, 1));
  fs.writeFileSync(path.join(OUT, 'cuda-attention.md'), md);
  return md;
}

for (const [si, s] of picked.entries()) {
  const q = upload(s.B * s.Hq * s.Sq * s.D), k = upload(s.B * s.Hkv * s.Sk * s.D), v = upload(s.B * s.Hkv * s.Sk * s.D);
  const out = cuda.malloc(s.B * s.Hq * s.Sq * s.D * 2);
  const row = { ...s, ours: {}, torch: torchRes ? torchRes.shapes[si] : undefined };
  results.shapes.push(row);
  for (const variant of VARIANTS) {
    const p = { dtype: 'bfloat16', B: s.B, Hq: s.Hq, Hkv: s.Hkv, Sq: s.Sq, Sk: s.Sk, D: s.D, Dv: s.D, causal: s.causal,
      scale: 1 / Math.sqrt(s.D), kvOffset: s.Sk - s.Sq, qOffset: 0, kOffset: 0, vOffset: 0, outOffset: 0, variant };
    if (cuda.attentionUnsupported(p) !== '') continue;
    if (variant === 'decode' && !s.decode) continue;
    const iters = variant === 'mma' ? Math.min(s.iters, 10) : s.iters;
    const r = cuda.attentionTime(q, k, v, out, p, iters, 3);
    const ms = median(r.ms);
    row.ours[variant] = { kernel: r.variant, ms, spread: [Math.min(...r.ms), Math.max(...r.ms)] };
    console.log(`ours  ${s.name.padEnd(44)} ${variant.padEnd(7)} ${r.variant.padEnd(44)} ${ms.toFixed(3)} ms  ${rate(s, ms).toFixed(1)} ${s.decode ? 'GB/s' : 'TFLOP/s'}`);
    report(); // after every measurement: a kernel that hangs later loses nothing measured before it
  }
  [q, k, v, out].forEach((h) => cuda.free(h));
}
console.log('\n' + report());
