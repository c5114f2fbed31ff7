#!/usr/bin/env node
// CPU benchmark: tessera side by side with onnxruntime-node (CPU EP / MLAS), numpy (OpenBLAS), scipy and
// tfjs (cpu backend), in one run, interleaved per case. Whatever tessera backend serves an op is measured
// and labelled (T.lastRun(op)): today the native addon runs fp32 matmul/attention; int8/int4/fp8/sparse
// fall to the JS backend until their native kernels land.
//
//   node benchmark/cpu.js [--quick] [--only gemm,attention,qgemm,spmm,js] [--out benchmark/results]
//                         [--threads 2] [--target-s 1] [--match id-substring,...]
// Writes <out>/cpu-<date>.json, cpu-latest.md and cpu-latest.svg (after every case, so a cut-short run
// still leaves its results). Cases, peers and targets: cases.js; timing: harness.js; peak: peak.js.
'use strict';
const path = require('path');

function parseArgs(argv) {
  const o = { quick: false, only: null, match: null, out: path.join(__dirname, 'results'), threads: 2, targetS: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--only')) o.only = val().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith('--match')) o.match = val().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith('--out')) o.out = path.resolve(val());
    else if (a.startsWith('--threads')) o.threads = Number(val());
    else if (a.startsWith('--target-s')) o.targetS = Number(val());
    else if (a === '-h' || a === '--help') {
      console.log('usage: node benchmark/cpu.js [--quick] [--only gemm,attention,qgemm,spmm,js] [--out DIR] [--threads N] [--target-s S] [--match ID,...]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.threads) || o.threads < 1) throw new Error('--threads must be a positive integer');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
process.env.TESSERA_NUM_THREADS = String(opts.threads); // read by the addon at load: set before require
const T = require('..');
const { buildCases, FAMILIES } = require('./cases');
const { measureInterleaved, relErr, snapshot, othersLoad } = require('./harness');
const peers = require('./peers');
const { calibrate, finalizePeak, loopPeak } = require('./peak');
const { writeAll, fmt } = require('./report');

if (opts.only) {
  const bad = opts.only.filter((f) => !FAMILIES.includes(f));
  if (bad.length) throw new Error(`--only: unknown famil${bad.length > 1 ? 'ies' : 'y'} ${bad.join(', ')}; expected ${FAMILIES.join(', ')}`);
}

const timing = opts.quick
  ? { targetS: opts.targetS || 0.25, minReps: 2, maxReps: 20, capS: 60, slowS: 3, burstS: 0.05, gapS: 0.12 }
  : { targetS: opts.targetS || 1, minReps: 3, maxReps: 30, capS: 60, slowS: 5, burstS: 0.1, gapS: 0.15 };

function stampNow() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The roof a row's rate is held against: int8 ops (GOP/s rows) against the int8 loop when measured. */
function peakOf(row, peak) {
  return row.unit === 'GOP/s' && peak.int8 ? peak.int8.gflops : peak.gflops;
}

/** Fills rates, ratios, the peer check and the target verdict of one case. */
function summarize(c, setup, res) {
  const [ours, ...others] = res;
  const rec = (setup.runners[0].record && setup.runners[0].record()) || T.lastRun(c.op) || {};
  const flops = c.flops;
  const rate = (x) => (x.medianS ? flops / x.medianS / 1e9 : 0);
  const effRate = (x) => (x.medianS && c.effFlops ? c.effFlops / x.medianS / 1e9 : undefined);
  const tessera = { ...ours, backend: rec.backend, variant: rec.variant, rate: rate(ours), effRate: effRate(ours) };
  let ref = null;
  const peerRows = setup.runners.slice(1).map((r, i) => {
    const x = others[i];
    const row = { key: r.key, name: r.name, ...x };
    if (!x.skipped) {
      // a dense peer does the full M*K*N work: only its effective rate means anything
      row.rate = c.family === 'spmm' && (r.key === 'ort' || r.key === 'ours-dense') ? 0 : rate(x);
      row.effRate = effRate(x);
      row.ratio = ours.medianS ? x.medianS / ours.medianS : undefined;
    }
    if (r.output && !x.skipped && ours.medianS) {
      ref = ref || setup.runners[0].reference();
      row.relErr = relErr(r.output(), ref);
      row.tol = r.tol;
      row.check = row.relErr <= r.tol ? 'ok' : 'mismatch';
    }
    return row;
  });
  const targets = (c.targets || []).map((tg) => {
    const q = peerRows.find((p) => p.key === tg.peer);
    return { ...tg, met: q && q.ratio !== undefined ? q.ratio >= tg.ratio : null };
  });
  if (c.bytes && ours.medianS) tessera.gbps = c.bytes / ours.medianS / 1e9;
  for (const row of peerRows) if (c.bytes && row.medianS) row.gbps = c.bytes / row.medianS / 1e9;
  return {
    id: c.id,
    family: c.family,
    kernel: c.kernel,
    shape: c.shape,
    unit: c.unit,
    flops,
    bytes: c.bytes,
    effFlops: c.effFlops,
    nnz: setup.nnz,
    tessera,
    peers: peerRows,
    targets,
    notes: setup.notes || [],
  };
}

async function main() {
  const t0 = Date.now();
  try {
    T.setNumThreads(opts.threads);
  } catch (e) {
    console.warn(`setNumThreads: ${e.message}`);
  }
  const ort = peers.loadOrt();
  const numpy = await peers.NumpyWorker.create(opts.threads);
  const tf = opts.only && !opts.only.includes('js') ? null : await peers.loadTfjs();
  const cpu = T.backends().find((b) => b.name === 'cpu');
  const run = {
    date: stampNow(),
    mode: opts.quick ? 'quick' : 'full',
    threads: opts.threads,
    timing,
    env: {
      node: process.version,
      tessera: require('../package.json').version,
      simd: cpu && cpu.available ? `tessera cpu addon ${cpu.detail.simd}` : `tessera cpu addon unavailable (${cpu && cpu.reason})`,
      backends: T.backends().map((b) => `${b.name}${b.available ? '' : ' (unavailable)'}`).join(', '),
      numpy: numpy ? numpy.info : { unavailable: peers.NumpyWorker.reason },
    },
    peers: [],
    notes: [],
    results: [],
  };
  const np = numpy && numpy.info;
  run.peers.push(ort.unavailable ? ort.unavailable : `onnxruntime-node ${ort.env.versions.node} (CPU EP, MLAS; intraOpNumThreads ${opts.threads}, sequential, graph opt all)`);
  run.peers.push(np ? `numpy ${np.numpy} + ${np.blas ? `${np.blas.name} ${np.blas.version}` : 'BLAS ?'} (core ${np.openblas_core || '?'}, ${np.openblas_threads || '?'} threads)${np.scipy ? `, scipy ${np.scipy}` : ''}` : peers.NumpyWorker.reason);
  if (tf) run.peers.push(tf.unavailable ? tf.unavailable : `@tensorflow/tfjs ${tf.version_core} (backend ${tf.getBackend()}, single-threaded JS)`);
  console.log(`tessera CPU benchmark (${run.mode}), ${opts.threads} threads; ${run.env.simd}`);
  for (const p of run.peers) console.log(`  peer: ${p}`);

  const cal = await calibrate(T, { numpy, timing });
  // the memory roofs: DRAM read (256 MiB buffer) and a cache-resident read (8 MiB, inside the 32 MB L3)
  const dram = T.memoryBandwidth ? T.memoryBandwidth({ seconds: 0.5 }) : null;
  const cache = T.memoryBandwidth ? T.memoryBandwidth({ bytes: 8 * 2 ** 20, seconds: 0.2 }) : null;
  run.memory = dram ? { dram, cache } : null;
  if (dram) console.log(`  memory: DRAM read ${fmt(dram.all)} GB/s (${dram.threads} threads; one thread ${fmt(dram.perThread)}), 8 MiB cache-resident read ${fmt(cache.all)} GB/s`);
  let peak = finalizePeak(cal);
  console.log(`  peak: using ${peak.used} ${fmt(peak.gflops)} GFLOP/s; measured ${fmt(peak.measured.gflops)} (${peak.measured.source}); nominal ${fmt(peak.nominal.gflops)} (${peak.nominal.formula})${peak.why ? `; ${peak.why}` : ''}`);
  if (peak.int8) console.log(`  int8 peak: ${fmt(peak.int8.gflops)} GOP/s (${peak.int8.source}), ${(peak.int8.gflops / peak.gflops).toFixed(2)}x the fp32 peak`);
  run.peak = peak;

  const cases = buildCases({ quick: opts.quick, only: opts.only }).filter((c) => !opts.match || opts.match.some((m) => c.id.includes(m)));
  if (!cases.length) throw new Error('no case matches --only/--match');
  const extraPeak = [];
  const extraInt8 = [];
  const ctx = { T, threads: opts.threads, numpy, peers, quick: opts.quick };
  for (let n = 0; n < cases.length; n++) {
    const c = cases[n];
    const tc = Date.now();
    let setup;
    try {
      setup = await c.setup(ctx);
    } catch (e) {
      console.log(`[${n + 1}/${cases.length}] ${c.kernel} ${c.shape}: set-up failed: ${e.message}`);
      run.results.push({ id: c.id, family: c.family, kernel: c.kernel, shape: c.shape, unit: c.unit, tessera: { skipped: `set-up failed: ${e.message}` }, peers: [], targets: [], notes: [] });
      continue;
    }
    const pids = numpy ? [numpy.proc.pid] : [];
    const before = snapshot(pids);
    const ceilBefore = loopPeak(T, 0.05);
    const memBefore = c.bytes && run.memory ? T.memoryBandwidth({ seconds: 0.1 }) : null;
    const res = await measureInterleaved(setup.runners, timing);
    const memAfter = c.bytes && run.memory ? T.memoryBandwidth({ seconds: 0.1 }) : null;
    const ceilAfter = loopPeak(T, 0.05);
    const load = othersLoad(before, snapshot(pids));
    const row = summarize(c, setup, res);
    row.load = load;
    // the arithmetic ceilings just before and after the case: what "at equal efficiency" means right then
    // (the better of the two samples: a neighbour's burst only ever lowers a ceiling)
    const ceil = [ceilBefore, ceilAfter].filter(Boolean);
    if (ceil.length) {
      const best = (k) => Math.max(...ceil.map((x) => x[k].gflops));
      row.ceiling = { fp32: best('fp32'), int8: best('int8') };
      row.ceiling.int8OverFp32 = row.ceiling.int8 / row.ceiling.fp32;
      for (const x of ceil) extraPeak.push(x.fp32), extraInt8.push(x.int8);
    }
    // the DRAM read roof around a memory-bound case (the better sample, as for the ceilings)
    if (memBefore && memAfter) {
      row.dramRoof = Math.max(memBefore.all, memAfter.all, 0);
      if (row.tessera.gbps) row.tessera.pctDram = (100 * row.tessera.gbps) / row.dramRoof;
    }
    for (const r of setup.runners) if (r.release) await r.release();
    if (setup.cleanup) setup.cleanup();
    run.results.push(row);
    // the peak is the best fp32 GEMM round seen: tessera at 1024^3 and numpy at 2048^3 (peak.js)
    const best = (x) => (x && x.minS ? c.flops / x.minS / 1e9 : 0);
    const othersPct = load ? load.othersPct : 0;
    if (c.id === 'gemm-f32-1024x1024x1024' && best(row.tessera)) extraPeak.push({ gflops: best(row.tessera), source: `tessera matmul 1024^3, best round (${row.tessera.variant})`, othersPct });
    const npRow = row.peers.find((p) => p.key === 'numpy');
    if (c.id === 'gemm-f32-2048x2048x2048' && best(npRow)) extraPeak.push({ gflops: best(npRow), source: 'numpy 2048^3, best round (OpenBLAS sgemm)', othersPct });
    const t = row.tessera;
    const peerText = row.peers.map((p) => `${p.key} ${p.skipped ? 'skipped' : `${fmt(p.effRate && !p.rate ? p.effRate : p.rate)} (${p.ratio ? p.ratio.toFixed(2) : '?'}x)`}${p.check === 'mismatch' ? ' MISMATCH' : ''}`).join(', ');
    console.log(`[${n + 1}/${cases.length}] ${c.kernel} ${c.shape}: tessera ${t.skipped ? `skipped (${t.skipped})` : `${fmt(t.rate)} ${c.unit}`}${t.gbps ? ` = ${fmt(t.gbps)} GB/s${t.pctDram ? ` (${t.pctDram.toFixed(0)}% of DRAM read ${fmt(row.dramRoof)})` : ''}` : ''} [${t.backend}/${t.variant}]; ${peerText}${row.ceiling && c.unit === 'GOP/s' ? `; ceilings int8 ${fmt(row.ceiling.int8)} / fp32 ${fmt(row.ceiling.fp32)} = ${row.ceiling.int8OverFp32.toFixed(2)}x` : ''}  (${((Date.now() - tc) / 1000).toFixed(1)} s${row.load ? `, others' CPU ${row.load.othersPct.toFixed(0)}%` : ''})`);
    run.partial = n + 1 < cases.length ? `${n + 1} of ${cases.length} cases` : undefined;
    peak = finalizePeak(cal, extraPeak, extraInt8);
    run.peak = peak;
    for (const r of run.results) if (r.tessera && r.tessera.rate) r.tessera.pctPeak = (100 * r.tessera.rate) / peakOf(r, peak);
    writeAll(run, opts.out);
  }
  if (numpy) numpy.close();
  run.elapsedS = (Date.now() - t0) / 1000;
  const files = writeAll(run, opts.out);
  console.log(`done in ${run.elapsedS.toFixed(0)} s: ${files.json}, ${files.md}, ${files.svg}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
