// Writes the CPU benchmark's outputs: cpu-<date>.json (everything), cpu-latest.md (the table) and
// cpu-latest.svg (grouped horizontal bars, log scale, tessera vs each peer per case; a small SVG writer,
// no chart library). Rates: GFLOP/s (GOP/s for int8); SpMM bars use the effective rate 2*M*K*N / time so
// sparse and dense bars compare; ratio = peer time / tessera time (> 1: tessera faster).
'use strict';
const fs = require('fs');
const path = require('path');

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const cell = (s) => String(s).replace(/\|/g, '\\|');

const PEER_LABEL = { 'ours-f32': 'our fp32', 'ours-wo': 'our weight-only', 'ours-dense': 'our dense', ort: 'ORT', 'ort-a8': 'ORT', 'ort-nb8': 'ORT', numpy: 'numpy', scipy: 'scipy', tfjs: 'tfjs' };

function rateText(r, x, unit) {
  if (x.skipped) return `skipped: ${x.skipped}`;
  const u = unit === 'GFLOP/s' ? '' : ` ${unit}`;
  if (r.family !== 'spmm') return `${fmt(x.rate)}${u}`;
  return x.rate ? `${fmt(x.rate)} (eff ${fmt(x.effRate)})` : `eff ${fmt(x.effRate)}`;
}

