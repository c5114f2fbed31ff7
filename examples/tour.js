#!/usr/bin/env node
// A short tour: runs each kernel family once on the default backend (cuda > cpu > js) and prints which
// backend and kernel variant served it, with timings. `npm run demo` runs this.
'use strict';
const T = require('..');

const fmtMs = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);
function time(f, reps = 3) {
  f(); // warm-up
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    const out = f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    (Array.isArray(out) ? out : [out]).forEach((o) => o && o.dispose && o.dispose());
  }
  return best;
}

console.log('tessera tour');
for (const b of T.backends()) console.log(`  backend ${b.name.padEnd(4)} ${b.available ? 'available' : 'unavailable: ' + b.reason}${b.available && b.detail.simd ? ` (${b.detail.simd}, ${b.detail.threads} threads)` : ''}`);
console.log(`  default backend for host tensors: ${T.getBackend()}\n`);

const rows = [];
function run(label, op, flops, f) {
  const ms = time(f);
  const r = T.lastRun(op);
  rows.push([label, `${r.backend}/${r.variant}`, fmtMs(ms), flops ? `${(flops / ms / 1e6).toFixed(1)} GFLOP/s` : '']);
}

const a = T.randn([512, 512], { seed: 1 });
const b = T.randn([512, 512], { seed: 2 });
run('matmul f32 512x512x512', 'matmul', 2 * 512 ** 3, () => T.matmul(a, b));
const ab = a.to('bfloat16');
const bb = b.to('bfloat16');
run('matmul bf16 512x512x512', 'matmul', 2 * 512 ** 3, () => T.matmul(ab, bb));

const [B, H, Hkv, S, D] = [1, 8, 2, 512, 64];
const q = T.randn([B, H, S, D], { seed: 3 });
const k = T.randn([B, Hkv, S, D], { seed: 4 });
const v = T.randn([B, Hkv, S, D], { seed: 5 });
run(`attention B${B} H${H}/${Hkv} S${S} D${D}`, 'attention', 4 * B * H * S * S * D, () => T.attention(q, k, v));
run(`attention causal (same)`, 'attention', 2 * B * H * S * S * D, () => T.attention(q, k, v, { causal: true }));

const w = T.randn([1024, 1024], { seed: 6 });
const x = T.randn([16, 1024], { seed: 7 });
for (const dtype of ['int8', 'int4', 'float8_e4m3fn']) {
  const qw = T.quantize(w, { dtype });
  run(`qmatmul ${dtype} 16x1024x1024`, 'qmatmul', 2 * 16 * 1024 * 1024, () => T.qmatmul(x, qw));
}

const mask = T.tensor(Float32Array.from({ length: 1024 * 1024 }, (_, i) => ((i * 2654435761) % 100 < 10 ? 1 : 0)), { shape: [1024, 1024] });
const sparseW = T.mul(w, mask);
const dense = T.randn([1024, 64], { seed: 8 });
const csr = T.sparse.fromDense(sparseW, { format: 'csr' });
run(`spmm csr 90% sparse 1024x1024 @ 1024x64`, 'spmm', 2 * csr.nnz * 64, () => T.spmm(csr, dense));
const s24 = T.sparse.fromDense(w, { format: '2:4' });
run(`spmm 2:4 1024x1024 @ 1024x64`, 'spmm', 2 * s24.nnz * 64, () => T.spmm(s24, dense));

const h = T.randn([64, 1024], { seed: 9 });
const g = T.ones([1024]);
run('rmsNorm 64x1024', 'rmsNorm', 0, () => T.rmsNorm(h, g));
run('softmax 64x1024', 'softmax', 0, () => T.softmax(h, -1));
run('silu 64x1024', 'silu', 0, () => T.silu(h));

const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
for (const r of rows) console.log(`  ${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2].padStart(9)}  ${r[3]}`);
const mem = T.memory();
console.log(`\n  live tensors: ${mem.cpu.tensors} on cpu (${(mem.cpu.bytes / 2 ** 20).toFixed(1)} MiB)`);
