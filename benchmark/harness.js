// Timing and data helpers shared by the CPU benchmark: interleaved adaptive repetition with a median, a cap,
// seeded fast random fill (T.randn costs ~1 s per 16M values, too slow for 45M-element weights), and the
// relative error used to check that a peer computes the same thing as tessera.
'use strict';

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A runner is { key, call } (the harness times `call`, sync or returning a promise) or { key, timed(n) }
 * (self-timed: resolves to the seconds n back-to-back calls took, e.g. inside the numpy worker).
 */
async function burst(r, n) {
  if (r.timed) return r.timed(n);
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const out = r.call();
    if (out && typeof out.then === 'function') await out;
  }
  return now() - t0;
}

/**
 * Times several runners of one case interleaved, round by round, so that all of them see the same machine
 * (this VM's speed drifts by up to 2x over tens of seconds; back-to-back blocks would turn that drift into
 * fake ratios). Per runner: a warm-up call (a second one when the first was short) gives the estimate t;
 * a warm-up over capS skips that runner. Each round runs every runner for about b = max(t_max, burstS)
 * (a burst of round(b / t) calls, averaged: steady-state calls, as in a loop that calls a kernel again and
 * again, rather than one cold call per round); rounds = clamp(ceil(targetS / b), minReps, maxReps), or 1
 * when t_max > slowS. Between two runners the harness idles gapS: BLAS libraries keep their worker threads
 * spinning for a while after a call (OpenBLAS ~0.1 s), which would otherwise slow whichever runner comes
 * next. Result per runner: median over rounds of the per-call time.
 */
async function measureInterleaved(runners, { targetS, minReps, maxReps, capS, slowS, burstS = 0, gapS = 0 }) {
  const res = runners.map(() => ({}));
  const est = [];
  for (let i = 0; i < runners.length; i++) {
    await sleep(20);
    try {
      const w1 = await burst(runners[i], 1);
      res[i].warmS = w1;
      if (w1 > capS) {
        res[i].skipped = `one call took ${w1.toFixed(1)} s > cap ${capS} s`;
        continue;
      }
      est[i] = w1 < 0.5 ? await burst(runners[i], 1) : w1;
    } catch (e) {
      res[i].skipped = `error: ${String(e.message || e).split('\n')[0].slice(0, 200)}`;
    }
  }
  const active = runners.map((_, i) => i).filter((i) => est[i] !== undefined);
  if (!active.length) return res;
  const tMax = Math.max(0.02, ...active.map((i) => est[i]));
  const burstLen = Math.max(tMax, burstS);
  const rounds = tMax > slowS ? 1 : Math.max(minReps, Math.min(maxReps, Math.ceil(targetS / burstLen)));
  const samples = runners.map(() => []);
  const reps = runners.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < active.length; j++) {
      const i = active[(r + j) % active.length]; // rotate the order: nobody always runs first
      const n = Math.max(1, Math.min(200, Math.round(burstLen / Math.max(est[i], 1e-6))));
      if (gapS > 0) await sleep(gapS * 1000);
      try {
        samples[i].push((await burst(runners[i], n)) / n);
        reps[i] += n;
      } catch (e) {
        res[i].skipped = `error: ${String(e.message || e).split('\n')[0].slice(0, 200)}`;
      }
    }
  }
  for (const i of active) {
    const t = samples[i].sort((a, b) => a - b);
    if (!t.length || res[i].skipped) continue;
    const mid = t.length >> 1;
    res[i].medianS = t.length % 2 ? t[mid] : 0.5 * (t[mid - 1] + t[mid]);
    res[i].minS = t[0];
    res[i].maxS = t[t.length - 1];
    res[i].rounds = t.length;
    res[i].calls = reps[i];
  }
  return res;
}

/** Seeded uniform values in [-1, 1) (xorshift32): deterministic, ~100x faster than T.randn. */
function fillUniform(n, seed = 1) {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = s * (2 / 4294967296) - 1;
  }
  return a;
}

/** Zeroes a fraction `sparsity` of a (unstructured, seeded), in place; returns a. */
function sparsify(a, sparsity, seed = 7) {
  let s = (seed * 2246822519) >>> 0 || 1;
  const thr = sparsity * 4294967296;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    if (s < thr) a[i] = 0;
  }
  return a;
}

/** ||a - b|| / ||b|| over two equal-length arrays (NaN anywhere gives NaN). */
function relErr(a, b) {
  if (a.length !== b.length) return NaN;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / (den || 1));
}

/** [d0, d1, d2, d3] row-major -> swap axes 1 and 2 (BHSD <-> BSHD). */
function swap12(src, [d0, d1, d2, d3]) {
  const out = new Float32Array(src.length);
  for (let a = 0; a < d0; a++)
    for (let b = 0; b < d1; b++)
      for (let c = 0; c < d2; c++) {
        const from = ((a * d1 + b) * d2 + c) * d3;
        const to = ((a * d2 + c) * d1 + b) * d3;
        out.set(src.subarray(from, from + d3), to);
      }
  return out;
}

/**
 * CPU accounting to tell how much of the machine other processes took while a case ran (this VM is
 * shared: builds and installs by others run on the same 2 cores). snapshot(pids) reads /proc/stat and
 * our own CPU time (this process + helper pids); othersLoad(a, b) = share of all CPU time in between
 * that was busy but not ours, and the steal share. null where /proc is missing.
 */
function snapshot(pids = []) {
  try {
    const f = require('fs');
    const cpu = f.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu;
    let ours = (process.cpuUsage().user + process.cpuUsage().system) / 1e4; // µs -> ticks (USER_HZ 100)
    for (const pid of pids) {
      const st = f.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
      ours += Number(fields[11]) + Number(fields[12]); // utime, stime
    }
    return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal, steal, ours };
  } catch {
    return null;
  }
}

function othersLoad(a, b) {
  if (!a || !b || b.total <= a.total) return null;
  const dt = b.total - a.total;
  return { othersPct: Math.max(0, (100 * (b.busy - a.busy - (b.ours - a.ours))) / dt), stealPct: (100 * (b.steal - a.steal)) / dt };
}

module.exports = { now, sleep, measureInterleaved, fillUniform, sparsify, relErr, swap12, snapshot, othersLoad };