/** Notes printed under the table (stored in run.notes): what ran where, what the peers are, oddities. */
function notes(run) {
  const n = [];
  if (run.partial) n.push(`PARTIAL run: ${run.partial} done so far.`);
  const js = run.results.filter((r) => r.tessera && r.tessera.backend === 'js' && r.family !== 'js').map((r) => r.kernel);
  if (js.length) n.push(`Served by tessera's pure-JS backend (no native kernel yet): ${[...new Set(js)].join(', ')}.`);
  n.push('ORT models are one-node graphs written by benchmark/onnx-proto.js (opset 17 + com.microsoft 1): MatMul; DynamicQuantizeMatMul (A quantized per tensor to uint8 at run time; target peer: B = tessera\'s int8 codes as uint8 with zero point 128, per-column b_scale, the U8U8 path; second peer: 7-bit int8 weights, ORT\'s reduce_range recipe for AVX2. Full-range int8 weights on MLAS\'s AVX2 U8S8 path saturate (vpmaddubsw) and were ~18% off, so that configuration is not used); MatMulNBits (bits 4, block_size 32, B [N, K/32, 16] re-packed from tessera\'s int4 codes, default zero point 8; accuracy_level 0 = fp32 math, 4 = int8 activations); MultiHeadAttention (num_heads 16, query/key/value [B, S, H*D]; causal via its unidirectional=1 attribute, checked against tessera; decode feeds K/V as a [B, H, S, D] cache).');
  n.push('fp8: ORT\'s CPU EP has no fp8 GEMM (MatMulBlockQuantizedFp8Weight takes fp16/bf16 activations, GPU EPs), so the peers are the fp32 GEMV of the same weights and 8-bit MatMulNBits as an equal-bytes yardstick (the issue sets no fp8 speed goal).');
  n.push('SpMM peers: ORT dense MatMul on the same (pruned) matrix (the "is sparse worth it" bar; its rate is dense-equivalent) and scipy.sparse CSR @ dense on exactly tessera\'s CSR arrays (single-threaded).');
  const busy = run.results.filter((r) => r.load && r.load.othersPct > 10);
  if (busy.length) n.push(`Other processes took over 10% of the machine during ${busy.length} of ${run.results.length} cases (column "others' CPU"): those absolute rates are low; the interleaved ratios are the figures to trust.`);
  n.push(run.peak && run.peak.int8
    ? '% of peak: fp32 (and bf16/f16, int4, fp8, sparse: all f32 FMA math) rows against the fp32 FMA calibration loop, int8 W8A8 rows (GOP/s) against the exact-int8 loop (vpmaddwd + vpaddd). GEMV/decode rows are held against memory instead: their GB/s column gives the bytes read per second and its fraction of the DRAM read roof (% of compute peak is low by nature); a case whose bytes fit the last-level cache (int8 and int4 weights at 4096x4096) stays cache-resident between calls and can read above that roof, the "cycled past L3" rows cannot.'
    : '% of peak for int8 rows is against the fp32 peak (no int8 calibration loop on this machine). GEMV/decode rows are held against memory instead: their GB/s column gives the bytes read per second and its fraction of the DRAM read roof (% of compute peak is low by nature); a case whose bytes fit the last-level cache (int8 and int4 weights at 4096x4096) stays cache-resident between calls and can read above that roof, the "cycled past L3" rows cannot.');
  // The int8-vs-our-fp32 goal next to the machine's own int8/fp32 ceiling ratio, measured around the case.
  for (const r of run.results) {
    const f = r.peers.find((q) => q.key === 'ours-f32' && q.medianS);
    if (!r.ceiling || !f || r.unit !== 'GOP/s' || !r.tessera.rate) continue;
    const fRate = r.flops / f.medianS / 1e9;
    n.push(`${r.kernel} ${r.shape} vs our fp32 GEMM: ${f.ratio.toFixed(2)}x. The calibration loops around this case ran int8 at ${fmt(r.ceiling.int8)} GOP/s and fp32 at ${fmt(r.ceiling.fp32)} GFLOP/s, a ceiling ratio of ${r.ceiling.int8OverFp32.toFixed(2)}x: what int8 reaches over fp32 at equal efficiency. Efficiency here: int8 ${(100 * r.tessera.rate / r.ceiling.int8).toFixed(0)}% of its ceiling, fp32 ${(100 * fRate / r.ceiling.fp32).toFixed(0)}% of its.`);
  }
  // The int4 decode GEMV with its weights in L3 and cycled past it: memory-bound or not, measured
  for (const [hotId, coldId] of [['int4-gemv-1x', 'int4-gemv-cold'], ['int4-a8-gemv-1x', 'int4-a8-gemv-cold']]) {
  const hot = run.results.find((r) => r.id && r.id.startsWith(hotId) && r.tessera.gbps);
  const cold = run.results.find((r) => r.id && r.id.startsWith(coldId) && r.tessera.gbps);
  if (cold && cold.tessera.pctDram) {
    const c = cold.tessera;
    const bound = c.pctDram >= 80
      ? 'memory-bound: the DRAM stream sets its speed'
      : hot && hot.tessera.gbps < 1.25 * c.gbps
        ? `not memory-bound: with the weights in L3 it reads only ${fmt(hot.tessera.gbps)} GB/s, so decoding the weights, not DRAM, sets its speed`
        : 'below the DRAM roof, and faster with the weights in L3';
    n.push(`${cold.kernel}: ${fmt(c.gbps)} GB/s = ${c.pctDram.toFixed(0)}% of the DRAM read roof measured around it (${fmt(cold.dramRoof)} GB/s); ${bound}.`);
  }
  }
  // ORT's MHA with unidirectional=1 slower than without it at the same length: masked blocks not skipped
  for (const r of run.results.filter((x) => x.id && x.id.startsWith('attn-causal-'))) {
    const full = run.results.find((x) => x.id === r.id.replace('causal', 'full'));
    const [oc, of] = [r, full].map((x) => x && x.peers.find((p) => p.key === 'ort'));
    if (oc && of && oc.medianS && of.medianS && oc.medianS > of.medianS) {
      n.push(`ORT MultiHeadAttention ${r.shape}: unidirectional=1 took ${(oc.medianS / of.medianS).toFixed(1)}x as long as the non-causal call (half the work): its CPU path does not skip masked blocks.`);
    }
  }
  for (const r of run.results) {
    const nb8 = r.peers.find((p) => p.key === 'ort-nb8');
    const f32 = r.peers.find((p) => p.key === 'ort');
    if (nb8 && f32 && nb8.medianS && f32.medianS && nb8.medianS > f32.medianS) {
      n.push(`${r.kernel} ${r.shape}: ORT MatMulNBits bits=8 (acc 0) ran ${(nb8.medianS / f32.medianS).toFixed(0)}x slower than ORT's fp32 MatMul on the same shape: no fast 8-bit weight-only path on this CPU.`);
    }
    for (const p of r.peers || []) if (p.check === 'mismatch') n.push(`${r.kernel} ${r.shape}: ${p.name} differs from tessera by ${p.relErr.toExponential(1)} (tolerance ${p.tol}).`);
    for (const s of r.notes || []) n.push(`${r.kernel} ${r.shape}: ${s}`);
    const t = r.tessera;
    if (t && t.skipped) {
      const one = t.warmS && r.flops ? ` (that one call: ${fmt(r.flops / t.warmS / 1e9)} ${r.unit}` : '';
      const ort = r.peers.find((p) => p.key === 'ort' && p.medianS);
      const vs = one && ort ? `, about ${(ort.medianS / t.warmS).toPrecision(2)}x of ORT)` : one ? ')' : '';
      n.push(`${r.kernel} ${r.shape}: tessera ${t.skipped}${one}${vs}.`);
    }
    for (const p of r.peers || []) if (p.skipped) n.push(`${r.kernel} ${r.shape}: ${p.name} ${p.skipped}.`);
  }
  return n;
}

