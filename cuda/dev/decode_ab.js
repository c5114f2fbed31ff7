'use strict';
// Decode A/B while tuning (cuda/dev/NOTES.md): GB/s of the split-KV decode kernel on the benchmark's decode
// shapes plus a KV-length sweep at B1 (time = fixed + bytes / rate: the sweep separates the per-launch cost
// from the streaming rate). Knobs are environment variables read by cuda/attention_mma.cu, so one process per
// setting:  TESSERA_ATTN_WS_ROWS=32 node cuda/dev/decode_ab.js label
const native = require('../../dist/backends/cuda/native.js');
const { binding: cuda, reason } = native.loadCudaBinding();
if (!cuda) {
  console.log(`cuda unavailable: ${reason}`);
  process.exit(0);
}
const label = process.argv[2] || 'default';
const ONLY = process.env.DECODE_ONLY ? process.env.DECODE_ONLY.split(',').map(Number) : null; // shape indices (ncu)
const ALL = [
  { B: 8, Hq: 32, Hkv: 8, Sq: 1, Sk: 8192 },
  { B: 1, Hq: 32, Hkv: 8, Sq: 1, Sk: 32768 },
  { B: 4, Hq: 32, Hkv: 8, Sq: 8, Sk: 16384, causal: true },
  { B: 1, Hq: 32, Hkv: 8, Sq: 1, Sk: 8192 },
  { B: 1, Hq: 32, Hkv: 8, Sq: 1, Sk: 65536 },
  { B: 1, Hq: 32, Hkv: 8, Sq: 1, Sk: 131072 },
];
const SHAPES = ALL.filter((_, i) => !ONLY || ONLY.includes(i));
const D = 128;
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
function upload(n) {
  // uniform [-2, 2) as bf16 (truncated float32 bits), made in 1M-element chunks
  const h = cuda.malloc(n * 2);
  const C = 1 << 20;
  const f = new Float32Array(C);
  const bits = new Uint32Array(f.buffer);
  const u = new Uint16Array(C);
  let x = 12345;
  for (let off = 0; off < n; off += C) {
    const m = Math.min(C, n - off);
    for (let i = 0; i < m; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      f[i] = (x / 4294967296) * 4 - 2;
      u[i] = bits[i] >>> 16;
    }
    cuda.memcpyHtoD(h, off * 2, m === C ? u : u.subarray(0, m));
  }
  return h;
}
const rows = [];
for (const s of SHAPES) {
  const q = upload(s.B * s.Hq * s.Sq * D), k = upload(s.B * s.Hkv * s.Sk * D), v = upload(s.B * s.Hkv * s.Sk * D);
  const out = cuda.malloc(s.B * s.Hq * s.Sq * D * 2);
  const p = { dtype: 'bfloat16', B: s.B, Hq: s.Hq, Hkv: s.Hkv, Sq: s.Sq, Sk: s.Sk, D, Dv: D, causal: !!s.causal,
    scale: 1 / Math.sqrt(D), kvOffset: s.Sk - s.Sq, qOffset: 0, kOffset: 0, vOffset: 0, outOffset: 0, variant: 'decode' };
  const r = cuda.attentionTime(q, k, v, out, p, 200, 5);
  const ms = median(r.ms);
  const bytes = 2 * (2 * s.B * s.Hq * s.Sq * D + 2 * s.B * s.Hkv * s.Sk * D);
  const name = `B${s.B} Hq${s.Hq} Hkv${s.Hkv} Sq${s.Sq} Sk${s.Sk}${s.causal ? ' causal' : ''}`;
  rows.push({ name, us: ms * 1e3, gbs: bytes / (ms * 1e-3) / 1e9 });
  [q, k, v, out].forEach((h) => cuda.free(h));
}
console.log(`${label}: ` + rows.map((r) => `${r.name} ${r.us.toFixed(1)} us ${r.gbs.toFixed(0)} GB/s`).join(' | '));