function markdown(run) {
  const p = run.peak;
  const L = [];
  L.push(`# tessera CPU benchmark, ${run.date} (${run.mode})`, '');
  L.push(`- machine: ${p.nominal.model}, ${p.nominal.cores} cores (${p.nominal.logicalCpus} logical) at ${p.nominal.mhz} MHz, ${run.env.simd}; node ${run.env.node}`);
  L.push(`- tessera ${run.env.tessera}: backends ${run.env.backends}; threads ${run.threads} (TESSERA_NUM_THREADS / setNumThreads)`);
  L.push(`- peers: ${run.peers.join('; ')}`);
  if (p.used === 'calibration') {
    L.push(`- peak used for "% of peak": **calibration loop ${fmt(p.gflops)} GFLOP/s** fp32 (${p.measured.source}; one thread ${fmt(p.measured.perThread)})${p.int8 ? `, int8 rows against **${fmt(p.int8.gflops)} GOP/s** (${p.int8.source}; one thread ${fmt(p.int8.perThread)})` : ''}; best of the loops run at the start and around every case. Nominal ${fmt(p.nominal.gflops)} GFLOP/s = ${p.nominal.formula}${p.bestGemm ? `; best fp32 GEMM round ${fmt(p.bestGemm.gflops)} (${p.bestGemm.source}) = ${(100 * p.bestGemm.gflops / p.gflops).toFixed(0)}% of the loop` : ''}`);
  } else if (p.used === 'measured') {
    L.push(`- peak used for "% of peak": **measured ${fmt(p.gflops)} GFLOP/s** (${p.measured.source}); nominal ${fmt(p.nominal.gflops)} GFLOP/s = ${p.nominal.formula}; measured = ${(100 * p.measuredOfNominal).toFixed(0)}% of nominal`);
  } else {
    L.push(`- peak used for "% of peak": **nominal ${fmt(p.gflops)} GFLOP/s** = ${p.nominal.formula}${p.why ? `; not measured because ${p.why}` : ''}`);
  }
  const mem = run.memory;
  if (mem) L.push(`- memory roof for the GB/s column: **DRAM read ${fmt(mem.dram.all)} GB/s** (T.memoryBandwidth: ${mem.dram.loop}, ${mem.dram.threads} threads; one thread ${fmt(mem.dram.perThread)}) at the start, re-measured around each memory-bound case (the column's %); an 8 MiB (L3-resident) read ran ${fmt(mem.cache.all)} GB/s. GB/s = the bytes a case must read per call (weights and scales, or the KV cache) / time`);
  L.push(`- timing: tessera and its peers interleaved round by round (this VM's speed drifts), warm-up first, median of per-round means; each round a burst of back-to-back calls of ≥ ${run.timing.burstS || 0} s per runner, ${run.timing.gapS || 0} s idle between runners (other libraries' spinning BLAS threads settle); ${run.timing.targetS} s per runner target, cap ${run.timing.capS} s per call`);
  L.push('- ratio = peer time / tessera time (> 1: tessera faster); SpMM rates: useful 2·nnz·N (eff = dense-equivalent 2·M·K·N); Δ = ‖peer − tessera‖/‖tessera‖ on the same inputs', '');
  L.push('| kernel | shape | tessera (variant) | tessera GFLOP/s | peer | peer GFLOP/s | ratio | % of peak | tessera GB/s (% of DRAM read) | target | pass/miss | Δ vs tessera | others\' CPU |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of run.results) {
    const t = r.tessera;
    const ours = `${t.backend ? `${t.backend}/${t.variant}` : '?'}`;
    const pct = t.pctPeak ? `${t.pctPeak.toFixed(1)}%` : '';
    const load = r.load ? `${r.load.othersPct.toFixed(0)}%` : '';
    const gbps = t.gbps ? `${fmt(t.gbps)}${t.pctDram ? ` (${t.pctDram.toFixed(0)}%)` : ''}` : '';
    const peers = r.peers.length ? r.peers : [{ name: '(no peer)', skipped: '' }];
    for (const q of peers) {
      const tg = (r.targets || []).find((x) => x.peer === q.key);
      const target = tg ? `≥${tg.ratio.toFixed(1)}× ${PEER_LABEL[q.key] || q.key}` : '';
      const verdict = tg ? (tg.met === true ? 'pass' : tg.met === false ? '**miss**' : 'n/a') : '';
      const ratio = q.ratio ? `${q.ratio.toFixed(2)}×` : '';
      const delta = q.relErr === undefined ? '' : `${q.relErr.toExponential(0)}${q.check === 'mismatch' ? ' **MISMATCH**' : ''}`;
      const peerRate = q.name === '(no peer)' ? '' : rateText(r, q, r.unit);
      L.push(`| ${cell(r.kernel)} | ${cell(r.shape)} | ${cell(ours)} | ${cell(rateText(r, t, r.unit))} | ${cell(q.name)} | ${cell(peerRate)} | ${ratio} | ${pct} | ${gbps} | ${target} | ${verdict} | ${delta} | ${load} |`);
    }
  }
  const goals = run.results.flatMap((r) => (r.targets || []).map((tg) => ({ r, tg }))).filter(({ tg }) => tg.met === true || tg.met === false);
  const missed = goals.filter(({ tg }) => !tg.met).map(({ r, tg }) => `${r.kernel} ${r.shape} vs ${PEER_LABEL[tg.peer] || tg.peer}`);
  L.push('', `Targets met: ${goals.length - missed.length} of ${goals.length} measured (the issue's goals; rows without a target are for orientation).${missed.length ? ` Missed: ${missed.join('; ')}.` : ''}`, '');
  if (run.notes.length) {
    L.push('Notes:', '');
    for (const n of run.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}

const COLORS = {
  'tessera-cpu': ['#c0392b', 'tessera (native cpu)'],
  'tessera-js': ['#e67e22', 'tessera (js backend)'],
  'tessera-yard': ['#f1a9a0', 'tessera, yardstick kernel'],
  ort: ['#1f5fa8', 'ORT CPU EP (MLAS)'],
  'ort-alt': ['#7fb2e5', 'ORT, other op / setting'],
  numpy: ['#2e8b57', 'numpy (OpenBLAS)'],
  scipy: ['#98d6a0', 'scipy.sparse'],
  tfjs: ['#8e44ad', 'tfjs (cpu backend)'],
};
const colorKey = (key, backend) =>
  key === 'tessera' ? (backend === 'js' ? 'tessera-js' : 'tessera-cpu') : key.startsWith('ours-') ? 'tessera-yard' : key.startsWith('ort-') ? 'ort-alt' : key;

/** Grouped horizontal bars on a log axis: one group per case, one bar per runner. */
function svg(run) {
  const groups = run.results.map((r) => {
    const bars = [{ key: colorKey('tessera', r.tessera.backend), x: r.tessera }, ...r.peers.map((q) => ({ key: colorKey(q.key), x: q }))]
      .filter((b) => !b.x.skipped && (r.family === 'spmm' ? b.x.effRate : b.x.rate) > 0)
      .map((b) => ({ ...b, v: r.family === 'spmm' ? b.x.effRate : b.x.rate }));
    const unit = r.family === 'spmm' ? 'GFLOP/s eff' : r.unit;
    return { label: `${r.kernel}`, sub: `${r.shape}  [${unit}]`, bars };
  });
  const vals = groups.flatMap((g) => g.bars.map((b) => b.v));
  const lo = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...vals, 1))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...vals, 10)));
  const [left, plotW, right, barH, gap, groupGap, top] = [300, 560, 70, 11, 2, 12, 78];
  const height = top + groups.reduce((h, g) => h + Math.max(2, g.bars.length) * (barH + gap) + groupGap, 0) + 40;
  const width = left + plotW + right;
  const xOf = (v) => left + (plotW * Math.log10(v / lo)) / Math.log10(hi / lo);
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="10">`);
  o.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  o.push(`<text x="10" y="18" font-size="13" font-weight="bold">${esc(`tessera CPU kernels vs peers, ${run.date} (${run.mode}), ${run.threads} threads`)}</text>`);
  o.push(`<text x="10" y="33" fill="#555">${esc(`GFLOP/s (GOP/s for int8), log scale; peak used ${fmt(run.peak.gflops)} GFLOP/s (${run.peak.used}), nominal ${fmt(run.peak.nominal.gflops)}`)}</text>`);
  let lx = 10;
  for (const [, [color, name]] of Object.entries(COLORS)) {
    o.push(`<rect x="${lx}" y="42" width="10" height="10" fill="${color}"/><text x="${lx + 13}" y="51">${esc(name)}</text>`);
    lx += 26 + name.length * 5.6;
  }
  const plotBottom = height - 30;
  const tick = (d) => (d >= 1 ? String(d) : d.toFixed(Math.round(-Math.log10(d))));
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const x = xOf(d).toFixed(1);
    o.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${plotBottom}" stroke="#ddd"/>`);
    o.push(`<text x="${x}" y="${plotBottom + 12}" text-anchor="middle" fill="#555">${tick(d)}</text>`);
  }
  const peakLine = (v, color, label, anchor) => {
    const x = xOf(v).toFixed(1);
    o.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${plotBottom}" stroke="${color}" stroke-dasharray="4 3"/>`);
    o.push(`<text x="${x}" y="${top - 9}" text-anchor="${anchor}" fill="${color}">${esc(label)}</text>`);
  };
  peakLine(run.peak.nominal.gflops, '#888', `nominal ${fmt(run.peak.nominal.gflops)}`, 'start');
  if (run.peak.used !== 'nominal') peakLine(run.peak.gflops, '#c0392b', `measured peak ${fmt(run.peak.gflops)}`, 'end');
  let y = top;
  for (const g of groups) {
    const h = Math.max(2, g.bars.length) * (barH + gap);
    o.push(`<text x="${left - 8}" y="${y + h / 2 - 2}" text-anchor="end" font-weight="bold">${esc(g.label)}</text>`);
    o.push(`<text x="${left - 8}" y="${y + h / 2 + 9}" text-anchor="end" fill="#555">${esc(g.sub)}</text>`);
    g.bars.forEach((b, i) => {
      const by = y + i * (barH + gap);
      const x = xOf(Math.max(b.v, lo));
      o.push(`<rect x="${left}" y="${by}" width="${Math.max(1, x - left).toFixed(1)}" height="${barH}" fill="${COLORS[b.key][0]}"/>`);
      o.push(`<text x="${(x + 3).toFixed(1)}" y="${by + barH - 2}" fill="#333">${fmt(b.v)}</text>`);
    });
    y += h + groupGap;
    o.push(`<line x1="${left}" y1="${y - groupGap / 2}" x2="${left + plotW}" y2="${y - groupGap / 2}" stroke="#f0f0f0"/>`);
  }
  o.push('</svg>');
  return o.join('\n');
}

function writeAll(run, outDir) {
  run.notes = notes(run);
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = run.date.replace(/:/g, '').replace(' ', 'T');
  const json = path.join(outDir, `cpu-${stamp}${run.mode === 'quick' ? '-quick' : ''}.json`);
  fs.writeFileSync(json, JSON.stringify(run, null, 1));
  fs.writeFileSync(path.join(outDir, 'cpu-latest.md'), markdown(run));
  fs.writeFileSync(path.join(outDir, 'cpu-latest.svg'), svg(run));
  return { json, md: path.join(outDir, 'cpu-latest.md'), svg: path.join(outDir, 'cpu-latest.svg') };
}

module.exports = { notes, markdown, svg, writeAll, fmt };
